#include "qemu_binary.hh"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <elf.h>
#include <unistd.h>

#include "child_process.hh"

namespace qemu_rewind {

namespace {

template <typename T>
bool read_at(std::ifstream& in, std::uint64_t offset, T& value) {
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(reinterpret_cast<char*>(&value), sizeof value);
    return static_cast<bool>(in);
}

}  // namespace

std::string elf_build_id(const std::string& binary) {
    std::ifstream in(binary, std::ios::binary);
    Elf64_Ehdr header{};
    if (!in || !read_at(in, 0, header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
        header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB ||
        header.e_phentsize != sizeof(Elf64_Phdr)) {
        return {};
    }
    for (unsigned i = 0; i < header.e_phnum && i < 256; ++i) {
        Elf64_Phdr ph{};
        if (!read_at(in, header.e_phoff + i * sizeof ph, ph) || ph.p_type != PT_NOTE || ph.p_filesz > (1 << 20)) {
            continue;
        }
        std::string notes(ph.p_filesz, '\0');
        in.seekg(static_cast<std::streamoff>(ph.p_offset));
        if (!in.read(notes.data(), static_cast<std::streamsize>(notes.size()))) {
            continue;
        }
        std::size_t at = 0;
        while (at + sizeof(Elf64_Nhdr) <= notes.size()) {
            Elf64_Nhdr nh{};
            std::memcpy(&nh, notes.data() + at, sizeof nh);
            const std::size_t name_at = at + sizeof nh;
            const std::size_t desc_at = name_at + ((nh.n_namesz + 3) & ~3u);
            const std::size_t next = desc_at + ((nh.n_descsz + 3) & ~3u);
            if (next > notes.size()) {
                break;
            }
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(notes.data() + name_at, "GNU", 4) == 0) {
                static constexpr char kDigits[] = "0123456789abcdef";
                std::string hex;
                for (std::size_t k = 0; k < nh.n_descsz; ++k) {
                    const auto c = static_cast<unsigned char>(notes[desc_at + k]);
                    hex.push_back(kDigits[c >> 4]);
                    hex.push_back(kDigits[c & 15]);
                }
                return hex;
            }
            at = next;
        }
    }
    return {};
}

std::vector<std::string> qemu_firmware_dirs(const std::string& qemu) {
    std::vector<std::string> dirs;
    try {
        const auto r = run_capture({qemu, "-L", "help"});
        std::istringstream lines(r.output);
        std::string line;
        while (std::getline(lines, line)) {
            if (!line.empty() && line.front() == '/') {
                dirs.push_back(line);
            }
        }
    } catch (const std::exception&) {
        // no firmware path: ROMs are then looked up in -L directories only
    }
    return dirs;
}

std::string find_qemu_img(const std::string& qemu) {
    if (const char* env = std::getenv("REWIND_QEMU_IMG"); env && *env) {
        return env;
    }
    const std::string qemu_path = find_in_path(qemu);
    if (!qemu_path.empty()) {
        const auto sibling = std::filesystem::path(qemu_path).parent_path() / "qemu-img";
        if (::access(sibling.c_str(), X_OK) == 0) {
            return sibling;
        }
    }
    return find_in_path("qemu-img");
}

std::string default_qemu() {
    if (const char* env = std::getenv("REWIND_QEMU"); env && *env) {
        return env;
    }
    return find_in_path("qemu-system-x86_64");
}

}  // namespace qemu_rewind
