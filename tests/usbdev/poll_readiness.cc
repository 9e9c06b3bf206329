#include "poll_readiness.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace qemu_rewind::usbdev {

PollReadiness::~PollReadiness()
{
    if (fd_ >= 0) {
        close(fd_);
    }
}

void PollReadiness::install(const std::string &node_path)
{
    struct stat st {};
    mode_t mode = stat(node_path.c_str(), &st) == 0 ? (st.st_mode & 0777) : 0666;
    if (unlink(node_path.c_str()) != 0 && errno != ENOENT) {
        throw std::runtime_error("cannot replace " + node_path + ": " + std::strerror(errno));
    }
    if (mkfifo(node_path.c_str(), mode | 0600) != 0) {
        throw std::runtime_error("cannot create FIFO " + node_path + ": " + std::strerror(errno));
    }
    // Reading and writing end in one: opening never blocks, and the FIFO
    // keeps its contents while clients come and go.
    fd_ = open(node_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
        throw std::runtime_error("cannot open FIFO " + node_path + ": " + std::strerror(errno));
    }
    ready_ = true;
    set_ready(false);
}

void PollReadiness::set_ready(bool ready)
{
    if (fd_ < 0 || ready == ready_) {
        return;
    }
    ready_ = ready;
    if (ready) {
        drain();
    } else {
        fill();
    }
}

void PollReadiness::fill()
{
    // Whole pages first, then single bytes: the pipe is "full" for poll
    // only when every slot is used, and a one-byte write fails only then.
    static const char page[4096] = {};
    while (write(fd_, page, sizeof page) > 0) {
    }
    while (write(fd_, page, 1) > 0) {
    }
}

void PollReadiness::drain()
{
    char buf[65536];
    while (read(fd_, buf, sizeof buf) > 0) {
    }
}

}  // namespace qemu_rewind::usbdev
