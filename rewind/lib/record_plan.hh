// `rewind record`'s command-line rewriting: from the user's
// "qemu-system-x86_64 ARGS..." to the command that records into a bundle,
// and to the template of the command that replays it.
//
// Recording:
//   -icount shift=auto,rr=record,rrfile=BUNDLE/replay.log[,rrpersist=N]
//           (the user's -icount suboptions kept);
//   every drive becomes a stack of nodes, so the original image is only
//   read and what the guest read is kept apart (docs/bundles.rst):
//       blkreplay (the drive the device sees: if/id/index/... as given)
//        -> qcow2 "writes"  throwaway overlay: the guest's writes
//        -> copy-on-read    copies what is read through it ...
//        -> qcow2 "reads"   ... into this layer (4 KiB clusters)
//        -> FORMAT -> file  the original image, read-only
//   every -netdev/-nic gets "-object filter-replay";
//   -no-shutdown (rewind asks for the final instruction count, then quits);
//   a QMP socket for rewind.
// Replaying (the template; "@BUNDLE@" and "@WORK@" stand for the bundle
// and the replay's working directory):
//   kernel/initrd/bios from the bundle's files/, each drive as
//   "-blockdev driver=file,filename=@WORK@/diskN.img" under blkreplay,
//   netdevs that need the host (tap, bridge, socket, ...) as "user",
//   file chardevs and -serial file: writing into @WORK@, host-bound
//   chardevs (pty, tty, sockets, ...) as "null", the user's monitors dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace qemu_rewind {

// An argument `rewind record` cannot record. what() names the argument.
class RecordRefusal : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct DiskProbe {
    std::string format;  // QEMU driver name of the image format ("qcow2", "raw")
    std::uint64_t virtual_size = 0;
};

// What the rewriting needs from the outside world (the real ones run
// qemu-img and copy files into the bundle; tests use fakes).
struct PlanEnvironment {
    // Format and size of a disk image; throws for an unreadable image.
    std::function<DiskProbe(const std::string& path, const std::optional<std::string>& format)> probe_disk;
    // Stores a file (kernel, initrd, ...) in the bundle; returns its SHA-256.
    std::function<std::string(const std::string& path, const std::string& role)> store_file;
};

struct PlannedDrive {
    std::string source;  // the original image
    std::string format;
    std::uint64_t virtual_size = 0;
    std::string reads_overlay;   // qcow2 the caller creates (4 KiB clusters)
    std::string writes_overlay;  // qcow2 the caller creates
    std::string reads_node;      // node name of the reads layer
    std::string replay_node;     // node name of the rebuilt image at replay
    std::string argument;        // the user's argument, for messages
};

struct RecordPlan {
    std::vector<std::string> record_command;    // binary + arguments
    std::vector<std::string> replay_arguments;  // template, without the binary
    std::vector<PlannedDrive> drives;
    std::string qmp_socket;
    std::vector<std::string> notes;  // changes the user should know about
};

struct RecordRequest {
    std::vector<std::string> qemu_command;  // binary + the user's arguments
    std::string bundle_dir;
    std::string work_dir;     // the disks' overlays
    std::string qmp_socket;   // rewind's QMP socket (short path: sun_path)
    std::optional<std::uint64_t> checkpoint_every;  // seconds: rrpersist
};

inline constexpr std::string_view kBundleToken = "@BUNDLE@";
inline constexpr std::string_view kWorkToken = "@WORK@";

// Throws RecordRefusal for what cannot be recorded.
RecordPlan plan_recording(const RecordRequest& request, const PlanEnvironment& environment);

// The replay template with its tokens replaced.
std::vector<std::string> expand_replay_template(const std::vector<std::string>& arguments, const std::string& bundle_dir,
                                                const std::string& work_dir);

}  // namespace qemu_rewind
