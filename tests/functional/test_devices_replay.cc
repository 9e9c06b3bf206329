// Record/replay of device input that comes from outside the host's test
// process: a TCP connection into a server in the guest (slirp hostfwd +
// filter-replay), and audio captured from a real PulseAudio server.  Each
// test records with random input and replays with the outside world gone
// (no peer connects, no audio server runs), and requires the same serial
// output, final instruction count and guest RAM.  The serial (socket
// chardev) and outbound network (HTTP download) cases are in
// test_record_replay.cc.
#include "pulse_server.hh"
#include "record_replay.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <random>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

// Reads from `fd` up to the first "\n" (not included); "" on timeout or EOF.
std::string read_line(int fd, std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string line;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            return "";
        }
        char c;
        if (read(fd, &c, 1) != 1) {
            return "";
        }
        if (c == '\n') {
            return line;
        }
        line += c;
    }
}

int random_int(int lo, int hi)
{
    std::random_device rd;
    return std::uniform_int_distribution<int>(lo, hi)(rd);
}

}  // namespace

TEST_CASE("net inbound: a connection into a guest server is replayed without the peer",
          "[replay][net]")
{
    TempDir dir("net-in");
    const int guest_port = 7000;
    int host_port = free_tcp_port();
    std::string hostfwd = "tcp:127.0.0.1:" + std::to_string(host_port) + "-:" +
                          std::to_string(guest_port);
    // The same devices in replay: slirp is there but cut off by the filter,
    // and nothing connects to the forwarded port.
    Scenario s{"net", "rewind.serve=" + std::to_string(guest_port),
               net_devices(true, hostfwd)};
    std::string data = random_bytes(64 * 1024);
    std::string reply;
    auto feed = [&](QemuInstance &q) {
        std::string serial = q.workdir() + "/serial.log";
        auto wait_ms = static_cast<int>(scaled(300s).count());
        REQUIRE(wait_for_text(serial, "NET-LISTENING", wait_ms));
        TcpClient peer(host_port, 30000);
        peer.send(std::to_string(data.size()) + "\n" + data);
        reply = read_line(peer.fd(), scaled(300s));
        REQUIRE(wait_for_text(serial, "NET-IN-MD5", wait_ms));
    };
    auto rr = record_then_replay(s, dir.path(), feed);
    require_identical_runs(rr);
    // The guest got the bytes, and its answer reached the peer.
    CHECK(reply == md5_hex(data));
    CHECK(one_line(rr.replay.serial, "NET-IN-MD5 ") == md5_hex(data));
}

TEST_CASE("audio: a tone captured from PulseAudio is replayed with no audio server",
          "[replay][audio]")
{
    TempDir dir("audio");
    // A frequency of this run only: a replay that did not take the samples
    // from the log could not find it.
    const int hz = random_int(300, 1500);
    const double volume = 0.5;
    auto pulse = std::make_unique<PulseServer>(dir.path() + "/pulse");
    pulse->play_sine(hz, volume);

    Scenario record{"audio", "",
                    audio_devices("pa,server=" + pulse->address() + ",in.name=" +
                                  PulseServer::monitor_source)};
    // No audio server at all in replay: "pa" could not even start without
    // one, and replay takes the captured samples from the log anyway.
    Scenario replay{"audio", "", audio_devices("none")};
    std::string pulse_log;
    bool server_gone = false;
    auto rr = record_then_replay(record, replay, dir.path(), {}, [&] {
        pulse->stop();
        server_gone = !pulse->accepts_connections();
        pulse_log = pulse->log();
        pulse.reset();
    });
    INFO("tone " << hz << " Hz; PulseAudio log:\n" << tail_lines(pulse_log, 20));
    require_identical_runs(rr);

    // One second of 44.1 kHz 16-bit stereo, and it is the tone that was
    // played: a sine of amplitude A has a mean absolute value of 2A/pi.
    CHECK(one_line(rr.replay.serial, "AUDIO-BYTES ") == "176400");
    double expected_level = 2 / M_PI * volume * 32767;
    int level = std::stoi(one_line(rr.replay.serial, "AUDIO-LEVEL "));
    CHECK(level > 0.6 * expected_level);
    CHECK(level < 1.1 * expected_level);
    int measured = std::stoi(one_line(rr.replay.serial, "AUDIO-HZ "));
    CHECK(std::abs(measured - hz) <= 2 + hz / 100);
    CHECK(server_gone);
}
