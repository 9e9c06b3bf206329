// The guest scenarios of tests/guest/, as QEMU configurations. Each
// scenario is the same command line in every mode; only -icount differs.
#pragma once

#include "qemu.hh"

#include <string>
#include <vector>

namespace qemu_rewind::test {

// Scenario names: "boot", "serial-echo", "net", "disk", "audio".
struct Scenario {
    std::string name;
    std::string append_extra;               // added to the kernel command line
    std::vector<std::string> device_args;   // devices (filter-replay added for rr)
};

// The kernel command line the images were built for (images_dir()/cmdline).
std::string base_kernel_cmdline();
std::string initrd_path(const std::string &scenario);

// A QemuConfig for running `scenario` in `mode`, logging to `rrfile`.
QemuConfig make_config(const Scenario &scenario, RrMode mode,
                       const std::string &rrfile = "");

// Network scenario devices: slirp user networking + virtio-net, with a replay
// filter (so network input is logged) in record/replay modes.  `hostfwd`,
// e.g. "tcp:127.0.0.1:HPORT-:GPORT", forwards a host port into the guest.
std::vector<std::string> net_devices(bool with_replay_filter,
                                     const std::string &hostfwd = "");
// Audio scenario devices: an Intel HDA controller with QEMU's duplex codec
// on the audio backend `backend` (the first -audiodev suboptions, e.g.
// "pa,server=unix:/x/native,in.name=vsink.monitor" or "none").  Adds the
// timing suboptions that record and replay must share when their backends
// differ (docs/devices/audio.rst).
std::vector<std::string> audio_devices(const std::string &backend);
// Upstream reverse debugging keeps its snapshots in a qcow2 drive that no
// device uses: creates dir/snapshots.qcow2 and returns its -drive options.
std::vector<std::string> snapshot_drive(const std::string &dir,
                                        const std::string &qemu_img = "");
// Disk scenario devices: the qcow2 image in snapshot mode under blkreplay.
std::vector<std::string> disk_devices(const std::string &qcow2_path);

// A disk for the disk scenario: dir/disk.qcow2 holding `bytes` random bytes.
struct RandomDisk {
    std::string content;
    std::string qcow2;
};
RandomDisk make_random_disk(const std::string &dir, std::size_t bytes = 4 << 20);

}  // namespace qemu_rewind::test
