#include "scenarios.hh"

#include "process.hh"
#include "util.hh"

#include <stdexcept>

namespace qemu_rewind::test {

std::string base_kernel_cmdline()
{
    std::string path = images_dir() + "/cmdline";
    std::string c = read_file(path);
    while (!c.empty() && (c.back() == '\n' || c.back() == ' ')) {
        c.pop_back();
    }
    if (c.empty()) {
        throw std::runtime_error("missing " + path +
                                 ": build the guest images (make images)");
    }
    return c;
}

std::string initrd_path(const std::string &scenario)
{
    std::string p = images_dir() + "/" + scenario + ".cpio";
    if (!file_exists(p)) {
        throw std::runtime_error("missing guest image " + p +
                                 ": build the guest images (make images)");
    }
    return p;
}

QemuConfig make_config(const Scenario &scenario, RrMode mode,
                       const std::string &rrfile)
{
    QemuConfig c;
    c.initrd = initrd_path(scenario.name);
    c.append = base_kernel_cmdline();
    if (!scenario.append_extra.empty()) {
        c.append += " " + scenario.append_extra;
    }
    c.device_args = scenario.device_args;
    c.mode = mode;
    c.rrfile = rrfile;
    return c;
}

std::vector<std::string> net_devices(bool with_replay_filter,
                                     const std::string &hostfwd)
{
    // virtio-net: QEMU's e1000 holds received packets back for a second
    // after the driver reprograms it, which made each run 2-4x slower.
    std::vector<std::string> a = {"-netdev", "user,id=n0" +
                                      (hostfwd.empty() ? "" : ",hostfwd=" + hostfwd),
                                  "-device", "virtio-net-pci,netdev=n0"};
    if (with_replay_filter) {
        a.insert(a.end(), {"-object", "filter-replay,id=fr0,netdev=n0"});
    }
    return a;
}

std::vector<std::string> audio_devices(const std::string &backend)
{
    // What the guest sees of the backend must not depend on which one it
    // is: the audio timer's period, and the size of the capture and
    // playback buffers (hw->samples): 1024 frames, fixed for "none", chosen
    // for "pa" through buffer-length (1024 frames at 44.1 kHz).  And a
    // single capture must never fill the whole buffer: upstream's
    // replay_audio_in() logs no samples then (docs/devices/audio.rst), so
    // pa's buffer is kept under 1024 frames (latency 15 ms, 3 periods of
    // 5 ms: 661 frames).
    std::string audiodev = backend + ",id=snd0,timer-period=5000";
    if (backend.rfind("pa", 0) == 0) {
        audiodev += ",in.latency=15000,in.buffer-length=23220,out.buffer-length=23220";
    }
    return {"-audiodev", audiodev, "-device", "intel-hda",
            "-device", "hda-duplex,audiodev=snd0"};
}

std::vector<std::string> snapshot_drive(const std::string &dir,
                                        const std::string &qemu_img)
{
    std::string path = dir + "/snapshots.qcow2";
    auto r = run_command({qemu_img.empty() ? qemu_img_binary() : qemu_img,
                          "create", "-f", "qcow2", path, "64M"},
                         std::chrono::seconds(60));
    if (!r.status.exited || r.status.code != 0) {
        throw std::runtime_error("qemu-img create " + path + " failed:\n" + r.output);
    }
    return {"-drive", "file=" + path + ",if=none,id=rr-snapshots"};
}

RandomDisk make_random_disk(const std::string &dir, std::size_t bytes)
{
    RandomDisk d{random_bytes(bytes), dir + "/disk.qcow2"};
    std::string raw = dir + "/disk.raw";
    write_file(raw, d.content);
    auto r = run_command({qemu_img_binary(), "convert", "-f", "raw", "-O", "qcow2",
                          raw, d.qcow2},
                         std::chrono::seconds(60));
    if (!r.status.exited || r.status.code != 0) {
        throw std::runtime_error("qemu-img convert to " + d.qcow2 + " failed:\n" +
                                 r.output);
    }
    return d;
}

std::vector<std::string> disk_devices(const std::string &qcow2_path)
{
    return {
        "-drive", "file=" + qcow2_path + ",if=none,snapshot=on,id=img-direct",
        "-drive", "driver=blkreplay,if=none,image=img-direct,id=img-blkreplay",
        "-device", "virtio-blk-pci,drive=img-blkreplay",
    };
}

}  // namespace qemu_rewind::test
