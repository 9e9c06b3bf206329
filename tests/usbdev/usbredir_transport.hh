// How rewind-usbredir reaches the chardev of QEMU's -device usb-redir:
//
//   a socket: "HOST:PORT" (TCP) or "unix:PATH", which we connect to
//     (QEMU: -chardev socket,...,server=on,wait=off) or listen on for one
//     connection (QEMU: -chardev socket,...,server=off);
//   a FIFO pair: QEMU's -chardev pipe,path=P reads P.in and writes P.out.
//     We create the FIFOs if missing, write P.in and read P.out.
#pragma once

#include <string>
#include <string_view>

namespace qemu_rewind::usbdev {

struct SocketAddress {
    std::string text;          // as given
    bool is_unix = false;
    std::string host;          // TCP
    std::string port;
    std::string path;          // unix
};

// Throws std::invalid_argument for a malformed address.
SocketAddress parse_socket_address(std::string_view text);

// One connection attempt: the connected socket, or -1 with `error` set
// (ECONNREFUSED and ENOENT just mean QEMU is not listening yet).
int try_connect(const SocketAddress &address, std::string &error, int &error_number);

// A listening socket for `address`; throws std::runtime_error.
int listen_on(const SocketAddress &address);

struct FifoPair {
    int read_fd = -1;    // PATH.out: what QEMU writes
    int write_fd = -1;   // PATH.in: what QEMU reads
};

// Creates PATH.in and PATH.out as FIFOs if missing and opens them without
// waiting for QEMU. Throws std::runtime_error (also if they exist but are
// not FIFOs). Start us before QEMU: a FIFO reports the writer's end only
// to readers that were there first.
FifoPair open_fifo_pair(const std::string &path);

}  // namespace qemu_rewind::usbdev
