#include "command_line.hh"

#include "device_registry.hh"

#include <iostream>

namespace qemu_rewind::usbdev {

std::optional<std::string> OptionReader::next()
{
    if (++i_ >= argc_) {
        return std::nullopt;
    }
    std::string word = argv_[i_];
    if (word == "--") {
        ++i_;
        return std::nullopt;
    }
    return word;
}

std::string OptionReader::value(const std::string &option)
{
    if (i_ + 1 >= argc_) {
        throw UsageError(option + " needs a value");
    }
    return argv_[++i_];
}

std::vector<std::string> OptionReader::command()
{
    std::vector<std::string> words;
    for (int i = i_; i < argc_; ++i) {
        words.push_back(argv_[i]);
    }
    return words;
}

int run_program(const std::string &program, void (*print_usage)(std::ostream &),
                const std::function<void()> &parse, const std::function<int()> &run,
                int failure_status)
{
    try {
        parse();
    } catch (const UsageError &e) {
        std::cerr << program << ": " << e.what() << "\n";
        print_usage(std::cerr);
        return 2;
    }
    try {
        return run();
    } catch (const SpecError &e) {
        std::cerr << program << ": " << e.what() << "\n";
        return 2;
    } catch (const UsageError &e) {
        std::cerr << program << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception &e) {
        std::cerr << program << ": " << e.what() << "\n";
        return failure_status;
    }
}

}  // namespace qemu_rewind::usbdev
