#include "rsp_client.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace qemu_rewind::test {

using Clock = std::chrono::steady_clock;

namespace {

int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

std::string frame(const std::string &payload)
{
    unsigned sum = 0;
    for (unsigned char c : payload) {
        sum += c;
    }
    char tail[4];
    std::snprintf(tail, sizeof tail, "#%02x", sum & 0xff);
    return "$" + payload + tail;
}

std::string shorten(const std::string &s)
{
    return s.size() > 240 ? s.substr(0, 240) + "...(" + std::to_string(s.size()) +
                                " bytes)"
                          : s;
}

}  // namespace

std::uint64_t le_hex_to_u64(const std::string &hex_bytes)
{
    if (hex_bytes.empty() || hex_bytes.size() % 2 || hex_bytes.size() > 16) {
        throw std::runtime_error("not a register value: '" + hex_bytes + "'");
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < hex_bytes.size(); i += 2) {
        int hi = hex_digit(hex_bytes[i]), lo = hex_digit(hex_bytes[i + 1]);
        if (hi < 0 || lo < 0) {
            throw std::runtime_error("not a register value: '" + hex_bytes + "'");
        }
        v |= static_cast<std::uint64_t>(hi << 4 | lo) << (4 * i);
    }
    return v;
}

std::uint64_t StopReply::register_le(int regnum) const
{
    char name[16];
    std::snprintf(name, sizeof name, "%02x", regnum);
    auto it = fields.find(name);
    if (it == fields.end()) {
        throw std::runtime_error(std::string("stop reply has no register ") + name);
    }
    return le_hex_to_u64(it->second);
}

StopReply parse_stop_reply(const std::string &packet)
{
    if (packet.size() < 3 || packet[0] != 'T' || hex_digit(packet[1]) < 0 ||
        hex_digit(packet[2]) < 0) {
        throw std::runtime_error("not a T stop reply: '" + packet + "'");
    }
    StopReply r;
    r.signal = hex_digit(packet[1]) << 4 | hex_digit(packet[2]);
    std::size_t pos = 3;
    while (pos < packet.size()) {
        std::size_t end = packet.find(';', pos);
        if (end == std::string::npos) {
            throw std::runtime_error("unterminated field in '" + packet + "'");
        }
        std::string field = packet.substr(pos, end - pos);
        std::size_t colon = field.find(':');
        if (colon == std::string::npos) {
            throw std::runtime_error("field without ':' in '" + packet + "'");
        }
        r.fields[field.substr(0, colon)] = field.substr(colon + 1);
        pos = end + 1;
    }
    return r;
}

RspClient::RspClient(int port, std::chrono::milliseconds connect_timeout)
    : conn_(port, static_cast<int>(connect_timeout.count())), port_(port)
{
}

RspClient::~RspClient() = default;

char RspClient::read_byte(Clock::time_point deadline)
{
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - Clock::now());
        if (left.count() <= 0) {
            throw std::runtime_error("timed out waiting for the gdbstub");
        }
        pollfd p{conn_.fd(), POLLIN, 0};
        int rc = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (rc < 0 && errno != EINTR) {
            throw std::runtime_error("poll on the gdbstub connection failed");
        }
        if (rc <= 0) {
            continue;
        }
        char c;
        ssize_t n = read(conn_.fd(), &c, 1);
        if (n == 1) {
            return c;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        throw std::runtime_error("the gdbstub closed the connection");
    }
}

void RspClient::send(const std::string &payload, std::chrono::milliseconds timeout)
{
    transcript_ += "-> " + shorten(payload) + "\n";
    std::string framed = frame(payload);
    auto deadline = Clock::now() + timeout;
    for (int attempt = 0; attempt < 5; ++attempt) {
        write_all(framed);
        if (!ack_mode_) {
            return;
        }
        char c = read_byte(deadline);
        if (c == '+') {
            return;
        }
        if (c != '-') {
            throw std::runtime_error(std::string("expected an acknowledgment, got '") +
                                     c + "'");
        }
        transcript_ += "<- - (resending)\n";
    }
    throw std::runtime_error("the gdbstub rejected '" + payload + "' 5 times");
}

std::string RspClient::receive(std::chrono::milliseconds timeout)
{
    auto deadline = Clock::now() + timeout;
    char c;
    while ((c = read_byte(deadline)) != '$') {
        if (!ack_mode_ && (c == '+' || c == '-')) {
            ++acks_after_no_ack_;
        }
        transcript_ += std::string("<- stray byte '") + c + "'\n";
    }
    std::string payload;
    unsigned sum = 0;
    while ((c = read_byte(deadline)) != '#') {
        sum += static_cast<unsigned char>(c);
        payload += c;
    }
    int hi = hex_digit(read_byte(deadline));
    int lo = hex_digit(read_byte(deadline));
    if (hi < 0 || lo < 0 || static_cast<unsigned>(hi << 4 | lo) != (sum & 0xff)) {
        throw std::runtime_error("bad checksum on a packet from the gdbstub: '" +
                                 shorten(payload) + "'");
    }
    if (ack_mode_) {
        write_all("+");
    }
    // Undo the binary escapes ("}x" is x ^ 0x20) and run-length encoding
    // ("c*n" repeats c n - 29 more times).
    std::string out;
    for (std::size_t i = 0; i < payload.size(); ++i) {
        if (payload[i] == '}' && i + 1 < payload.size()) {
            out += static_cast<char>(payload[++i] ^ 0x20);
        } else if (payload[i] == '*' && i + 1 < payload.size() && !out.empty()) {
            out.append(static_cast<std::size_t>(payload[++i] - 29), out.back());
        } else {
            out += payload[i];
        }
    }
    transcript_ += "<- " + shorten(out) + "\n";
    return out;
}

std::string RspClient::request(const std::string &payload,
                               std::chrono::milliseconds timeout)
{
    send(payload, timeout);
    return receive(timeout);
}

std::string RspClient::start_no_ack_mode()
{
    std::string reply = request("QStartNoAckMode");
    if (reply == "OK") {
        ack_mode_ = false;
    }
    return reply;
}

}  // namespace qemu_rewind::test
