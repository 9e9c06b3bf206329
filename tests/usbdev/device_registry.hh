// Device kinds for `rewind-usbdev --device KIND[:key=value,...]`.
// A model registers its kind from its own .cc file with a namespace-scope
//
//   static const ModelRegistration registration{
//       "keyboard", "keyboard[:text=STRING]  a HID boot keyboard ...",
//       [](const DeviceSpec &spec) { return std::make_unique<HidKeyboard>(spec); }};
//
// (the model sources are linked whole into rewind-usbdev, so the
// registration always runs). A factory throws SpecError for bad options.
#pragma once

#include "usb_device_model.hh"

#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace qemu_rewind::usbdev {

// A bad --device argument: rewind-usbdev prints it and exits with status 2.
class SpecError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A parsed "KIND:key=value,key2=value2" (a key without '=' has value "").
struct DeviceSpec {
    std::string text;                            // as given
    std::string kind;
    std::map<std::string, std::string> options;

    // The option's value, or `fallback` when absent.
    std::string get(const std::string &key, const std::string &fallback = "") const;
    // Throws SpecError if the option is absent.
    std::string require(const std::string &key) const;
    // A number (decimal or 0x hex); throws SpecError if malformed.
    std::uint64_t get_number(const std::string &key, std::uint64_t fallback) const;
    // Throws SpecError naming the first option not in `known`.
    void allow_only(const std::vector<std::string> &known) const;
    // The "seed" option, or a random seed, printed to stderr so that the
    // run can be repeated with seed=N.
    std::uint64_t seed_or_random() const;
};

DeviceSpec parse_device_spec(std::string_view text);   // throws SpecError

using ModelFactory =
    std::function<std::unique_ptr<UsbDeviceModel>(const DeviceSpec &)>;

struct ModelRegistration {
    ModelRegistration(std::string kind, std::string usage, ModelFactory factory);
};

// Builds the model for a spec; throws SpecError for an unknown kind or
// bad options.
std::unique_ptr<UsbDeviceModel> create_model(const DeviceSpec &spec);
// One usage line per registered kind, sorted, for --help.
std::vector<std::string> model_usages();

}  // namespace qemu_rewind::usbdev
