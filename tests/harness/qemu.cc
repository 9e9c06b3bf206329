#include "qemu.hh"

#include "util.hh"

#include <cstdlib>
#include <stdexcept>

namespace qemu_rewind::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const char *to_string(RrMode mode)
{
    switch (mode) {
    case RrMode::None: return "plain";
    case RrMode::Icount: return "icount";
    case RrMode::Record: return "record";
    case RrMode::Replay: return "replay";
    }
    return "?";
}

std::chrono::milliseconds scaled(std::chrono::milliseconds base)
{
    double k = std::atof(env_or("REWIND_TIMEOUT_SCALE", "1").c_str());
    if (k <= 0) {
        k = 1;
    }
    return std::chrono::milliseconds(static_cast<long long>(base.count() * k));
}

QemuInstance::QemuInstance(QemuConfig config, std::string workdir)
    : config_(std::move(config)), workdir_(std::move(workdir))
{
    if (config_.binary.empty()) {
        config_.binary = qemu_binary();
    }
    if (config_.kernel.empty()) {
        // The uncompressed kernel boots directly (PVH) and skips the
        // decompressor: about a third of the guest instructions of vmlinuz.
        config_.kernel = images_dir() + "/vmlinux";
    }
}

QemuInstance::~QemuInstance()
{
    qmp_.close();
    process_.terminate(1000ms);
}

std::vector<std::string> QemuInstance::argv() const
{
    const auto &c = config_;
    std::vector<std::string> a = {
        c.binary, "-M", "pc", "-m", std::to_string(c.memory_mb),
        "-nodefaults", "-display", "none", "-no-reboot",
    };
    for (const auto &dir : c.firmware_dirs) {
        a.insert(a.end(), {"-L", dir});
    }
    a.insert(a.end(), {
        "-kernel", c.kernel, "-initrd", c.initrd, "-append", c.append,
        "-chardev", "file,id=ser0,path=" + workdir_ + "/serial.log",
        "-serial", "chardev:ser0",
        "-qmp", "unix:" + workdir_ + "/qmp.sock,server=on,wait=off",
    });
    if (c.mode != RrMode::None) {
        std::string icount = "shift=auto";
        if (c.mode == RrMode::Record || c.mode == RrMode::Replay) {
            icount += std::string(",rr=") + to_string(c.mode) +
                      ",rrfile=" + c.rrfile;
            if (!c.rrsnapshot.empty()) {
                icount += ",rrsnapshot=" + c.rrsnapshot;
            }
            for (const auto &o : c.rr_options) {
                icount += "," + o;
            }
        }
        a.insert(a.end(), {"-icount", icount});
    }
    if (c.stop_at_poweroff) {
        a.push_back("-no-shutdown");
    }
    if (c.gdb_port) {
        a.insert(a.end(), {"-gdb", "tcp:127.0.0.1:" + std::to_string(*c.gdb_port)});
    }
    if (c.start_paused) {
        a.push_back("-S");
    }
    a.insert(a.end(), c.device_args.begin(), c.device_args.end());
    a.insert(a.begin(), c.wrapper.begin(), c.wrapper.end());
    return a;
}

void QemuInstance::start()
{
    Process::Options o;
    o.stdout_path = workdir_ + "/qemu.out";
    o.workdir = workdir_;
    write_file(workdir_ + "/cmdline", command_line() + "\n");
    process_ = Process::spawn(argv(), o);
    try {
        qmp_.connect(workdir_ + "/qmp.sock", scaled(30s));
    } catch (const std::exception &e) {
        throw std::runtime_error(std::string(e.what()) + "\n" + diagnostics());
    }
}

bool QemuInstance::exited() { return !process_.running(); }

bool QemuInstance::wait_for_poweroff(std::chrono::milliseconds timeout)
{
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        if (!qmp_.wait_event("SHUTDOWN", 200ms).is_null()) {
            return true;
        }
        if (exited()) {
            return true;
        }
    }
    return false;
}

std::uint64_t QemuInstance::icount()
{
    auto r = qmp_.execute("query-replay");
    return r.value("icount", std::uint64_t{0});
}

std::string QemuInstance::ram_hash()
{
    std::string dump = workdir_ + "/ram.dump";
    std::uint64_t size = std::uint64_t(config_.memory_mb) << 20;
    qmp_.execute("pmemsave", {{"val", 0}, {"size", size}, {"filename", dump}},
                 scaled(120s));
    if (file_size(dump) != size) {
        throw std::runtime_error("pmemsave wrote " +
                                 std::to_string(file_size(dump)) +
                                 " bytes, expected " + std::to_string(size));
    }
    std::string h = hash_file(dump);
    std::remove(dump.c_str());
    return h;
}

std::string QemuInstance::serial() const
{
    return read_file(workdir_ + "/serial.log");
}

std::string QemuInstance::stderr_text() const
{
    return read_file(workdir_ + "/qemu.out");
}

std::string QemuInstance::diagnostics() const
{
    return "QEMU command line (" + std::string(to_string(config_.mode)) +
           "), run in " + workdir_ + ":\n  " + command_line() +
           "\n--- QEMU output (tail) ---\n" + tail_lines(stderr_text(), 20) +
           "\n--- guest serial (tail) ---\n" + tail_lines(serial(), 20) + "\n";
}

void QemuInstance::quit()
{
    if (qmp_.connected()) {
        try {
            qmp_.execute("quit", nullptr, 10s);
        } catch (const QmpError &) {
            // QEMU closes the socket as it exits: expected.
        }
    }
    qmp_.close();
    process_.wait_for(10s);
    process_.terminate(2000ms);
}

RunResult run_to_poweroff(const QemuConfig &config, const std::string &workdir,
                          std::chrono::milliseconds timeout,
                          const std::function<void(QemuInstance &)> &during)
{
    QemuInstance q(config, workdir);
    auto t0 = Clock::now();
    q.start();
    if (during) {
        during(q);
    }
    if (!q.wait_for_poweroff(scaled(timeout))) {
        std::string d = q.diagnostics();
        throw std::runtime_error("guest did not power off within " +
                                 std::to_string(scaled(timeout).count() / 1000) +
                                 " s\n" + d);
    }
    RunResult r;
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (q.exited()) {
        throw std::runtime_error("QEMU exited instead of stopping at poweroff\n" +
                                 q.diagnostics());
    }
    r.command_line = q.command_line();
    if (config.mode != RrMode::None) {
        r.icount = q.icount();
    }
    r.ram_hash = q.ram_hash();
    r.serial = q.serial();
    r.diagnostics = q.diagnostics();
    q.quit();
    return r;
}

}  // namespace qemu_rewind::test
