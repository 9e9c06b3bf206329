// Unit tests of the raw RSP client of the gdb protocol tests: if its
// framing, acknowledgments or stop-reply parsing were wrong, those tests
// could pass or fail for the wrong reasons. A fake stub on a loopback
// socket plays QEMU's part.
#include "rsp_client.hh"
#include "util.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch_test_macros.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

TEST_CASE("RSP stop replies are parsed into signal, reasons and registers",
          "[harness][rsp]")
{
    StopReply r = parse_stop_reply(
        "T05thread:p01.01;swbreak:;10:e0500d81ffffffff;07:703c5b0000c9ffff;");
    CHECK(r.signal == 5);
    CHECK(r.has("swbreak"));
    CHECK(r.fields.at("swbreak").empty());
    CHECK(r.fields.at("thread") == "p01.01");
    CHECK(r.register_le(0x10) == 0xffffffff810d50e0ULL);
    CHECK(r.register_le(7) == 0xffffc900005b3c70ULL);
    CHECK_THROWS(r.register_le(6));
    CHECK(parse_stop_reply("T03").fields.empty());
    CHECK(parse_stop_reply("T05replaylog:begin;").fields.at("replaylog") == "begin");
    CHECK_THROWS(parse_stop_reply("OK"));
    CHECK_THROWS(parse_stop_reply("S05"));
    CHECK_THROWS(parse_stop_reply("T05thread:01"));   // unterminated
    CHECK(le_hex_to_u64("0100") == 1);
    CHECK(le_hex_to_u64("f0ff000000000000") == 0xfff0);
    CHECK_THROWS(le_hex_to_u64("123"));
    CHECK_THROWS(le_hex_to_u64("zz"));
}

namespace {

// A one-connection fake gdbstub on 127.0.0.1.
class FakeStub {
public:
    FakeStub()
    {
        listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(listen_fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
            listen(listen_fd_, 1) != 0 ||
            getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
            throw std::runtime_error("fake stub: cannot listen");
        }
        port_ = ntohs(a.sin_port);
    }
    ~FakeStub()
    {
        if (fd_ >= 0) {
            close(fd_);
        }
        close(listen_fd_);
    }
    int port() const { return port_; }
    void accept_one() { fd_ = accept(listen_fd_, nullptr, nullptr); }
    // Reads n bytes exactly.
    std::string read_n(std::size_t n)
    {
        std::string s;
        while (s.size() < n) {
            char c;
            if (read(fd_, &c, 1) != 1) {
                throw std::runtime_error("fake stub: connection closed");
            }
            s += c;
        }
        return s;
    }
    void write_str(const std::string &s)
    {
        if (write(fd_, s.data(), s.size()) != static_cast<ssize_t>(s.size())) {
            throw std::runtime_error("fake stub: write failed");
        }
    }

private:
    int listen_fd_ = -1;
    int fd_ = -1;
    int port_ = 0;
};

}  // namespace

TEST_CASE("RSP client frames, acknowledges and stops acknowledging after "
          "QStartNoAckMode",
          "[harness][rsp]")
{
    FakeStub stub;
    std::string seen;
    std::thread server([&] {
        try {
            stub.accept_one();
            // "?" -> NAK once (the client must resend), then ACK and reply.
            seen += stub.read_n(5);            // $?#3f
            stub.write_str("-");
            seen += stub.read_n(5);
            stub.write_str("+$T05thread:01;#07");
            seen += stub.read_n(1);            // the client's '+'
            // QStartNoAckMode, acknowledged both ways, then no acks.
            seen += stub.read_n(19);           // $QStartNoAckMode#b0
            stub.write_str("+$OK#9a");
            seen += stub.read_n(1);            // '+' for the OK
            seen += stub.read_n(5);            // $g#67, no ack expected
            // An escaped '}' (0x7d) and a run-length encoded "0000".
            stub.write_str("$a}]0* #b5");
            seen += stub.read_n(5);            // $?#3f
            stub.write_str("$OK#9a");
        } catch (const std::exception &) {
        }
    });
    auto client = std::make_unique<RspClient>(stub.port(), 5000ms);
    RspClient &c = *client;
    std::string halt, noack, g, last, error;
    try {
        halt = c.request("?", 5s);
        noack = c.start_no_ack_mode();
        g = c.request("g", 5s);
        last = c.request("?", 5s);
    } catch (const std::exception &e) {
        error = e.what();
        INFO("transcript:\n" << c.transcript());
        client.reset();   // unblocks the fake stub's reads
        server.join();
        FAIL(error);
    }
    server.join();
    INFO("transcript:\n" << c.transcript());
    CHECK(halt == "T05thread:01;");
    CHECK(noack == "OK");
    CHECK_FALSE(c.ack_mode());
    CHECK(g == "a}0000");
    CHECK(last == "OK");
    CHECK(c.acks_after_no_ack() == 0);
    // Resent after the NAK, and no '+' from the client once acks are off.
    CHECK(seen == "$?#3f$?#3f+$QStartNoAckMode#b0+$g#67$?#3f");
}
