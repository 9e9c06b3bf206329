// The software USB devices of tests/usbdev without usbfs or QEMU: the
// mass-storage model driven URB by URB as a host would, its descriptors,
// and the --device spec parsing.
#include "device_registry.hh"
#include "mass_storage.hh"
#include "usb_descriptors.hh"

#include <catch2/catch_test_macros.hpp>

#include <glib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace qemu_rewind::usbdev;

namespace {

using Bytes = std::vector<std::uint8_t>;

// An image file with random content, removed at the end.
struct TempImage {
    std::string path;
    Bytes content;

    explicit TempImage(std::size_t blocks)
    {
        char templ[] = "/tmp/rewind-usb-unit-XXXXXX";
        int fd = mkstemp(templ);
        REQUIRE(fd >= 0);
        path = templ;
        std::mt19937 gen(42);
        content.resize(blocks * 512);
        for (auto &b : content) {
            b = static_cast<std::uint8_t>(gen());
        }
        REQUIRE(write(fd, content.data(), content.size()) ==
                static_cast<ssize_t>(content.size()));
        close(fd);
    }
    ~TempImage() { std::remove(path.c_str()); }

    Bytes read_back() const
    {
        std::ifstream in(path, std::ios::binary);
        return Bytes(std::istreambuf_iterator<char>(in), {});
    }
};

UrbPtr bulk(std::uint8_t endpoint, Bytes data)
{
    return std::make_shared<Urb>(TransferType::Bulk, endpoint, std::move(data));
}

Bytes le32(std::uint32_t v)
{
    return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
            static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}

std::uint32_t get_le32(const std::uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | std::uint32_t(p[3]) << 24;
}

// A host speaking the bulk-only transport to the model.
struct BotHost {
    MassStorage &dev;
    std::uint32_t tag = 0x100;

    struct Result {
        Bytes data;
        std::uint32_t residue = 0;
        std::uint8_t status = 0xff;
    };

    UrbPtr send_cbw(const Bytes &cdb, std::uint32_t length, bool in)
    {
        Bytes cbw = le32(0x43425355);
        auto t = le32(++tag);
        cbw.insert(cbw.end(), t.begin(), t.end());
        auto l = le32(length);
        cbw.insert(cbw.end(), l.begin(), l.end());
        cbw.push_back(in ? 0x80 : 0x00);
        cbw.push_back(0);   // LUN
        cbw.push_back(static_cast<std::uint8_t>(cdb.size()));
        Bytes block = cdb;
        block.resize(16, 0);
        cbw.insert(cbw.end(), block.begin(), block.end());
        auto urb = bulk(MassStorage::bulk_out, cbw);
        dev.submit(urb);
        return urb;
    }

    Result read_csw(Result r)
    {
        auto csw = bulk(MassStorage::bulk_in, Bytes(13));
        dev.submit(csw);
        REQUIRE(csw->done());
        REQUIRE(csw->status() == urb_status::ok);
        REQUIRE(csw->actual_length() == 13);
        const std::uint8_t *p = csw->buffer().data();
        REQUIRE(get_le32(p) == 0x53425355);
        REQUIRE(get_le32(p + 4) == tag);
        r.residue = get_le32(p + 8);
        r.status = p[12];
        return r;
    }

    // A data-in (or no-data) command; data read in IN URBs of `chunk` bytes.
    Result in(const Bytes &cdb, std::uint32_t length, std::size_t chunk = 0)
    {
        auto cbw = send_cbw(cdb, length, true);
        REQUIRE(cbw->done());
        REQUIRE(cbw->status() == urb_status::ok);
        Result r;
        std::size_t left = length;
        while (left > 0) {
            std::size_t n = chunk ? std::min(chunk, left) : left;
            auto urb = bulk(MassStorage::bulk_in, Bytes(n));
            dev.submit(urb);
            REQUIRE(urb->done());
            REQUIRE(urb->status() == urb_status::ok);
            r.data.insert(r.data.end(), urb->buffer().begin(),
                          urb->buffer().begin() + urb->actual_length());
            left -= n;
            if (urb->actual_length() < n) {
                break;   // short packet: the device has no more data
            }
        }
        return read_csw(r);
    }

    Result out(const Bytes &cdb, const Bytes &data)
    {
        auto cbw = send_cbw(cdb, static_cast<std::uint32_t>(data.size()), false);
        REQUIRE(cbw->done());
        auto urb = bulk(MassStorage::bulk_out, data);
        dev.submit(urb);
        REQUIRE(urb->done());
        REQUIRE(urb->actual_length() == data.size());
        return read_csw({});
    }
};

Bytes read10(std::uint32_t lba, std::uint16_t blocks)
{
    return {0x28, 0, static_cast<std::uint8_t>(lba >> 24), static_cast<std::uint8_t>(lba >> 16),
            static_cast<std::uint8_t>(lba >> 8), static_cast<std::uint8_t>(lba), 0,
            static_cast<std::uint8_t>(blocks >> 8), static_cast<std::uint8_t>(blocks), 0};
}

}  // namespace

TEST_CASE("usb storage: descriptors describe a high-speed bulk-only SCSI drive", "[usb]")
{
    TempImage img(64);
    MassStorage dev(img.path, "SER123", false);
    const DeviceDescription &d = dev.description();
    Bytes dd = device_descriptor(d);
    REQUIRE(dd.size() == 18);
    CHECK(dd[1] == 1);
    CHECK((dd[8] | dd[9] << 8) == 0x1209);
    CHECK((dd[10] | dd[11] << 8) == 0x0001);
    CHECK(dd[17] == 1);   // one configuration
    Bytes cd = configuration_descriptor(d, 0);
    REQUIRE(cd.size() == 9 + 9 + 7 + 7);
    CHECK(std::size_t(cd[2] | cd[3] << 8) == cd.size());
    CHECK(cd[4] == 1);   // one interface
    CHECK(cd[9 + 5] == 0x08);
    CHECK(cd[9 + 6] == 0x06);
    CHECK(cd[9 + 7] == 0x50);
    CHECK(sysfs_descriptors(d).size() == dd.size() + cd.size());

    // The serial number string (index 3), UTF-16LE, through GET_DESCRIPTOR.
    Bytes buf(255);
    auto r = dev.control({0x80, 6, 0x0303, 0x0409, 255}, buf);
    REQUIRE(r.status == urb_status::ok);
    REQUIRE(r.length == 2 + 2 * 6);
    CHECK(buf[2] == 'S');
    CHECK(buf[12] == '3');
    // GET_MAX_LUN: one LUN.
    Bytes lun(1, 0xff);
    r = dev.control({0xa1, 0xfe, 0, 0, 1}, lun);
    REQUIRE(r.status == urb_status::ok);
    CHECK(r.length == 1);
    CHECK(lun[0] == 0);
    // Unknown class request: stall.
    CHECK(dev.control({0xa1, 0x42, 0, 0, 1}, lun).status == urb_status::stall);
}

TEST_CASE("usb storage: INQUIRY, READ CAPACITY and READ(10) over bulk-only", "[usb]")
{
    TempImage img(64);
    MassStorage dev(img.path, "S", false);
    BotHost host{dev};

    auto inq = host.in({0x12, 0, 0, 0, 36, 0}, 36);
    CHECK(inq.status == 0);
    REQUIRE(inq.data.size() == 36);
    CHECK(inq.data[0] == 0x00);   // direct-access block device
    CHECK(std::string(inq.data.begin() + 8, inq.data.begin() + 14) == "QEMURW");

    // The host asks for more than there is: short data, residue in the CSW.
    auto longer = host.in({0x12, 0, 0, 0, 96, 0}, 96);
    CHECK(longer.status == 0);
    CHECK(longer.data.size() == 36);
    CHECK(longer.residue == 96 - 36);

    auto cap = host.in({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8);
    REQUIRE(cap.data.size() == 8);
    CHECK(((cap.data[0] << 24) | (cap.data[1] << 16) | (cap.data[2] << 8) | cap.data[3]) == 63);
    CHECK(((cap.data[6] << 8) | cap.data[7]) == 512);

    // Two blocks at LBA 5, in IN URBs of 512 bytes.
    auto rd = host.in(read10(5, 2), 1024, 512);
    CHECK(rd.status == 0);
    CHECK(rd.residue == 0);
    CHECK(rd.data == Bytes(img.content.begin() + 5 * 512, img.content.begin() + 7 * 512));
}

TEST_CASE("usb storage: WRITE(10) reaches the image", "[usb]")
{
    TempImage img(16);
    MassStorage dev(img.path, "S", false);
    BotHost host{dev};
    Bytes data(1024);
    for (std::size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<std::uint8_t>(i * 7);
    }
    Bytes cdb = read10(3, 2);
    cdb[0] = 0x2a;
    auto w = host.out(cdb, data);
    CHECK(w.status == 0);
    auto back = host.in(read10(3, 2), 1024);
    CHECK(back.data == data);
    Bytes file = img.read_back();
    CHECK(Bytes(file.begin() + 3 * 512, file.begin() + 5 * 512) == data);

    // A read-only drive refuses writes with DATA PROTECT.
    MassStorage ro(img.path, "S", true);
    BotHost ro_host{ro};
    CHECK(ro_host.out(cdb, data).status == 1);
    auto sense = ro_host.in({0x03, 0, 0, 0, 18, 0}, 18);
    REQUIRE(sense.data.size() == 18);
    CHECK((sense.data[2] & 0x0f) == 0x07);
    CHECK(sense.data[12] == 0x27);
}

TEST_CASE("usb storage: bad commands fail with CHECK CONDITION and sense", "[usb]")
{
    TempImage img(16);
    MassStorage dev(img.path, "S", false);
    BotHost host{dev};

    // Unknown operation code (a vendor command): failed CSW, then
    // REQUEST SENSE says ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
    auto bad = host.in({0xc7, 0, 0, 0, 0, 0}, 0);
    CHECK(bad.status == 1);
    auto sense = host.in({0x03, 0, 0, 0, 18, 0}, 18);
    REQUIRE(sense.data.size() == 18);
    CHECK(sense.data[0] == 0x70);
    CHECK((sense.data[2] & 0x0f) == 0x05);
    CHECK(sense.data[12] == 0x20);
    // REQUEST SENSE cleared it.
    CHECK(host.in({0x03, 0, 0, 0, 18, 0}, 18).data[2] == 0);

    // Past the end of the disk: LOGICAL BLOCK ADDRESS OUT OF RANGE.
    auto past = host.in(read10(15, 2), 1024);
    CHECK(past.status == 1);
    CHECK(past.residue == 1024);
    CHECK(past.data.empty());
    CHECK(host.in({0x03, 0, 0, 0, 18, 0}, 18).data[12] == 0x21);

    // A block that is not a CBW is refused (stall); the next CBW works.
    auto junk = bulk(MassStorage::bulk_out, Bytes(31, 0xaa));
    dev.submit(junk);
    CHECK(junk->status() == urb_status::stall);
    CHECK(host.in({0x00, 0, 0, 0, 0, 0}, 0).status == 0);   // TEST UNIT READY
}

TEST_CASE("usb storage: an IN URB queued before the command completes later", "[usb]")
{
    TempImage img(16);
    MassStorage dev(img.path, "S", false);
    BotHost host{dev};
    auto early = bulk(MassStorage::bulk_in, Bytes(512));
    dev.submit(early);
    CHECK(!early->done());   // nothing to send yet

    auto cancelled = bulk(MassStorage::bulk_in, Bytes(512));
    dev.submit(cancelled);
    cancelled->complete(urb_status::cancelled);   // as the server does on discard
    dev.discarded(cancelled);

    host.send_cbw(read10(1, 1), 512, true);
    REQUIRE(early->done());
    CHECK(early->actual_length() == 512);
    CHECK(Bytes(early->buffer().begin(), early->buffer().end()) ==
          Bytes(img.content.begin() + 512, img.content.begin() + 1024));
    auto r = host.read_csw({});
    CHECK(r.status == 0);
    CHECK(cancelled->status() == urb_status::cancelled);
}

TEST_CASE("usb devices: --device specs are parsed and checked", "[usb]")
{
    auto s = parse_device_spec("storage:image=/x.img,serial=AB,readonly");
    CHECK(s.kind == "storage");
    CHECK(s.get("image") == "/x.img");
    CHECK(s.get("serial") == "AB");
    CHECK(s.get("readonly", "no") == "");
    CHECK(s.get("missing", "dflt") == "dflt");
    CHECK(parse_device_spec("iso").options.empty());
    CHECK_THROWS_AS(parse_device_spec(":image=x"), SpecError);
    CHECK_THROWS_AS(parse_device_spec("storage:image=a,image=b"), SpecError);
    auto n = parse_device_spec("x:n=0x10,bad=12z");
    CHECK(n.get_number("n", 0) == 16);
    CHECK_THROWS_AS(n.get_number("bad", 0), SpecError);

    CHECK_THROWS_AS(create_model(parse_device_spec("no-such-kind")), SpecError);
    CHECK_THROWS_AS(create_model(parse_device_spec("storage:serial=x")), SpecError);
    CHECK_THROWS_AS(create_model(parse_device_spec("storage:image=/nonexistent.img")),
                    SpecError);
    TempImage img(4);
    CHECK_THROWS_AS(create_model(parse_device_spec("storage:image=" + img.path + ",colour=red")),
                    SpecError);
    auto model = create_model(parse_device_spec("storage:image=" + img.path));
    CHECK(model->description().product_id == 0x0001);
}

TEST_CASE("usb devices: a model Timer fires on the GLib main loop", "[usb]")
{
    Timer t;
    int fired = 0;
    t.start_once(std::chrono::milliseconds(1), [&] { ++fired; });
    CHECK(t.active());
    for (int i = 0; i < 1000 && !fired; ++i) {
        g_main_context_iteration(nullptr, TRUE);
    }
    CHECK(fired == 1);
    CHECK(!t.active());
}
