// rewind-usbdev's --log: one line per ioctl, URB completion and device
// event, with a timestamp relative to the start. Off (cheap no-op) unless
// opened.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace qemu_rewind::usbdev {

class EventLog {
public:
    EventLog() = default;
    ~EventLog();
    EventLog(const EventLog &) = delete;
    EventLog &operator=(const EventLog &) = delete;

    // Throws std::runtime_error if the file cannot be created.
    void open(const std::string &path);
    bool enabled() const { return file_ != nullptr; }
    // printf-style; the newline is added.
    void line(const char *format, ...) __attribute__((format(printf, 2, 3)));

private:
    std::FILE *file_ = nullptr;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace qemu_rewind::usbdev
