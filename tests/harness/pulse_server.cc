#include "pulse_server.hh"

#include "qemu.hh"
#include "util.hh"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace qemu_rewind::test {

using namespace std::chrono_literals;

namespace {

// The programs come from Debian's pulseaudio, pulseaudio-utils and sox.
void require_program(const std::string &name, const std::string &package)
{
    const char *path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/bin:/bin");
    std::string d;
    while (std::getline(dirs, d, ':')) {
        if (!d.empty() && access((d + "/" + name).c_str(), X_OK) == 0) {
            return;
        }
    }
    throw std::runtime_error(name + " not found in PATH: install Debian's " + package +
                             " (scripts/install-deps.sh test)");
}

std::string format_number(double v)
{
    std::ostringstream s;
    s << v;
    return s.str();
}

}  // namespace

PulseServer::PulseServer(const std::string &dir) : dir_(dir)
{
    require_program("pulseaudio", "pulseaudio");
    require_program("pactl", "pulseaudio-utils");
    std::filesystem::create_directories(dir_ + "/runtime");
    std::filesystem::create_directories(dir_ + "/config");
    // pulseaudio refuses a runtime folder that others may write to
    chmod((dir_ + "/runtime").c_str(), 0700);
    socket_path_ = dir_ + "/native";
    if (socket_path_.size() >= sizeof(sockaddr_un::sun_path)) {
        throw std::runtime_error("PulseAudio socket path too long: " + socket_path_);
    }
    // Nothing but the socket (no cookie: anonymous clients) and the sink;
    // no module that needs D-Bus, udev, a session or sound hardware.
    write_file(dir_ + "/server.pa",
               "load-module module-native-protocol-unix auth-anonymous=1 socket=" +
                   socket_path_ + "\n"
                   "load-module module-null-sink sink_name=" + std::string(sink) +
                   " rate=48000 channels=2\n"
                   "set-default-sink " + std::string(sink) + "\n"
                   "set-default-source " + std::string(monitor_source) + "\n");
    // Its own HOME and XDG folders: no state in the user's home, and no
    // clash with a desktop session's server.  `env` so that these replace
    // the test's own values.
    env_ = {"env", "HOME=" + dir_, "XDG_RUNTIME_DIR=" + dir_ + "/runtime",
            "XDG_CONFIG_HOME=" + dir_ + "/config", "PULSE_RUNTIME_PATH=" + dir_ + "/runtime",
            "PULSE_STATE_PATH=" + dir_ + "/config", "PULSE_SERVER=" + address()};
    std::vector<std::string> argv = env_;
    argv.insert(argv.end(), {
        "pulseaudio", "-n", "-F", dir_ + "/server.pa",
        "--daemonize=no", "--system=no", "--use-pid-file=no",
        "--exit-idle-time=-1", "--disallow-exit",
        "--realtime=no", "--high-priority=no", "--log-target=stderr",
    });
    Process::Options o;
    o.stdout_path = dir_ + "/pulseaudio.log";
    o.workdir = dir_;
    server_ = Process::spawn(argv, o);

    auto deadline = std::chrono::steady_clock::now() + scaled(30s);
    while (!accepts_connections()) {
        if (!server_.running()) {
            throw std::runtime_error("pulseaudio exited during start-up:\n" +
                                     tail_lines(log(), 20));
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            stop();
            throw std::runtime_error("pulseaudio did not open " + socket_path_ +
                                     " within 30 s:\n" + tail_lines(log(), 20));
        }
        std::this_thread::sleep_for(20ms);
    }
}

PulseServer::~PulseServer() { stop(); }

bool PulseServer::accepts_connections() const
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, socket_path_.c_str(), sizeof a.sun_path - 1);
    bool ok = connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    close(fd);
    return ok;
}

void PulseServer::play_sine(double hz, double volume)
{
    require_program("sox", "sox");
    require_program("pacat", "pulseaudio-utils");
    // A day of signal: it must last as long as the test (a short one ends
    // and leaves silence).
    std::vector<std::string> sox = {"sox", "-q", "-n", "-t", "raw", "-r", "48000",
                                    "-c", "2", "-b", "16", "-e", "signed", "-",
                                    "synth", "86400", "sine", format_number(hz),
                                    "vol", format_number(volume)};
    std::vector<std::string> pacat = env_;
    pacat.insert(pacat.end(), {"pacat", "--server=" + address(),
                               "--device=" + std::string(sink), "--raw",
                               "--format=s16le", "--rate=48000", "--channels=2"});
    Process::Options o;
    o.stdout_path = dir_ + "/player.log";
    o.workdir = dir_;
    player_ = Process::spawn({"sh", "-c", shell_join(sox) + " | " + shell_join(pacat)}, o);

    // Playing once the server lists the stream.
    std::vector<std::string> pactl = env_;
    pactl.insert(pactl.end(), {"pactl", "--server=" + address(), "list", "short",
                               "sink-inputs"});
    auto deadline = std::chrono::steady_clock::now() + scaled(30s);
    for (;;) {
        auto r = run_command(pactl, scaled(10s));
        if (r.status.exited && r.status.code == 0 &&
            r.output.find("protocol-native") != std::string::npos) {
            return;
        }
        if (!player_.running()) {
            throw std::runtime_error("sox | pacat exited:\n" +
                                     tail_lines(read_file(o.stdout_path), 20) +
                                     "\npulseaudio:\n" + tail_lines(log(), 20));
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            throw std::runtime_error("PulseAudio has no playback stream 30 s after "
                                     "starting sox | pacat; pactl said:\n" + r.output);
        }
        std::this_thread::sleep_for(50ms);
    }
}

void PulseServer::stop()
{
    player_.terminate(1000ms);
    server_.terminate(3000ms);
}

bool PulseServer::running() { return server_.running(); }

std::string PulseServer::log() const { return read_file(dir_ + "/pulseaudio.log"); }

}  // namespace qemu_rewind::test
