// A minimal GDB Remote Serial Protocol client, for tests that check what
// QEMU's gdbstub itself sends (gdb hides most of it): packet framing with
// checksums, '+'/'-' acknowledgments until QStartNoAckMode, and parsing of
// T stop replies.
#pragma once

#include "util.hh"

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace qemu_rewind::test {

// A T stop reply: "T05thread:p01.01;swbreak:;10:0011223344556677;".
struct StopReply {
    int signal = -1;
    // Every "name:value" field, in text ("swbreak" -> "", "10" -> hex bytes).
    std::map<std::string, std::string> fields;
    bool has(const std::string &name) const { return fields.count(name) != 0; }
    // The value of register `regnum` (gdb numbering, hex field name) as a
    // little-endian integer; throws when the reply does not carry it.
    std::uint64_t register_le(int regnum) const;
};
// Throws std::runtime_error if `packet` is not a T reply.
StopReply parse_stop_reply(const std::string &packet);
// Hex bytes in target (little-endian) order as an integer.
std::uint64_t le_hex_to_u64(const std::string &hex_bytes);

class RspClient {
public:
    // Connects to 127.0.0.1:port, retrying until the timeout.
    RspClient(int port, std::chrono::milliseconds connect_timeout);
    ~RspClient();
    RspClient(const RspClient &) = delete;
    RspClient &operator=(const RspClient &) = delete;

    // Sends one packet; with acknowledgments on, waits for the '+' and
    // resends on '-'. Throws on timeout or a closed connection.
    void send(const std::string &payload,
              std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // The next packet from the stub, checksum verified and acknowledged
    // when acknowledgments are on (a bad checksum throws).
    std::string receive(std::chrono::milliseconds timeout);
    // send() then receive().
    std::string request(const std::string &payload,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));

    // Sends QStartNoAckMode and, on "OK", stops acknowledging. Returns the
    // stub's reply.
    std::string start_no_ack_mode();
    bool ack_mode() const { return ack_mode_; }
    // '+' or '-' bytes the stub sent after acknowledgments were turned off
    // (there must be none).
    int acks_after_no_ack() const { return acks_after_no_ack_; }

    // Every packet each way, for failure reports.
    const std::string &transcript() const { return transcript_; }

private:
    char read_byte(std::chrono::steady_clock::time_point deadline);
    void write_all(const std::string &data) { conn_.send(data); }

    TcpClient conn_;
    int port_;
    bool ack_mode_ = true;
    int acks_after_no_ack_ = 0;
    std::string transcript_;
};

}  // namespace qemu_rewind::test
