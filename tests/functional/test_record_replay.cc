// Record each guest scenario with non-deterministic input, replay it from
// the log alone, and require the same serial output, final instruction
// count and guest RAM hash.
#include "record_replay.hh"
#include "http_server.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>
#include <cstdint>
#include <memory>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

TEST_CASE("boot: record and replay give the same output and icount and RAM",
          "[replay][boot]")
{
    TempDir dir("boot");
    auto rr = record_then_replay({"boot", "", {}}, dir.path());
    require_identical_runs(rr);

    // The guest's workload is deterministic: check its actual values.
    CHECK(one_line(rr.record.serial, "WORK ") ==
          md5_hex(std::string(1000 * 65536, '\0')));
    auto lines = lines_with(rr.record.serial, "LINE ");
    REQUIRE(lines.size() == 200);
    std::uint64_t sum = 0;
    for (std::uint64_t i = 1; i <= 200; ++i) {
        sum = (sum * 31 + i * i) % 4294967296ULL;
        CHECK(lines[i - 1] == std::to_string(i) + " " + std::to_string(sum));
    }
}

TEST_CASE("serial-echo: random serial input is replayed from the log",
          "[replay][serial]")
{
    TempDir dir("serial");
    int port = free_tcp_port();
    // The same second serial port in record and replay; in replay nothing
    // connects to it and its input comes from the log.
    Scenario s{"serial-echo", "",
               {"-chardev", "socket,id=ser1,host=127.0.0.1,port=" +
                                std::to_string(port) + ",server=on,wait=off",
                "-serial", "chardev:ser1"}};
    std::string sent;
    for (int i = 0; i < 20; ++i) {
        sent += random_token(8 + i) + "\n";
    }
    auto feed = [&](QemuInstance &q) {
        REQUIRE(wait_for_text(q.workdir() + "/serial.log", "SERIAL-READY",
                              static_cast<int>(scaled(300s).count())));
        TcpClient peer(port, 30000);
        peer.send(sent + "END\n");
        REQUIRE(wait_for_text(q.workdir() + "/serial.log", "DIGEST",
                              static_cast<int>(scaled(300s).count())));
    };
    auto rr = record_then_replay(s, dir.path(), feed);
    require_identical_runs(rr);
    CHECK(one_line(rr.replay.serial, "DIGEST ") == md5_hex(sent));
    CHECK(lines_with(rr.replay.serial, "ECHO ").size() == 20);
}

TEST_CASE("net: an HTTP download over slirp is replayed without the server",
          "[replay][net]")
{
    TempDir dir("net");
    std::string payload = random_bytes(200 * 1024);
    auto server = std::make_unique<HttpServer>(payload);
    Scenario s{"net", "rewind.port=" + std::to_string(server->port()),
               net_devices(true)};
    int served = -1;
    auto rr = record_then_replay(s, dir.path(), {}, [&] {
        served = server->requests_served();
        server.reset();   // the replay must not need it
    });
    CHECK(served == 1);
    require_identical_runs(rr);
    CHECK(one_line(rr.replay.serial, "NET-MD5 ") == md5_hex(payload));
}

TEST_CASE("disk: qcow2 reads and writes through blkreplay are replayed",
          "[replay][disk]")
{
    TempDir dir("disk");
    RandomDisk d = make_random_disk(dir.path());
    const std::string &content = d.content;

    auto rr = record_then_replay({"disk", "", disk_devices(d.qcow2)}, dir.path());
    require_identical_runs(rr);
    std::string read_md5 = md5_hex(content.substr(0, 1 << 20));
    CHECK(one_line(rr.replay.serial, "DISK-READ ") == read_md5);
    std::string block;
    for (int i = 0; i < 2048; ++i) {
        block += read_md5;
    }
    CHECK(one_line(rr.replay.serial, "DISK-WRITE ") == md5_hex(block));
}
