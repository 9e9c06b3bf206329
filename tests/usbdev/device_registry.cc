#include "device_registry.hh"

#include <algorithm>
#include <iostream>
#include <random>

namespace qemu_rewind::usbdev {

namespace {

struct Entry {
    std::string usage;
    ModelFactory factory;
};

// Function-local so registrations from other files' static initialisers
// find it constructed.
std::map<std::string, Entry> &registry()
{
    static std::map<std::string, Entry> kinds;
    return kinds;
}

}  // namespace

std::string DeviceSpec::get(const std::string &key, const std::string &fallback) const
{
    auto it = options.find(key);
    return it == options.end() ? fallback : it->second;
}

std::string DeviceSpec::require(const std::string &key) const
{
    auto it = options.find(key);
    if (it == options.end()) {
        throw SpecError("--device " + text + ": missing option '" + key + "='");
    }
    return it->second;
}

std::uint64_t DeviceSpec::seed_or_random() const
{
    if (options.count("seed")) {
        return get_number("seed", 0);
    }
    std::random_device rd;
    std::uint64_t seed = (static_cast<std::uint64_t>(rd()) << 32) | rd();
    std::cerr << "rewind-usbdev: --device " << text << ": seed=" << seed << "\n";
    return seed;
}

std::uint64_t DeviceSpec::get_number(const std::string &key, std::uint64_t fallback) const
{
    auto it = options.find(key);
    if (it == options.end()) {
        return fallback;
    }
    const std::string &v = it->second;
    try {
        std::size_t used = 0;
        std::uint64_t n = std::stoull(v, &used, 0);
        if (used == v.size() && !v.empty() && v[0] != '-') {
            return n;
        }
    } catch (const std::exception &) {
    }
    throw SpecError("--device " + text + ": option '" + key + "' is not a number: '" +
                    v + "'");
}

void DeviceSpec::allow_only(const std::vector<std::string> &known) const
{
    for (const auto &[key, value] : options) {
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            std::string list;
            for (const auto &k : known) {
                list += (list.empty() ? "" : ", ") + k;
            }
            throw SpecError("--device " + text + ": unknown option '" + key +
                            "' for " + kind + " (known: " +
                            (list.empty() ? "none" : list) + ")");
        }
    }
}

DeviceSpec parse_device_spec(std::string_view text)
{
    DeviceSpec spec;
    spec.text = std::string(text);
    auto colon = text.find(':');
    spec.kind = std::string(text.substr(0, colon));
    if (spec.kind.empty()) {
        throw SpecError("--device '" + spec.text + "': no device kind before ':'");
    }
    if (colon == std::string_view::npos) {
        return spec;
    }
    std::string_view rest = text.substr(colon + 1);
    while (!rest.empty()) {
        auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        if (item.empty()) {
            continue;
        }
        auto eq = item.find('=');
        std::string key(item.substr(0, eq));
        std::string value = eq == std::string_view::npos ? "" : std::string(item.substr(eq + 1));
        if (key.empty()) {
            throw SpecError("--device '" + spec.text + "': empty option name");
        }
        if (!spec.options.emplace(key, value).second) {
            throw SpecError("--device '" + spec.text + "': option '" + key +
                            "' given twice");
        }
    }
    return spec;
}

ModelRegistration::ModelRegistration(std::string kind, std::string usage,
                                     ModelFactory factory)
{
    registry()[std::move(kind)] = Entry{std::move(usage), std::move(factory)};
}

std::unique_ptr<UsbDeviceModel> create_model(const DeviceSpec &spec)
{
    auto it = registry().find(spec.kind);
    if (it == registry().end()) {
        std::string kinds;
        for (const auto &[k, e] : registry()) {
            kinds += (kinds.empty() ? "" : ", ") + k;
        }
        throw SpecError("--device " + spec.text + ": unknown device kind '" +
                        spec.kind + "' (known: " + kinds + ")");
    }
    return it->second.factory(spec);
}

std::vector<std::string> model_usages()
{
    std::vector<std::string> out;
    for (const auto &[k, e] : registry()) {
        out.push_back(e.usage);
    }
    return out;
}

}  // namespace qemu_rewind::usbdev
