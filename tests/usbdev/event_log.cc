#include "event_log.hh"

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <stdexcept>

namespace qemu_rewind::usbdev {

EventLog::~EventLog()
{
    if (file_) {
        std::fclose(file_);
    }
}

void EventLog::open(const std::string &path)
{
    file_ = std::fopen(path.c_str(), "we");   // not inherited by the command
    if (!file_) {
        throw std::runtime_error("cannot create log file " + path + ": " +
                                 std::strerror(errno));
    }
    // Line-buffered: a test reading the log while we run sees whole lines.
    std::setvbuf(file_, nullptr, _IOLBF, 0);
}

void EventLog::line(const char *format, ...)
{
    if (!file_) {
        return;
    }
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::steady_clock::now() - start_).count();
    std::fprintf(file_, "%lld.%06lld ", static_cast<long long>(us / 1000000),
                 static_cast<long long>(us % 1000000));
    va_list ap;
    va_start(ap, format);
    std::vfprintf(file_, format, ap);
    va_end(ap);
    std::fputc('\n', file_);
}

}  // namespace qemu_rewind::usbdev
