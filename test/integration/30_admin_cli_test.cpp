// 30: the administrative commands of the pulsegate binary: `init`, `backup`,
// `restore` (DESIGN.md, Configuration and command line; Storage, Backups).
// Runs $PULSEGATE_BIN in temporary data dirs; no broker is started.
#include <doctest/doctest.h>

#include "test/notify_receiver.hpp"
#include "test/temp_dir.hpp"

#include "harness.hpp"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

using namespace pulsegate::itest;
namespace fs = std::filesystem;

namespace {

std::string pulsegate_bin() {
    if (const char* p = std::getenv("PULSEGATE_BIN"); p != nullptr && *p != '\0')
        return p;
#ifdef MESON_BUILD_ROOT
    return std::string{MESON_BUILD_ROOT} + "/daemon/pulsegate";
#else
    return "pulsegate";
#endif
}

using pulsegate::test::temp_dir;

// Runs `pulsegate ARGS...`; argon2id hashing on a loaded machine can take a
// while, hence the generous deadline.
process_result run_pulsegate(std::vector<std::string> args) {
    args.insert(args.begin(), pulsegate_bin());
    auto r = run_process(std::move(args), ms{60000});
    REQUIRE_MESSAGE(r.exit_code.has_value(), "pulsegate did not exit: " << r.output);
    return r;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// An flock on the data dir's lock file, as a running `serve` holds it.
struct held_lock {
    int fd = -1;
    explicit held_lock(const fs::path& data_dir) {
        fd = ::open((data_dir / "pulsegate.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    }
    ~held_lock() { ::close(fd); }
    held_lock(const held_lock&) = delete;
    held_lock& operator=(const held_lock&) = delete;
};

// An initialised data dir.
fs::path init_data_dir(const temp_dir& t, const std::string& name = "data") {
    auto dir = t.path / name;
    auto r = run_pulsegate({"init", "--data-dir", dir.string()});
    REQUIRE_MESSAGE(*r.exit_code == 0, r.output);
    return dir;
}

} // namespace

TEST_CASE("init creates the data dir, schema and admin, and prints a generated password once") {
    temp_dir t;
    auto dir = t.path / "nested" / "data";
    auto r = run_pulsegate({"init", "--data-dir", dir.string()});
    CHECK_MESSAGE(*r.exit_code == 0, r.output);
    std::smatch m;
    const std::regex pw_line("admin password: ([A-Za-z0-9]+)\n");
    REQUIRE_MESSAGE(std::regex_search(r.output, m, pw_line), r.output);
    const std::string password = m[1];
    CHECK(password.size() == 20);
    CHECK(password.find_first_of("0O1lI") == std::string::npos);
    CHECK(contains(r.output, "will not be shown again"));
    CHECK(fs::is_regular_file(dir / "state.db"));
    CHECK(fs::is_directory(dir / "telemetry"));
    CHECK((fs::status(dir).permissions() & fs::perms::all) == fs::perms::owner_all);
    // The password itself is not stored: only its argon2id hash.
    CHECK_FALSE(contains(read_file(dir / "state.db"), password));
    CHECK(contains(read_file(dir / "state.db"), "$argon2id$"));

    SUBCASE("a second init says so and changes nothing") {
        const auto before = read_file(dir / "state.db");
        auto again = run_pulsegate({"init", "--data-dir", dir.string()});
        CHECK_MESSAGE(*again.exit_code == 0, again.output);
        CHECK(contains(again.output, "already initialised"));
        CHECK_FALSE(contains(again.output, "admin password"));
        CHECK(read_file(dir / "state.db") == before);
        // The read-only probe leaves no -wal/-shm files behind.
        CHECK_FALSE(fs::exists(dir / "state.db-wal"));
        CHECK_FALSE(fs::exists(dir / "state.db-shm"));
    }
}

TEST_CASE("init --admin-password-file: a short password is refused before anything is created") {
    temp_dir t;
    auto dir = t.path / "data";
    auto pw = t.path / "pw.txt";
    write_file(pw, "short\n");
    auto r = run_pulsegate({"init", "--data-dir", dir.string(), "--admin-password-file", pw.string()});
    CHECK(*r.exit_code == 1);
    CHECK_MESSAGE(contains(r.output, "at least 8 characters"), r.output);
    CHECK(contains(r.output, pw.string()));
    CHECK_FALSE(fs::exists(dir));

    auto missing = run_pulsegate({"init", "--data-dir", dir.string(), "--admin-password-file", (t.path / "nope").string()});
    CHECK(*missing.exit_code == 1);
    CHECK_MESSAGE(contains(missing.output, "cannot read --admin-password-file"), missing.output);
    CHECK_FALSE(fs::exists(dir));

    write_file(pw, "correct horse battery\nsecond line ignored\n");
    auto ok = run_pulsegate({"init", "--data-dir", dir.string(), "--admin-password-file", pw.string()});
    CHECK_MESSAGE(*ok.exit_code == 0, ok.output);
    CHECK_FALSE(contains(ok.output, "correct horse"));
    CHECK(fs::is_regular_file(dir / "state.db"));
}

TEST_CASE("init takes the data dir from the configuration file's [storage] data_dir") {
    temp_dir t;
    auto dir = t.path / "from-config";
    auto cfg = t.path / "pulsegate.toml";
    write_file(cfg, "[storage]\ndata_dir = \"" + dir.string() + "\"\n");
    auto r = run_pulsegate({"init", "-c", cfg.string()});
    CHECK_MESSAGE(*r.exit_code == 0, r.output);
    CHECK(fs::is_regular_file(dir / "state.db"));

    write_file(cfg, "[storage]\nno_such_key = 1\n");
    auto bad = run_pulsegate({"init", "--config", cfg.string()});
    CHECK(*bad.exit_code == 1);
    CHECK_MESSAGE(contains(bad.output, "no_such_key"), bad.output);
}

TEST_CASE("backup writes state.db, telemetry/ and manifest.json; refuses a non-empty target") {
    temp_dir t;
    auto dir = init_data_dir(t);
    auto dest = t.path / "backup-1";
    auto r = run_pulsegate({"backup", dest.string(), "--data-dir", dir.string()});
    CHECK_MESSAGE(*r.exit_code == 0, r.output);
    CHECK(fs::is_regular_file(dest / "state.db"));
    CHECK(fs::is_directory(dest / "telemetry"));
    REQUIRE(fs::is_regular_file(dest / "manifest.json"));
    const auto manifest = read_file(dest / "manifest.json");
    CHECK(contains(manifest, "\"format\":\"pulsegate-backup\""));
    CHECK(contains(manifest, "\"schema_version\":"));
    CHECK(contains(manifest, "\"pulsegate_version\":"));
    CHECK(contains(manifest, "\"created_at\":"));
    CHECK(contains(r.output, "state.db"));
    CHECK(contains(r.output, "manifest.json"));
    CHECK_FALSE(fs::exists(dest / "state.db-wal"));

    // An existing empty directory is fine; a non-empty one is refused.
    auto empty = t.path / "empty";
    fs::create_directories(empty);
    auto into_empty = run_pulsegate({"backup", empty.string(), "--data-dir", dir.string()});
    CHECK_MESSAGE(*into_empty.exit_code == 0, into_empty.output);
    auto again = run_pulsegate({"backup", dest.string(), "--data-dir", dir.string()});
    CHECK(*again.exit_code == 1);
    CHECK_MESSAGE(contains(again.output, "not an empty directory"), again.output);
    CHECK(read_file(dest / "manifest.json") == manifest);

    // Nothing to back up.
    auto none = run_pulsegate({"backup", (t.path / "backup-2").string(), "--data-dir", (t.path / "nothing").string()});
    CHECK(*none.exit_code == 1);
    CHECK_MESSAGE(contains(none.output, "not an initialised data dir"), none.output);
    CHECK_FALSE(fs::exists(t.path / "backup-2"));

    // Online: a running process holding the data dir does not stop a backup.
    held_lock lock(dir);
    auto online = run_pulsegate({"backup", (t.path / "backup-3").string(), "--data-dir", dir.string()});
    CHECK_MESSAGE(*online.exit_code == 0, online.output);
}

TEST_CASE("restore puts a backup into another data dir, keeping what was there aside") {
    temp_dir t;
    auto dir = init_data_dir(t);
    auto backup = t.path / "backup";
    REQUIRE(*run_pulsegate({"backup", backup.string(), "--data-dir", dir.string()}).exit_code == 0);

    auto other = t.path / "other";
    auto r = run_pulsegate({"restore", backup.string(), "--data-dir", other.string()});
    CHECK_MESSAGE(*r.exit_code == 0, r.output);
    CHECK(fs::is_regular_file(other / "state.db"));
    CHECK(fs::is_directory(other / "telemetry"));
    CHECK(contains(r.output, "restored state.db"));
    // The admin came along: the restored dir counts as initialised.
    auto init_again = run_pulsegate({"init", "--data-dir", other.string()});
    CHECK(*init_again.exit_code == 0);
    CHECK_MESSAGE(contains(init_again.output, "already initialised"), init_again.output);

    // Restoring over existing state moves it aside, never deletes it.
    write_file(other / "telemetry" / "marker", "old");
    auto over = run_pulsegate({"restore", backup.string(), "--data-dir", other.string()});
    CHECK_MESSAGE(*over.exit_code == 0, over.output);
    CHECK(contains(over.output, "pre-restore-"));
    std::vector<fs::path> aside;
    for (const auto& e : fs::directory_iterator(other))
        if (e.path().filename().string().starts_with("pre-restore-"))
            aside.push_back(e.path());
    REQUIRE(aside.size() == 1);
    CHECK(fs::is_regular_file(aside[0] / "state.db"));
    CHECK(read_file(aside[0] / "telemetry" / "marker") == "old");
    CHECK_FALSE(fs::exists(other / "telemetry" / "marker"));
    CHECK_FALSE(fs::exists(other / ".restore-staging"));
}

TEST_CASE("restore refuses what is not a complete, readable backup, and changes nothing") {
    temp_dir t;
    auto dir = init_data_dir(t);
    const auto before = read_file(dir / "state.db");

    SUBCASE("a directory without a manifest") {
        auto junk = t.path / "junk";
        fs::create_directories(junk);
        write_file(junk / "notes.txt", "hello");
        auto r = run_pulsegate({"restore", junk.string(), "--data-dir", dir.string()});
        CHECK(*r.exit_code == 1);
        CHECK_MESSAGE(contains(r.output, "not a pulsegate backup"), r.output);
    }
    SUBCASE("a missing directory") {
        auto r = run_pulsegate({"restore", (t.path / "nope").string(), "--data-dir", dir.string()});
        CHECK(*r.exit_code == 1);
        CHECK_MESSAGE(contains(r.output, "is not a directory"), r.output);
    }
    SUBCASE("a backup from a newer schema") {
        auto backup = t.path / "backup";
        REQUIRE(*run_pulsegate({"backup", backup.string(), "--data-dir", dir.string()}).exit_code == 0);
        auto manifest = read_file(backup / "manifest.json");
        manifest = std::regex_replace(manifest, std::regex("\"schema_version\":[0-9]+"), "\"schema_version\":999");
        write_file(backup / "manifest.json", manifest);
        auto r = run_pulsegate({"restore", backup.string(), "--data-dir", dir.string()});
        CHECK(*r.exit_code == 1);
        CHECK_MESSAGE(contains(r.output, "newer pulsegate"), r.output);
    }
    SUBCASE("a backup whose state.db is not a database") {
        auto backup = t.path / "backup";
        REQUIRE(*run_pulsegate({"backup", backup.string(), "--data-dir", dir.string()}).exit_code == 0);
        write_file(backup / "state.db", std::string(8192, 'x'));
        auto r = run_pulsegate({"restore", backup.string(), "--data-dir", dir.string()});
        CHECK(*r.exit_code == 1);
        CHECK_MESSAGE(contains(r.output, "not a usable backup"), r.output);
    }
    CHECK(read_file(dir / "state.db") == before);
    for (const auto& e : fs::directory_iterator(dir))
        CHECK_FALSE(e.path().filename().string().starts_with("pre-restore-"));
}

TEST_CASE("restore refuses while the data dir is locked by a running pulsegate") {
    temp_dir t;
    auto dir = init_data_dir(t);
    auto backup = t.path / "backup";
    REQUIRE(*run_pulsegate({"backup", backup.string(), "--data-dir", dir.string()}).exit_code == 0);
    const auto before = read_file(dir / "state.db");
    {
        held_lock lock(dir);
        auto r = run_pulsegate({"restore", backup.string(), "--data-dir", dir.string()});
        CHECK(*r.exit_code == 1);
        CHECK_MESSAGE(contains(r.output, "in use by another pulsegate process"), r.output);
        CHECK(contains(r.output, "stop it first"));
        CHECK(read_file(dir / "state.db") == before);
    }
    auto r = run_pulsegate({"restore", backup.string(), "--data-dir", dir.string()});
    CHECK_MESSAGE(*r.exit_code == 0, r.output);
}

TEST_CASE("usage errors name the subcommand") {
    auto r = run_pulsegate({"backup"});
    CHECK(*r.exit_code == 2);
    CHECK_MESSAGE(contains(r.output, "DIR"), r.output);
    auto help = run_pulsegate({"--help"});
    CHECK(*help.exit_code == 0);
    for (const char* cmd : {"init", "backup", "restore"})
        CHECK(contains(help.output, cmd));
}

TEST_CASE("backup is online: a serving daemon's database and telemetry are copied, and the copy restores") {
    if (!is_pulsegate())
        return; // pulsegate's own commands
    broker_process b;
    {
        mosq_client c{"dev-1"};
        REQUIRE(c.connect(b.port()) == 0);
        // QoS 1 is acknowledged once the reading is committed (durability "commit").
        for (int i = 0; i < 5; ++i)
            c.publish("d/dev-1/telemetry", "{\"temp_c\": " + std::to_string(20 + i) + "}", 1);
        c.disconnect();
    }
    temp_dir t;
    auto dest = t.path / "online";
    auto r = run_pulsegate({"backup", dest.string(), "--data-dir", b.data_dir()});
    CHECK_MESSAGE(*r.exit_code == 0, r.output);
    CHECK(fs::is_regular_file(dest / "state.db"));
    CHECK(fs::is_regular_file(dest / "telemetry" / "data.mdb"));
    CHECK(contains(read_file(dest / "manifest.json"), "\"telemetry\":\"lmdb\""));
    CHECK(b.running());

    auto restored = t.path / "restored";
    auto rr = run_pulsegate({"restore", dest.string(), "--data-dir", restored.string()});
    CHECK_MESSAGE(*rr.exit_code == 0, rr.output);
    CHECK(fs::is_regular_file(restored / "telemetry" / "data.mdb"));
    // The server key that device secrets and tokens are digested with goes
    // along, unchanged and private.
    REQUIRE(fs::is_regular_file(fs::path(b.data_dir()) / "secret.key"));
    CHECK(read_file(dest / "secret.key") == read_file(fs::path(b.data_dir()) / "secret.key"));
    CHECK(read_file(restored / "secret.key") == read_file(fs::path(b.data_dir()) / "secret.key"));
    CHECK((fs::status(dest / "secret.key").permissions() & (fs::perms::group_all | fs::perms::others_all)) ==
          fs::perms::none);

    // A backup that lost its telemetry is incomplete.
    fs::remove(dest / "telemetry" / "data.mdb");
    auto incomplete = run_pulsegate({"restore", dest.string(), "--data-dir", (t.path / "third").string()});
    CHECK(*incomplete.exit_code == 1);
    CHECK_MESSAGE(contains(incomplete.output, "not a complete backup"), incomplete.output);
}

TEST_CASE("upgrades: serve refuses a data dir written by a newer pulsegate, names both versions, changes nothing") {
    if (!is_pulsegate())
        return; // pulsegate's own data dir
    temp_dir t;
    auto dir = init_data_dir(t);
    // A newer pulsegate's migrations would have raised the schema version.
    auto bump = run_process({"/usr/bin/python3", "-c",
                             "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version=999'); "
                             "c.commit()",
                             (dir / "state.db").string()});
    REQUIRE_MESSAGE(bump.exit_code == 0, bump.output);
    const auto before = read_file(dir / "state.db");
    auto config = t.path / "pulsegate.toml";
    write_file(config, "[mqtt]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\ndata_dir = \"" +
                           dir.string() + "\"\n");
    auto r = run_pulsegate({"serve", "--config", config.string()});
    CHECK(*r.exit_code != 0);
    CHECK_MESSAGE(contains(r.output, "has schema version 999, newer than this pulsegate"), r.output);
    CHECK_MESSAGE(contains(r.output, "left untouched"), r.output);
    CHECK(read_file(dir / "state.db") == before);
}

TEST_CASE("serve speaks systemd's notify protocol: READY=1 once listening, RELOADING=1 then READY=1 around a "
          "SIGHUP, STOPPING=1") {
    if (!is_pulsegate())
        return; // pulsegate's service integration
    temp_dir t;
    pulsegate::test::notify_receiver systemd{(t.path / "notify").string()};
    ::setenv("NOTIFY_SOCKET", systemd.name().c_str(), 1);  // the daemon inherits it at start
    broker_process b;
    ::unsetenv("NOTIFY_SOCKET");

    const auto ready = systemd.receive();
    REQUIRE(ready);
    CHECK_MESSAGE(ready->starts_with("READY=1\nSTATUS=serving mqtt://127.0.0.1:" + std::to_string(b.port())), *ready);
    // Ready means every listener is open: HTTP answers at once.
    const auto http = b.http_port();
    CHECK_MESSAGE(contains(*ready, "http://127.0.0.1:" + std::to_string(http)), *ready);
    CHECK(http_get(http, "/healthz").status == 200);

    REQUIRE(::kill(b.pid(), SIGHUP) == 0);
    const auto reloading = systemd.receive();
    REQUIRE(reloading);
    CHECK_MESSAGE(reloading->starts_with("RELOADING=1\nMONOTONIC_USEC="), *reloading);
    CHECK(systemd.receive() == "READY=1");

    b.stop();
    CHECK(systemd.receive() == "STOPPING=1");
}
