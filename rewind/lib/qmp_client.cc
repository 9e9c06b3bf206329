#include "qmp_client.hh"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace qemu_rewind {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

QmpClient::~QmpClient() { close(); }

void QmpClient::close()
{
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

void QmpClient::connect(const std::string &socket_path,
                        std::chrono::milliseconds timeout)
{
    auto deadline = Clock::now() + timeout;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path) {
        throw QmpError("QMP socket path too long: " + socket_path);
    }
    std::strcpy(addr.sun_path, socket_path.c_str());
    for (;;) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (::connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0) {
            break;
        }
        close();
        if (Clock::now() >= deadline) {
            throw QmpError("cannot connect to QMP at " + socket_path + ": " +
                           strerror(errno));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    json greeting = read_message(deadline);
    if (!greeting.contains("QMP")) {
        throw QmpError("no QMP greeting on " + socket_path);
    }
    execute("qmp_capabilities");
}

json QmpClient::read_message(Clock::time_point deadline)
{
    for (;;) {
        auto nl = buffer_.find('\n');
        if (nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            if (line.find_first_not_of(" \r\t") == std::string::npos) {
                continue;
            }
            json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
            if (message.is_discarded()) {
                throw QmpError("QMP sent something that is not JSON: " + line.substr(0, 200));
            }
            return message;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - Clock::now());
        if (left.count() <= 0) {
            return nullptr;
        }
        pollfd p{fd_, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return nullptr;
        }
        char buf[65536];
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n <= 0) {
            close();
            throw QmpError("QMP connection closed (QEMU exited?)");
        }
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

json QmpClient::execute(const std::string &command, const json &arguments,
                        std::chrono::milliseconds timeout)
{
    if (fd_ < 0) {
        throw QmpError("QMP not connected (running '" + command + "')");
    }
    json request = {{"execute", command}};
    if (!arguments.is_null()) {
        request["arguments"] = arguments;
    }
    std::string text = request.dump() + "\n";
    if (send(fd_, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
        throw QmpError("QMP write failed for '" + command + "'");
    }
    auto deadline = Clock::now() + timeout;
    for (;;) {
        json msg = read_message(deadline);
        if (msg.is_null()) {
            throw QmpError("no QMP reply to '" + command + "' within " +
                           std::to_string(timeout.count()) + " ms");
        }
        if (msg.contains("event")) {
            events_.push_back(std::move(msg));
            continue;
        }
        if (msg.contains("error")) {
            throw QmpError("QMP '" + command + "' failed: " +
                           msg["error"].value("desc", msg["error"].dump()));
        }
        return msg.value("return", json::object());
    }
}

std::string QmpClient::hmp(const std::string &command_line,
                           std::chrono::milliseconds timeout)
{
    json r = execute("human-monitor-command",
                     {{"command-line", command_line}}, timeout);
    return r.is_string() ? r.get<std::string>() : r.dump();
}

json QmpClient::wait_event(const std::string &name,
                           std::chrono::milliseconds timeout)
{
    auto deadline = Clock::now() + timeout;
    for (;;) {
        for (auto it = events_.begin(); it != events_.end(); ++it) {
            if ((*it)["event"] == name) {
                json e = *it;
                events_.erase(it);
                return e;
            }
        }
        if (fd_ < 0) {
            return nullptr;
        }
        json msg;
        try {
            msg = read_message(deadline);
        } catch (const QmpError &) {
            return nullptr;
        }
        if (msg.is_null()) {
            return nullptr;
        }
        if (msg.contains("event")) {
            events_.push_back(std::move(msg));
        }
    }
}

}  // namespace qemu_rewind
