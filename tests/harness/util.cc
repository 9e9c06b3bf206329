#include "util.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace qemu_rewind::test {

std::string read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return "";
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::string &path, const std::string &data)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) {
        throw std::runtime_error("cannot write " + path);
    }
}

bool file_exists(const std::string &path)
{
    std::error_code ec;
    return fs::exists(path, ec);
}

std::uint64_t file_size(const std::string &path)
{
    std::error_code ec;
    auto n = fs::file_size(path, ec);
    return ec ? 0 : n;
}

std::string tail_lines(const std::string &text, std::size_t n)
{
    std::size_t pos = text.size();
    if (pos && text[pos - 1] == '\n') {
        --pos;
    }
    while (n-- && pos != std::string::npos && pos > 0) {
        pos = text.rfind('\n', pos - 1);
    }
    return pos == std::string::npos || pos == 0 ? text : text.substr(pos + 1);
}

TempDir::TempDir(const std::string &tag)
{
    std::string base = env_or("REWIND_TEST_TMP", fs::temp_directory_path());
    fs::create_directories(base);
    std::string templ = base + "/rewind-" + tag + "-XXXXXX";
    if (!mkdtemp(templ.data())) {
        throw std::runtime_error("mkdtemp failed under " + base);
    }
    path_ = templ;
}

TempDir::~TempDir()
{
    if (std::getenv("REWIND_KEEP_TMP")) {
        return;
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
}

namespace {

// FNV-1a with a 128-bit state, kept as two 64-bit lanes fed alternately
// with 8-byte words: fast enough for 256 MiB RAM dumps, and we only
// compare for equality.
struct Fnv128 {
    std::uint64_t a = 0xcbf29ce484222325ULL;
    std::uint64_t b = 0x84222325cbf29ce4ULL;
    std::uint64_t length = 0;
    void update(const unsigned char *p, std::size_t n)
    {
        constexpr std::uint64_t prime = 0x100000001b3ULL;
        for (std::size_t i = 0; i < n; ++i) {
            if ((length++ & 1) == 0) {
                a = (a ^ p[i]) * prime;
            } else {
                b = (b ^ p[i]) * prime;
            }
        }
    }
    std::string hex() const
    {
        char buf[64];
        snprintf(buf, sizeof buf, "%016llx%016llx-%llu",
                 static_cast<unsigned long long>(a),
                 static_cast<unsigned long long>(b),
                 static_cast<unsigned long long>(length));
        return buf;
    }
};

}  // namespace

std::string hash_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    Fnv128 h;
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        h.update(reinterpret_cast<unsigned char *>(buf.data()),
                 static_cast<std::size_t>(in.gcount()));
    }
    return h.hex();
}

std::string hash_bytes(const std::string &data)
{
    Fnv128 h;
    h.update(reinterpret_cast<const unsigned char *>(data.data()), data.size());
    return h.hex();
}

std::string hex(std::uint64_t value)
{
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
    return buf;
}

std::string random_bytes(std::size_t n)
{
    // Seeded from the OS each call; a PRNG keeps megabytes cheap.
    std::random_device rd;
    std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
    std::string out(n, '\0');
    for (auto &c : out) {
        c = static_cast<char>(gen() & 0xff);
    }
    return out;
}

std::string random_token(std::size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::random_device rd;
    std::string out(n, 'a');
    for (auto &c : out) {
        c = alphabet[rd() % (sizeof alphabet - 1)];
    }
    return out;
}

int free_tcp_port()
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        throw std::runtime_error("cannot find a free TCP port");
    }
    close(fd);
    return ntohs(a.sin_port);
}

std::string env_or(const char *name, const std::string &fallback)
{
    const char *v = std::getenv(name);
    return v && *v ? v : fallback;
}

// Without REWIND_* variables, use the build this program belongs to: it
// lives in <top>/build/tools/..., QEMU in <top>/build/qemu.
static std::string own_build_dir()
{
    std::error_code ec;
    std::string exe = fs::read_symlink("/proc/self/exe", ec).string();
    auto pos = exe.rfind("/build/tools/");
    return pos == std::string::npos ? "" : exe.substr(0, pos) + "/build";
}

static std::string setting(const char *name, const std::string &in_build)
{
    const char *v = std::getenv(name);
    if (v && *v) {
        return v;
    }
    std::string build = own_build_dir();
    if (build.empty()) {
        throw std::runtime_error(std::string(name) +
                                 " is not set and this program is not in a"
                                 " QEMU Rewind build tree");
    }
    return build + "/" + in_build;
}

std::string qemu_binary() { return setting("REWIND_QEMU", "qemu/qemu-system-x86_64"); }
std::string qemu_img_binary() { return setting("REWIND_QEMU_IMG", "qemu/qemu-img"); }
std::string images_dir() { return setting("REWIND_IMAGES", "images"); }
std::string gdb_binary() { return env_or("REWIND_GDB", "gdb"); }
std::string usbdev_binary()
{
    return setting("REWIND_USBDEV", "tools/tests/usbdev/rewind-usbdev");
}

std::string rewind_binary()
{
    return setting("REWIND_CLI", "tools/rewind/cli/rewind");
}

}  // namespace qemu_rewind::test

namespace qemu_rewind::test {

// The guests print md5sum output; coreutils' md5sum is on every machine.
std::string md5_hex(const std::string &data)
{
    TempDir tmp("md5");
    write_file(tmp.path() + "/data", data);
    std::FILE *p = popen(("md5sum '" + tmp.path() + "/data'").c_str(), "r");
    if (!p) {
        throw std::runtime_error("cannot run md5sum");
    }
    char buf[64] = {};
    std::size_t n = fread(buf, 1, 32, p);
    pclose(p);
    if (n != 32) {
        throw std::runtime_error("md5sum gave no digest");
    }
    return std::string(buf, 32);
}

}  // namespace qemu_rewind::test

#include <cerrno>
#include <chrono>
#include <thread>

namespace qemu_rewind::test {

TcpClient::TcpClient(int port, int timeout_ms) : port_(port)
{
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(timeout_ms);
    for (;;) {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(port));
        if (connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) {
            // Small request/reply exchanges (gdb packets) must not wait.
            int one = 1;
            setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return;
        }
        close(fd_);
        fd_ = -1;
        if (std::chrono::steady_clock::now() >= deadline) {
            throw std::runtime_error("cannot connect to 127.0.0.1:" +
                                     std::to_string(port));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

TcpClient::~TcpClient()
{
    if (fd_ >= 0) {
        close(fd_);
    }
}

void TcpClient::send(const std::string &data)
{
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n = write(fd_, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw std::runtime_error("write to 127.0.0.1:" + std::to_string(port_) +
                                     " failed");
        }
        off += static_cast<std::size_t>(n);
    }
}

bool wait_for_text(const std::string &path, const std::string &needle,
                   int timeout_ms)
{
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        if (read_file(path).find(needle) != std::string::npos) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

}  // namespace qemu_rewind::test
