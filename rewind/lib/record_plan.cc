#include "record_plan.hh"

#include <algorithm>
#include <set>

#include "bundle.hh"
#include "qemu_options.hh"

namespace qemu_rewind {

namespace {

// Drive suboptions that describe how the guest sees the drive: they go on
// the blkreplay node at the top of the stack.
const std::set<std::string> kTopDriveKeys = {"if",     "index",  "bus",  "unit",     "media", "id",
                                             "serial", "werror", "rerror", "readonly", "read-only", "addr",
                                             "cyls",   "heads",  "secs", "trans",    "boot"};
// Suboptions about the host side of the image that the stack makes moot.
const std::set<std::string> kIgnoredDriveKeys = {"cache", "aio", "discard", "detect-zeroes", "copy-on-read",
                                                 "snapshot", "cache.direct", "cache.no-flush", "auto-read-only"};
// Netdev backends that reach into the host: at replay they become "user"
// (filter-replay drops what the backend sends anyway).
const std::set<std::string> kHostNetdevs = {"tap", "bridge", "socket", "stream", "dgram", "vde",
                                            "l2tpv3", "vhost-user", "vhost-vdpa", "af-xdp", "netmap"};
// Chardev backends a replay can keep.
const std::set<std::string> kPortableChardevs = {"file", "stdio", "null", "ringbuf", "memory", "msmouse",
                                                 "wctablet", "testdev", "braille"};
// Devices that hand host hardware or host files to the guest.
const std::vector<std::string> kHostDevices = {"vfio-", "vhost-", "virtio-9p", "vhost-user-fs", "ivshmem"};

std::string refuse_prefix(const QemuOption& o) {
    return "cannot record '-" + o.name + (o.value ? " " + *o.value : std::string()) + "': ";
}

class Planner {
public:
    Planner(const RecordRequest& request, const PlanEnvironment& environment)
        : request_(request), env_(environment) {}

    RecordPlan run() {
        if (request_.qemu_command.empty()) {
            throw RecordRefusal("no QEMU command given (rewind record [options] -- qemu-system-x86_64 ARGS...)");
        }
        std::vector<QemuOption> options;
        try {
            options = split_qemu_options({request_.qemu_command.begin() + 1, request_.qemu_command.end()});
        } catch (const std::invalid_argument& e) {
            throw RecordRefusal(std::string("cannot parse the QEMU command line: ") + e.what());
        }
        check_defaults(options);
        for (const auto& o : options) {
            handle(o);
        }
        finish();
        return std::move(plan_);
    }

private:
    void both(const std::string& name, const std::optional<std::string>& value) {
        record_.push_back({name, value});
        replay_.push_back({name, value});
    }

    void check_defaults(const std::vector<QemuOption>& options) {
        auto has = [&](std::string_view name) {
            return std::any_of(options.begin(), options.end(), [&](const auto& o) { return o.name == name; });
        };
        // QEMU's default NIC (-net nic -net user) has no id to hang a
        // filter-replay on: make it explicit.
        if (!has("nodefaults") && !has("nic") && !has("netdev") && !has("net")) {
            implicit_nic_ = true;
        }
    }

    void handle(const QemuOption& o) {
        const std::string& n = o.name;
        const std::string value = o.value.value_or("");
        if (n == "enable-kvm" || n == "xen-attach") {
            throw RecordRefusal(refuse_prefix(o) + "record/replay needs TCG (drop it)");
        }
        if (n == "accel") {
            if (KeyValueList::parse(value).implied() != "tcg") {
                throw RecordRefusal(refuse_prefix(o) + "record/replay needs TCG (-accel tcg)");
            }
            both(n, o.value);
        } else if (n == "machine" || n == "M") {
            auto accel = KeyValueList::parse(value).get("accel");
            if (accel && *accel != "tcg") {
                throw RecordRefusal(refuse_prefix(o) + "record/replay needs TCG (accel=tcg)");
            }
            both(n, o.value);
        } else if (n == "cpu" && (value == "host" || value.starts_with("host,"))) {
            throw RecordRefusal(refuse_prefix(o) + "the host CPU model needs KVM; name a CPU model");
        } else if (n == "icount") {
            icount_ = KeyValueList::parse(value);
            if (!icount_.implied().empty()) {
                const std::string shift = icount_.implied();
                icount_.erase("");
                icount_.set("shift", shift);
            }
            for (const char* key : {"rr", "rrfile", "rrsnapshot", "rrpersist"}) {
                if (icount_.has(key)) {
                    throw RecordRefusal(refuse_prefix(o) + "already a record/replay command line (" + key +
                                        "=); rewind record adds these itself");
                }
            }
        } else if (n == "kernel" || n == "initrd" || n == "bios" || n == "dtb") {
            const std::string sha = env_.store_file(value, n);
            record_.push_back(o);
            replay_.push_back({n, std::string(kBundleToken) + "/" + bundle_path::file(sha)});
        } else if (n == "L") {
            record_.push_back(o);  // the replay looks in the bundle's firmware first
        } else if (n == "drive") {
            drive(o, KeyValueList::parse(value));
        } else if (n == "hda" || n == "hdb" || n == "hdc" || n == "hdd") {
            KeyValueList d;
            d.set("file", value);
            d.set("index", std::to_string(n[2] - 'a'));
            d.set("media", "disk");
            drive(o, d);
        } else if (n == "cdrom") {
            KeyValueList d;
            d.set("file", value);
            d.set("index", "2");
            d.set("media", "cdrom");
            drive(o, d);
        } else if (n == "fda" || n == "fdb") {
            KeyValueList d;
            d.set("file", value);
            d.set("if", "floppy");
            d.set("index", n == "fda" ? "0" : "1");
            drive(o, d);
        } else if (n == "blockdev") {
            throw RecordRefusal(refuse_prefix(o) + "-blockdev graphs are not rewritten yet; use -drive file=...");
        } else if (n == "sd" || n == "mtdblock" || n == "pflash") {
            throw RecordRefusal(refuse_prefix(o) + "flash and SD images are not recorded yet");
        } else if (n == "snapshot") {
            plan_.notes.push_back("-snapshot dropped: the recording never writes to your images anyway");
        } else if (n == "netdev") {
            netdev(o);
        } else if (n == "nic") {
            nic(o);
        } else if (n == "net") {
            throw RecordRefusal(refuse_prefix(o) + "use -netdev TYPE,id=ID with -device MODEL,netdev=ID, or -nic");
        } else if (n == "chardev") {
            chardev(o);
        } else if (n == "serial" || n == "parallel" || n == "debugcon") {
            legacy_chardev(o);
        } else if (n == "qmp" || n == "qmp-pretty" || n == "monitor" || n == "mon") {
            record_.push_back(o);  // the replay has rewind's own QMP socket
        } else if (n == "device") {
            const std::string driver = KeyValueList::parse(value).implied();
            for (const auto& prefix : kHostDevices) {
                if (driver.starts_with(prefix)) {
                    throw RecordRefusal(refuse_prefix(o) + "passes host hardware or files into the guest");
                }
            }
            both(n, o.value);
        } else if (n == "fsdev" || n == "virtfs") {
            throw RecordRefusal(refuse_prefix(o) + "host folders shared with the guest are not recorded");
        } else if (n == "loadvm" || n == "incoming") {
            throw RecordRefusal(refuse_prefix(o) + "a recording must start from a boot");
        } else if (n == "daemonize" || n == "readconfig") {
            throw RecordRefusal(refuse_prefix(o) + "not supported by rewind record");
        } else if (n == "no-shutdown") {
            no_shutdown_ = true;
            both(n, o.value);
        } else {
            both(n, o.value);
        }
    }

    void drive(const QemuOption& o, KeyValueList d) {
        const std::string argument = "-" + o.name + " " + o.value.value_or("");
        if (d.has("driver")) {
            throw RecordRefusal("cannot record '" + argument +
                                "': driver= drives are not rewritten yet; give the image with file=");
        }
        const auto iface = d.get("if");
        if (iface && (*iface == "pflash" || *iface == "mtd" || *iface == "sd")) {
            throw RecordRefusal("cannot record '" + argument + "': if=" + *iface + " drives are not recorded yet");
        }
        const auto file = d.get("file");
        if (!file || file->empty()) {
            both("drive", o.value);  // an empty drive (CD-ROM without a disc): nothing to read
            return;
        }
        if (file->find(':') != std::string::npos && !file->starts_with("/") && !file->starts_with(".")) {
            throw RecordRefusal("cannot record '" + argument + "': only local image files are recorded (file=" +
                                *file + ")");
        }
        KeyValueList top;
        std::optional<std::string> format;
        for (const auto& [key, value] : d.items()) {
            if (key == "file") {
                continue;
            }
            if (key == "format") {
                format = value;
            } else if (kTopDriveKeys.contains(key)) {
                top.append(key, value);
            } else if (kIgnoredDriveKeys.contains(key)) {
                if (key == "snapshot" && value == "off") {
                    plan_.notes.push_back(argument + ": the guest's writes are not written back to " + *file +
                                          " (a recording never changes your images)");
                }
            } else {
                throw RecordRefusal("cannot record '" + argument + "': unknown drive option '" + key + "'");
            }
        }
        const std::size_t index = plan_.drives.size();
        const std::string prefix = "rewind-d" + std::to_string(index);
        PlannedDrive planned;
        planned.argument = argument;
        planned.source = *file;
        DiskProbe probe = env_.probe_disk(*file, format);
        planned.format = probe.format;
        planned.virtual_size = probe.virtual_size;
        planned.reads_overlay = request_.work_dir + "/" + prefix + "-reads.qcow2";
        planned.writes_overlay = request_.work_dir + "/" + prefix + "-writes.qcow2";
        planned.reads_node = prefix + "-reads";
        planned.replay_node = prefix;

        auto blockdev = [&](std::vector<QemuOption>& to, KeyValueList node) { to.push_back({"blockdev", node.str()}); };
        KeyValueList src_file, src, reads, cor, writes, top_record = top, top_replay = top;
        src_file.append("driver", "file");
        src_file.append("filename", *file);
        src_file.append("node-name", prefix + "-src-file");
        src_file.append("read-only", "on");
        src.append("driver", planned.format);
        src.append("file", prefix + "-src-file");
        src.append("node-name", prefix + "-src");
        src.append("read-only", "on");
        reads.append("driver", "qcow2");
        reads.append("node-name", planned.reads_node);
        reads.append("file.driver", "file");
        reads.append("file.filename", planned.reads_overlay);
        reads.append("backing", prefix + "-src");
        cor.append("driver", "copy-on-read");
        cor.append("node-name", prefix + "-cor");
        cor.append("file", planned.reads_node);
        writes.append("driver", "qcow2");
        writes.append("node-name", prefix + "-writes");
        writes.append("file.driver", "file");
        writes.append("file.filename", planned.writes_overlay);
        writes.append("backing", prefix + "-cor");
        blockdev(record_, src_file);
        blockdev(record_, src);
        blockdev(record_, reads);
        blockdev(record_, cor);
        blockdev(record_, writes);
        KeyValueList blk_record;
        blk_record.append("driver", "blkreplay");
        blk_record.append("image", prefix + "-writes");
        for (const auto& [k, v] : top.items()) {
            blk_record.append(k, v);
        }
        record_.push_back({"drive", blk_record.str()});

        KeyValueList image;
        image.append("driver", "file");
        image.append("filename", std::string(kWorkToken) + "/disk" + std::to_string(index) + ".img");
        image.append("node-name", planned.replay_node);
        blockdev(replay_, image);
        KeyValueList blk_replay;
        blk_replay.append("driver", "blkreplay");
        blk_replay.append("image", planned.replay_node);
        for (const auto& [k, v] : top.items()) {
            blk_replay.append(k, v);
        }
        replay_.push_back({"drive", blk_replay.str()});
        plan_.drives.push_back(std::move(planned));
    }

    void add_filter(const std::string& netdev_id) {
        const std::string object = "filter-replay,id=rewind-fr" + std::to_string(filters_++) + ",netdev=" + netdev_id;
        record_.push_back({"object", object});
        replay_.push_back({"object", object});
    }

    void netdev(const QemuOption& o) {
        KeyValueList n = KeyValueList::parse(o.value.value_or(""));
        const auto id = n.get("id");
        if (!id) {
            throw RecordRefusal(refuse_prefix(o) + "a netdev needs an id=");
        }
        const std::string type = n.implied().empty() ? n.get("type").value_or("") : n.implied();
        record_.push_back(o);
        if (kHostNetdevs.contains(type)) {
            replay_.push_back({"netdev", "user,id=" + escape_option_value(*id)});
        } else {
            replay_.push_back(o);
        }
        if (type != "hubport") {
            add_filter(*id);
        }
    }

    void nic(const QemuOption& o) {
        KeyValueList n = KeyValueList::parse(o.value.value_or(""));
        if (n.implied() == "none") {
            both("nic", o.value);
            return;
        }
        if (!n.has("id")) {
            n.set("id", "rewind-nic" + std::to_string(nics_++));
        }
        const std::string id = *n.get("id");
        record_.push_back({"nic", n.str()});
        if (kHostNetdevs.contains(n.implied())) {
            KeyValueList replay_nic;
            replay_nic.append("", "user");
            for (const auto& [k, v] : n.items()) {
                if (k == "id" || k == "model" || k == "mac") {
                    replay_nic.append(k, v);
                }
            }
            replay_.push_back({"nic", replay_nic.str()});
        } else {
            replay_.push_back({"nic", n.str()});
        }
        add_filter(id);
    }

    void chardev(const QemuOption& o) {
        KeyValueList c = KeyValueList::parse(o.value.value_or(""));
        const std::string backend = c.implied();
        const std::string id = c.get("id").value_or("chardev");
        record_.push_back(o);
        KeyValueList r;
        if (kPortableChardevs.contains(backend)) {
            r = c;
            if (backend == "file") {
                r.set("path", std::string(kWorkToken) + "/" + id + ".out");
                r.erase("append");
            }
        } else {
            // Its input comes from the log; what the guest writes is dropped.
            r.append("", "null");
            r.append("id", id);
            for (const auto& [k, v] : c.items()) {
                if (k == "mux" || k == "logfile" || k == "logappend") {
                    r.append(k, v);
                }
            }
        }
        if (r.has("logfile")) {
            r.set("logfile", std::string(kWorkToken) + "/" + id + ".log");
            r.erase("logappend");
        }
        replay_.push_back({"chardev", r.str()});
    }

    void legacy_chardev(const QemuOption& o) {
        const std::string value = o.value.value_or("");
        record_.push_back(o);
        const std::string name = o.name + std::to_string(legacy_++);
        if (value.starts_with("file:")) {
            replay_.push_back({o.name, "file:" + std::string(kWorkToken) + "/" + name + ".out"});
        } else if (value == "stdio" || value == "mon:stdio" || value == "null" || value == "none" || value == "vc" ||
                   value.starts_with("chardev:") || value.starts_with("vc:") || value == "msmouse") {
            replay_.push_back(o);
        } else {
            replay_.push_back({o.name, "null"});
        }
    }

    void finish() {
        const std::string bundle = request_.bundle_dir;
        if (implicit_nic_) {
            record_.push_back({"nic", "user,id=rewind-nic-default"});
            replay_.push_back({"nic", "user,id=rewind-nic-default"});
            add_filter("rewind-nic-default");
            plan_.notes.push_back("QEMU's default network card is given explicitly (-nic user) to record its traffic");
        }
        KeyValueList record_icount = icount_;
        if (!record_icount.has("shift")) {
            record_icount.set("shift", "auto");
        }
        KeyValueList replay_icount = record_icount;
        record_icount.set("rr", "record");
        record_icount.set("rrfile", bundle + "/" + std::string(bundle_path::kLog));
        if (request_.checkpoint_every) {
            record_icount.set("rrpersist", std::to_string(*request_.checkpoint_every));
        }
        replay_icount.set("rr", "replay");
        replay_icount.set("rrfile", std::string(kBundleToken) + "/" + std::string(bundle_path::kLog));
        record_.push_back({"icount", record_icount.str()});
        replay_.push_back({"icount", replay_icount.str()});
        if (!no_shutdown_) {
            // rewind reads the final instruction count at the power-off,
            // then quits QEMU itself.
            record_.push_back({"no-shutdown", std::nullopt});
            replay_.push_back({"no-shutdown", std::nullopt});
        }
        plan_.qmp_socket = request_.qmp_socket;
        record_.push_back({"qmp", "unix:" + plan_.qmp_socket + ",server=on,wait=off"});

        plan_.record_command = {request_.qemu_command.front()};
        for (auto& a : join_qemu_options(record_)) {
            plan_.record_command.push_back(std::move(a));
        }
        plan_.replay_arguments = join_qemu_options(replay_);
    }

    const RecordRequest& request_;
    const PlanEnvironment& env_;
    RecordPlan plan_;
    std::vector<QemuOption> record_;
    std::vector<QemuOption> replay_;
    KeyValueList icount_;
    bool implicit_nic_ = false;
    bool no_shutdown_ = false;
    int filters_ = 0;
    int nics_ = 0;
    int legacy_ = 0;
};

}  // namespace

RecordPlan plan_recording(const RecordRequest& request, const PlanEnvironment& environment) {
    if (request.bundle_dir.find(',') != std::string::npos || request.work_dir.find(',') != std::string::npos) {
        throw RecordRefusal("the bundle and work directories must not contain ','");
    }
    return Planner(request, environment).run();
}

std::vector<std::string> expand_replay_template(const std::vector<std::string>& arguments, const std::string& bundle_dir,
                                                const std::string& work_dir) {
    std::vector<std::string> out;
    out.reserve(arguments.size());
    for (std::string a : arguments) {
        for (const auto& [token, value] : {std::pair{kBundleToken, bundle_dir}, std::pair{kWorkToken, work_dir}}) {
            for (std::size_t at = 0; (at = a.find(token, at)) != std::string::npos; at += value.size()) {
                a.replace(at, token.size(), value);
            }
        }
        out.push_back(std::move(a));
    }
    return out;
}

}  // namespace qemu_rewind
