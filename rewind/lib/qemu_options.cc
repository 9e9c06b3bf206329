#include "qemu_options.hh"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace qemu_rewind {

namespace {

// QEMU 10.0 options that take no argument (qemu-options.hx, HAS_ARG absent).
constexpr std::array<std::string_view, 33> kFlags = {
    "S", "s", "snapshot", "nographic", "no-reboot", "no-shutdown", "enable-kvm", "daemonize",
    "nodefaults", "no-user-config", "no-hpet", "no-acpi", "full-screen", "version", "h", "help",
    "preconfig", "win2k-hack", "no-fd-bootchk", "only-migratable", "enable-sync-profile", "perfmap",
    "jitdump", "semihosting", "alt-grab", "ctrl-grab", "no-quit", "portrait", "old-param", "singlestep",
    "xen-attach", "enable-fips", "no-frame",
};

bool is_flag(std::string_view name) { return std::find(kFlags.begin(), kFlags.end(), name) != kFlags.end(); }

}  // namespace

std::vector<QemuOption> split_qemu_options(const std::vector<std::string>& args) {
    std::vector<QemuOption> options;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg.size() < 2 || arg[0] != '-') {
            throw std::invalid_argument("'" + arg + "' is not a QEMU option (a disk image needs -drive or -hda)");
        }
        std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
        if (is_flag(name)) {
            options.push_back({name, std::nullopt});
            continue;
        }
        if (i + 1 >= args.size()) {
            throw std::invalid_argument("-" + name + " needs a value");
        }
        options.push_back({name, args[++i]});
    }
    return options;
}

std::vector<std::string> join_qemu_options(const std::vector<QemuOption>& options) {
    std::vector<std::string> args;
    for (const auto& o : options) {
        args.push_back("-" + o.name);
        if (o.value) {
            args.push_back(*o.value);
        }
    }
    return args;
}

KeyValueList KeyValueList::parse(std::string_view text) {
    KeyValueList list;
    std::vector<std::string> parts(1);
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == ',') {
            if (i + 1 < text.size() && text[i + 1] == ',') {
                parts.back().push_back(',');
                ++i;
            } else {
                parts.emplace_back();
            }
        } else {
            parts.back().push_back(text[i]);
        }
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::string& part = parts[i];
        if (part.empty() && parts.size() == 1) {
            break;
        }
        const auto eq = part.find('=');
        if (eq == std::string::npos) {
            if (i == 0) {
                list.items_.emplace_back("", part);
            } else {
                list.items_.emplace_back(part, "on");
            }
        } else {
            list.items_.emplace_back(part.substr(0, eq), part.substr(eq + 1));
        }
    }
    return list;
}

std::string escape_option_value(std::string_view value) {
    std::string out;
    for (char c : value) {
        out.push_back(c);
        if (c == ',') {
            out.push_back(',');
        }
    }
    return out;
}

std::string KeyValueList::str() const {
    std::string out;
    for (const auto& [key, value] : items_) {
        if (!out.empty()) {
            out.push_back(',');
        }
        if (!key.empty()) {
            out += key + "=";
        }
        out += escape_option_value(value);
    }
    return out;
}

std::optional<std::string> KeyValueList::get(std::string_view key) const {
    for (const auto& [k, v] : items_) {
        if (k == key) {
            return v;
        }
    }
    return std::nullopt;
}

std::string KeyValueList::implied() const {
    return !items_.empty() && items_.front().first.empty() ? items_.front().second : std::string();
}

void KeyValueList::set(std::string_view key, std::string value) {
    for (auto& [k, v] : items_) {
        if (k == key) {
            v = std::move(value);
            return;
        }
    }
    items_.emplace_back(std::string(key), std::move(value));
}

void KeyValueList::erase(std::string_view key) {
    std::erase_if(items_, [&](const auto& item) { return item.first == key; });
}

}  // namespace qemu_rewind
