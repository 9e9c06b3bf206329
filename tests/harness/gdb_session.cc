#include "gdb_session.hh"

#include "util.hh"

#include <fcntl.h>
#include <sys/prctl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <regex>
#include <stdexcept>

namespace qemu_rewind::test {

using Clock = std::chrono::steady_clock;

std::string mi_unquote(const std::string &q)
{
    std::string out;
    std::size_t i = (!q.empty() && q[0] == '"') ? 1 : 0;
    std::size_t end = (q.size() > 1 && q.back() == '"') ? q.size() - 1 : q.size();
    for (; i < end; ++i) {
        char c = q[i];
        if (c != '\\' || i + 1 >= end) {
            out += c;
            continue;
        }
        char n = q[++i];
        switch (n) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        default:
            if (n >= '0' && n <= '7' && i + 2 < end) {
                out += static_cast<char>(std::stoi(q.substr(i, 3), nullptr, 8));
                i += 2;
            } else {
                out += n;
            }
        }
    }
    return out;
}

GdbSession::GdbSession(const std::string &workdir)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe failed");
    }
    std::string gdb = gdb_binary();
    pid_ = fork();
    if (pid_ == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        if (chdir(workdir.c_str()) != 0) {
            _exit(127);
        }
        execlp(gdb.c_str(), gdb.c_str(), "-nx", "-q", "--interpreter=mi3",
               static_cast<char *>(nullptr));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_gdb_ = in[1];
    from_gdb_ = out[0];
    for (const char *setup : {"set pagination off", "set confirm off",
                              "set width 0", "set remotetimeout 600"}) {
        run(setup, std::chrono::seconds(30));
    }
}

GdbSession::~GdbSession()
{
    if (pid_ > 0) {
        kill(-pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    close(to_gdb_);
    close(from_gdb_);
}

std::string GdbSession::read_line(Clock::time_point deadline)
{
    for (;;) {
        auto nl = buffer_.find('\n');
        if (nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            return line;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - Clock::now());
        if (left.count() <= 0) {
            throw std::runtime_error("gdb did not answer in time");
        }
        pollfd p{from_gdb_, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            continue;
        }
        char buf[8192];
        ssize_t n = read(from_gdb_, buf, sizeof buf);
        if (n <= 0) {
            throw std::runtime_error("gdb exited");
        }
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

GdbReply GdbSession::run(const std::string &cli, std::chrono::milliseconds timeout)
{
    GdbReply reply;
    reply.command = cli;
    std::string escaped;
    for (char c : cli) {
        if (c == '"' || c == '\\') {
            escaped += '\\';
        }
        escaped += c;
    }
    std::string line = "-interpreter-exec console \"" + escaped + "\"\n";
    auto t0 = Clock::now();
    auto deadline = t0 + timeout;
    if (write(to_gdb_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        throw std::runtime_error("cannot write to gdb");
    }
    bool running = false;
    bool done = false;
    try {
        while (!done || running) {
            std::string l = read_line(deadline);
            if (l.empty()) {
                continue;
            }
            switch (l[0]) {
            case '~':
            case '@':
                reply.console += mi_unquote(l.substr(1));
                break;
            case '^':
                if (l.rfind("^running", 0) == 0) {
                    running = true;
                } else if (l.rfind("^error", 0) == 0) {
                    auto m = l.find("msg=");
                    reply.error = m == std::string::npos ? l : mi_unquote(l.substr(m + 4));
                    running = false;
                }
                done = true;
                break;
            case '*':
                if (l.rfind("*stopped", 0) == 0) {
                    reply.stop = l;
                    running = false;
                }
                break;
            default:
                break;
            }
        }
    } catch (const std::runtime_error &e) {
        throw std::runtime_error(std::string(e.what()) + " (command: " + cli +
                                 ", output so far:\n" + reply.console + ")");
    }
    reply.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    transcript_ += "(gdb) " + cli + "\n" + reply.console +
                   (reply.error.empty() ? "" : reply.error + "\n");
    return reply;
}

GdbReply GdbSession::connect(int port)
{
    return run("target remote 127.0.0.1:" + std::to_string(port),
               std::chrono::seconds(60));
}

std::uint64_t GdbSession::value(const std::string &expr)
{
    GdbReply r = run("printf \"%lx\\n\", " + expr, std::chrono::seconds(30));
    if (!r.ok() || r.console.find_first_of("0123456789abcdef") != 0) {
        throw std::runtime_error("cannot read " + expr + ": " + r.error + r.console);
    }
    return std::stoull(r.console, nullptr, 16);
}

std::uint64_t GdbSession::pc()
{
    return value("$pc");
}

std::uint64_t GdbSession::icount()
{
    GdbReply r = run("monitor info replay", std::chrono::seconds(30));
    static const std::regex re(R"(instruction count = (\d+))");
    std::smatch m;
    if (!std::regex_search(r.console, m, re)) {
        throw std::runtime_error("no instruction count in: " + r.console + r.error);
    }
    return std::stoull(m[1]);
}

}  // namespace qemu_rewind::test
