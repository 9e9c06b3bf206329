// The Debian VM of scripts/make-debian-vm.sh as tests and benchmarks use
// it: its QEMU command line on the machines driver developers use, the
// kernel symbols its workload prints, and gdb's reverse operations on a
// bundle of it through `rewind replay --gdb` (the gdb remote protocol, and
// a QMP socket of the caller's own).
#pragma once

#include "process.hh"
#include "qmp.hh"
#include "rsp_client.hh"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qemu_rewind::test {

struct VmScenario {
    std::string machine;  // pc, q35
    std::string disk;     // virtio, ahci
    std::string nic;      // virtio-net-pci, e1000e
    std::string memory;   // 1G, 4G
    std::string name() const { return machine + "-" + disk + "-" + nic + "-" + memory; }
};

// images_dir()/debian-vm
std::string vm_dir();

// The user's command line (no record/replay options): the workload
// downloads http://10.0.2.2:http_port/ (see make-debian-vm.sh); `icount`
// makes it a plain run comparable to a recording: "-icount shift=auto",
// and the disk image under snapshot=on (the guest writes to its disk).
std::vector<std::string> vm_command(const VmScenario &s, const std::string &serial, int http_port,
                                    bool icount = false);

// "rewind-vm: sym NAME 0xADDR" lines of the console.
std::map<std::string, std::uint64_t> vm_symbols(const std::string &console);

// A replay of a bundle under `rewind replay --gdb`.
class GdbReplay {
public:
    GdbReplay(const std::string &bundle, const std::string &dir);
    ~GdbReplay();
    GdbReplay(const GdbReplay &) = delete;
    GdbReplay &operator=(const GdbReplay &) = delete;

    std::uint64_t icount();
    // replay-seek: restore and replay forward; waits until stopped there.
    void seek(std::uint64_t target);
    // Forward from where it is, without a restore (replay-break + cont).
    void run_to(std::uint64_t target);
    // A packet that resumes (bs, bc): its stop reply.
    StopReply resume(const std::string &packet);
    std::string request(const std::string &packet);
    const std::string &transcript() const;

private:
    void wait_stopped_at(std::uint64_t target);

    Process proc_;
    QmpClient qmp_;
    std::unique_ptr<RspClient> rsp_;
};

struct ReverseStats {
    int operations = 0;
    std::vector<double> stepi_s;     // each reverse-stepi
    double reverse_continue_s = 0;   // to the breakpoints, in all
    double forward_s = 0;            // the same distances forward
    std::vector<std::string> problems;  // wrong landings; empty when all right
};

// `rounds` rounds of: a seek to a random point after the kernel started
// and three reverse-stepi (each must land one instruction earlier); a
// reverse-continue to a breakpoint on schedule() (must stop on it,
// earlier), timed against replaying the same distance forward; a
// reverse-continue to a write watchpoint on jiffies_64 (a watch stop,
// earlier).  Five reverse operations a round.  Throws on a replay error.
ReverseStats vm_reverse_operations(GdbReplay &r, std::uint64_t end,
                                   const std::map<std::string, std::uint64_t> &syms, int rounds,
                                   std::uint64_t seed);

}  // namespace qemu_rewind::test
