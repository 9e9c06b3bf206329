#include "driver_demo.hh"

#include "gdb_session.hh"
#include "process.hh"
#include "scenarios.hh"
#include "util.hh"

#include "bundle.hh"
#include "gdb_symbols.hh"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace qemu_rewind::test {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char *kModule = "rewind_demo";
constexpr const char *kFunction = "rewind_demo_ioctl";
constexpr const char *kPanic = "stack-protector: Kernel stack is corrupted";

double seconds_since(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string fixed(double v, int digits = 1)
{
    char b[32];
    snprintf(b, sizeof b, "%.*f", digits, v);
    return b;
}

// Prints a gdb command as typed, its answer indented, and its duration.
GdbReply show(GdbSession &gdb, std::ostream &out, const std::string &command,
              const std::string &comment = "")
{
    std::string typed = "  (gdb) " + command;
    if (!comment.empty()) {
        typed += std::string(typed.size() < 56 ? 56 - typed.size() : 1, ' ') + "# " + comment;
    }
    out << typed << std::flush;
    GdbReply r = gdb.run(command, scaled(600s));
    out << "   [" << fixed(r.seconds, 2) << " s]\n";
    std::istringstream lines(r.console + (r.error.empty() ? "" : r.error + "\n"));
    std::string line;
    while (std::getline(lines, line)) {
        if (!line.empty()) {
            out << "        " << line << "\n";
        }
    }
    out.flush();
    if (!r.ok()) {
        throw std::runtime_error("gdb: '" + command + "' failed: " + r.error);
    }
    return r;
}

// The QEMU command line a tester would type, plus the demo device.
std::vector<std::string> qemu_command(const std::string &serial)
{
    return {qemu_binary(), "-M", "pc", "-m", "256", "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", images_dir() + "/vmlinux", "-initrd", initrd_path("usb-demo"),
            "-append", base_kernel_cmdline(),
            "-chardev", "file,id=ser0,path=" + serial, "-serial", "chardev:ser0",
            "-device", "qemu-xhci", "-device", "usb-host,hostbus=1,hostaddr=2"};
}

std::string first_line_with(const std::string &text, const std::string &needle)
{
    auto at = text.find(needle);
    if (at == std::string::npos) {
        return "";
    }
    auto begin = text.rfind('\n', at);
    begin = begin == std::string::npos ? 0 : begin + 1;
    return text.substr(begin, text.find('\n', at) - begin);
}

std::size_t count_lines_with(const std::string &text, const std::string &needle)
{
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

// Connects gdb to the replay's stub once `rewind replay --gdb` has opened it.
void connect_when_ready(GdbSession &gdb, std::ostream &out, int port)
{
    auto deadline = Clock::now() + scaled(120s);
    for (;;) {
        GdbReply r = gdb.run("target remote 127.0.0.1:" + std::to_string(port), scaled(60s));
        if (r.ok()) {
            out << "  (gdb) target remote 127.0.0.1:" << port << "   [" << fixed(r.seconds, 2) << " s]\n";
            return;
        }
        if (Clock::now() > deadline) {
            throw std::runtime_error("gdb could not connect to the replay: " + r.error);
        }
        std::this_thread::sleep_for(200ms);
    }
}

}  // namespace

DemoSource find_demo_source(const std::string &source_path)
{
    std::ifstream in(source_path);
    if (!in) {
        throw std::runtime_error("cannot read the module's source " + source_path);
    }
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) {
        lines.push_back(l);
    }
    DemoSource s;
    s.file = std::filesystem::path(source_path).filename().string();
    s.function = kFunction;
    // The definition: the name followed by '(' on a line not ending in ';'.
    std::size_t i = 0;
    for (; i < lines.size(); ++i) {
        const auto &l = lines[i];
        if (l.find(std::string(kFunction) + "(") != std::string::npos && l.find(';') == std::string::npos &&
            l.rfind("\t", 0) != 0 && l.rfind(" ", 0) != 0) {
            break;
        }
    }
    // Its body: from the first '{' to the matching '}'.
    int depth = 0;
    bool in_body = false;
    for (; i < lines.size(); ++i) {
        for (char c : lines[i]) {
            if (c == '{') {
                ++depth;
                in_body = true;
            } else if (c == '}') {
                --depth;
            }
        }
        const auto &l = lines[i];
        const int number = static_cast<int>(i) + 1;
        if (in_body && s.copy_line == 0 &&
            (l.find("memcpy(msg") != std::string::npos ||
             std::regex_search(l, std::regex(R"(msg\[[^\]]+\]\s*=[^=])")))) {
            s.copy_line = number;
        }
        if (in_body && l.find("return") != std::string::npos) {
            s.last_line = number;
        }
        if (in_body && depth == 0) {
            break;
        }
    }
    if (s.copy_line == 0 || s.last_line == 0) {
        throw std::runtime_error("no copying line or no return line in " + std::string(kFunction) + " of " +
                                 source_path);
    }
    return s;
}

DemoResult run_driver_demo(const std::string &workdir, std::ostream &out)
{
    namespace fs = std::filesystem;
    DemoResult result;
    const std::string module_dir = images_dir() + "/module";
    result.source = find_demo_source(module_dir + "/" + kModule + ".c");
    const DemoSource &src = result.source;
    result.bundle = workdir + "/usb-panic.rewind";
    fs::remove_all(result.bundle);
    const std::string record_serial = workdir + "/record-serial.log";
    const auto demo_start = Clock::now();

    out << "QEMU Rewind demo: a kernel panic in a USB driver, recorded with the device\n"
           "and debugged backwards without it (docs/tutorial-driver-debugging.rst)\n\n";

    // ---- 1. record ----
    out << "Step 1. Record. The guest loads " << kModule << ".ko, a small driver for a USB\n"
           "        device that rewind-usbdev emulates on this host (usb-host passes it\n"
           "        through). A program in the guest asks the driver for reports (an\n"
           "        ioctl); each is a bulk transfer from the device, with random data.\n"
           "        rewind record wraps the ordinary QEMU command line:\n";
    std::vector<std::string> argv = {usbdev_binary(), "--log", workdir + "/usbdev.log", "--device", "demo", "--",
                                     rewind_binary(), "record", "--out", result.bundle, "--"};
    for (const auto &a : qemu_command(record_serial)) {
        argv.push_back(a);
    }
    out << "        $ rewind-usbdev --device demo -- rewind record --out usb-panic.rewind -- \\\n"
           "            qemu-system-x86_64 ... -device qemu-xhci -device usb-host,hostbus=1,hostaddr=2\n"
        << std::flush;
    auto t0 = Clock::now();
    CommandResult rec = run_command(argv, scaled(900s), workdir);
    write_file(workdir + "/record.out", rec.output);
    const std::string serial = read_file(record_serial);
    result.panic_line = first_line_with(serial, kPanic);
    if (rec.timed_out || result.panic_line.empty()) {
        throw std::runtime_error("the recording did not end in the stack-protector panic (" +
                                 rec.status.describe() + ")\n" + tail_lines(rec.output, 15) + "\n--- guest ---\n" +
                                 tail_lines(serial, 15));
    }
    const OpenedBundle bundle = open_bundle(result.bundle);
    result.recorded_icount = bundle.manifest.icount;
    out << "        The guest crashed, as on the tester's machine:\n"
        << "          " << result.panic_line << "\n"
        << "        Recorded " << result.recorded_icount << " instructions in " << fixed(seconds_since(t0))
        << " s into " << result.bundle << "\n\n";

    // ---- 2. the device is gone ----
    out << "Step 2. The device program has exited with the recording: from here on\n"
           "        only the bundle exists (log, kernel, firmware, module addresses).\n\n";

    // ---- 3. replay under gdb ----
    const int port = free_tcp_port();
    out << "Step 3. Replay the bundle with a gdb stub, paused at its first instruction:\n"
           "        $ rewind replay usb-panic.rewind --gdb=" << port << "\n" << std::flush;
    fs::create_directories(workdir + "/replay");
    Process::Options po;
    po.stdout_path = workdir + "/replay.out";
    Process replay = Process::spawn({rewind_binary(), "replay", result.bundle, "--gdb=" + std::to_string(port),
                                     "--workdir", workdir + "/replay"},
                                    po);

    GdbSession gdb(workdir);
    out << "\nStep 4. gdb: the module's symbols at the address the guest reported while\n"
           "        it was recorded, a breakpoint at the last line of "
        << src.function << "()\n        (" << src.file << ":" << src.last_line
        << "), skipping the reports that went well, and run forwards to it.\n";
    show(gdb, out, "set confirm off");
    const SymbolCommands symbols =
        gdb_symbol_commands(bundle.manifest, {"", {{kModule, module_dir + "/" + kModule + ".ko"}}});
    if (symbols.commands.empty()) {
        throw std::runtime_error("the recording holds no load address of " + std::string(kModule));
    }
    for (const auto &c : symbols.commands) {
        show(gdb, out, c, "where the guest loaded it");
    }
    connect_when_ready(gdb, out, port);
    show(gdb, out, "break " + src.file + ":" + std::to_string(src.last_line), "the function's last line");
    // Each report the guest printed went through the function without
    // harm; the crash is the call after them.
    const int good_reports = static_cast<int>(count_lines_with(serial, "DEMO-REPORT "));
    if (good_reports > 0) {
        show(gdb, out, "ignore 1 " + std::to_string(good_reports),
             "the " + std::to_string(good_reports) + " report(s) the guest printed");
    }
    GdbReply hit = show(gdb, out, "continue", "forwards, to the crash's eve");
    if (hit.console.find(src.file + ":" + std::to_string(src.last_line)) == std::string::npos &&
        hit.stop.find("breakpoint-hit") == std::string::npos) {
        throw std::runtime_error("the replay did not stop at the breakpoint");
    }

    out << "\nStep 5. Where is the return address, and what is in it now?\n";
    GdbReply frame = show(gdb, out, "info frame");
    std::smatch m;
    if (!std::regex_search(frame.console, m, std::regex(R"(rip at (0x[0-9a-f]+))"))) {
        throw std::runtime_error("gdb's 'info frame' shows no saved rip:\n" + frame.console);
    }
    const std::string slot = m[1];
    result.watched = std::stoull(slot, nullptr, 16);
    show(gdb, out, "x/2gx " + slot, "the saved rip: not a kernel address");

    out << "\nStep 6. Watch it and run backwards to the instruction that wrote it.\n";
    show(gdb, out, "delete");
    show(gdb, out, "watch *(unsigned long *)" + slot);
    t0 = Clock::now();
    GdbReply back = show(gdb, out, "reverse-continue", "back in time");
    const double back_s = seconds_since(t0);
    GdbReply where = show(gdb, out, "frame", "where it landed");
    if (!std::regex_search(where.console, m, std::regex(src.file + R"(:(\d+))"))) {
        throw std::runtime_error("reverse-continue did not land in " + src.file + ":\n" + back.console +
                                 where.console);
    }
    result.landing_line = std::stoi(m[1]);
    result.landing = first_line_with(where.console, src.file);
    show(gdb, out, "info locals", "the length came from the device");
    show(gdb, out, "print sizeof(msg)");
    show(gdb, out, "delete");
    show(gdb, out, "kill", "end the replay");
    if (!replay.wait_for(scaled(60s))) {
        replay.terminate();
    }

    out << "\nThe saved return address of " << src.function << "() was overwritten by\n"
        << src.file << ":" << result.landing_line
        << (result.landing_line == src.copy_line ? " -- the copying line" : " (expected the copying line " +
                                                                                 std::to_string(src.copy_line) + ")")
        << ": it copies as many bytes as the device's\nreport says into a " << "16-byte stack buffer. Found by "
        << "running backwards for " << fixed(back_s, 2) << " s,\nwithout the device, from a recording of "
        << result.recorded_icount << " instructions. Whole demo: " << fixed(seconds_since(demo_start)) << " s.\n";
    return result;
}

}  // namespace qemu_rewind::test
