// A USB flash drive: the bulk-only transport (BOT) of the USB mass storage
// class, high speed, interface 8/6/80 (SCSI transparent, bulk-only), bulk
// IN 0x81 and OUT 0x02, carrying SCSI commands to a ScsiDisk.
//
//   --device storage:image=PATH[,serial=S][,readonly=1]
//
// IDs 1209:0001 (pid.codes test PID): two storage devices are identical
// apart from their image (and serial, if given).
#pragma once

#include "device_registry.hh"
#include "scsi_disk.hh"
#include "usb_device_model.hh"

#include <array>
#include <deque>
#include <memory>

namespace qemu_rewind::usbdev {

class MassStorage : public UsbDeviceModel {
public:
    static constexpr std::uint8_t bulk_in = 0x81;
    static constexpr std::uint8_t bulk_out = 0x02;

    MassStorage(const std::string &image, const std::string &serial, bool read_only);
    explicit MassStorage(const DeviceSpec &spec);

    const DeviceDescription &description() const override { return description_; }
    ControlResult control(const SetupPacket &setup, std::span<std::uint8_t> data) override;
    void submit(const UrbPtr &urb) override;
    void discarded(const UrbPtr &urb) override;
    void reset() override;
    void unplugged() override;

    ScsiDisk &disk() { return disk_; }

private:
    enum class Phase { Command, DataOut, DataIn, Status };
    void command_block(Urb &urb);
    void data_out(Urb &urb);
    void finish_command(const ScsiResult &result);
    void pump();              // serves queued IN URBs
    void reset_transport();

    DeviceDescription description_;
    ScsiDisk disk_;
    Phase phase_ = Phase::Command;
    std::uint32_t tag_ = 0;
    std::uint32_t expected_ = 0;        // dCBWDataTransferLength
    std::array<std::uint8_t, 16> cdb_{};
    std::size_t cdb_length_ = 0;
    std::vector<std::uint8_t> data_;    // data-in to send / data-out received
    std::size_t sent_ = 0;
    std::uint8_t csw_status_ = 0;
    std::uint32_t residue_ = 0;
    std::deque<UrbPtr> pending_in_;
};

}  // namespace qemu_rewind::usbdev
