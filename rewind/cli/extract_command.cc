// `rewind extract RECORDING --serial [--chardev N] [--input] [-o FILE]
//                           --net [--filter N] -o FILE.pcap
//                           --usb [--device N] -o FILE.pcap`
// Serial data as text, network packets and USB transfers as pcap files.
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>

#include "command_line.hh"
#include "event_filter.hh"
#include "log_clock.hh"
#include "log_commands.hh"
#include "pcap_writer.hh"
#include "recording.hh"
#include "usbmon.hh"

namespace qemu_rewind::cli {

namespace {

// Output to -o FILE, "-" or no -o: standard output.
class Output {
public:
    explicit Output(const std::optional<std::string>& path, std::ostream& stdout_stream) {
        if (!path || *path == "-") {
            stream_ = &stdout_stream;
            return;
        }
        file_ = std::make_unique<std::ofstream>(*path, std::ios::binary | std::ios::trunc);
        if (!*file_) throw RecordingError("cannot create '" + *path + "'");
        stream_ = file_.get();
        path_ = *path;
    }
    std::ostream& stream() { return *stream_; }
    void finish() {
        stream_->flush();
        if (!*stream_) throw RecordingError("write error on '" + (path_.empty() ? "stdout" : path_) + "'");
    }

private:
    std::unique_ptr<std::ofstream> file_;
    std::ostream* stream_ = nullptr;
    std::string path_;
};

using EventVisitor = std::function<void(const ReplayEvent&)>;

void for_each_event(const std::filesystem::path& log, const ReaderOptions& options, const EventVisitor& visit) {
    ReplayLogReader reader(log, options);
    while (const auto event = reader.next()) visit(*event);
}

// Serial input: ASYNC_EVENT_CHAR_READ (bytes a chardev backend delivered)
// and EVENT_CHAR_READ_ALL, which does not say which chardev (only without
// --chardev).
std::uint64_t extract_serial_input(const RecordingPaths& paths, const ParsedArgs& args, std::ostream& out) {
    const auto chardev = args.index("--chardev");
    std::uint64_t bytes = 0;
    const auto put = [&](const std::vector<std::uint8_t>& data) {
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
        bytes += data.size();
    };
    for_each_event(paths.log, args.reader_options(), [&](const ReplayEvent& event) {
        if (const auto* read = std::get_if<CharReadPayload>(&event.payload)) {
            if (!chardev || read->chardev == *chardev) put(read->data);
        } else if (const auto* all = std::get_if<CharReadAllPayload>(&event.payload)) {
            if (!chardev) put(all->data);
        }
    });
    return bytes;
}

// Serial output: EVENT_CHAR_OUTPUT records, what the guest wrote to each
// recorded chardev (QEMU Rewind logs them in batches, before each digest
// and at the end). nullopt if the log has none at all: older logs.
std::optional<std::uint64_t> extract_serial_output(const RecordingPaths& paths, const ParsedArgs& args,
                                                   std::ostream& out) {
    const auto chardev = args.index("--chardev");
    bool any = false;
    std::uint64_t bytes = 0;
    for_each_event(paths.log, args.reader_options(), [&](const ReplayEvent& event) {
        if (const auto* output = std::get_if<CharOutputPayload>(&event.payload)) {
            any = true;
            if (!chardev || output->chardev == *chardev) {
                out.write(reinterpret_cast<const char*>(output->data.data()),
                          static_cast<std::streamsize>(output->data.size()));
                bytes += output->data.size();
            }
        }
    });
    if (!any) return std::nullopt;
    return bytes;
}

// Packets the netdevs delivered to the guest (filter-replay logs only that
// direction: the guest's own packets are computed again by a replay).
std::uint64_t extract_net(const RecordingPaths& paths, const ParsedArgs& args, std::ostream& out) {
    const auto filter = args.index("--filter");
    LogClock clock;
    for_each_event(paths.log, args.reader_options(), [&](const ReplayEvent& event) { clock.observe(event); });
    PcapWriter pcap(out, kLinktypeEthernet);
    for_each_event(paths.log, args.reader_options(), [&](const ReplayEvent& event) {
        if (const auto* net = std::get_if<NetPayload>(&event.payload)) {
            if (!filter || net->filter == *filter) pcap.write(clock.wall_ns(event.icount), net->packet);
        }
    });
    return pcap.packets();
}

std::uint64_t extract_usb(const RecordingPaths& paths, const ParsedArgs& args, std::ostream& out,
                          std::ostream& err) {
    const auto device = args.index("--device");
    LogClock clock;
    for_each_event(paths.log, args.reader_options(), [&](const ReplayEvent& event) { clock.observe(event); });
    UsbmonConverter usbmon;
    PcapWriter pcap(out, kLinktypeUsbLinuxMmapped);
    for_each_event(paths.log, args.reader_options(), [&](const ReplayEvent& event) {
        const auto usb_device = event.usb_device();
        if (!usb_device || (device && *usb_device != *device)) return;
        for (const auto& record : usbmon.convert(event, clock.wall_ns(event.icount))) {
            pcap.write(clock.wall_ns(event.icount), record.bytes, record.original_length);
        }
    });
    if (usbmon.unmatched_completions()) {
        err << "rewind: note: " << usbmon.unmatched_completions()
            << " completions had no submission in the log; their transfer type is a guess\n";
    }
    return pcap.packets();
}

}  // namespace

int extract(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    const ParsedArgs parsed =
        parse_args(args, {"--serial", "--net", "--usb", "--input"}, {"--chardev", "--filter", "--device", "--output"},
                   {{"-o", "--output"}});
    const int what = parsed.has("--serial") + parsed.has("--net") + parsed.has("--usb");
    if (what != 1) throw UsageError("extract needs exactly one of --serial, --net, --usb");
    if (parsed.value("--chardev") && !parsed.has("--serial")) throw UsageError("--chardev goes with --serial");
    if (parsed.has("--input") && !parsed.has("--serial")) throw UsageError("--input goes with --serial");
    if (parsed.value("--filter") && !parsed.has("--net")) throw UsageError("--filter goes with --net");
    if (parsed.value("--device") && !parsed.has("--usb")) throw UsageError("--device goes with --usb");
    if (!parsed.has("--serial") && !parsed.value("--output")) {
        throw UsageError("--net and --usb write a pcap file: give it with -o FILE.pcap (or -o - for stdout)");
    }
    (void)parsed.index("--chardev");
    (void)parsed.index("--filter");
    (void)parsed.index("--device");
    try {
        const RecordingPaths paths = locate_recording(parsed.recording);
        Output output(parsed.value("--output"), out);
        if (parsed.has("--serial")) {
            if (parsed.has("--input")) {
                extract_serial_input(paths, parsed, output.stream());
            } else if (!extract_serial_output(paths, parsed, output.stream())) {
                err << "rewind: " << parsed.recording
                    << ": this log holds no serial output records (EVENT_CHAR_OUTPUT: recordings by "
                       "QEMU Rewind before its divergence checks have none); --serial --input extracts the "
                       "bytes fed to the guest\n";
                return kExitBadInput;
            }
        } else if (parsed.has("--net")) {
            const auto packets = extract_net(paths, parsed, output.stream());
            err << "rewind: " << packets << " packets (the guest's incoming traffic)\n";
        } else {
            const auto records = extract_usb(paths, parsed, output.stream(), err);
            err << "rewind: " << records << " usbmon records\n";
        }
        output.finish();
        return kExitOk;
    } catch (const ReplayLogError& error) {
        return report_input_error(parsed.recording, error, err);
    } catch (const std::runtime_error& error) {  // bundle and recording errors
        return report_input_error(parsed.recording, error, err);
    }
}

}  // namespace qemu_rewind::cli
