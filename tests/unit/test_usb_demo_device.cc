// The demo device of tests/usbdev (driver-debugging demo) without usbfs or
// QEMU: its descriptors, the report sequence (a few short reports, then
// long ones) as bulk IN transfers return it, OUT data accepted, and the
// --device demo spec.
#include "demo_device.hh"
#include "device_registry.hh"
#include "usb_descriptors.hh"

#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <vector>

using namespace qemu_rewind::usbdev;

namespace {

using Bytes = std::vector<std::uint8_t>;

UrbPtr bulk(std::uint8_t endpoint, std::size_t length)
{
    return std::make_shared<Urb>(TransferType::Bulk, endpoint, Bytes(length));
}

// One bulk IN transfer of `length` bytes, as the guest driver asks for.
Bytes read_report(DemoDevice &dev, std::size_t length = 256)
{
    auto urb = bulk(DemoDevice::bulk_in, length);
    dev.submit(urb);
    REQUIRE(urb->done());
    REQUIRE(urb->status() == urb_status::ok);
    auto data = urb->buffer().first(urb->actual_length());
    return Bytes(data.begin(), data.end());
}

}  // namespace

TEST_CASE("usb demo: a vendor-specific interface with bulk IN 0x81 and OUT 0x02", "[usb]")
{
    DemoDevice dev(1);
    const auto &d = dev.description();
    CHECK(d.vendor_id == 0x1209);
    CHECK(d.product_id == 0x000d);
    REQUIRE(d.configurations.size() == 1);
    REQUIRE(d.configurations[0].interfaces.size() == 1);
    const auto &iface = d.configurations[0].interfaces[0];
    CHECK(iface.interface_class == 0xff);
    REQUIRE(iface.endpoints.size() == 2);
    CHECK(iface.endpoints[0].address == 0x81);
    CHECK(iface.endpoints[0].attributes == 0x02);
    CHECK(iface.endpoints[1].address == 0x02);
    CHECK(iface.endpoints[1].attributes == 0x02);
    // The bytes a host parses: device descriptor then the configuration.
    auto dev_desc = device_descriptor(d);
    REQUIRE(dev_desc.size() == 18);
    CHECK(dev_desc[8] == 0x09);
    CHECK(dev_desc[9] == 0x12);
    CHECK(dev_desc[10] == 0x0d);
    CHECK(dev_desc[11] == 0x00);
}

TEST_CASE("usb demo: 1 to 3 short reports, then only long ones", "[usb]")
{
    std::vector<unsigned> shorts_seen;
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        DemoDevice dev(seed);
        dev.set_configuration(1);
        unsigned shorts = 0;
        for (int i = 0; i < 12; ++i) {
            Bytes r = read_report(dev);
            REQUIRE(r.size() >= 1);
            const std::size_t len = r[0];
            REQUIRE(r.size() == 1 + len);
            REQUIRE(r.size() <= 256);
            if (len <= 15) {
                // short reports only come first
                REQUIRE(shorts == static_cast<unsigned>(i));
                REQUIRE(len >= 4);
                ++shorts;
            } else {
                REQUIRE(len >= 100);
                REQUIRE(len <= 200);
            }
        }
        REQUIRE(shorts >= 1);
        REQUIRE(shorts <= 3);
        CHECK(shorts == DemoReports(seed).short_reports());
        shorts_seen.push_back(shorts);
    }
    // Over 200 seeds every count occurs.
    for (unsigned n : {1u, 2u, 3u}) {
        CHECK(std::count(shorts_seen.begin(), shorts_seen.end(), n) > 10);
    }
}

TEST_CASE("usb demo: the same seed gives the same reports, another seed others", "[usb]")
{
    DemoDevice a(42), b(42), c(43);
    std::vector<Bytes> ra, rb, rc;
    for (int i = 0; i < 5; ++i) {
        ra.push_back(read_report(a));
        rb.push_back(read_report(b));
        rc.push_back(read_report(c));
    }
    CHECK(ra == rb);
    CHECK(ra != rc);
    // The payload is not constant.
    const Bytes &big = ra.back();
    CHECK(std::count(big.begin() + 1, big.end(), big[1]) < static_cast<long>(big.size()) - 1);
}

TEST_CASE("usb demo: OUT data is accepted and ignored; a short IN buffer babbles", "[usb]")
{
    DemoDevice dev(7), same(7);
    auto out = std::make_shared<Urb>(TransferType::Bulk, DemoDevice::bulk_out, Bytes{1, 2, 3});
    dev.submit(out);
    REQUIRE(out->done());
    CHECK(out->status() == urb_status::ok);
    CHECK(out->actual_length() == 3);
    // The OUT transfer did not move the report sequence.
    CHECK(read_report(dev) == read_report(same));

    // Reports are at least 5 bytes long: a 2-byte buffer overflows.
    auto small = bulk(DemoDevice::bulk_in, 2);
    dev.submit(small);
    REQUIRE(small->done());
    CHECK(small->status() == urb_status::overflow);
    CHECK(small->actual_length() == 2);

    auto elsewhere = bulk(0x83, 64);
    dev.submit(elsewhere);
    CHECK(elsewhere->status() == urb_status::stall);
    auto interrupt = std::make_shared<Urb>(TransferType::Interrupt, DemoDevice::bulk_in, Bytes(64));
    dev.submit(interrupt);
    CHECK(interrupt->status() == urb_status::stall);
}

TEST_CASE("usb demo: --device demo[:seed=N]", "[usb]")
{
    auto model = create_model(parse_device_spec("demo:seed=0x2a"));
    auto *dev = dynamic_cast<DemoDevice *>(model.get());
    REQUIRE(dev != nullptr);
    CHECK(dev->seed() == 42);
    CHECK(dev->command("status") == "seed=42 reports=0 short=" +
                                        std::to_string(DemoReports(42).short_reports()));
    // Without a seed one is chosen (and printed); it works all the same.
    CHECK(create_model(parse_device_spec("demo")) != nullptr);
    CHECK_THROWS_AS(create_model(parse_device_spec("demo:seed=x")), SpecError);
    CHECK_THROWS_AS(create_model(parse_device_spec("demo:speed=full")), SpecError);
}
