// A QEMU Rewind bundle: one recording and everything its replay needs, in a
// directory (NAME.rewind/) that can be copied or tarred to another machine.
//
// Layout (all paths relative to the bundle directory):
//   manifest.json       what was recorded and how (struct Manifest below)
//   replay.log          the log QEMU wrote (rr=record,rrfile=...)
//   replay.log.ckpt.zst the checkpoints kept (checkpoint_thinning.hh), in
//                       QEMU's checkpoint format, zstd-compressed; optional
//   replay.log.ckpt     the same uncompressed, in bundles made before
//                       checkpoints were compressed; optional
//   files/<sha256>      kernel, initrd, firmware ROMs, ...: content-addressed,
//                       so a file used twice is stored once
//   disks/blocks.zst    the disk data the guest read, as 4 KiB blocks, each
//                       distinct block once (de-duplicated by SHA-256),
//                       zstd-compressed; all-zero blocks are not stored
//   disks/blocks.bin    the same uncompressed, in older bundles
//   disks/blocks.sha256 the SHA-256 of each stored block, 32 bytes each, in
//                       the same order
//   disks/<N>.map       for drive N (manifest order): which block of the
//                       disk holds which stored block (DiskMap below)
// Every file but manifest.json is listed in the manifest's "contents" with
// its size and SHA-256.  A replay rebuilds each disk as a sparse image from
// its map: blocks the guest never read stay zero, which it never sees.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qemu_rewind {

class ZstdFileWriter;

inline constexpr std::string_view kBundleFormat = "qemu-rewind-bundle";
inline constexpr int kBundleFormatVersion = 1;
inline constexpr std::size_t kDiskBlockSize = 4096;

namespace bundle_path {
inline constexpr std::string_view kManifest = "manifest.json";
inline constexpr std::string_view kLog = "replay.log";
inline constexpr std::string_view kCheckpoints = "replay.log.ckpt";
inline constexpr std::string_view kCompressedCheckpoints = "replay.log.ckpt.zst";
inline constexpr std::string_view kFilesDir = "files";
inline constexpr std::string_view kDisksDir = "disks";
inline constexpr std::string_view kBlockStore = "disks/blocks.bin";
inline constexpr std::string_view kCompressedBlockStore = "disks/blocks.zst";
inline constexpr std::string_view kBlockHashes = "disks/blocks.sha256";
// "files/<sha256>" and "disks/<index>.map".
std::string file(std::string_view sha256);
std::string disk_map(std::size_t index);
}  // namespace bundle_path

// Any problem with a bundle: names the file and what is wrong with it.
class BundleError : public std::runtime_error {
public:
    BundleError(const std::filesystem::path& file, const std::string& problem);
    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }
    [[nodiscard]] const std::string& problem() const noexcept { return problem_; }

private:
    std::filesystem::path file_;
    std::string problem_;
};

// A file QEMU needed that the bundle carries (kernel, initrd, firmware).
struct StoredFile {
    std::string role;  // "kernel", "initrd", "firmware", "dtb", ...
    std::string name;  // the name QEMU knew it by (firmware: as QEMU looks it up)
    std::string source;  // where it came from on the recording host
    std::string sha256;
    std::uint64_t size = 0;
};

// A guest disk: where its data went.
struct DiskRecord {
    std::string node;    // node name of the rebuilt image in the replay command
    std::string source;  // original image on the recording host
    std::string format;  // its format ("qcow2", "raw", ...)
    std::uint64_t virtual_size = 0;
    std::uint64_t blocks_read = 0;  // distinct 4 KiB blocks the guest read (zero ones included)
    std::string map;     // "disks/<N>.map"
};

// Section load addresses of a guest kernel module, from the guest's
// "rewind-module: NAME .text=0x... .data=0x..." console lines.
struct ModuleRecord {
    std::string name;
    std::map<std::string, std::uint64_t> sections;
};

// One file of the bundle with its checksum.
struct ContentEntry {
    std::string path;  // relative to the bundle
    std::uint64_t size = 0;
    std::string sha256;
};

struct Manifest {
    int format_version = kBundleFormatVersion;
    std::string created;  // ISO 8601, UTC
    std::string host;
    std::string rewind_version;
    // QEMU that recorded: path, SHA-256 of the binary, GNU build id (hex,
    // empty if the binary has none).
    std::string qemu_binary;
    std::string qemu_sha256;
    std::string qemu_build_id;
    // The user's command line, the one QEMU ran, and the replay template:
    // QEMU arguments (without the binary) in which "@BUNDLE@" stands for
    // the bundle directory and "@WORK@" for the replay's working directory.
    std::vector<std::string> original_command;
    std::vector<std::string> record_command;
    std::vector<std::string> replay_arguments;
    // How the recording ended: "poweroff" (guest shut down), "reset" (a
    // guest reset under -no-reboot, e.g. after a panic with panic=-1),
    // "panic" (a panic device reported one), "interrupted" (the user
    // stopped it), "qemu-died" (log may be cut short).
    std::string stop_reason;
    std::uint64_t icount = 0;  // instructions recorded (query-replay at the end)
    std::optional<std::uint64_t> checkpoint_every;  // rrpersist seconds
    std::vector<StoredFile> files;
    std::vector<DiskRecord> disks;
    std::uint64_t stored_blocks = 0;  // blocks in the block store
    bool block_store_compressed = false;  // disks/blocks.zst, not blocks.bin
    // replay.log.ckpt.zst: the uncompressed size and the kept checkpoints.
    struct Checkpoints {
        std::uint64_t bytes = 0;
        std::vector<std::uint64_t> icounts;
    };
    std::optional<Checkpoints> checkpoints;
    std::vector<ModuleRecord> modules;
    std::vector<ContentEntry> contents;
    std::vector<std::string> notes;  // warnings from the recording
};

nlohmann::json manifest_to_json(const Manifest& manifest);
// Throws BundleError(`origin`, ...) on anything that is not a valid manifest.
Manifest manifest_from_json(const nlohmann::json& json, const std::filesystem::path& origin);
Manifest read_manifest(const std::filesystem::path& bundle_dir);
void write_manifest(const std::filesystem::path& bundle_dir, const Manifest& manifest);

// A bundle opened for reading: its manifest and the paths of its parts.
struct OpenedBundle {
    std::filesystem::path root;
    Manifest manifest;
    std::filesystem::path log;
    // QEMU's checkpoint file when the bundle has one uncompressed (older
    // bundles); compressed_checkpoints when it has replay.log.ckpt.zst.
    std::optional<std::filesystem::path> checkpoints;
    std::optional<std::filesystem::path> compressed_checkpoints;
};

// The most a bundle's checkpoints may take uncompressed, whatever its
// manifest says (a replay writes them into its work directory).
inline constexpr std::uint64_t kMaxCheckpointBytes = std::uint64_t{1} << 40;
// Decompresses the bundle's checkpoints to `out`; checks the size against
// the manifest's.  Throws BundleError.
void unpack_checkpoints(const OpenedBundle& bundle, const std::filesystem::path& out);

// True if `path` is a directory with a manifest.json (does not validate it).
bool looks_like_bundle(const std::filesystem::path& path);
// Reads and validates the manifest, checks that the log is there. Does not
// hash anything (see verify_bundle). Throws BundleError.
OpenedBundle open_bundle(const std::filesystem::path& bundle_dir);

// ---- SHA-256 ----
std::string sha256_hex(std::span<const std::uint8_t> bytes);
std::string sha256_file(const std::filesystem::path& path);  // throws BundleError on I/O errors
bool is_sha256_hex(std::string_view text);

// ---- disk data ----

struct DiskMapEntry {
    std::uint64_t disk_block = 0;   // offset in the disk / kDiskBlockSize
    std::uint32_t store_block = 0;  // index in disks/blocks.bin
};

// disks/<N>.map: "RWDMAP01", u64 virtual size, u64 entry count, then the
// entries (u64 disk block, u32 store block), little-endian, sorted by disk
// block, each disk block once.
struct DiskMap {
    std::uint64_t virtual_size = 0;
    std::vector<DiskMapEntry> entries;
};
inline constexpr std::string_view kDiskMapMagic = "RWDMAP01";

std::vector<std::uint8_t> encode_disk_map(const DiskMap& map);
DiskMap decode_disk_map(std::span<const std::uint8_t> bytes, const std::filesystem::path& origin);

// Builds disks/blocks.zst and disks/blocks.sha256, one copy of each block.
class BlockStoreWriter {
public:
    explicit BlockStoreWriter(const std::filesystem::path& bundle_dir);
    ~BlockStoreWriter();
    BlockStoreWriter(const BlockStoreWriter&) = delete;
    BlockStoreWriter& operator=(const BlockStoreWriter&) = delete;

    // Index of the stored copy of `block` (kDiskBlockSize bytes).
    std::uint32_t add(std::span<const std::uint8_t> block);
    [[nodiscard]] std::uint64_t count() const noexcept { return hashes_.size(); }
    void finish();

private:
    std::filesystem::path dir_;
    std::unique_ptr<ZstdFileWriter> data_;
    std::vector<std::string> hashes_;  // raw 32-byte digests, in store order
    std::map<std::string, std::uint32_t> index_;
};

// Writes the sparse image of disk `index` to `out` (created or truncated),
// checking every block it uses against its SHA-256. Throws BundleError.
void rebuild_disk(const OpenedBundle& bundle, std::size_t index, const std::filesystem::path& out);

// ---- verification ----

struct VerifyReport {
    std::vector<std::string> problems;  // empty: the bundle is sound
    std::vector<std::string> checked;   // what was checked, one line each
    [[nodiscard]] bool ok() const { return problems.empty(); }
};

// Checks the manifest, the size and SHA-256 of every listed file, the disk
// maps and blocks, and reads every event of the log. Never throws for a bad
// bundle: every problem goes into the report.
VerifyReport verify_bundle(const std::filesystem::path& bundle_dir);

// ---- module load addresses ----

// Finds "rewind-module: NAME SECTION=0xADDR ..." lines in guest console
// output; a later line for the same module replaces an earlier one.
std::vector<ModuleRecord> scan_module_lines(std::string_view console);

}  // namespace qemu_rewind
