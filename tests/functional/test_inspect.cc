// `rewind info`, `rewind events` and `rewind extract` on real recordings: an
// HTTP download over slirp and a USB drive read through usb-host. The pcap
// files must be read by tshark without errors and hold what the guest was
// really given: the HTTP body, the drive's data.
#include "process.hh"
#include "record_replay.hh"
#include "usb_devices.hh"
#include "util.hh"
#include "http_server.hh"

#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <sstream>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

// build/tools/rewind/cli/rewind, next to this program's build/tools/tests/functional.
std::string rewind_tool()
{
    const std::string from_env = env_or("REWIND_CLI", "");
    if (!from_env.empty()) {
        return from_env;
    }
    const auto exe = std::filesystem::read_symlink("/proc/self/exe");
    return (exe.parent_path().parent_path().parent_path() / "rewind/cli/rewind").string();
}

// Runs COMMAND with stdout to `out_file` and stderr to `out_file`.err.
CommandResult run_to_file(const std::vector<std::string> &argv, const std::string &out_file)
{
    return run_command({"sh", "-c", shell_join(argv) + " > '" + out_file + "' 2> '" + out_file + ".err'"},
                       scaled(120s));
}

std::string rewind(const std::vector<std::string> &args, const std::string &out_file)
{
    std::vector<std::string> argv = {rewind_tool()};
    argv.insert(argv.end(), args.begin(), args.end());
    const CommandResult r = run_to_file(argv, out_file);
    INFO(shell_join(argv) << "\n" << read_file(out_file + ".err"));
    REQUIRE(r.status.exited);
    REQUIRE(r.status.code == 0);
    return read_file(out_file);
}

// tshark's text dissection of a capture (optionally filtered); requires
// that it parsed the file without errors or malformed packets.
std::string tshark(const std::string &pcap, const std::string &filter = "")
{
    std::vector<std::string> argv = {"tshark", "-r", pcap};
    if (!filter.empty()) {
        argv.insert(argv.end(), {"-Y", filter});
    }
    const std::string out = pcap + ".tshark";
    const CommandResult r = run_to_file(argv, out);
    const std::string err = read_file(out + ".err");
    INFO(shell_join(argv) << "\n" << err);
    REQUIRE(r.status.exited);
    REQUIRE(r.status.code == 0);
    CHECK(err.find("rror") == std::string::npos);  // "Error", "error"
    const std::string text = read_file(out);
    CHECK(text.find("Malformed") == std::string::npos);
    return text;
}

std::size_t count_lines(const std::string &text)
{
    std::size_t n = 0;
    for (const char c : text) {
        n += c == '\n';
    }
    return n;
}

std::uint64_t le(const std::string &b, std::size_t at, std::size_t width)
{
    std::uint64_t v = 0;
    for (std::size_t i = width; i-- > 0;) {
        v = v << 8 | static_cast<unsigned char>(b.at(at + i));
    }
    return v;
}

// The records of a pcap file (our writer: little-endian, any magic).
std::vector<std::string> pcap_records(const std::string &file)
{
    std::vector<std::string> records;
    const std::string b = read_file(file);
    REQUIRE(b.size() >= 24);
    for (std::size_t pos = 24; pos + 16 <= b.size();) {
        const auto caplen = le(b, pos + 8, 4);
        REQUIRE(pos + 16 + caplen <= b.size());
        records.push_back(b.substr(pos + 16, caplen));
        pos += 16 + caplen;
    }
    return records;
}

}  // namespace

TEST_CASE("inspect: an HTTP download's packets extracted as pcap carry the body",
          "[inspect][net]")
{
    TempDir dir("inspect-net");
    const std::string payload = random_bytes(96 * 1024);
    HttpServer server(payload);
    Scenario s{"net", "rewind.port=" + std::to_string(server.port()), net_devices(true)};
    const std::string log = dir.path() + "/log.bin";
    std::filesystem::create_directories(dir.path() + "/record");
    const RunResult r = run_to_poweroff(make_config(s, RrMode::Record, log), dir.path() + "/record", 600s);
    REQUIRE(one_line(r.serial, "NET-MD5 ") == md5_hex(payload));

    const auto info = nlohmann::json::parse(rewind({"info", log, "--json"}, dir.path() + "/info.json"));
    CHECK(info["log"]["complete"] == true);
    CHECK(info["duration"]["instructions"].get<std::uint64_t>() > 0);
    CHECK(info["duration"]["vm_running_ns"].get<std::int64_t>() > 0);
    REQUIRE(info["devices"]["net_filters"].size() == 1);
    const auto net_bytes = info["devices"]["net_filters"][0]["bytes"].get<std::uint64_t>();
    CHECK(net_bytes > payload.size());  // the body plus headers of every packet

    const std::string events = rewind({"events", log, "--kind", "net", "--json"}, dir.path() + "/events.jsonl");
    const std::size_t packets = count_lines(events);
    CHECK(packets == info["devices"]["net_filters"][0]["packets"].get<std::size_t>());

    const std::string pcap = dir.path() + "/net.pcap";
    rewind({"extract", log, "--net", "-o", pcap}, dir.path() + "/extract.out");
    CHECK(count_lines(tshark(pcap)) == packets);
    // The guest's own packets (the GET) are not in the log; the response is.
    CHECK(count_lines(tshark(pcap, "http.response.code == 200")) == 1);
    CHECK(count_lines(tshark(pcap, "tcp.srcport == " + std::to_string(server.port()))) > 60);

    // tshark reassembles the HTTP response: its body is the payload.
    const std::string objects = dir.path() + "/objects";
    std::filesystem::create_directories(objects);
    const CommandResult exported =
        run_command({"tshark", "-r", pcap, "-q", "--export-objects", "http," + objects}, scaled(120s));
    REQUIRE(exported.status.code == 0);
    std::string body;
    for (const auto &entry : std::filesystem::directory_iterator(objects)) {
        body = read_file(entry.path().string());
    }
    CHECK(body.size() == payload.size());
    CHECK(body == payload);

    // The guest's serial output, from the log's EVENT_CHAR_OUTPUT records:
    // what the serial port's file got.
    CHECK(rewind({"extract", log, "--serial"}, dir.path() + "/serial.txt") == r.serial);
    CHECK(rewind({"extract", log, "--serial", "--input"}, dir.path() + "/input.txt").empty());
}

TEST_CASE("inspect: a USB drive's transfers extracted as usbmon pcap carry its data",
          "[inspect][usb]")
{
    TempDir dir("inspect-usb");
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A", 128 * 1024)};
    const std::string log = dir.path() + "/log.bin";
    std::filesystem::create_directories(dir.path() + "/record");
    QemuConfig c = make_config(usb_storage_scenario(1), RrMode::Record, log);
    c.wrapper = usbdev_wrapper(drives, dir.path() + "/record/usbdev.log");
    const RunResult r = run_to_poweroff(c, dir.path() + "/record", 600s);
    INFO(r.diagnostics);
    REQUIRE(lines_with(r.serial, "USB-MD5 ") ==
            std::vector<std::string>{drives[0].serial + " " + md5_hex(drives[0].content)});

    const auto info = nlohmann::json::parse(rewind({"info", log, "--json"}, dir.path() + "/info.json"));
    REQUIRE(info["devices"]["usb_host"].size() == 1);
    const auto &usb = info["devices"]["usb_host"][0];
    CHECK(usb["bus"] == 1);
    CHECK(usb["address"] == 2);
    const std::string text_info = rewind({"info", log}, dir.path() + "/info.txt");
    CHECK(text_info.find("usb-host 0") != std::string::npos);

    const std::string pcap = dir.path() + "/usb.pcap";
    rewind({"extract", log, "--usb", "-o", pcap}, dir.path() + "/extract.out");
    const std::string all = tshark(pcap);
    CHECK(all.find("URB_BULK in") != std::string::npos);
    CHECK(all.find("URB_BULK out") != std::string::npos);
    // Mass storage: the CSWs ("USBS") the drive returned on bulk IN 0x81,
    // from bus 1 device 2.
    const std::string csws = tshark(pcap, "usbms && usb.endpoint_address == 0x81 && usb.bus_id == 1 && "
                                          "usb.device_address == 2");
    CHECK(count_lines(csws) >= 10);

    // The data of the IN completions: every 4 KiB of the file the guest read
    // must be in it, and it must add up to what `rewind info` counted.
    std::string in_data;
    std::uint64_t csw_count = 0;
    for (const std::string &rec : pcap_records(pcap)) {
        REQUIRE(rec.size() >= 64);
        if (rec[8] != 'C' || static_cast<unsigned char>(rec[10]) != 0x81) {
            continue;
        }
        const auto ndesc = le(rec, 60, 4);
        const std::string data = rec.substr(64 + 16 * ndesc);
        CHECK(data.size() == le(rec, 36, 4));
        csw_count += data.size() == 13 && data.starts_with("USBS");
        in_data += data;
    }
    CHECK(csw_count == count_lines(csws));
    const std::string &content = drives[0].content;
    for (std::size_t at = 0; at + 4096 <= content.size(); at += 4096) {
        INFO("file block at " << at);
        CHECK(in_data.find(content.substr(at, 4096)) != std::string::npos);
    }
    CHECK(in_data.size() <= usb["in_bytes"].get<std::uint64_t>());
}
