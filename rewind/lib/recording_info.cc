#include "recording_info.hh"

#include <algorithm>

#include "log_container.hh"

namespace qemu_rewind {

std::uint64_t RecordingInfo::kind_count(EventKind kind) const {
    std::uint64_t total = 0;
    for (std::size_t c = 0; c < code_counts.size(); ++c) {
        if (event_kind_of(static_cast<std::uint8_t>(c)) == kind) total += code_counts[c];
    }
    return total;
}

std::uint64_t RecordingInfo::kind_bytes(EventKind kind) const {
    std::uint64_t total = 0;
    for (std::size_t c = 0; c < code_bytes.size(); ++c) {
        if (event_kind_of(static_cast<std::uint8_t>(c)) == kind) total += code_bytes[c];
    }
    return total;
}

namespace {

void note_usb(RecordingInfo& info, const ReplayEvent& event) {
    const auto device = event.usb_device();
    if (!device) return;
    UsbDeviceUse& use = info.usb_devices[*device];
    use.log_bytes += event.size;
    if (const auto* open = std::get_if<UsbOpenPayload>(&event.payload)) {
        ++use.opens;
        use.opened = true;
        use.bus = open->bus;
        use.address = open->address;
        use.speed = open->speed;
        // idVendor and idProduct, little-endian at 8 and 10 of the device descriptor.
        const auto& d = open->device_descriptor;
        if (d.size() >= 12) {
            use.vendor = static_cast<std::uint16_t>(d[8] | d[9] << 8);
            use.product = static_cast<std::uint16_t>(d[10] | d[11] << 8);
        }
    } else if (std::holds_alternative<UsbClosePayload>(event.payload)) {
        ++use.closes;
    } else if (const auto* complete = std::get_if<UsbCompletePayload>(&event.payload)) {
        ++use.completions;
        use.in_bytes += complete->data.size();
    } else if (event.usb_call() == UsbCall::Submit) {
        ++use.submissions;
    }
}

}  // namespace

RecordingInfo gather_recording_info(ReplayLogReader& reader) {
    RecordingInfo info;
    info.header = reader.header();
    info.bytes = reader.size();
    info.file_bytes = reader.size();
    if (const auto* container = reader.container()) {
        info.file_bytes = container->file_size;
        info.chunks = container->chunks.size();
    }
    while (const auto event = reader.next()) {
        ++info.events;
        ++info.code_counts[event->code];
        info.code_bytes[event->code] += event->size;
        if (const auto clock = event->clock_kind()) {
            const auto value = std::get<ClockPayload>(event->payload).value;
            if (*clock == ClockKind::Host) {
                if (!info.first_host_ns) info.first_host_ns = value;
                info.last_host_ns = value;
            } else {
                info.last_virtual_rt_ns = std::max(info.last_virtual_rt_ns.value_or(value), value);
            }
        } else if (const auto* read = std::get_if<CharReadPayload>(&event->payload)) {
            ChardevUse& use = info.chardevs[read->chardev];
            ++use.reads;
            use.read_bytes += read->data.size();
        } else if (const auto* output = std::get_if<CharOutputPayload>(&event->payload)) {
            info.chardevs[output->chardev].output_bytes += output->data.size();
        } else if (std::holds_alternative<DigestPayload>(event->payload)) {
            ++info.digests;
        } else if (const auto* read_all = std::get_if<CharReadAllPayload>(&event->payload)) {
            info.char_read_all_bytes += read_all->data.size();
        } else if (const auto* net = std::get_if<NetPayload>(&event->payload)) {
            NetFilterUse& use = info.net_filters[net->filter];
            ++use.packets;
            use.bytes += net->packet.size();
        } else if (const auto* audio_in = std::get_if<AudioInPayload>(&event->payload)) {
            ++info.audio_in_events;
            info.audio_in_samples += audio_in->samples.size();
        } else if (std::holds_alternative<AudioOutPayload>(event->payload)) {
            ++info.audio_out_events;
        } else if (const auto* random = std::get_if<RandomPayload>(&event->payload)) {
            info.random_bytes += random->data.size();
        } else if (event->async_kind() == AsyncKind::Block) {
            ++info.block_requests;
        } else if (event->async_kind() == AsyncKind::Input) {
            ++info.input_events;
        } else {
            note_usb(info, *event);
        }
    }
    info.instructions = reader.icount();
    info.has_end_event = reader.saw_end_event();
    info.truncation = reader.truncation();
    return info;
}

}  // namespace qemu_rewind
