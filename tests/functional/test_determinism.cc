// Replays must not depend on host timing: replay one recording several
// times while another process keeps a core busy; every replay must match.
#include "process.hh"
#include "record_replay.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>
#include <cstdlib>
#include <filesystem>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

TEST_CASE("load: repeated replays under CPU load all match the recording",
          "[load][replay]")
{
    const int replays = std::max(1, std::atoi(env_or("REWIND_LOAD_REPLAYS", "3").c_str()));
    TempDir dir("load");
    Scenario s{"boot", "", {}};
    std::string log = dir.path() + "/log.bin";
    std::filesystem::create_directories(dir.path() + "/record");
    RunResult rec = run_to_poweroff(make_config(s, RrMode::Record, log),
                                    dir.path() + "/record", 600s);

    Process::Options o;
    o.stdout_path = dir.path() + "/burner.out";
    Process burner = Process::spawn({"sh", "-c", "while :; do :; done"}, o);

    for (int i = 0; i < replays; ++i) {
        std::string d = dir.path() + "/replay" + std::to_string(i);
        std::filesystem::create_directories(d);
        RunResult rep = run_to_poweroff(make_config(s, RrMode::Replay, log), d, 900s);
        INFO("replay " << i + 1 << " of " << replays << ":\n" << rep.diagnostics);
        INFO("record run:\n" << rec.diagnostics);
        CHECK(rep.serial == rec.serial);
        CHECK(rep.icount == rec.icount);
        CHECK(rep.ram_hash == rec.ram_hash);
    }
    burner.terminate();
}
