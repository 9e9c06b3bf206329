// A SCSI direct-access block device (disk) backed by an image file: the
// command set Linux's sd driver and usb-storage send to a USB stick.
// Unknown commands fail with CHECK CONDITION + ILLEGAL REQUEST sense.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace qemu_rewind::usbdev {

namespace scsi_status {
constexpr std::uint8_t good = 0x00;
constexpr std::uint8_t check_condition = 0x02;
}  // namespace scsi_status

struct ScsiResult {
    std::uint8_t status = scsi_status::good;
    std::vector<std::uint8_t> data;   // for data-in commands
};

struct SenseData {
    std::uint8_t key = 0;     // 0 no sense, 5 illegal request, ...
    std::uint8_t asc = 0;
    std::uint8_t ascq = 0;
};

class ScsiDisk {
public:
    static constexpr std::uint32_t block_size = 512;

    // Opens the image (read-write unless read_only); throws
    // std::runtime_error if it is missing, empty or not a multiple of
    // 512 bytes.
    ScsiDisk(const std::string &image_path, bool read_only);
    ~ScsiDisk();
    ScsiDisk(const ScsiDisk &) = delete;
    ScsiDisk &operator=(const ScsiDisk &) = delete;

    std::uint64_t block_count() const { return blocks_; }
    bool read_only() const { return read_only_; }

    // Runs one command. `data_out` holds the data the host sent for it
    // (writes); data-in comes back in the result (not truncated to the
    // host's transfer length: the transport does that).
    ScsiResult execute(std::span<const std::uint8_t> cdb,
                       std::span<const std::uint8_t> data_out);

    // The sense of the last failed command (cleared by REQUEST SENSE).
    const SenseData &sense() const { return sense_; }

    // Vendor / product / revision for INQUIRY (8 / 16 / 4 characters).
    void set_identity(std::string vendor, std::string product, std::string revision);

private:
    ScsiResult fail(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq = 0);
    ScsiResult ok(std::vector<std::uint8_t> data = {});
    ScsiResult inquiry(std::span<const std::uint8_t> cdb);
    ScsiResult mode_sense(std::span<const std::uint8_t> cdb, bool ten);
    ScsiResult read(std::uint64_t lba, std::uint32_t count);
    ScsiResult write(std::uint64_t lba, std::uint32_t count,
                     std::span<const std::uint8_t> data);

    int fd_ = -1;
    std::uint64_t blocks_ = 0;
    bool read_only_ = false;
    SenseData sense_;
    std::string vendor_ = "QEMURW";
    std::string product_ = "Test Storage";
    std::string revision_ = "1.0";
};

}  // namespace qemu_rewind::usbdev
