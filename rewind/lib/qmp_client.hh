// A minimal QMP client over a UNIX socket, for the rewind tools that run
// QEMU (record, replay): query-replay, replay-seek, cont, quit, events.
// The test harness uses it too (tests/harness/qmp.hh).
#pragma once

#include <chrono>
#include <deque>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace qemu_rewind {

class QmpError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class QmpClient {
public:
    QmpClient() = default;
    ~QmpClient();
    QmpClient(const QmpClient &) = delete;
    QmpClient &operator=(const QmpClient &) = delete;

    // Connects (retrying while QEMU starts up) and negotiates capabilities.
    void connect(const std::string &socket_path,
                 std::chrono::milliseconds timeout);
    bool connected() const { return fd_ >= 0; }
    void close();

    // Runs a command; returns its "return" value, throws QmpError on an
    // "error" reply, a closed socket or the timeout.
    nlohmann::json execute(const std::string &command,
                           const nlohmann::json &arguments = nullptr,
                           std::chrono::milliseconds timeout =
                               std::chrono::seconds(60));
    // Convenience for HMP commands (human-monitor-command).
    std::string hmp(const std::string &command_line,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60));

    // Waits for an asynchronous event by name (events seen earlier while
    // waiting for replies are kept and count). Returns the event, or a null
    // json on timeout or when the connection closes.
    nlohmann::json wait_event(const std::string &name,
                              std::chrono::milliseconds timeout);

private:
    nlohmann::json read_message(std::chrono::steady_clock::time_point deadline);

    int fd_ = -1;
    std::string buffer_;
    std::deque<nlohmann::json> events_;
};

}  // namespace qemu_rewind
