#include "scsi_disk.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace qemu_rewind::usbdev {

namespace {

namespace op {
constexpr std::uint8_t test_unit_ready = 0x00;
constexpr std::uint8_t request_sense = 0x03;
constexpr std::uint8_t read6 = 0x08;
constexpr std::uint8_t write6 = 0x0a;
constexpr std::uint8_t inquiry = 0x12;
constexpr std::uint8_t mode_select6 = 0x15;
constexpr std::uint8_t mode_sense6 = 0x1a;
constexpr std::uint8_t start_stop_unit = 0x1b;
constexpr std::uint8_t prevent_allow_medium_removal = 0x1e;
constexpr std::uint8_t read_capacity10 = 0x25;
constexpr std::uint8_t read10 = 0x28;
constexpr std::uint8_t write10 = 0x2a;
constexpr std::uint8_t verify10 = 0x2f;
constexpr std::uint8_t synchronize_cache10 = 0x35;
constexpr std::uint8_t mode_select10 = 0x55;
constexpr std::uint8_t mode_sense10 = 0x5a;
constexpr std::uint8_t read16 = 0x88;
constexpr std::uint8_t write16 = 0x8a;
constexpr std::uint8_t verify16 = 0x8f;
constexpr std::uint8_t synchronize_cache16 = 0x91;
constexpr std::uint8_t service_action_in16 = 0x9e;   // READ CAPACITY(16)
constexpr std::uint8_t report_luns = 0xa0;
}  // namespace op

namespace sense_key {
constexpr std::uint8_t medium_error = 0x3;
constexpr std::uint8_t illegal_request = 0x5;
constexpr std::uint8_t data_protect = 0x7;
}  // namespace sense_key

namespace asc {
constexpr std::uint8_t write_error = 0x0c;
constexpr std::uint8_t unrecovered_read_error = 0x11;
constexpr std::uint8_t parameter_list_length_error = 0x1a;
constexpr std::uint8_t invalid_command = 0x20;
constexpr std::uint8_t lba_out_of_range = 0x21;
constexpr std::uint8_t invalid_field_in_cdb = 0x24;
constexpr std::uint8_t write_protected = 0x27;
}  // namespace asc

std::uint32_t be16(std::span<const std::uint8_t> p, std::size_t at)
{
    return std::uint32_t(p[at]) << 8 | p[at + 1];
}
std::uint32_t be32(std::span<const std::uint8_t> p, std::size_t at)
{
    return be16(p, at) << 16 | be16(p, at + 2);
}
std::uint64_t be64(std::span<const std::uint8_t> p, std::size_t at)
{
    return std::uint64_t(be32(p, at)) << 32 | be32(p, at + 4);
}
void put_be32(std::vector<std::uint8_t> &out, std::size_t at, std::uint32_t v)
{
    out[at] = static_cast<std::uint8_t>(v >> 24);
    out[at + 1] = static_cast<std::uint8_t>(v >> 16);
    out[at + 2] = static_cast<std::uint8_t>(v >> 8);
    out[at + 3] = static_cast<std::uint8_t>(v);
}

// Fixed-width, space-padded INQUIRY text.
void put_text(std::vector<std::uint8_t> &out, std::size_t at, std::size_t width,
              const std::string &s)
{
    for (std::size_t i = 0; i < width; ++i) {
        out[at + i] = static_cast<std::uint8_t>(i < s.size() ? s[i] : ' ');
    }
}

std::size_t cdb_length(std::uint8_t opcode)
{
    switch (opcode >> 5) {
    case 0: return 6;
    case 1: case 2: return 10;
    case 4: return 16;
    case 5: return 12;
    default: return 6;
    }
}

}  // namespace

ScsiDisk::ScsiDisk(const std::string &image_path, bool read_only) : read_only_(read_only)
{
    fd_ = open(image_path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd_ < 0) {
        throw std::runtime_error("cannot open disk image " + image_path + ": " +
                                 std::strerror(errno));
    }
    struct stat st {};
    if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size % block_size != 0) {
        close(fd_);
        fd_ = -1;
        throw std::runtime_error("disk image " + image_path +
                                 " must be a non-empty regular file of a multiple of 512"
                                 " bytes");
    }
    blocks_ = static_cast<std::uint64_t>(st.st_size) / block_size;
}

ScsiDisk::~ScsiDisk()
{
    if (fd_ >= 0) {
        close(fd_);
    }
}

void ScsiDisk::set_identity(std::string vendor, std::string product, std::string revision)
{
    vendor_ = std::move(vendor);
    product_ = std::move(product);
    revision_ = std::move(revision);
}

ScsiResult ScsiDisk::fail(std::uint8_t key, std::uint8_t code, std::uint8_t qualifier)
{
    sense_ = {key, code, qualifier};
    return {scsi_status::check_condition, {}};
}

ScsiResult ScsiDisk::ok(std::vector<std::uint8_t> data)
{
    sense_ = {};
    return {scsi_status::good, std::move(data)};
}

ScsiResult ScsiDisk::execute(std::span<const std::uint8_t> cdb,
                             std::span<const std::uint8_t> data_out)
{
    if (cdb.empty() || cdb.size() < cdb_length(cdb[0])) {
        return fail(sense_key::illegal_request, asc::invalid_command);
    }
    switch (cdb[0]) {
    case op::test_unit_ready:
    case op::start_stop_unit:
    case op::prevent_allow_medium_removal:
    case op::verify10:
    case op::verify16:
        return ok();
    case op::request_sense: {
        // Fixed format; the allocation length truncates.
        std::vector<std::uint8_t> s(18, 0);
        s[0] = 0x70;
        s[2] = sense_.key;
        s[7] = 10;
        s[12] = sense_.asc;
        s[13] = sense_.ascq;
        s.resize(std::min<std::size_t>(s.size(), cdb[4]));
        return ok(std::move(s));   // also clears the sense
    }
    case op::inquiry:
        return inquiry(cdb);
    case op::read_capacity10: {
        std::vector<std::uint8_t> d(8, 0);
        std::uint64_t last = blocks_ - 1;
        put_be32(d, 0, last > 0xffffffffu ? 0xffffffffu : static_cast<std::uint32_t>(last));
        put_be32(d, 4, block_size);
        return ok(std::move(d));
    }
    case op::service_action_in16: {
        if ((cdb[1] & 0x1f) != 0x10) {   // READ CAPACITY(16)
            return fail(sense_key::illegal_request, asc::invalid_field_in_cdb);
        }
        std::vector<std::uint8_t> d(32, 0);
        std::uint64_t last = blocks_ - 1;
        put_be32(d, 0, static_cast<std::uint32_t>(last >> 32));
        put_be32(d, 4, static_cast<std::uint32_t>(last));
        put_be32(d, 8, block_size);
        d.resize(std::min<std::size_t>(d.size(), be32(cdb, 10)));
        return ok(std::move(d));
    }
    case op::read6: {
        std::uint32_t lba = (cdb[1] & 0x1f) << 16 | be16(cdb, 2);
        return read(lba, cdb[4] ? cdb[4] : 256);
    }
    case op::read10:
        return read(be32(cdb, 2), be16(cdb, 7));
    case op::read16:
        return read(be64(cdb, 2), be32(cdb, 10));
    case op::write6: {
        std::uint32_t lba = (cdb[1] & 0x1f) << 16 | be16(cdb, 2);
        return write(lba, cdb[4] ? cdb[4] : 256, data_out);
    }
    case op::write10:
        return write(be32(cdb, 2), be16(cdb, 7), data_out);
    case op::write16:
        return write(be64(cdb, 2), be32(cdb, 10), data_out);
    case op::synchronize_cache10:
    case op::synchronize_cache16:
        if (!read_only_ && fsync(fd_) != 0) {
            return fail(sense_key::medium_error, asc::write_error);
        }
        return ok();
    case op::mode_sense6:
        return mode_sense(cdb, false);
    case op::mode_sense10:
        return mode_sense(cdb, true);
    case op::mode_select6:
    case op::mode_select10:
        // Nothing is changeable; an empty parameter list is fine.
        if (!data_out.empty()) {
            return fail(sense_key::illegal_request, asc::parameter_list_length_error);
        }
        return ok();
    case op::report_luns: {
        std::vector<std::uint8_t> d(16, 0);
        put_be32(d, 0, 8);   // one LUN: 0
        d.resize(std::min<std::size_t>(d.size(), be32(cdb, 6)));
        return ok(std::move(d));
    }
    default:
        return fail(sense_key::illegal_request, asc::invalid_command);
    }
}

ScsiResult ScsiDisk::inquiry(std::span<const std::uint8_t> cdb)
{
    std::size_t alloc = be16(cdb, 3);
    std::vector<std::uint8_t> d;
    if (cdb[1] & 1) {   // EVPD
        switch (cdb[2]) {
        case 0x00:   // supported pages
            d = {0, 0x00, 0, 2, 0x00, 0x80};
            break;
        case 0x80: {   // unit serial number
            std::string serial = "REWIND0001";
            d = {0, 0x80, 0, static_cast<std::uint8_t>(serial.size())};
            d.insert(d.end(), serial.begin(), serial.end());
            break;
        }
        default:
            return fail(sense_key::illegal_request, asc::invalid_field_in_cdb);
        }
    } else {
        if (cdb[2] != 0) {
            return fail(sense_key::illegal_request, asc::invalid_field_in_cdb);
        }
        d.assign(36, 0);
        d[0] = 0x00;   // direct-access block device, connected
        d[1] = 0x00;   // not removable: no media-change polling
        d[2] = 0x04;   // SPC-2
        d[3] = 0x02;   // response data format 2
        d[4] = 36 - 5;
        put_text(d, 8, 8, vendor_);
        put_text(d, 16, 16, product_);
        put_text(d, 32, 4, revision_);
    }
    d.resize(std::min(d.size(), alloc));
    return ok(std::move(d));
}

ScsiResult ScsiDisk::mode_sense(std::span<const std::uint8_t> cdb, bool ten)
{
    std::uint8_t page = cdb[2] & 0x3f;
    std::uint8_t control = cdb[2] >> 6;   // 0 current, 1 changeable, 2 default
    std::size_t alloc = ten ? be16(cdb, 7) : cdb[4];
    if (page != 0x08 && page != 0x3f) {
        return fail(sense_key::illegal_request, asc::invalid_field_in_cdb);
    }
    // Caching page: write cache off (every write goes to the image), read
    // cache on. Nothing is changeable.
    std::vector<std::uint8_t> caching(20, 0);
    caching[0] = 0x08;
    caching[1] = 18;
    if (control == 1) {
        std::fill(caching.begin() + 2, caching.end(), 0);
    }
    std::uint8_t device_specific = read_only_ ? 0x80 : 0x00;   // WP bit
    std::vector<std::uint8_t> d;
    if (ten) {
        d = {0, 0, 0, device_specific, 0, 0, 0, 0};
    } else {
        d = {0, 0, device_specific, 0};
    }
    d.insert(d.end(), caching.begin(), caching.end());
    if (ten) {
        std::size_t n = d.size() - 2;
        d[0] = static_cast<std::uint8_t>(n >> 8);
        d[1] = static_cast<std::uint8_t>(n);
    } else {
        d[0] = static_cast<std::uint8_t>(d.size() - 1);
    }
    d.resize(std::min(d.size(), alloc));
    return ok(std::move(d));
}

ScsiResult ScsiDisk::read(std::uint64_t lba, std::uint32_t count)
{
    if (lba > blocks_ || count > blocks_ - lba) {
        return fail(sense_key::illegal_request, asc::lba_out_of_range);
    }
    std::vector<std::uint8_t> d(std::size_t(count) * block_size);
    std::size_t done = 0;
    while (done < d.size()) {
        ssize_t n = pread(fd_, d.data() + done, d.size() - done,
                          static_cast<off_t>(lba * block_size + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return fail(sense_key::medium_error, asc::unrecovered_read_error);
        }
        done += static_cast<std::size_t>(n);
    }
    return ok(std::move(d));
}

ScsiResult ScsiDisk::write(std::uint64_t lba, std::uint32_t count,
                           std::span<const std::uint8_t> data)
{
    if (read_only_) {
        return fail(sense_key::data_protect, asc::write_protected);
    }
    if (lba > blocks_ || count > blocks_ - lba) {
        return fail(sense_key::illegal_request, asc::lba_out_of_range);
    }
    std::size_t bytes = std::size_t(count) * block_size;
    if (data.size() < bytes) {
        return fail(sense_key::illegal_request, asc::invalid_field_in_cdb);
    }
    std::size_t done = 0;
    while (done < bytes) {
        ssize_t n = pwrite(fd_, data.data() + done, bytes - done,
                           static_cast<off_t>(lba * block_size + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return fail(sense_key::medium_error, asc::write_error);
        }
        done += static_cast<std::size_t>(n);
    }
    return ok();
}

}  // namespace qemu_rewind::usbdev
