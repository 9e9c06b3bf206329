// Unit tests of the functional-test harness: if these helpers were wrong,
// the functional tests could pass or fail for the wrong reasons.
#include "gdb_session.hh"
#include "http_server.hh"
#include "process.hh"
#include "symbols.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

TEST_CASE("shell_join quotes only what needs quoting", "[harness]")
{
    CHECK(shell_join({"qemu", "-m", "256"}) == "qemu -m 256");
    CHECK(shell_join({"-append", "console=ttyS0 quiet"}) ==
          "-append 'console=ttyS0 quiet'");
    CHECK(shell_join({"it's"}) == "'it'\\''s'");
    CHECK(shell_join({""}) == "''");
}

TEST_CASE("tail_lines keeps the last lines", "[harness]")
{
    CHECK(tail_lines("a\nb\nc\n", 2) == "b\nc\n");
    CHECK(tail_lines("a\nb\nc", 1) == "c");
    CHECK(tail_lines("a\nb\n", 5) == "a\nb\n");
    CHECK(tail_lines("", 3) == "");
}

TEST_CASE("hashes distinguish contents and lengths", "[harness]")
{
    CHECK(hash_bytes("abc") == hash_bytes("abc"));
    CHECK(hash_bytes("abc") != hash_bytes("abd"));
    CHECK(hash_bytes(std::string(8, '\0')) != hash_bytes(std::string(9, '\0')));
    TempDir t("hash");
    write_file(t.path() + "/f", "hello world");
    CHECK(hash_file(t.path() + "/f") == hash_bytes("hello world"));
    CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
    CHECK(hex(31) == "0x1f");
    CHECK(hex(0xffffffff81000000ULL) == "0xffffffff81000000");
}

TEST_CASE("symbols come from System.map or guest kallsyms lines", "[harness]")
{
    auto m = SymbolMap::from_guest_output(
        "noise\nREWIND-SYM ffffffff81000000 T start\n"
        "REWIND-SYM ffffffff81000100 t helper\n"
        "REWIND-SYM ffffffff82000000 D system_state\nREWIND-SYM zz T bad\n");
    CHECK(m.address("start") == 0xffffffff81000000ULL);
    CHECK(m.address("system_state") == 0xffffffff82000000ULL);
    CHECK_FALSE(m.find("bad"));
    CHECK_THROWS(m.address("missing"));
    CHECK(m.function_at(0xffffffff81000010ULL) == "start");
    CHECK(m.function_at(0xffffffff81000100ULL) == "helper");
    CHECK(m.describe(0xffffffff81000104ULL) == "helper+0x4");
    CHECK(m.function_at(0x1000) == "");
}

TEST_CASE("processes are waited for with a deadline and killed", "[harness]")
{
    auto ok = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10s);
    CHECK(ok.status.exited);
    CHECK(ok.status.code == 3);
    CHECK(ok.output.find("out") != std::string::npos);
    CHECK(ok.output.find("err") != std::string::npos);
    CHECK_FALSE(ok.timed_out);

    auto slow = run_command({"sleep", "30"}, 200ms);
    CHECK(slow.timed_out);
    CHECK_FALSE(slow.status.exited);

    auto missing = run_command({"/nonexistent/program"}, 5s);
    CHECK(missing.status.code == 127);
}

TEST_CASE("the HTTP server serves its payload to a real client", "[harness]")
{
    std::string payload = random_bytes(100000);
    HttpServer server(payload);
    TempDir t("http");
    // A raw HTTP/1.0 exchange through bash's /dev/tcp, then strip the head.
    auto r = run_command({"bash", "-c",
                          "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(server.port()) +
                          "; printf 'GET /payload HTTP/1.0\\r\\n\\r\\n' >&3;"
                          " cat <&3 > " + t.path() + "/resp"}, 10s);
    REQUIRE(r.status.code == 0);
    std::string resp = read_file(t.path() + "/resp");
    auto body = resp.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    CHECK(resp.substr(body + 4) == payload);
    CHECK(resp.rfind("HTTP/1.0 200", 0) == 0);
    CHECK(server.requests_served() == 1);
}

TEST_CASE("random inputs differ between calls", "[harness]")
{
    CHECK(random_bytes(32) != random_bytes(32));
    auto t = random_token(40);
    CHECK(t.size() == 40);
    CHECK(t.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") == std::string::npos);
}

TEST_CASE("MI c-strings are decoded", "[harness]")
{
    CHECK(mi_unquote(R"("Breakpoint 1 at 0x10\n")") == "Breakpoint 1 at 0x10\n");
    CHECK(mi_unquote(R"("a \"quoted\" \\ word\t")") == "a \"quoted\" \\ word\t");
    CHECK(mi_unquote(R"("\101\102")") == "AB");
    CHECK(mi_unquote(R"("")") == "");
}
