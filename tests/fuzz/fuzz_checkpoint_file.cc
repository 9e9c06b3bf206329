// libFuzzer target: the reader of persisted checkpoint files (FILE.ckpt)
// that `rewind info` uses. Bad input must end in CheckpointFileError.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "checkpoint_file.hh"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    try {
        (void)qemu_rewind::read_checkpoint_file(in, size);
    } catch (const qemu_rewind::CheckpointFileError&) {
    }
    return 0;
}
