#include "http_server.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace qemu_rewind::test {

HttpServer::HttpServer(std::string payload) : payload_(std::move(payload))
{
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(listen_fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        listen(listen_fd_, 8) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
        close(listen_fd_);
        throw std::runtime_error("HTTP server: cannot listen on 127.0.0.1");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
}

HttpServer::~HttpServer()
{
    stop_ = true;
    thread_.join();
    close(listen_fd_);
}

void HttpServer::serve()
{
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
            continue;
        }
        // Read the request head (bounded); the path does not matter.
        std::string req;
        char buf[4096];
        while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
            pollfd q{c, POLLIN, 0};
            if (poll(&q, 1, 5000) <= 0) {
                break;
            }
            ssize_t n = read(c, buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            req.append(buf, static_cast<std::size_t>(n));
        }
        std::string resp = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                           "Content-Length: " + std::to_string(payload_.size()) +
                           "\r\nConnection: close\r\n\r\n" + payload_;
        std::size_t off = 0;
        while (off < resp.size()) {
            ssize_t n = write(c, resp.data() + off, resp.size() - off);
            if (n <= 0) {
                break;
            }
            off += static_cast<std::size_t>(n);
        }
        ++served_;
        close(c);
    }
}

}  // namespace qemu_rewind::test
