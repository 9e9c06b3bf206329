// The command line shared by rewind-usbdev and rewind-usbredir:
//   PROGRAM OPTION... [-- COMMAND ARGS...]
// and what their main() does with the errors.
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace qemu_rewind::usbdev {

// A wrong command line (the message says what is wrong): exit status 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Walks argv: options up to "--", then the command.
class OptionReader {
public:
    OptionReader(int argc, char **argv) : argc_(argc), argv_(argv) {}
    // The next option, or nullopt at "--" or at the end.
    std::optional<std::string> next();
    // The word after option; throws UsageError if there is none.
    std::string value(const std::string &option);
    // What follows "--" (call once next() has given nullopt).
    std::vector<std::string> command();

private:
    int argc_;
    char **argv_;
    int i_ = 0;
};

// main()'s error handling: a UsageError from parse prints its message and
// the usage on stderr (exit 2); from run, a UsageError or a SpecError (bad
// device) prints its message (exit 2), any other exception too, with exit
// status failure_status. Messages start with "program: ".
int run_program(const std::string &program, void (*print_usage)(std::ostream &),
                const std::function<void()> &parse, const std::function<int()> &run,
                int failure_status);

}  // namespace qemu_rewind::usbdev
