// QEMU's command-line syntax: which options take an argument, and the
// "key=value,key=value" lists most of them take (",," is a literal comma).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qemu_rewind {

// One option of a QEMU command line: "-drive" "file=x" -> {"drive", "file=x"}.
struct QemuOption {
    std::string name;                 // without dashes
    std::optional<std::string> value;  // nullopt for flags (-S, -no-reboot)
};

// Splits QEMU arguments (without the binary) into options. Accepts "-opt"
// and "--opt". Throws std::invalid_argument for a bare word or a missing
// value, naming it.
std::vector<QemuOption> split_qemu_options(const std::vector<std::string>& args);
// Back to arguments ("-name", value).
std::vector<std::string> join_qemu_options(const std::vector<QemuOption>& options);

// A "key=value,..." list. An item without '=' is kept with an empty key
// when it comes first (the implied key: "-netdev user,...", "-chardev
// file,...") and as key=item, value "on" otherwise ("server" = server=on).
class KeyValueList {
public:
    KeyValueList() = default;
    static KeyValueList parse(std::string_view text);
    [[nodiscard]] std::string str() const;

    [[nodiscard]] std::optional<std::string> get(std::string_view key) const;
    [[nodiscard]] bool has(std::string_view key) const { return get(key).has_value(); }
    // The implied first item ("user" in "user,id=n0"), or "".
    [[nodiscard]] std::string implied() const;
    void set(std::string_view key, std::string value);  // replaces or appends
    void erase(std::string_view key);
    [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }
    void append(std::string key, std::string value) { items_.emplace_back(std::move(key), std::move(value)); }

private:
    std::vector<std::pair<std::string, std::string>> items_;  // key "" = implied
};

// ",," for every comma: a value inside a key=value list.
std::string escape_option_value(std::string_view value);

}  // namespace qemu_rewind
