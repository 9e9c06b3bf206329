#include "mock_testbed.hh"

#include "usb_descriptors.hh"

#include <umockdev.h>

#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace qemu_rewind::usbdev {

namespace {

std::string hex_string(const std::vector<std::uint8_t> &bytes)
{
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    for (auto b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

std::string format(const char *fmt, unsigned a, unsigned b = 0)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, a, b);
    return buf;
}

// sysfs "speed" in Mbit/s, as the kernel writes it.
const char *speed_mbps(Speed s)
{
    switch (s) {
    case Speed::Low: return "1.5";
    case Speed::Full: return "12";
    case Speed::High: return "480";
    case Speed::Super: return "5000";
    }
    return "12";
}

// The attribute text of a version number in BCD ("2.00").
std::string bcd_version(std::uint16_t bcd)
{
    char buf[16];
    std::snprintf(buf, sizeof buf, "%x.%02x", bcd >> 8, bcd & 0xff);
    return buf;
}

}  // namespace

MockTestbed::MockTestbed() : testbed_(umockdev_testbed_new())
{
    if (!testbed_) {
        throw std::runtime_error("cannot create the umockdev testbed");
    }
}

MockTestbed::~MockTestbed()
{
    if (testbed_) {
        g_object_unref(testbed_);   // removes the testbed folder
    }
}

std::string MockTestbed::root_dir() const
{
    gchar *dir = umockdev_testbed_get_root_dir(testbed_);
    std::string out = dir ? dir : "";
    g_free(dir);
    return out;
}

std::string MockTestbed::add_usb_device(const DeviceDescription &d, const UsbAddress &where)
{
    std::string name = format("%u-%u", where.bus, where.port);
    std::string devpath = "/devices/pci0000:00/0000:00:14.0/usb" +
                          std::to_string(where.bus) + "/" + name;
    std::string devname = format("bus/usb/%03u/%03u", where.bus, where.address);
    auto descriptors = sysfs_descriptors(d);
    std::uint8_t config = d.configurations.empty() ? 0 : d.configurations.front().value;
    std::uint16_t vid = d.vendor_id, pid = d.product_id;

    std::ostringstream s;
    s << "P: " << devpath << "\n"
      << "N: " << devname << "=" << hex_string(descriptors) << "\n"
      << "E: DEVNAME=/dev/" << devname << "\n"
      << "E: DEVTYPE=usb_device\n"
      << "E: DRIVER=usb\n"
      << "E: SUBSYSTEM=usb\n"
      << "E: PRODUCT=" << std::hex << vid << "/" << pid << "/" << d.device_version
      << std::dec << "\n"
      << "E: TYPE=" << unsigned(d.device_class) << "/" << unsigned(d.device_subclass)
      << "/" << unsigned(d.device_protocol) << "\n"
      << "E: BUSNUM=" << format("%03u", where.bus) << "\n"
      << "E: DEVNUM=" << format("%03u", where.address) << "\n"
      << "E: MAJOR=189\n"
      << "E: MINOR=" << ((where.bus - 1) * 128 + where.address - 1) << "\n"
      << "A: busnum=" << where.bus << "\n"
      << "A: devnum=" << where.address << "\n"
      << "A: devpath=" << where.port << "\n"
      << "A: speed=" << speed_mbps(d.speed) << "\n"
      << "A: version=" << bcd_version(d.usb_version) << "\n"
      << "A: idVendor=" << format("%04x", vid) << "\n"
      << "A: idProduct=" << format("%04x", pid) << "\n"
      << "A: bcdDevice=" << format("%04x", d.device_version) << "\n"
      << "A: bDeviceClass=" << format("%02x", d.device_class) << "\n"
      << "A: bDeviceSubClass=" << format("%02x", d.device_subclass) << "\n"
      << "A: bDeviceProtocol=" << format("%02x", d.device_protocol) << "\n"
      << "A: bMaxPacketSize0=" << unsigned(d.max_packet_size0) << "\n"
      << "A: bNumConfigurations=" << d.configurations.size() << "\n"
      << "A: bConfigurationValue=" << unsigned(config) << "\n"
      << "A: maxchild=0\n"
      << "H: descriptors=" << hex_string(descriptors) << "\n";
    if (!d.configurations.empty()) {
        std::size_t n = 0;
        for (const auto &i : d.configurations.front().interfaces) {
            n += i.alternate == 0;
        }
        s << "A: bNumInterfaces=" << format("%2u", static_cast<unsigned>(n)) << "\n";
    }
    if (!d.manufacturer.empty()) {
        s << "A: manufacturer=" << d.manufacturer << "\n";
    }
    if (!d.product.empty()) {
        s << "A: product=" << d.product << "\n";
    }
    if (!d.serial.empty()) {
        s << "A: serial=" << d.serial << "\n";
    }
    s << "\n";

    GError *error = nullptr;
    if (!umockdev_testbed_add_from_string(testbed_, s.str().c_str(), &error)) {
        std::string msg = error ? error->message : "unknown error";
        g_clear_error(&error);
        throw std::runtime_error("cannot add " + devpath + " to the testbed: " + msg);
    }
    return "/sys" + devpath;
}

std::string MockTestbed::node_file(const std::string &devnode) const
{
    return root_dir() + devnode;
}

void MockTestbed::set_attribute(const std::string &syspath, const std::string &name,
                                const std::string &value)
{
    umockdev_testbed_set_attribute(testbed_, syspath.c_str(), name.c_str(), value.c_str());
}

void MockTestbed::remove_device(const std::string &syspath)
{
    umockdev_testbed_uevent(testbed_, syspath.c_str(), "remove");
    umockdev_testbed_remove_device(testbed_, syspath.c_str());
}

}  // namespace qemu_rewind::usbdev
