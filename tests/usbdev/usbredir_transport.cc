#include "usbredir_transport.hh"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace qemu_rewind::usbdev {

namespace {

sockaddr_un unix_address(const std::string &path)
{
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
        throw std::invalid_argument("unix socket path too long: " + path);
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

struct AddrInfo {
    addrinfo *list = nullptr;
    ~AddrInfo()
    {
        if (list) {
            freeaddrinfo(list);
        }
    }
};

int resolve(const SocketAddress &address, bool passive, AddrInfo &out, std::string &error)
{
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int r = getaddrinfo(address.host.empty() ? nullptr : address.host.c_str(),
                        address.port.c_str(), &hints, &out.list);
    if (r != 0) {
        error = "cannot resolve " + address.text + ": " + gai_strerror(r);
        return -1;
    }
    return 0;
}

void make_fifo(const std::string &path)
{
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
        if (!S_ISFIFO(st.st_mode)) {
            throw std::runtime_error(path + " exists and is not a FIFO");
        }
        return;
    }
    if (mkfifo(path.c_str(), 0600) != 0) {
        throw std::runtime_error("cannot create FIFO " + path + ": " + std::strerror(errno));
    }
}

}  // namespace

SocketAddress parse_socket_address(std::string_view text)
{
    SocketAddress a;
    a.text = std::string(text);
    if (text.rfind("unix:", 0) == 0) {
        a.is_unix = true;
        a.path = std::string(text.substr(5));
        if (a.path.empty()) {
            throw std::invalid_argument("'" + a.text + "': no path after unix:");
        }
        return a;
    }
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == text.size()) {
        throw std::invalid_argument("'" + a.text + "' is neither HOST:PORT nor unix:PATH");
    }
    a.host = std::string(text.substr(0, colon));
    if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') {
        a.host = a.host.substr(1, a.host.size() - 2);   // [::1]:PORT
    }
    a.port = std::string(text.substr(colon + 1));
    return a;
}

int try_connect(const SocketAddress &address, std::string &error, int &error_number)
{
    error_number = 0;
    if (address.is_unix) {
        sockaddr_un a = unix_address(address.path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
            error_number = errno;
            error = "cannot connect to " + address.text + ": " + std::strerror(errno);
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        return fd;
    }
    AddrInfo ai;
    if (resolve(address, false, ai, error) != 0) {
        error_number = EINVAL;
        return -1;
    }
    for (addrinfo *p = ai.list; p; p = p->ai_next) {
        int fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0) {
            return fd;
        }
        error_number = errno;
        close(fd);
    }
    error = "cannot connect to " + address.text + ": " + std::strerror(error_number);
    return -1;
}

int listen_on(const SocketAddress &address)
{
    if (address.is_unix) {
        sockaddr_un a = unix_address(address.path);
        unlink(address.path.c_str());   // a stale socket from an earlier run
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
            listen(fd, 1) != 0) {
            std::string msg = "cannot listen on " + address.text + ": " + std::strerror(errno);
            if (fd >= 0) {
                close(fd);
            }
            throw std::runtime_error(msg);
        }
        return fd;
    }
    AddrInfo ai;
    std::string error;
    if (resolve(address, true, ai, error) != 0) {
        throw std::runtime_error(error);
    }
    int last_errno = 0;
    for (addrinfo *p = ai.list; p; p = p->ai_next) {
        int fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 1) == 0) {
            return fd;
        }
        last_errno = errno;
        close(fd);
    }
    throw std::runtime_error("cannot listen on " + address.text + ": " +
                             std::strerror(last_errno));
}

FifoPair open_fifo_pair(const std::string &path)
{
    std::string in = path + ".in", out = path + ".out";
    make_fifo(in);
    make_fifo(out);
    FifoPair f;
    // Read-write for P.in: opening never waits for QEMU, and our writes
    // never fail with EPIPE before QEMU opens it. Read-only for P.out, so
    // that QEMU's exit is an end of file.
    f.write_fd = open(in.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (f.write_fd < 0) {
        throw std::runtime_error("cannot open " + in + ": " + std::strerror(errno));
    }
    f.read_fd = open(out.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f.read_fd < 0) {
        int e = errno;
        close(f.write_fd);
        throw std::runtime_error("cannot open " + out + ": " + std::strerror(e));
    }
    return f;
}

}  // namespace qemu_rewind::usbdev
