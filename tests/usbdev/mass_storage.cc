#include "mass_storage.hh"

#include <algorithm>
#include <cstring>

namespace qemu_rewind::usbdev {

namespace {

constexpr std::uint32_t cbw_signature = 0x43425355;   // "USBC"
constexpr std::uint32_t csw_signature = 0x53425355;   // "USBS"
constexpr std::size_t cbw_length = 31;
constexpr std::size_t csw_length = 13;

namespace csw {
constexpr std::uint8_t passed = 0;
constexpr std::uint8_t failed = 1;
}  // namespace csw

namespace bot_request {
constexpr std::uint8_t reset = 0xff;
constexpr std::uint8_t get_max_lun = 0xfe;
}  // namespace bot_request

std::uint32_t le32(const std::uint8_t *p)
{
    return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
           std::uint32_t(p[3]) << 24;
}

void put_le32(std::uint8_t *p, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i) {
        p[i] = static_cast<std::uint8_t>(v >> (8 * i));
    }
}

DeviceDescription storage_description(const std::string &serial)
{
    DeviceDescription d;
    d.usb_version = 0x0200;
    d.vendor_id = 0x1209;
    d.product_id = 0x0001;
    d.device_version = 0x0100;
    d.manufacturer = "QEMU Rewind";
    d.product = "Rewind Test Storage";
    d.serial = serial;
    d.speed = Speed::High;
    InterfaceDescription iface;
    iface.number = 0;
    iface.interface_class = 0x08;      // mass storage
    iface.interface_subclass = 0x06;   // SCSI transparent command set
    iface.interface_protocol = 0x50;   // bulk-only transport
    iface.endpoints = {
        {MassStorage::bulk_in, 0x02, 512, 0},
        {MassStorage::bulk_out, 0x02, 512, 0},
    };
    ConfigurationDescription config;
    config.value = 1;
    config.attributes = 0x80;
    config.max_power = 50;
    config.interfaces = {iface};
    d.configurations = {config};
    return d;
}

bool truthy(const std::string &v)
{
    return v == "1" || v == "yes" || v == "on" || v == "true";
}

}  // namespace

MassStorage::MassStorage(const std::string &image, const std::string &serial, bool read_only)
    : description_(storage_description(serial)), disk_(image, read_only)
{
}

MassStorage::MassStorage(const DeviceSpec &spec)
    : MassStorage(spec.require("image"), spec.get("serial", "REWIND0001"),
                  truthy(spec.get("readonly", "0")))
{
}

ControlResult MassStorage::control(const SetupPacket &setup, std::span<std::uint8_t> data)
{
    bool class_to_interface = setup.type() == 1 && setup.recipient() == 1 && setup.index == 0;
    if (class_to_interface && setup.request == bot_request::get_max_lun && setup.is_in()) {
        if (data.empty()) {
            return ControlResult::stall();
        }
        data[0] = 0;   // one LUN
        return ControlResult::ok(1);
    }
    if (class_to_interface && setup.request == bot_request::reset && !setup.is_in()) {
        reset_transport();
        return ControlResult::ok();
    }
    return UsbDeviceModel::control(setup, data);
}

void MassStorage::submit(const UrbPtr &urb)
{
    if (urb->endpoint() == bulk_in) {
        pending_in_.push_back(urb);
    } else if (urb->endpoint() == bulk_out) {
        if (phase_ == Phase::Command) {
            command_block(*urb);
        } else if (phase_ == Phase::DataOut) {
            data_out(*urb);
        } else {
            // The host sends while we have data or status for it.
            urb->complete(urb_status::stall);
        }
    } else {
        urb->complete(urb_status::stall);
    }
    pump();
}

void MassStorage::command_block(Urb &urb)
{
    auto b = urb.buffer();
    if (b.size() != cbw_length || le32(b.data()) != cbw_signature || b[13] != 0 ||
        b[14] < 1 || b[14] > 16) {
        // Not a valid CBW (or not LUN 0): refuse it; the host recovers
        // with a bulk-only reset.
        urb.complete(urb_status::stall);
        return;
    }
    tag_ = le32(b.data() + 4);
    expected_ = le32(b.data() + 8);
    bool in = b[12] & 0x80;
    cdb_length_ = b[14];
    std::memcpy(cdb_.data(), b.data() + 15, 16);
    data_.clear();
    sent_ = 0;
    urb.complete(urb_status::ok, cbw_length);

    if (expected_ != 0 && !in) {
        phase_ = Phase::DataOut;
        return;
    }
    finish_command(disk_.execute({cdb_.data(), cdb_length_}, {}));
}

void MassStorage::data_out(Urb &urb)
{
    std::size_t want = expected_ - data_.size();
    std::size_t n = std::min(want, urb.buffer().size());
    data_.insert(data_.end(), urb.buffer().begin(), urb.buffer().begin() + n);
    urb.complete(urb_status::ok, n);
    if (data_.size() == expected_) {
        std::vector<std::uint8_t> received = std::move(data_);
        data_.clear();
        ScsiResult r = disk_.execute({cdb_.data(), cdb_length_}, received);
        r.data.clear();   // a data-in result cannot go anywhere now
        csw_status_ = r.status == scsi_status::good ? csw::passed : csw::failed;
        residue_ = 0;
        phase_ = Phase::Status;
    }
}

void MassStorage::finish_command(const ScsiResult &result)
{
    csw_status_ = result.status == scsi_status::good ? csw::passed : csw::failed;
    data_ = result.data;
    if (data_.size() > expected_) {
        data_.resize(expected_);
    }
    residue_ = expected_ - static_cast<std::uint32_t>(data_.size());
    sent_ = 0;
    phase_ = expected_ ? Phase::DataIn : Phase::Status;
}

void MassStorage::pump()
{
    while (!pending_in_.empty()) {
        UrbPtr urb = pending_in_.front();
        if (urb->done()) {
            pending_in_.pop_front();
            continue;
        }
        if (phase_ == Phase::DataIn) {
            // Less data than the host asked for ends with a short packet.
            std::size_t n = std::min(urb->buffer().size(), data_.size() - sent_);
            std::memcpy(urb->buffer().data(), data_.data() + sent_, n);
            sent_ += n;
            pending_in_.pop_front();
            if (sent_ == data_.size()) {
                phase_ = Phase::Status;
            }
            urb->complete(urb_status::ok, n);
        } else if (phase_ == Phase::Status) {
            std::uint8_t status[csw_length] = {};
            put_le32(status, csw_signature);
            put_le32(status + 4, tag_);
            put_le32(status + 8, residue_);
            status[12] = csw_status_;
            std::size_t n = std::min(urb->buffer().size(), csw_length);
            std::memcpy(urb->buffer().data(), status, n);
            pending_in_.pop_front();
            phase_ = Phase::Command;
            urb->complete(urb_status::ok, n);
        } else {
            break;   // nothing to send until the next command
        }
    }
}

void MassStorage::discarded(const UrbPtr &urb)
{
    std::erase(pending_in_, urb);
}

void MassStorage::reset_transport()
{
    phase_ = Phase::Command;
    data_.clear();
    sent_ = 0;
}

void MassStorage::reset()
{
    UsbDeviceModel::reset();
    reset_transport();
    pending_in_.clear();
}

void MassStorage::unplugged()
{
    pending_in_.clear();
}

static const ModelRegistration storage_registration{
    "storage",
    "storage:image=PATH[,serial=S][,readonly=1]  USB flash drive (bulk-only mass storage,"
    " high speed, 1209:0001) backed by the image file",
    [](const DeviceSpec &spec) -> std::unique_ptr<UsbDeviceModel> {
        spec.allow_only({"image", "serial", "readonly"});
        try {
            return std::make_unique<MassStorage>(spec);
        } catch (const SpecError &) {
            throw;
        } catch (const std::exception &e) {
            throw SpecError("--device " + spec.text + ": " + e.what());
        }
    }};

}  // namespace qemu_rewind::usbdev
