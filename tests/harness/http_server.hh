// A one-file HTTP server on 127.0.0.1 for the network scenario: serves
// the same payload for every GET until destroyed.
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace qemu_rewind::test {

class HttpServer {
public:
    explicit HttpServer(std::string payload);
    ~HttpServer();
    HttpServer(const HttpServer &) = delete;
    HttpServer &operator=(const HttpServer &) = delete;
    int port() const { return port_; }
    int requests_served() const { return served_.load(); }

private:
    void serve();
    std::string payload_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> served_{0};
    std::thread thread_;
};

}  // namespace qemu_rewind::test
