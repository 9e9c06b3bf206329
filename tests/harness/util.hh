// Small helpers shared by the test harness: files, temporary folders,
// hashing, randomness, ports and the environment the tests run in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qemu_rewind::test {

std::string read_file(const std::string &path);   // "" if missing
void write_file(const std::string &path, const std::string &data);
bool file_exists(const std::string &path);
std::uint64_t file_size(const std::string &path);
// The last n lines of text, for failure reports.
std::string tail_lines(const std::string &text, std::size_t n);

// A folder that is removed on destruction unless REWIND_KEEP_TMP is set
// (then its path is kept for post-mortem inspection).
class TempDir {
public:
    explicit TempDir(const std::string &tag);
    ~TempDir();
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    const std::string &path() const { return path_; }

private:
    std::string path_;
};

// 128-bit FNV-1a over a file's bytes, as hex; exact equality checks only.
std::string hash_file(const std::string &path);
std::string hash_bytes(const std::string &data);
std::string md5_hex(const std::string &data);
std::string hex(std::uint64_t value);   // "0x1f"


// Non-deterministic input for record runs: a replay that ignored the log
// would see different data and fail.
std::string random_bytes(std::size_t n);
std::string random_token(std::size_t n);   // [a-z0-9]

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_tcp_port();

// Where the built artefacts are (set by the test runner; see tests/meson.build).
std::string env_or(const char *name, const std::string &fallback);
std::string qemu_binary();       // REWIND_QEMU
std::string qemu_img_binary();   // REWIND_QEMU_IMG
std::string images_dir();        // REWIND_IMAGES
std::string gdb_binary();        // REWIND_GDB, default "gdb"
// rewind-usbdev (software USB devices for usb-host): REWIND_USBDEV, else
// build/tools/tests/usbdev/rewind-usbdev of this build.
std::string usbdev_binary();
// The rewind command (REWIND_CLI, or this build's).
std::string rewind_binary();

}  // namespace qemu_rewind::test

namespace qemu_rewind::test {
// A TCP connection to 127.0.0.1:port (connecting retries until the
// timeout). Closing it early can make QEMU's socket chardev drop input the
// guest has not consumed yet, so keep it open until the guest is done.
class TcpClient {
public:
    TcpClient(int port, int timeout_ms);
    ~TcpClient();
    TcpClient(const TcpClient &) = delete;
    TcpClient &operator=(const TcpClient &) = delete;
    void send(const std::string &data);
    int fd() const { return fd_; }    // for reading with poll()

private:
    int fd_ = -1;
    int port_;
};
// Polls a file until it contains `needle`; false on timeout.
bool wait_for_text(const std::string &path, const std::string &needle,
                   int timeout_ms);
}  // namespace qemu_rewind::test
