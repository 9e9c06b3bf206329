// Bundles without QEMU: manifest round trip and validation, disk maps and
// the block store, module lines, and `rewind record`'s command-line rewriting.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "bundle.hh"
#include "qemu_options.hh"
#include "record_plan.hh"

using namespace qemu_rewind;
using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed at the end.
struct ScratchDir {
    fs::path path;
    ScratchDir() {
        std::string templ = (fs::temp_directory_path() / "rewind-unit-bundle-XXXXXX").string();
        path = mkdtemp(templ.data());
    }
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

Manifest sample_manifest() {
    Manifest m;
    m.created = "2026-01-02T03:04:05Z";
    m.host = "qa-box";
    m.rewind_version = "0.1.0";
    m.qemu_binary = "/usr/bin/qemu-system-x86_64";
    m.qemu_sha256 = std::string(64, 'a');
    m.qemu_build_id = "abcd";
    m.original_command = {"qemu-system-x86_64", "-m", "256"};
    m.record_command = {"qemu-system-x86_64", "-m", "256", "-icount", "shift=auto,rr=record,rrfile=x"};
    m.replay_arguments = {"-m", "256", "-icount", "shift=auto,rr=replay,rrfile=@BUNDLE@/replay.log"};
    m.stop_reason = "poweroff";
    m.icount = 123456789;
    m.checkpoint_every = 2;
    m.files.push_back({"kernel", "vmlinux", "/boot/vmlinux", std::string(64, 'b'), 42});
    m.disks.push_back({"rewind-d0", "/img/disk.qcow2", "qcow2", 1 << 20, 3, "disks/0.map"});
    m.stored_blocks = 2;
    m.modules.push_back({"rewind_test", {{".text", 0xffffffffc0201000ULL}, {".data", 0xffffffffc0203000ULL}}});
    m.contents.push_back({"replay.log", 10, std::string(64, 'c')});
    m.notes = {"a note"};
    return m;
}

}  // namespace

TEST_CASE("bundle manifest: written and read back unchanged", "[bundle]") {
    ScratchDir dir;
    const Manifest m = sample_manifest();
    write_manifest(dir.path, m);
    const Manifest r = read_manifest(dir.path);
    CHECK(manifest_to_json(r) == manifest_to_json(m));
    CHECK(r.modules.at(0).sections.at(".text") == 0xffffffffc0201000ULL);
    CHECK(r.checkpoint_every == std::optional<std::uint64_t>(2));
    CHECK(read_text(dir.path / "manifest.json").find("\"qemu-rewind-bundle\"") != std::string::npos);
}

TEST_CASE("bundle manifest: missing, truncated, foreign and future bundles are refused by name", "[bundle]") {
    ScratchDir dir;
    const fs::path manifest = dir.path / "manifest.json";
    REQUIRE_THROWS_WITH(open_bundle(dir.path / "nowhere"), ContainsSubstring("no such bundle"));
    REQUIRE_THROWS_WITH(open_bundle(dir.path), ContainsSubstring("manifest.json: missing"));

    write_manifest(dir.path, sample_manifest());
    const std::string good = read_text(manifest);
    write_text(manifest, good.substr(0, good.size() / 2));
    REQUIRE_THROWS_WITH(read_manifest(dir.path), ContainsSubstring("not valid JSON"));
    write_text(manifest, "");
    REQUIRE_THROWS_WITH(read_manifest(dir.path), ContainsSubstring("empty"));
    write_text(manifest, R"({"format": "something-else", "format_version": 1})");
    REQUIRE_THROWS_WITH(read_manifest(dir.path), ContainsSubstring("not a QEMU Rewind bundle"));
    write_text(manifest, "[1, 2, 3]");
    REQUIRE_THROWS_WITH(read_manifest(dir.path), ContainsSubstring("not a QEMU Rewind bundle"));

    nlohmann::json j = manifest_to_json(sample_manifest());
    j["format_version"] = 99;
    write_text(manifest, j.dump());
    REQUIRE_THROWS_WITH(read_manifest(dir.path), ContainsSubstring("format version 99"));

    j = manifest_to_json(sample_manifest());
    j["contents"][0]["path"] = "../../etc/passwd";
    write_text(manifest, j.dump());
    REQUIRE_THROWS_WITH(read_manifest(dir.path), ContainsSubstring("leaves the bundle"));

    j = manifest_to_json(sample_manifest());
    j["recording"]["icount"] = "many";
    write_text(manifest, j.dump());
    REQUIRE_THROWS_WITH(read_manifest(dir.path), ContainsSubstring("recording.icount"));

    j = manifest_to_json(sample_manifest());
    j["files"][0].erase("sha256");
    write_text(manifest, j.dump());
    REQUIRE_THROWS_AS(read_manifest(dir.path), BundleError);

    // A valid manifest without a log.
    write_manifest(dir.path, sample_manifest());
    REQUIRE_THROWS_WITH(open_bundle(dir.path), ContainsSubstring("replay.log: missing"));
}

TEST_CASE("bundle disk store: blocks de-duplicated by content, rebuilt image matches", "[bundle]") {
    ScratchDir dir;
    std::mt19937 rng(7);
    std::vector<std::uint8_t> a(kDiskBlockSize), b(kDiskBlockSize);
    std::generate(a.begin(), a.end(), [&] { return static_cast<std::uint8_t>(rng()); });
    std::generate(b.begin(), b.end(), [&] { return static_cast<std::uint8_t>(rng()); });

    BlockStoreWriter store(dir.path);
    DiskMap map;
    map.virtual_size = 10 * kDiskBlockSize + 512;  // a partial last block
    map.entries.push_back({1, store.add(a)});
    map.entries.push_back({4, store.add(b)});
    map.entries.push_back({7, store.add(a)});  // same content: stored once
    map.entries.push_back({10, store.add(b)});
    store.finish();
    CHECK(store.count() == 2);
    CHECK(fs::exists(dir.path / "disks/blocks.zst"));
    CHECK(!fs::exists(dir.path / "disks/blocks.bin"));
    const auto encoded = encode_disk_map(map);
    write_text(dir.path / "disks/0.map", std::string(encoded.begin(), encoded.end()));
    write_text(dir.path / "replay.log", "");

    Manifest m = sample_manifest();
    m.disks = {{"rewind-d0", "/img", "raw", map.virtual_size, 4, "disks/0.map"}};
    m.stored_blocks = 2;
    m.block_store_compressed = true;
    write_manifest(dir.path, m);
    const OpenedBundle bundle = open_bundle(dir.path);
    rebuild_disk(bundle, 0, dir.path / "disk.img");
    const std::string image = read_text(dir.path / "disk.img");
    REQUIRE(image.size() == map.virtual_size);
    auto block = [&](std::size_t n) { return image.substr(n * kDiskBlockSize, kDiskBlockSize); };
    const std::string sa(a.begin(), a.end()), sb(b.begin(), b.end());
    CHECK(block(1) == sa);
    CHECK(block(4) == sb);
    CHECK(block(7) == sa);
    CHECK(image.substr(10 * kDiskBlockSize) == sb.substr(0, 512));
    CHECK(block(0) == std::string(kDiskBlockSize, '\0'));

    // Older bundles store the blocks uncompressed (blocks.bin): the same
    // image.  A flipped byte there is caught when the disk is rebuilt.
    write_text(dir.path / "disks/blocks.bin", sa + sb);
    m.block_store_compressed = false;
    write_manifest(dir.path, m);
    const OpenedBundle old_bundle = open_bundle(dir.path);
    rebuild_disk(old_bundle, 0, dir.path / "disk-old.img");
    CHECK(read_text(dir.path / "disk-old.img") == image);
    {
        std::fstream f(dir.path / "disks/blocks.bin", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(100);
        f.put(static_cast<char>(a[100] ^ 1));
    }
    REQUIRE_THROWS_WITH(rebuild_disk(old_bundle, 0, dir.path / "disk2.img"), ContainsSubstring("does not match its SHA-256"));

    // A compressed store cut short, or holding a block too many, is refused.
    const std::string packed = read_text(dir.path / "disks/blocks.zst");
    write_text(dir.path / "disks/blocks.zst", packed.substr(0, packed.size() / 2));
    REQUIRE_THROWS_WITH(rebuild_disk(bundle, 0, dir.path / "disk3.img"), ContainsSubstring("blocks.zst"));
    {
        BlockStoreWriter three(dir.path);
        three.add(a);
        three.add(b);
        std::vector<std::uint8_t> c(kDiskBlockSize, 7);
        three.add(c);
        three.finish();
    }
    write_text(dir.path / "disks/blocks.sha256", read_text(dir.path / "disks/blocks.sha256").substr(0, 64));
    m.block_store_compressed = true;
    write_manifest(dir.path, m);
    const auto problems = verify_bundle(dir.path).problems;
    CHECK(std::any_of(problems.begin(), problems.end(), [](const std::string& p) {
        return p.find("blocks.zst") != std::string::npos && p.find("more than the") != std::string::npos;
    }));
}

TEST_CASE("bundle disk map: truncated, foreign or inconsistent maps are refused", "[bundle]") {
    DiskMap map{8 * kDiskBlockSize, {{0, 0}, {3, 1}}};
    auto bytes = encode_disk_map(map);
    CHECK(decode_disk_map(bytes, "m").entries.size() == 2);
    auto cut = bytes;
    cut.resize(cut.size() - 5);
    REQUIRE_THROWS_WITH(decode_disk_map(cut, "m"), ContainsSubstring("truncated"));
    REQUIRE_THROWS_WITH(decode_disk_map(std::vector<std::uint8_t>(10, 0), "m"), ContainsSubstring("truncated"));
    auto foreign = bytes;
    foreign[0] = 'X';
    REQUIRE_THROWS_WITH(decode_disk_map(foreign, "m"), ContainsSubstring("bad magic"));
    DiskMap beyond{2 * kDiskBlockSize, {{5, 0}}};
    REQUIRE_THROWS_WITH(decode_disk_map(encode_disk_map(beyond), "m"), ContainsSubstring("beyond the disk"));
    DiskMap unordered{8 * kDiskBlockSize, {{3, 0}, {1, 0}}};
    REQUIRE_THROWS_WITH(decode_disk_map(encode_disk_map(unordered), "m"), ContainsSubstring("increasing order"));
    // A huge entry count must not make it allocate or read out of bounds.
    auto huge = bytes;
    std::fill(huge.begin() + 16, huge.begin() + 24, 0xff);
    REQUIRE_THROWS_AS(decode_disk_map(huge, "m"), BundleError);
}

TEST_CASE("bundle module lines: the guest's rewind-module lines give section addresses", "[bundle]") {
    const std::string console =
        "REWIND-BOOTED 6.1\r\n"
        "rewind-module: foo .text=0xffffffffc0001000 .data=0xffffffffc0003000 junk bad=0xzz\r\n"
        "rewind-module: empty\n"
        "rewind-module: bar .text=0xffffffffc0100000\n"
        "rewind-module: foo .text=0xffffffffc0002000\n";
    const auto modules = scan_module_lines(console);
    REQUIRE(modules.size() == 2);
    CHECK(modules[0].name == "foo");
    CHECK(modules[0].sections == std::map<std::string, std::uint64_t>{{".text", 0xffffffffc0002000ULL}});
    CHECK(modules[1].name == "bar");
    CHECK(modules[1].sections.at(".text") == 0xffffffffc0100000ULL);
}

TEST_CASE("qemu options: key=value lists with implied keys and escaped commas", "[bundle]") {
    auto list = KeyValueList::parse("file,id=ser0,path=/a,,b,server");
    CHECK(list.implied() == "file");
    CHECK(list.get("path") == "/a,b");
    CHECK(list.get("server") == "on");
    CHECK(list.str() == "file,id=ser0,path=/a,,b,server=on");
    const auto options = split_qemu_options({"-m", "256", "-S", "--no-reboot", "-drive", "file=x"});
    REQUIRE(options.size() == 4);
    CHECK(options[1].name == "S");
    CHECK(!options[1].value);
    CHECK(options[2].name == "no-reboot");
    CHECK(options[3].value == "file=x");
    REQUIRE_THROWS_AS(split_qemu_options({"disk.img"}), std::invalid_argument);
    REQUIRE_THROWS_AS(split_qemu_options({"-m"}), std::invalid_argument);
}

namespace {

struct FakeEnvironment {
    std::vector<std::pair<std::string, std::string>> stored;  // path, role
    PlanEnvironment env() {
        PlanEnvironment e;
        e.probe_disk = [](const std::string& path, const std::optional<std::string>& format) {
            return DiskProbe{format.value_or(path.ends_with(".qcow2") ? "qcow2" : "raw"), 1 << 20};
        };
        e.store_file = [this](const std::string& path, const std::string& role) {
            stored.emplace_back(path, role);
            return std::string(64, static_cast<char>('0' + stored.size()));
        };
        return e;
    }
};

RecordPlan plan(std::vector<std::string> args, FakeEnvironment& fake) {
    args.insert(args.begin(), "qemu-system-x86_64");
    return plan_recording({args, "/b", "/w", "/s/qmp.sock", std::nullopt}, fake.env());
}

bool has_pair(const std::vector<std::string>& args, const std::string& option, const std::string& value) {
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == option && args[i + 1] == value) {
            return true;
        }
    }
    return false;
}

}  // namespace

TEST_CASE("record plan: icount, drives, netdevs and files rewritten for record and replay", "[bundle]") {
    FakeEnvironment fake;
    const RecordPlan p = plan({"-m", "256", "-kernel", "/k/vmlinux", "-initrd", "/k/initrd", "-icount", "shift=7,align=off",
                               "-drive", "file=/img/d.qcow2,if=none,id=d0,cache=none", "-device",
                               "virtio-blk-pci,drive=d0", "-hda", "/img/h.raw", "-netdev", "tap,id=n0,ifname=tap0",
                               "-device", "virtio-net-pci,netdev=n0", "-chardev", "file,id=ser0,path=/tmp/s.log",
                               "-serial", "chardev:ser0", "-chardev", "pty,id=p0", "-serial", "file:/tmp/s2.log",
                               "-qmp", "unix:/tmp/user.sock,server=on,wait=off"},
                              fake);
    const auto& rec = p.record_command;
    const auto& rep = p.replay_arguments;
    CHECK(rec.front() == "qemu-system-x86_64");
    CHECK(has_pair(rec, "-icount", "shift=7,align=off,rr=record,rrfile=/b/replay.log"));
    CHECK(has_pair(rep, "-icount", "shift=7,align=off,rr=replay,rrfile=@BUNDLE@/replay.log"));
    CHECK(std::count(rec.begin(), rec.end(), "-icount") == 1);
    // Files: stored, and the replay takes the bundle's copies.
    REQUIRE(fake.stored.size() == 2);
    CHECK(fake.stored[0] == std::pair<std::string, std::string>{"/k/vmlinux", "kernel"});
    CHECK(has_pair(rec, "-kernel", "/k/vmlinux"));
    CHECK(has_pair(rep, "-kernel", "@BUNDLE@/files/" + std::string(64, '1')));
    CHECK(has_pair(rep, "-initrd", "@BUNDLE@/files/" + std::string(64, '2')));
    // Drives: the copy-on-read stack when recording, the rebuilt image when replaying.
    REQUIRE(p.drives.size() == 2);
    CHECK(p.drives[0].format == "qcow2");
    CHECK(p.drives[0].reads_overlay == "/w/rewind-d0-reads.qcow2");
    CHECK(has_pair(rec, "-blockdev", "driver=file,filename=/img/d.qcow2,node-name=rewind-d0-src-file,read-only=on"));
    CHECK(has_pair(rec, "-blockdev",
                   "driver=qcow2,node-name=rewind-d0-reads,file.driver=file,file.filename=/w/rewind-d0-reads.qcow2,"
                   "backing=rewind-d0-src"));
    CHECK(has_pair(rec, "-blockdev", "driver=copy-on-read,node-name=rewind-d0-cor,file=rewind-d0-reads"));
    CHECK(has_pair(rec, "-drive", "driver=blkreplay,image=rewind-d0-writes,if=none,id=d0"));
    CHECK(has_pair(rep, "-blockdev", "driver=file,filename=@WORK@/disk0.img,node-name=rewind-d0"));
    CHECK(has_pair(rep, "-drive", "driver=blkreplay,image=rewind-d0,if=none,id=d0"));
    CHECK(has_pair(rec, "-drive", "driver=blkreplay,image=rewind-d1-writes,index=0,media=disk"));
    CHECK(p.drives[1].format == "raw");
    // Network: filtered in both; the tap becomes user networking at replay.
    CHECK(has_pair(rec, "-object", "filter-replay,id=rewind-fr0,netdev=n0"));
    CHECK(has_pair(rep, "-object", "filter-replay,id=rewind-fr0,netdev=n0"));
    CHECK(has_pair(rec, "-netdev", "tap,id=n0,ifname=tap0"));
    CHECK(has_pair(rep, "-netdev", "user,id=n0"));
    // Chardevs: files into the work dir, host-bound ones null; monitors dropped.
    CHECK(has_pair(rep, "-chardev", "file,id=ser0,path=@WORK@/ser0.out"));
    CHECK(has_pair(rep, "-chardev", "null,id=p0"));
    CHECK(has_pair(rep, "-serial", "file:@WORK@/serial1.out"));
    CHECK(has_pair(rec, "-qmp", "unix:/tmp/user.sock,server=on,wait=off"));
    CHECK(!has_pair(rep, "-qmp", "unix:/tmp/user.sock,server=on,wait=off"));
    CHECK(has_pair(rec, "-qmp", "unix:/s/qmp.sock,server=on,wait=off"));
    CHECK(std::count(rec.begin(), rec.end(), "-no-shutdown") == 1);
    CHECK(std::count(rep.begin(), rep.end(), "-no-shutdown") == 1);
    // A -netdev replaces QEMU's default NIC: none added.
    CHECK(std::find(rec.begin(), rec.end(), "-nic") == rec.end());

    const auto expanded = expand_replay_template(rep, "/home/dev/b.rewind", "/tmp/r");
    CHECK(has_pair(expanded, "-icount", "shift=7,align=off,rr=replay,rrfile=/home/dev/b.rewind/replay.log"));
    CHECK(has_pair(expanded, "-blockdev", "driver=file,filename=/tmp/r/disk0.img,node-name=rewind-d0"));
}

TEST_CASE("record plan: -nic gets an id and a filter; QEMU's default NIC is made explicit", "[bundle]") {
    FakeEnvironment fake;
    const RecordPlan defaults = plan({"-m", "256"}, fake);
    CHECK(has_pair(defaults.record_command, "-nic", "user,id=rewind-nic-default"));
    CHECK(has_pair(defaults.record_command, "-object", "filter-replay,id=rewind-fr0,netdev=rewind-nic-default"));
    CHECK(has_pair(defaults.replay_arguments, "-object", "filter-replay,id=rewind-fr0,netdev=rewind-nic-default"));
    const RecordPlan p = plan({"-nodefaults", "-nic", "user,model=virtio-net-pci"}, fake);
    CHECK(has_pair(p.record_command, "-nic", "user,model=virtio-net-pci,id=rewind-nic0"));
    CHECK(has_pair(p.record_command, "-object", "filter-replay,id=rewind-fr0,netdev=rewind-nic0"));
    const RecordPlan none = plan({"-nodefaults"}, fake);
    CHECK(std::find(none.record_command.begin(), none.record_command.end(), "-nic") == none.record_command.end());
}

TEST_CASE("record plan: what cannot be recorded is refused, naming the argument", "[bundle]") {
    FakeEnvironment fake;
    REQUIRE_THROWS_WITH(plan({"-enable-kvm"}, fake), ContainsSubstring("'-enable-kvm'"));
    REQUIRE_THROWS_WITH(plan({"-accel", "kvm"}, fake), ContainsSubstring("'-accel kvm'"));
    REQUIRE_THROWS_WITH(plan({"-machine", "pc,accel=kvm"}, fake), ContainsSubstring("accel=tcg"));
    REQUIRE_THROWS_WITH(plan({"-cpu", "host"}, fake), ContainsSubstring("'-cpu host'"));
    REQUIRE_THROWS_WITH(plan({"-icount", "shift=auto,rr=record,rrfile=x"}, fake),
                        ContainsSubstring("already a record/replay command line"));
    REQUIRE_THROWS_WITH(plan({"-drive", "file=nbd://host/x,if=virtio"}, fake),
                        ContainsSubstring("only local image files"));
    REQUIRE_THROWS_WITH(plan({"-drive", "file=/x.img,if=virtio,throttling.iops-total=5"}, fake),
                        ContainsSubstring("unknown drive option 'throttling.iops-total'"));
    REQUIRE_THROWS_WITH(plan({"-drive", "driver=blkreplay,image=x"}, fake), ContainsSubstring("driver="));
    REQUIRE_THROWS_WITH(plan({"-drive", "file=/fw.fd,if=pflash"}, fake), ContainsSubstring("if=pflash"));
    REQUIRE_THROWS_WITH(plan({"-blockdev", "driver=file,filename=x,node-name=y"}, fake), ContainsSubstring("-blockdev"));
    REQUIRE_THROWS_WITH(plan({"-device", "vfio-pci,host=01:00.0"}, fake), ContainsSubstring("host hardware"));
    REQUIRE_THROWS_WITH(plan({"-virtfs", "local,path=/x,mount_tag=x"}, fake), ContainsSubstring("host folders"));
    REQUIRE_THROWS_WITH(plan({"-net", "nic"}, fake), ContainsSubstring("-netdev"));
    REQUIRE_THROWS_WITH(plan({"-netdev", "user"}, fake), ContainsSubstring("id="));
    REQUIRE_THROWS_WITH(plan({"disk.img"}, fake), ContainsSubstring("not a QEMU option"));
    // -snapshot is harmless (nothing is written back anyway): dropped, with a note.
    const RecordPlan p = plan({"-nodefaults", "-snapshot"}, fake);
    CHECK(std::find(p.record_command.begin(), p.record_command.end(), "-snapshot") == p.record_command.end());
    CHECK(!p.notes.empty());
}
