// Facts about a QEMU installation that the bundle tools need: its GNU
// build id, its firmware search path, its qemu-img.
#pragma once

#include <string>
#include <vector>

namespace qemu_rewind {

// The ELF note NT_GNU_BUILD_ID of `binary` in hex; "" if it has none or is
// not a 64-bit little-endian ELF file.
std::string elf_build_id(const std::string& binary);

// Where `qemu` looks for firmware ("qemu -L help"), in its order.
std::vector<std::string> qemu_firmware_dirs(const std::string& qemu);

// qemu-img for `qemu`: $REWIND_QEMU_IMG, else qemu-img next to it, else in $PATH.
std::string find_qemu_img(const std::string& qemu);

// $REWIND_QEMU, else "qemu-system-x86_64" from $PATH ("" if none).
std::string default_qemu();

}  // namespace qemu_rewind
