#include "bundle.hh"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log_container.hh"
#include "replay_log.hh"
#include "zstd_file.hh"

namespace qemu_rewind {

namespace fs = std::filesystem;
using nlohmann::json;

namespace bundle_path {
std::string file(std::string_view sha256) { return std::string(kFilesDir) + "/" + std::string(sha256); }
std::string disk_map(std::size_t index) { return std::string(kDisksDir) + "/" + std::to_string(index) + ".map"; }
}  // namespace bundle_path

BundleError::BundleError(const fs::path& file, const std::string& problem)
    : std::runtime_error(file.string() + ": " + problem), file_(file), problem_(problem) {}

// ---- SHA-256 ----

namespace {

struct DigestDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

class Sha256 {
public:
    Sha256() : ctx_(EVP_MD_CTX_new()) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
            throw std::runtime_error("OpenSSL cannot compute SHA-256");
        }
    }
    void update(const void* data, std::size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
    std::string raw() {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        EVP_DigestFinal_ex(ctx_.get(), digest, &length);
        return std::string(reinterpret_cast<char*>(digest), length);
    }

private:
    std::unique_ptr<EVP_MD_CTX, DigestDeleter> ctx_;
};

std::string to_hex(std::string_view raw) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(raw.size() * 2);
    for (unsigned char c : raw) {
        hex.push_back(kDigits[c >> 4]);
        hex.push_back(kDigits[c & 15]);
    }
    return hex;
}

std::string raw_sha256(std::span<const std::uint8_t> bytes) {
    Sha256 sha;
    sha.update(bytes.data(), bytes.size());
    return sha.raw();
}

}  // namespace

std::string sha256_hex(std::span<const std::uint8_t> bytes) { return to_hex(raw_sha256(bytes)); }

std::string sha256_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw BundleError(path, std::string("cannot open: ") + std::strerror(errno));
    }
    Sha256 sha;
    std::vector<char> buffer(1 << 20);
    while (in) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        sha.update(buffer.data(), static_cast<std::size_t>(in.gcount()));
    }
    if (in.bad()) {
        throw BundleError(path, "read error");
    }
    return to_hex(sha.raw());
}

bool is_sha256_hex(std::string_view text) {
    return text.size() == 64 &&
           std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// ---- manifest ----

namespace {

json files_to_json(const std::vector<StoredFile>& files) {
    json array = json::array();
    for (const auto& f : files) {
        array.push_back({{"role", f.role}, {"name", f.name}, {"source", f.source}, {"sha256", f.sha256}, {"size", f.size}});
    }
    return array;
}

std::string hex_address(std::uint64_t value) {
    char text[32];
    std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
    return text;
}

// Typed access to manifest fields with errors that name the field.
class Fields {
public:
    Fields(const json& object, std::string where, const fs::path& origin)
        : object_(object), where_(std::move(where)), origin_(origin) {
        if (!object_.is_object()) {
            fail(where_ + " is not a JSON object");
        }
    }
    [[noreturn]] void fail(const std::string& problem) const { throw BundleError(origin_, "bad manifest: " + problem); }

    const json* find(const char* key) const {
        auto it = object_.find(key);
        return it == object_.end() ? nullptr : &*it;
    }
    const json& need(const char* key) const {
        const json* value = find(key);
        if (!value) {
            fail(where_ + " has no \"" + key + "\"");
        }
        return *value;
    }
    std::string string(const char* key, bool required = true) const {
        const json* value = required ? &need(key) : find(key);
        if (!value) {
            return {};
        }
        if (!value->is_string()) {
            fail(where_ + "." + key + " is not a string");
        }
        return value->get<std::string>();
    }
    std::uint64_t number(const char* key, bool required = true) const {
        const json* value = required ? &need(key) : find(key);
        if (!value) {
            return 0;
        }
        if (!value->is_number_unsigned() && !(value->is_number_integer() && value->get<std::int64_t>() >= 0)) {
            fail(where_ + "." + key + " is not a non-negative integer");
        }
        return value->get<std::uint64_t>();
    }
    std::vector<std::string> strings(const char* key, bool required = true) const {
        const json* value = required ? &need(key) : find(key);
        std::vector<std::string> result;
        if (!value) {
            return result;
        }
        if (!value->is_array()) {
            fail(where_ + "." + key + " is not an array");
        }
        for (const auto& item : *value) {
            if (!item.is_string()) {
                fail(where_ + "." + key + " holds a non-string");
            }
            result.push_back(item.get<std::string>());
        }
        return result;
    }
    const json& array(const char* key, bool required = true) const {
        static const json kEmpty = json::array();
        const json* value = required ? &need(key) : find(key);
        if (!value) {
            return kEmpty;
        }
        if (!value->is_array()) {
            fail(where_ + "." + key + " is not an array");
        }
        return *value;
    }
    std::string sha256(const char* key) const {
        std::string value = string(key);
        if (!is_sha256_hex(value)) {
            fail(where_ + "." + key + " is not a SHA-256 in lowercase hex");
        }
        return value;
    }

private:
    const json& object_;
    std::string where_;
    const fs::path& origin_;
};

// A path inside the bundle: relative, no "..", no empty parts.
bool safe_relative_path(const std::string& path) {
    if (path.empty() || path.front() == '/') {
        return false;
    }
    for (const auto& part : fs::path(path)) {
        if (part == ".." || part == "." || part.empty()) {
            return false;
        }
    }
    return true;
}

}  // namespace

json manifest_to_json(const Manifest& m) {
    json disks = json::array();
    for (const auto& d : m.disks) {
        disks.push_back({{"node", d.node},
                         {"source", d.source},
                         {"format", d.format},
                         {"virtual_size", d.virtual_size},
                         {"blocks_read", d.blocks_read},
                         {"map", d.map}});
    }
    json modules = json::array();
    for (const auto& mod : m.modules) {
        json sections = json::object();
        for (const auto& [name, address] : mod.sections) {
            sections[name] = hex_address(address);
        }
        modules.push_back({{"name", mod.name}, {"sections", sections}});
    }
    json contents = json::array();
    for (const auto& c : m.contents) {
        contents.push_back({{"path", c.path}, {"size", c.size}, {"sha256", c.sha256}});
    }
    json recording = {{"stop_reason", m.stop_reason}, {"icount", m.icount}};
    if (m.checkpoint_every) {
        recording["checkpoint_every_seconds"] = *m.checkpoint_every;
    }
    json store = {{"blocks", m.stored_blocks}, {"block_size", kDiskBlockSize}};
    if (m.block_store_compressed) {
        store["compression"] = "zstd";
    }
    json j = {
        {"format", kBundleFormat},
        {"format_version", m.format_version},
        {"created", m.created},
        {"host", m.host},
        {"rewind_version", m.rewind_version},
        {"qemu", {{"binary", m.qemu_binary}, {"sha256", m.qemu_sha256}, {"build_id", m.qemu_build_id}}},
        {"command",
         {{"original", m.original_command}, {"record", m.record_command}, {"replay", m.replay_arguments}}},
        {"recording", recording},
        {"files", files_to_json(m.files)},
        {"disks", disks},
        {"block_store", store},
        {"modules", modules},
        {"contents", contents},
        {"notes", m.notes},
    };
    if (m.checkpoints) {
        j["checkpoints"] = {{"file", bundle_path::kCompressedCheckpoints},
                            {"bytes", m.checkpoints->bytes},
                            {"icounts", m.checkpoints->icounts}};
    }
    return j;
}

Manifest manifest_from_json(const json& j, const fs::path& origin) {
    if (!j.is_object()) {
        throw BundleError(origin, "not a QEMU Rewind bundle manifest (not a JSON object)");
    }
    auto format = j.find("format");
    if (format == j.end() || !format->is_string() || format->get<std::string>() != kBundleFormat) {
        throw BundleError(origin, "not a QEMU Rewind bundle manifest (\"format\" is not \"" +
                                      std::string(kBundleFormat) + "\")");
    }
    Fields top(j, "manifest", origin);
    Manifest m;
    const std::uint64_t version = top.number("format_version");
    if (version != kBundleFormatVersion) {
        throw BundleError(origin, "bundle format version " + std::to_string(version) + ", this rewind reads version " +
                                      std::to_string(kBundleFormatVersion));
    }
    m.format_version = static_cast<int>(version);
    m.created = top.string("created");
    m.host = top.string("host");
    m.rewind_version = top.string("rewind_version");
    Fields qemu(top.need("qemu"), "qemu", origin);
    m.qemu_binary = qemu.string("binary");
    m.qemu_sha256 = qemu.string("sha256");
    m.qemu_build_id = qemu.string("build_id", false);
    Fields command(top.need("command"), "command", origin);
    m.original_command = command.strings("original");
    m.record_command = command.strings("record");
    m.replay_arguments = command.strings("replay");
    Fields recording(top.need("recording"), "recording", origin);
    m.stop_reason = recording.string("stop_reason");
    m.icount = recording.number("icount");
    if (recording.find("checkpoint_every_seconds")) {
        m.checkpoint_every = recording.number("checkpoint_every_seconds");
    }
    for (const auto& item : top.array("files")) {
        Fields f(item, "files[]", origin);
        StoredFile file{f.string("role"), f.string("name"), f.string("source", false), f.sha256("sha256"),
                        f.number("size")};
        // A replay puts firmware in a directory under this name.
        if (file.role == "firmware" &&
            (file.name.empty() || file.name == "." || file.name == ".." || file.name.find('/') != std::string::npos)) {
            f.fail("firmware name \"" + file.name + "\" is not a plain file name");
        }
        m.files.push_back(std::move(file));
    }
    std::size_t index = 0;
    for (const auto& item : top.array("disks")) {
        Fields d(item, "disks[" + std::to_string(index) + "]", origin);
        DiskRecord disk{d.string("node"), d.string("source", false), d.string("format", false),
                        d.number("virtual_size"), d.number("blocks_read", false), d.string("map")};
        if (disk.map != bundle_path::disk_map(index)) {
            d.fail("disks[" + std::to_string(index) + "].map is \"" + disk.map + "\", expected \"" +
                   bundle_path::disk_map(index) + "\"");
        }
        m.disks.push_back(std::move(disk));
        ++index;
    }
    Fields store(top.need("block_store"), "block_store", origin);
    m.stored_blocks = store.number("blocks");
    if (store.number("block_size") != kDiskBlockSize) {
        store.fail("block_store.block_size is not " + std::to_string(kDiskBlockSize));
    }
    if (store.find("compression")) {
        if (store.string("compression") != "zstd") {
            store.fail("block_store.compression is not \"zstd\"");
        }
        m.block_store_compressed = true;
    }
    if (top.find("checkpoints")) {
        Fields c(top.need("checkpoints"), "checkpoints", origin);
        if (c.string("file") != bundle_path::kCompressedCheckpoints) {
            c.fail("checkpoints.file is not \"" + std::string(bundle_path::kCompressedCheckpoints) + "\"");
        }
        Manifest::Checkpoints ck;
        ck.bytes = c.number("bytes");
        if (ck.bytes > kMaxCheckpointBytes) {
            c.fail("checkpoints.bytes (" + std::to_string(ck.bytes) + ") is beyond what a replay unpacks (" +
                   std::to_string(kMaxCheckpointBytes) + ")");
        }
        for (const auto& item : c.array("icounts")) {
            if (!item.is_number_unsigned() || (!ck.icounts.empty() && item.get<std::uint64_t>() <= ck.icounts.back())) {
                c.fail("checkpoints.icounts is not a list of increasing instruction counts");
            }
            ck.icounts.push_back(item.get<std::uint64_t>());
        }
        m.checkpoints = std::move(ck);
    }
    for (const auto& item : top.array("modules", false)) {
        Fields mod(item, "modules[]", origin);
        ModuleRecord record{mod.string("name"), {}};
        const json& sections = mod.need("sections");
        if (!sections.is_object()) {
            mod.fail("modules[].sections is not an object");
        }
        for (const auto& [name, value] : sections.items()) {
            std::uint64_t address = 0;
            if (!value.is_string() || std::sscanf(value.get<std::string>().c_str(), "0x%llx",
                                                  reinterpret_cast<unsigned long long*>(&address)) != 1) {
                mod.fail("module " + record.name + " section " + name + " is not a 0x... address");
            }
            record.sections[name] = address;
        }
        m.modules.push_back(std::move(record));
    }
    for (const auto& item : top.array("contents")) {
        Fields c(item, "contents[]", origin);
        ContentEntry entry{c.string("path"), c.number("size"), c.sha256("sha256")};
        if (!safe_relative_path(entry.path)) {
            c.fail("contents[] path \"" + entry.path + "\" leaves the bundle");
        }
        m.contents.push_back(std::move(entry));
    }
    m.notes = top.strings("notes", false);
    return m;
}

Manifest read_manifest(const fs::path& bundle_dir) {
    const fs::path path = bundle_dir / bundle_path::kManifest;
    std::error_code ec;
    if (!fs::is_directory(bundle_dir, ec)) {
        throw BundleError(bundle_dir, fs::exists(bundle_dir, ec) ? "not a bundle directory" : "no such bundle");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw BundleError(path, "missing: not a QEMU Rewind bundle (or an incomplete copy of one)");
    }
    std::ostringstream text;
    text << in.rdbuf();
    json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        throw BundleError(path, text.str().empty() ? "empty (truncated?)" : "not valid JSON (truncated or corrupted?)");
    }
    return manifest_from_json(j, path);
}

void write_manifest(const fs::path& bundle_dir, const Manifest& manifest) {
    const fs::path path = bundle_dir / bundle_path::kManifest;
    const fs::path temp = bundle_dir / (std::string(bundle_path::kManifest) + ".tmp");
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        out << manifest_to_json(manifest).dump(2) << "\n";
        out.flush();
        if (!out) {
            throw BundleError(temp, "cannot write");
        }
    }
    fs::rename(temp, path);  // a reader never sees half a manifest
}

bool looks_like_bundle(const fs::path& path) {
    std::error_code ec;
    return fs::is_directory(path, ec) && fs::is_regular_file(path / bundle_path::kManifest, ec);
}

OpenedBundle open_bundle(const fs::path& bundle_dir) {
    OpenedBundle bundle;
    bundle.root = bundle_dir;
    bundle.manifest = read_manifest(bundle_dir);
    bundle.log = bundle_dir / bundle_path::kLog;
    std::error_code ec;
    if (!fs::is_regular_file(bundle.log, ec)) {
        throw BundleError(bundle.log, "missing: the bundle has no replay log");
    }
    if (bundle.manifest.checkpoints) {
        const fs::path packed = bundle_dir / bundle_path::kCompressedCheckpoints;
        if (!fs::is_regular_file(packed, ec)) {
            throw BundleError(packed, "missing: the manifest lists checkpoints");
        }
        bundle.compressed_checkpoints = packed;
    } else if (const fs::path ckpt = bundle_dir / bundle_path::kCheckpoints; fs::is_regular_file(ckpt, ec)) {
        bundle.checkpoints = ckpt;
    }
    return bundle;
}

void unpack_checkpoints(const OpenedBundle& bundle, const fs::path& out) {
    if (!bundle.compressed_checkpoints || !bundle.manifest.checkpoints) {
        throw BundleError(bundle.root, "has no compressed checkpoints");
    }
    const std::uint64_t want = bundle.manifest.checkpoints->bytes;
    struct statvfs fs_info {};
    if (::statvfs(out.parent_path().c_str(), &fs_info) == 0 &&
        std::uint64_t{fs_info.f_bavail} * fs_info.f_frsize < want) {
        throw BundleError(out.parent_path(), "has " + std::to_string(std::uint64_t{fs_info.f_bavail} * fs_info.f_frsize >> 20) +
                                                 " MiB free, the bundle's checkpoints need " + std::to_string(want >> 20) +
                                                 " MiB (give --workdir elsewhere)");
    }
    std::uint64_t got = 0;
    try {
        got = zstd_decompress_file(*bundle.compressed_checkpoints, out, want);
    } catch (const std::exception& e) {
        throw BundleError(*bundle.compressed_checkpoints, e.what());
    }
    if (got != want) {
        throw BundleError(*bundle.compressed_checkpoints, "holds " + std::to_string(got) + " bytes, the manifest says " +
                                                              std::to_string(want) + " (truncated?)");
    }
}

// ---- disk maps ----

namespace {

void put_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
        out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
}
void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
}
std::uint64_t get_le(std::span<const std::uint8_t> bytes, std::size_t at, int width) {
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i) {
        v |= std::uint64_t{bytes[at + i]} << (8 * i);
    }
    return v;
}

constexpr std::size_t kMapHeader = 8 + 8 + 8;
constexpr std::size_t kMapEntry = 8 + 4;

std::vector<std::uint8_t> read_whole(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw BundleError(path, "missing or unreadable");
    }
    return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

std::vector<std::uint8_t> encode_disk_map(const DiskMap& map) {
    std::vector<std::uint8_t> out(kDiskMapMagic.begin(), kDiskMapMagic.end());
    put_u64(out, map.virtual_size);
    put_u64(out, map.entries.size());
    for (const auto& e : map.entries) {
        put_u64(out, e.disk_block);
        put_u32(out, e.store_block);
    }
    return out;
}

DiskMap decode_disk_map(std::span<const std::uint8_t> bytes, const fs::path& origin) {
    if (bytes.size() < kMapHeader) {
        throw BundleError(origin, "disk map truncated (" + std::to_string(bytes.size()) + " bytes)");
    }
    if (!std::equal(kDiskMapMagic.begin(), kDiskMapMagic.end(), bytes.begin())) {
        throw BundleError(origin, "not a disk map (bad magic)");
    }
    DiskMap map;
    map.virtual_size = get_le(bytes, 8, 8);
    const std::uint64_t count = get_le(bytes, 16, 8);
    if (count > (bytes.size() - kMapHeader) / kMapEntry || bytes.size() != kMapHeader + count * kMapEntry) {
        throw BundleError(origin, "disk map says " + std::to_string(count) + " entries but holds " +
                                      std::to_string(bytes.size()) + " bytes (truncated or corrupted)");
    }
    const std::uint64_t disk_blocks = (map.virtual_size + kDiskBlockSize - 1) / kDiskBlockSize;
    map.entries.reserve(count);
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::size_t at = kMapHeader + i * kMapEntry;
        DiskMapEntry e{get_le(bytes, at, 8), static_cast<std::uint32_t>(get_le(bytes, at + 8, 4))};
        if (e.disk_block >= disk_blocks) {
            throw BundleError(origin, "disk map entry " + std::to_string(i) + " lies beyond the disk's end");
        }
        if (!map.entries.empty() && e.disk_block <= map.entries.back().disk_block) {
            throw BundleError(origin, "disk map entries are not in increasing order at entry " + std::to_string(i));
        }
        map.entries.push_back(e);
    }
    return map;
}

// ---- block store ----

BlockStoreWriter::BlockStoreWriter(const fs::path& bundle_dir) : dir_(bundle_dir) {
    fs::create_directories(bundle_dir / bundle_path::kDisksDir);
    try {
        data_ = std::make_unique<ZstdFileWriter>(bundle_dir / bundle_path::kCompressedBlockStore, 3);
    } catch (const std::exception& e) {
        throw BundleError(bundle_dir / bundle_path::kCompressedBlockStore, e.what());
    }
}

BlockStoreWriter::~BlockStoreWriter() = default;

std::uint32_t BlockStoreWriter::add(std::span<const std::uint8_t> block) {
    if (block.size() != kDiskBlockSize) {
        throw std::invalid_argument("BlockStoreWriter::add: a block is " + std::to_string(kDiskBlockSize) + " bytes");
    }
    std::string digest = raw_sha256(block);
    auto [it, inserted] = index_.try_emplace(digest, static_cast<std::uint32_t>(hashes_.size()));
    if (inserted) {
        data_->write(block);
        hashes_.push_back(std::move(digest));
    }
    return it->second;
}

void BlockStoreWriter::finish() {
    try {
        data_->finish();
    } catch (const std::exception& e) {
        throw BundleError(dir_ / bundle_path::kCompressedBlockStore, e.what());
    }
    std::ofstream out(dir_ / bundle_path::kBlockHashes, std::ios::binary | std::ios::trunc);
    for (const auto& digest : hashes_) {
        out.write(digest.data(), static_cast<std::streamsize>(digest.size()));
    }
    if (!out.flush()) {
        throw BundleError(dir_ / bundle_path::kBlockHashes, "write error (disk full?)");
    }
}

namespace {

// Reads the block store (blocks.zst, or blocks.bin in older bundles) from
// its start, checking each block against blocks.sha256.
class BlockStoreReader {
public:
    BlockStoreReader(const fs::path& bundle_dir, const Manifest& m)
        : data_path_(bundle_dir / (m.block_store_compressed ? bundle_path::kCompressedBlockStore
                                                            : bundle_path::kBlockStore)),
          hashes_(read_whole(bundle_dir / bundle_path::kBlockHashes)) {
        const fs::path hashes_path = bundle_dir / bundle_path::kBlockHashes;
        if (hashes_.size() % 32 != 0 || hashes_.size() / 32 != m.stored_blocks) {
            throw BundleError(hashes_path, "holds " + std::to_string(hashes_.size() / 32) + " block hashes, manifest says " +
                                               std::to_string(m.stored_blocks) + " blocks (truncated or corrupted)");
        }
        count_ = m.stored_blocks;
        const std::uint64_t want = count_ * kDiskBlockSize;
        if (m.block_store_compressed) {
            try {
                packed_ = std::make_unique<ZstdFileReader>(data_path_, want);
            } catch (const std::exception& e) {
                throw BundleError(data_path_, "missing or unreadable");
            }
            return;
        }
        in_.open(data_path_, std::ios::binary);
        if (!in_) {
            throw BundleError(data_path_, "missing or unreadable");
        }
        std::error_code ec;
        const auto size = fs::file_size(data_path_, ec);
        if (ec || size != want) {
            throw BundleError(data_path_, "is " + std::to_string(ec ? 0 : size) + " bytes, expected " +
                                              std::to_string(want) + " (truncated or corrupted)");
        }
    }

    // The next block, checked against its hash; false after the last.
    bool next(std::vector<std::uint8_t>& data) {
        if (index_ == count_) {
            if (packed_) {
                std::uint8_t extra;
                bool more = false;
                try {
                    more = packed_->read({&extra, 1}) != 0;
                } catch (const std::exception& e) {
                    throw BundleError(data_path_, e.what());
                }
                if (more) {
                    throw BundleError(data_path_, "holds more than the manifest's " + std::to_string(count_) + " blocks");
                }
            }
            return false;
        }
        data.resize(kDiskBlockSize);
        if (packed_) {
            std::size_t got = 0;
            try {
                got = packed_->read(data);
            } catch (const std::exception& e) {
                throw BundleError(data_path_, e.what());
            }
            if (got != data.size()) {
                throw BundleError(data_path_, "ends at block " + std::to_string(index_) + " of " +
                                                  std::to_string(count_) + " (truncated)");
            }
        } else {
            in_.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size()));
            if (!in_) {
                throw BundleError(data_path_, "read error at block " + std::to_string(index_));
            }
        }
        const std::string digest = raw_sha256(data);
        if (std::memcmp(digest.data(), hashes_.data() + index_ * 32, 32) != 0) {
            throw BundleError(data_path_, "block " + std::to_string(index_) + " does not match its SHA-256 (corrupted)");
        }
        ++index_;
        return true;
    }
    // Index of the block next() returned last.
    [[nodiscard]] std::uint64_t index() const { return index_ - 1; }
    [[nodiscard]] std::uint64_t count() const { return count_; }
    [[nodiscard]] const fs::path& path() const { return data_path_; }

private:
    fs::path data_path_;
    std::vector<std::uint8_t> hashes_;
    std::ifstream in_;
    std::unique_ptr<ZstdFileReader> packed_;
    std::uint64_t count_ = 0;
    std::uint64_t index_ = 0;
};

DiskMap load_disk_map(const OpenedBundle& bundle, std::size_t index) {
    const fs::path path = bundle.root / bundle.manifest.disks.at(index).map;
    DiskMap map = decode_disk_map(read_whole(path), path);
    if (map.virtual_size != bundle.manifest.disks[index].virtual_size) {
        throw BundleError(path, "disk size " + std::to_string(map.virtual_size) + " differs from the manifest's " +
                                    std::to_string(bundle.manifest.disks[index].virtual_size));
    }
    return map;
}

}  // namespace

void rebuild_disk(const OpenedBundle& bundle, std::size_t index, const fs::path& out) {
    if (index >= bundle.manifest.disks.size()) {
        throw BundleError(bundle.root / bundle_path::kManifest, "no disk " + std::to_string(index));
    }
    const DiskMap map = load_disk_map(bundle, index);
    BlockStoreReader store(bundle.root, bundle.manifest);
    // The store is read once, from its start: the map in store order.
    std::vector<DiskMapEntry> by_store = map.entries;
    std::stable_sort(by_store.begin(), by_store.end(),
                     [](const DiskMapEntry& a, const DiskMapEntry& b) { return a.store_block < b.store_block; });
    if (!by_store.empty() && by_store.back().store_block >= store.count()) {
        throw BundleError(bundle.root / bundle.manifest.disks[index].map,
                          "uses block " + std::to_string(by_store.back().store_block) + " of a store of " +
                              std::to_string(store.count()));
    }
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw BundleError(out, std::string("cannot create: ") + std::strerror(errno));
    }
    std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* f) {
        ::close(*f);
        delete f;
    });
    if (::ftruncate(fd, static_cast<off_t>(map.virtual_size)) != 0) {
        throw BundleError(out, std::string("cannot size: ") + std::strerror(errno));
    }
    std::vector<std::uint8_t> data;
    auto e = by_store.begin();
    while (e != by_store.end() && store.next(data)) {
        for (; e != by_store.end() && e->store_block == store.index(); ++e) {
            // The disk's last block may be partial.
            const std::uint64_t offset = e->disk_block * kDiskBlockSize;
            const std::size_t length =
                static_cast<std::size_t>(std::min<std::uint64_t>(kDiskBlockSize, map.virtual_size - offset));
            if (::pwrite(fd, data.data(), length, static_cast<off_t>(offset)) != static_cast<ssize_t>(length)) {
                throw BundleError(out, std::string("write error: ") + std::strerror(errno));
            }
        }
    }
}

// ---- verification ----

VerifyReport verify_bundle(const fs::path& bundle_dir) {
    VerifyReport report;
    OpenedBundle bundle;
    try {
        bundle = open_bundle(bundle_dir);
    } catch (const BundleError& e) {
        report.problems.push_back(e.what());
        return report;
    } catch (const std::exception& e) {
        report.problems.push_back(bundle_dir.string() + ": " + e.what());
        return report;
    }
    const Manifest& m = bundle.manifest;
    report.checked.push_back("manifest: format version " + std::to_string(m.format_version) + ", recorded " + m.created +
                             " on " + m.host);

    // Every listed file: present, right size, right hash.
    std::set<std::string> listed;
    for (const auto& entry : m.contents) {
        listed.insert(entry.path);
        const fs::path path = bundle_dir / entry.path;
        std::error_code ec;
        if (!fs::is_regular_file(path, ec)) {
            report.problems.push_back(path.string() + ": missing");
            continue;
        }
        const auto size = fs::file_size(path, ec);
        if (ec || size != entry.size) {
            report.problems.push_back(path.string() + ": " + std::to_string(ec ? 0 : size) + " bytes, manifest says " +
                                      std::to_string(entry.size) + " (truncated or changed)");
            continue;
        }
        try {
            if (sha256_file(path) != entry.sha256) {
                report.problems.push_back(path.string() + ": SHA-256 differs from the manifest's (corrupted or changed)");
                continue;
            }
        } catch (const std::exception& e) {
            report.problems.push_back(e.what());
            continue;
        }
        report.checked.push_back(entry.path + ": " + std::to_string(entry.size) + " bytes, SHA-256 ok");
    }
    // Files the manifest relies on must be among the listed ones.
    auto require_listed = [&](const std::string& path, const std::string& what) {
        if (!listed.contains(path)) {
            report.problems.push_back((bundle_dir / bundle_path::kManifest).string() + ": " + what + " " + path +
                                      " is not in \"contents\"");
        }
    };
    require_listed(std::string(bundle_path::kLog), "the log");
    for (const auto& f : m.files) {
        require_listed(bundle_path::file(f.sha256), f.role + " " + f.name);
    }
    for (const auto& d : m.disks) {
        require_listed(d.map, "disk map");
    }
    if (!m.disks.empty()) {
        require_listed(std::string(m.block_store_compressed ? bundle_path::kCompressedBlockStore
                                                            : bundle_path::kBlockStore),
                       "block store");
        require_listed(std::string(bundle_path::kBlockHashes), "block hashes");
    }
    if (m.checkpoints) {
        require_listed(std::string(bundle_path::kCompressedCheckpoints), "checkpoints");
    }

    // Disk maps and blocks: every block is intact and each map uses only
    // blocks the store has.
    if (!m.disks.empty()) {
        try {
            BlockStoreReader store(bundle_dir, m);
            std::vector<std::uint8_t> data;
            while (store.next(data)) {
            }
            report.checked.push_back(store.path().filename().string() + ": " + std::to_string(store.count()) +
                                     " blocks, all intact");
            for (std::size_t i = 0; i < m.disks.size(); ++i) {
                const DiskMap map = load_disk_map(bundle, i);
                for (const auto& e : map.entries) {
                    if (e.store_block >= store.count()) {
                        throw BundleError(bundle_dir / m.disks[i].map,
                                          "uses block " + std::to_string(e.store_block) + " of a store of " +
                                              std::to_string(store.count()));
                    }
                }
                report.checked.push_back(m.disks[i].map + ": " + std::to_string(map.entries.size()) +
                                         " stored blocks of disk " + m.disks[i].node);
            }
        } catch (const std::exception& e) {
            report.problems.push_back(e.what());
        }
    }
    // Checkpoints: the compressed file decompresses to the size the
    // manifest says, and holds the checkpoints it lists.
    if (m.checkpoints && bundle.compressed_checkpoints) {
        try {
            ZstdFileReader in(*bundle.compressed_checkpoints, m.checkpoints->bytes);
            std::vector<std::uint8_t> buf(1 << 20);
            while (in.read(buf) == buf.size()) {
            }
            if (in.bytes_out() != m.checkpoints->bytes) {
                throw std::runtime_error("holds " + std::to_string(in.bytes_out()) + " bytes, the manifest says " +
                                         std::to_string(m.checkpoints->bytes));
            }
            report.checked.push_back(std::string(bundle_path::kCompressedCheckpoints) + ": " +
                                     std::to_string(m.checkpoints->icounts.size()) + " checkpoints, " +
                                     std::to_string(in.bytes_out()) + " bytes uncompressed");
        } catch (const std::exception& e) {
            report.problems.push_back(bundle.compressed_checkpoints->string() + ": " + e.what());
        }
    }

    // The log: every event must decode; a format 2 log's chunks, index
    // and final count must agree.
    const bool partial = m.stop_reason == "qemu-died";
    std::uint64_t log_icount = 0;
    try {
        ReaderOptions options;
        // A recording whose QEMU died has no version in its header and may end
        // inside an event; it is still usable up to there.
        options.allow_unfinalized_header = partial;
        options.tolerate_truncated_tail = partial;
        ReplayLogReader reader(bundle.log, options);
        std::uint64_t events = 0;
        while (reader.next()) {
            ++events;
        }
        log_icount = reader.icount();
        if (!partial && !reader.saw_end_event()) {
            report.problems.push_back(bundle.log.string() + ": ends without EVENT_END (truncated?)");
        }
        if (!partial && reader.icount() != m.icount) {
            report.problems.push_back(bundle.log.string() + ": holds " + std::to_string(reader.icount()) +
                                      " instructions, the manifest recorded " + std::to_string(m.icount));
        }
        report.checked.push_back(std::string(bundle_path::kLog) + ": " + std::to_string(events) + " events, " +
                                 std::to_string(reader.icount()) + " instructions" +
                                 (reader.truncation() ? " (cut short: " + reader.truncation()->message + ")" : ""));
    } catch (const std::exception& e) {
        report.problems.push_back(bundle.log.string() + ": " + e.what());
    }
    try {
        std::vector<std::uint8_t> start(16);
        {
            std::ifstream in(bundle.log, std::ios::binary);
            in.read(reinterpret_cast<char*>(start.data()), static_cast<std::streamsize>(start.size()));
            start.resize(static_cast<std::size_t>(in.gcount()));
        }
        if (is_log_v2(start)) {
            LogContainer container(bundle.log);
            const auto& info = container.info();
            for (std::size_t i = 0; i < info.chunks.size(); ++i) {
                (void)container.read_chunk(i);  // header, checksum, decompression
            }
            if (!info.indexed && !partial) {
                report.problems.push_back(bundle.log.string() + ": no index (the recording did not finish; " +
                                          info.tail_problem + ")");
            }
            if (info.indexed && info.final_icount != log_icount) {
                report.problems.push_back(bundle.log.string() + ": index says " + std::to_string(info.final_icount) +
                                          " instructions, the events " + std::to_string(log_icount));
            }
            report.checked.push_back(std::string(bundle_path::kLog) + ": format 2, " +
                                     std::to_string(info.chunks.size()) + " chunks intact" +
                                     (info.indexed ? ", index consistent" : ", no index"));
        }
    } catch (const std::exception& e) {
        report.problems.push_back(bundle.log.string() + ": " + e.what());
    }
    return report;
}

// ---- module lines ----

std::vector<ModuleRecord> scan_module_lines(std::string_view console) {
    static constexpr std::string_view kTag = "rewind-module: ";
    std::vector<ModuleRecord> modules;
    std::size_t at = 0;
    while ((at = console.find(kTag, at)) != std::string_view::npos) {
        at += kTag.size();
        std::size_t end = console.find_first_of("\r\n", at);
        std::string_view line = console.substr(at, end == std::string_view::npos ? console.size() - at : end - at);
        std::istringstream words{std::string(line)};
        ModuleRecord record;
        if (!(words >> record.name)) {
            continue;
        }
        std::string word;
        while (words >> word) {
            const auto eq = word.find("=0x");
            if (eq == std::string::npos || eq == 0) {
                continue;
            }
            const std::string digits = word.substr(eq + 3);
            if (digits.empty() || digits.size() > 16 || digits.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
                continue;
            }
            record.sections[word.substr(0, eq)] = std::stoull(digits, nullptr, 16);
        }
        if (record.sections.empty()) {
            continue;
        }
        auto same = std::find_if(modules.begin(), modules.end(), [&](const auto& m) { return m.name == record.name; });
        if (same != modules.end()) {
            *same = std::move(record);
        } else {
            modules.push_back(std::move(record));
        }
    }
    return modules;
}

}  // namespace qemu_rewind
