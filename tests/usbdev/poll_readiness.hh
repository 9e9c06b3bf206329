// Real poll() readiness for an emulated usbfs node. umockdev backs a device
// node with a regular file, which is always writable, so libusb (which
// polls usbfs fds for POLLOUT = "a URB can be reaped") would spin. We
// replace the node with a FIFO and keep it full while nothing is reapable:
// the client's fd then polls writable exactly when the kernel's would.
#pragma once

#include <string>

namespace qemu_rewind::usbdev {

class PollReadiness {
public:
    PollReadiness() = default;
    ~PollReadiness();
    PollReadiness(const PollReadiness &) = delete;
    PollReadiness &operator=(const PollReadiness &) = delete;

    // Replaces the file at `node_path` by a FIFO (full: not ready). Throws
    // std::runtime_error on failure.
    void install(const std::string &node_path);
    // Ready: the FIFO is drained, so the client's fd polls POLLOUT.
    void set_ready(bool ready);
    bool ready() const { return ready_; }

private:
    void fill();
    void drain();
    int fd_ = -1;
    bool ready_ = false;
};

}  // namespace qemu_rewind::usbdev
