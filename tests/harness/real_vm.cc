// The Debian VM for tests and benchmarks (real_vm.hh).
#include "real_vm.hh"

#include "qemu.hh"
#include "util.hh"

#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace qemu_rewind::test {

using namespace std::chrono_literals;

namespace {

// Hex digits without "0x", as the remote protocol's packets want them.
std::string packet_hex(std::uint64_t v)
{
    return hex(v).substr(2);
}

double seconds_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string vm_dir() { return images_dir() + "/debian-vm"; }

std::vector<std::string> vm_command(const VmScenario &s, const std::string &serial, int http_port, bool icount)
{
    const std::string dir = vm_dir();
    std::string cmdline = read_file(dir + "/cmdline");
    cmdline = cmdline.substr(0, cmdline.find('\n'));
    std::vector<std::string> a = {qemu_binary(), "-M", s.machine, "-m", s.memory, "-nodefaults",
                                  "-display", "none", "-no-reboot",
                                  "-kernel", dir + "/vmlinuz", "-initrd", dir + "/initrd.img",
                                  "-append", cmdline + " rewind.http=" + std::to_string(http_port),
                                  "-chardev", "file,id=ser0,path=" + serial, "-serial", "chardev:ser0",
                                  "-netdev", "user,id=n0", "-device", s.nic + ",netdev=n0"};
    // A plain run writes to the image: not to the shared one.
    const std::string snapshot = icount ? ",snapshot=on" : "";
    if (s.disk == "virtio") {
        a.insert(a.end(), {"-drive", "file=" + dir + "/disk.qcow2,if=virtio" + snapshot});
    } else {
        // q35 has its AHCI controller built in (bus ide.0); pc gets one.
        a.insert(a.end(), {"-drive", "file=" + dir + "/disk.qcow2,if=none,id=d0" + snapshot});
        if (s.machine == "q35") {
            a.insert(a.end(), {"-device", "ide-hd,drive=d0,bus=ide.0"});
        } else {
            a.insert(a.end(), {"-device", "ahci,id=ahci0", "-device", "ide-hd,drive=d0,bus=ahci0.0"});
        }
    }
    if (icount) {
        a.insert(a.end(), {"-icount", "shift=auto"});
    }
    return a;
}

std::map<std::string, std::uint64_t> vm_symbols(const std::string &console)
{
    std::map<std::string, std::uint64_t> syms;
    std::istringstream in(console);
    std::string line;
    while (std::getline(in, line)) {
        const auto at = line.find("rewind-vm: sym ");
        if (at == std::string::npos) {
            continue;
        }
        std::istringstream f(line.substr(at + 15));
        std::string name, addr;
        if (f >> name >> addr && addr.size() > 2) {
            syms[name] = std::stoull(addr, nullptr, 16);
        }
    }
    return syms;
}

GdbReplay::GdbReplay(const std::string &bundle, const std::string &dir)
{
    const int port = free_tcp_port();
    const std::string socket = dir + "/gdb-replay-qmp.sock";
    Process::Options o;
    o.stdout_path = dir + "/gdb-replay.out";
    proc_ = Process::spawn({rewind_binary(), "replay", bundle, "--workdir", dir + "/gdb-replay",
                            "--gdb=" + std::to_string(port), "--", "-qmp",
                            "unix:" + socket + ",server=on,wait=off"},
                           o);
    qmp_.connect(socket, scaled(60s));
    rsp_ = std::make_unique<RspClient>(port, scaled(60s));
    rsp_->start_no_ack_mode();
    rsp_->request("?");
}

GdbReplay::~GdbReplay()
{
    try {
        qmp_.execute("quit");
    } catch (const std::exception &) {
    }
    proc_.wait_for(scaled(30s));
}

std::uint64_t GdbReplay::icount() { return qmp_.execute("query-replay").value("icount", std::uint64_t{0}); }

void GdbReplay::seek(std::uint64_t target)
{
    qmp_.execute("replay-seek", {{"icount", target}}, scaled(600s));
    wait_stopped_at(target);
}

void GdbReplay::run_to(std::uint64_t target)
{
    qmp_.execute("replay-break", {{"icount", target}});
    qmp_.execute("cont");
    wait_stopped_at(target);
}

StopReply GdbReplay::resume(const std::string &packet)
{
    return parse_stop_reply(rsp_->request(packet, scaled(600s)));
}

std::string GdbReplay::request(const std::string &packet) { return rsp_->request(packet); }

const std::string &GdbReplay::transcript() const { return rsp_->transcript(); }

void GdbReplay::wait_stopped_at(std::uint64_t target)
{
    const auto deadline = std::chrono::steady_clock::now() + scaled(600s);
    for (;;) {
        const std::string st = qmp_.execute("query-status").value("status", "");
        if (icount() == target && st != "running") {
            return;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            throw std::runtime_error("the replay did not stop at " + std::to_string(target) + " (at " +
                                     std::to_string(icount()) + ", " + st + ")");
        }
        std::this_thread::sleep_for(20ms);
    }
}

ReverseStats vm_reverse_operations(GdbReplay &r, std::uint64_t end,
                                   const std::map<std::string, std::uint64_t> &syms, int rounds,
                                   std::uint64_t seed)
{
    if (!syms.count("schedule") || !syms.count("jiffies_64")) {
        throw std::runtime_error("the console names no schedule/jiffies_64 address");
    }
    const std::string brk = packet_hex(syms.at("schedule"));
    const std::string watch = packet_hex(syms.at("jiffies_64"));
    ReverseStats st;
    std::mt19937_64 rng(seed);
    // After the kernel has decompressed itself and started (about the
    // first fifth of the recording): before, there is no schedule() to
    // break on and no jiffies to watch.
    std::uniform_int_distribution<std::uint64_t> anywhere(end * 3 / 10, end - end / 20);
    constexpr int kRip = 16;  // x86_64 gdb register number of rip
    auto problem = [&](const std::string &what) { st.problems.push_back(what); };
    for (int i = 0; i < rounds; ++i) {
        const std::uint64_t p = anywhere(rng);
        r.seek(p);
        for (std::uint64_t k = 1; k <= 3; ++k) {
            const auto t0 = std::chrono::steady_clock::now();
            r.resume("bs");
            st.stepi_s.push_back(seconds_since(t0));
            ++st.operations;
            if (r.icount() != p - k) {
                problem("reverse-stepi " + std::to_string(k) + " from " + std::to_string(p) + " landed at " +
                        std::to_string(r.icount()));
            }
        }
        const std::uint64_t from = r.icount();
        if (r.request("Z0," + brk + ",1") != "OK") {
            throw std::runtime_error("the stub refused a breakpoint");
        }
        auto t0 = std::chrono::steady_clock::now();
        const StopReply hit = r.resume("bc");
        st.reverse_continue_s += seconds_since(t0);
        ++st.operations;
        r.request("z0," + brk + ",1");
        const std::uint64_t landed = r.icount();
        if (landed >= from || !hit.has("10") || hit.register_le(kRip) != syms.at("schedule")) {
            problem("reverse-continue to schedule from " + std::to_string(from) + " landed at " +
                    std::to_string(landed) + " with rip " + (hit.has("10") ? hex(hit.register_le(kRip)) : "?"));
        }
        t0 = std::chrono::steady_clock::now();
        r.run_to(from);
        st.forward_s += seconds_since(t0);
        if (r.request("Z2," + watch + ",8") != "OK") {
            throw std::runtime_error("the stub refused a watchpoint");
        }
        const StopReply w = r.resume("bc");
        ++st.operations;
        r.request("z2," + watch + ",8");
        if (r.icount() >= from || !w.has("watch")) {
            problem("reverse-continue to the jiffies_64 write from " + std::to_string(from) + " landed at " +
                    std::to_string(r.icount()) + (w.has("watch") ? "" : " without a watch stop"));
        }
    }
    return st;
}

}  // namespace qemu_rewind::test
