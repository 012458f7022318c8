// storage/state: the SQLite state database (open, WAL, migrations from every
// earlier version, refusal of a newer file), each repository both ways,
// readers running while the writer writes, the online backup, the backup
// checks and the data dir lock. Real files in temporary directories.

#include "storage/state/audit_repository.hpp"
#include "storage/state/backup.hpp"
#include "storage/state/data_dir_lock.hpp"
#include "storage/state/database.hpp"
#include "storage/state/rejected_event_repository.hpp"
#include "storage/state/settings_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace pulsegate::storage::state;

// A failed REQUIRE(result) prints the error's message.
template <class T>
struct doctest::StringMaker<boost::system::result<T, state_error>> {
    static doctest::String convert(const boost::system::result<T, state_error>& r) {
        return r ? "(a value)" : ("error: " + r.error().message).c_str();
    }
};

namespace {

using pulsegate::test::temp_dir;

std::unique_ptr<database> open_db(const fs::path& file, open_mode mode = open_mode::read_write) {
    auto db = database::open({.file = file, .mode = mode});
    REQUIRE_MESSAGE(db.has_value(), (db ? "" : db.error().message));
    return std::move(*db);
}

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Direct SQLite access, for what no repository may do: forging a file
// from the future, looking at raw pragmas.
void raw_exec(const fs::path& file, const char* sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

tenant make_tenant(std::string id) { return {id, "Tenant " + id, 1000, false}; }

new_user make_user(std::string name, user_role role, std::optional<std::string> tenant) {
    return {std::move(tenant), std::move(name), role, "$argon2id$v=19$m=65536,t=2,p=1$fake", 2000};
}

} // namespace

TEST_CASE("a new database is created in WAL mode at the latest schema version, owner-only") {
    temp_dir dir;
    auto file = dir.path / "state.db";
    auto db = open_db(file);
    CHECK(db->schema_version() == database::latest_schema_version());
    CHECK(database::latest_schema_version() >= 2);
    auto mode = db->journal_mode();
    REQUIRE(mode);
    CHECK(*mode == "wal");
    CHECK(fs::exists(file));
    CHECK((fs::status(file).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));

    // Reopening an up-to-date file changes nothing and keeps the data.
    REQUIRE(tenant_repository(*db).create(make_tenant("acme")));
    db.reset();
    auto again = open_db(file);
    CHECK(again->schema_version() == database::latest_schema_version());
    auto t = tenant_repository(*again).get("acme");
    REQUIRE(t);
    CHECK(t->has_value());
}

TEST_CASE("migrations run from every earlier schema version and keep the data") {
    for (int from = 0; from < database::latest_schema_version(); ++from) {
        CAPTURE(from);
        temp_dir dir;
        auto file = dir.path / "state.db";
        {
            auto old = database::open_at_version({.file = file}, from);
            REQUIRE_MESSAGE(old.has_value(), (old ? "" : old.error().message));
            CHECK((*old)->schema_version() == from);
            if (from >= 1) {
                // Writes that version 1 already supports.
                auto& db = **old;
                REQUIRE(tenant_repository(db).create(make_tenant("acme")));
                auto id = user_repository(db).create(make_user("admin", user_role::operator_admin, std::nullopt));
                REQUIRE(id);
                REQUIRE(user_repository(db).create(make_user("alice", user_role::tenant_admin, "acme")));
                REQUIRE(settings_repository(db).set("ui.title", "Plant 7", 3000));
                REQUIRE(audit_repository(db).append({0, 4000, "cli:init", std::nullopt, "user.create", "user:admin", "{}"}));
                rejected_event ev{0, 5000, "acme", "acme/dev-1", "publish", "d/dev-2/telemetry", "not authorized"};
                REQUIRE(rejected_event_repository(db).append({&ev, 1}));
            }
        }
        auto db = open_db(file);
        CHECK(db->schema_version() == database::latest_schema_version());
        if (from >= 1) {
            auto t = tenant_repository(*db).get("acme");
            REQUIRE(t);
            REQUIRE(t->has_value());
            CHECK((*t)->name == "Tenant acme");
            auto admin = user_repository(*db).get_by_name("admin");
            REQUIRE(admin);
            REQUIRE(admin->has_value());
            CHECK((*admin)->role == user_role::operator_admin);
            CHECK_FALSE((*admin)->last_login_at_ms.has_value()); // the column version 2 added
            REQUIRE(user_repository(*db).record_login((*admin)->id, 9000));
            CHECK(user_repository(*db).get((*admin)->id).value()->last_login_at_ms == 9000);
            CHECK(user_repository(*db).count_operator_admins().value() == 1);
            CHECK(settings_repository(*db).get("ui.title").value() == "Plant 7");
            CHECK(audit_repository(*db).list_recent().value().size() == 1);
            CHECK(rejected_event_repository(*db).list_recent().value().size() == 1);
        }
    }
}

TEST_CASE("a database from a newer pulsegate is refused and left untouched") {
    temp_dir dir;
    auto file = dir.path / "state.db";
    open_db(file).reset();
    const int future = database::latest_schema_version() + 5;
    raw_exec(file, ("PRAGMA user_version = " + std::to_string(future)).c_str());
    const auto before = read_bytes(file);

    for (auto mode : {open_mode::read_write, open_mode::read_only}) {
        auto r = database::open({.file = file, .mode = mode});
        REQUIRE_FALSE(r);
        CHECK(r.error().code == state_errc::schema_too_new);
        const auto& msg = r.error().message;
        CHECK(msg.find(file.string()) != std::string::npos);
        CHECK(msg.find("schema version " + std::to_string(future)) != std::string::npos);
        CHECK(msg.find("up to " + std::to_string(database::latest_schema_version())) != std::string::npos);
        CHECK(msg.find("newer pulsegate") != std::string::npos);
        CHECK(msg.find("restore a backup") != std::string::npos);
    }
    CHECK(read_bytes(file) == before);

    auto info = inspect_database_file(file);
    REQUIRE_FALSE(info);
    CHECK(info.error().code == state_errc::schema_too_new);
}

TEST_CASE("a file that is not a database is refused untouched, with its name") {
    temp_dir dir;
    auto file = dir.path / "state.db";
    {
        std::ofstream out(file, std::ios::binary);
        out << std::string(8192, 'x');
    }
    const auto before = read_bytes(file);
    auto r = database::open({.file = file});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == state_errc::not_a_database);
    CHECK(r.error().message.find(file.string()) != std::string::npos);
    CHECK(read_bytes(file) == before);
}

TEST_CASE("read-only mode: needs an existing file, refuses writes, does not migrate") {
    temp_dir dir;
    auto file = dir.path / "state.db";
    auto missing = database::open({.file = file, .mode = open_mode::read_only});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == state_errc::not_found);
    CHECK(missing.error().message.find("pulsegate init") != std::string::npos);
    CHECK_FALSE(fs::exists(file));

    {
        auto v1 = database::open_at_version({.file = file}, 1);
        REQUIRE(v1);
        REQUIRE(tenant_repository(**v1).create(make_tenant("acme")));
    }
    auto ro = open_db(file, open_mode::read_only);
    CHECK(ro->read_only());
    CHECK(ro->schema_version() == 1);
    CHECK(tenant_repository(*ro).list().value().size() == 1);
    auto w = tenant_repository(*ro).create(make_tenant("other"));
    REQUIRE_FALSE(w);
    CHECK(w.error().code == state_errc::read_only);
}

TEST_CASE("tenants: create, get, list; ids checked; duplicates refused") {
    temp_dir dir;
    auto db = open_db(dir.path / "state.db");
    tenant_repository tenants(*db);
    REQUIRE(tenants.create({"beta", "Beta Corp", 20, false}));
    REQUIRE(tenants.create({"acme", "Acme", 10, true}));

    auto got = tenants.get("acme");
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK(**got == tenant{"acme", "Acme", 10, true});
    CHECK_FALSE(tenants.get("nope").value().has_value());

    auto all = tenants.list();
    REQUIRE(all);
    REQUIRE(all->size() == 2);
    CHECK((*all)[0].id == "acme");
    CHECK((*all)[1].id == "beta");

    auto dup = tenants.create({"acme", "Again", 30, false});
    REQUIRE_FALSE(dup);
    CHECK(dup.error().code == state_errc::already_exists);
    CHECK(dup.error().message.find("acme") != std::string::npos);

    for (const std::string& bad : std::vector<std::string>{"", "Acme", "-x", "a b", "a/b", std::string(64, 'a')}) {
        CAPTURE(bad);
        auto r = tenants.create({bad, "x", 0, false});
        REQUIRE_FALSE(r);
        CHECK(r.error().code == state_errc::invalid_argument);
    }
    CHECK(tenants.create({std::string(63, 'a'), "max length", 0, false}));
    CHECK(tenants.list().value().size() == 3);
}

TEST_CASE("users: create, get, list, operator admins; roles and tenants checked") {
    temp_dir dir;
    auto db = open_db(dir.path / "state.db");
    REQUIRE(tenant_repository(*db).create(make_tenant("acme")));
    user_repository users(*db);

    CHECK(users.count_operator_admins().value() == 0);
    auto admin_id = users.create(make_user("admin", user_role::operator_admin, std::nullopt));
    REQUIRE(admin_id);
    auto op_id = users.create(make_user("ops", user_role::operator_, std::nullopt));
    REQUIRE(op_id);
    auto alice_id = users.create(make_user("alice", user_role::tenant_admin, "acme"));
    REQUIRE(alice_id);
    REQUIRE(users.create(make_user("bob", user_role::tenant_viewer, "acme")));
    CHECK(users.count_operator_admins().value() == 1);

    auto admin = users.get_by_name("admin");
    REQUIRE(admin);
    REQUIRE(admin->has_value());
    CHECK((*admin)->id == *admin_id);
    CHECK_FALSE((*admin)->tenant.has_value());
    CHECK((*admin)->role == user_role::operator_admin);
    CHECK((*admin)->password_hash == make_user("", user_role::operator_admin, {}).password_hash);
    CHECK((*admin)->created_at_ms == 2000);
    CHECK_FALSE((*admin)->disabled);

    auto alice = users.get(*alice_id);
    REQUIRE(alice);
    REQUIRE(alice->has_value());
    CHECK((*alice)->tenant == "acme");
    CHECK((*alice)->role == user_role::tenant_admin);
    CHECK_FALSE(users.get(9999).value().has_value());
    CHECK_FALSE(users.get_by_name("nobody").value().has_value());

    auto all = users.list();
    REQUIRE(all);
    REQUIRE(all->size() == 4);
    CHECK((*all)[0].name == "admin"); // operators first
    CHECK((*all)[1].name == "ops");
    auto in_acme = users.list_in_tenant("acme");
    REQUIRE(in_acme);
    REQUIRE(in_acme->size() == 2);
    CHECK((*in_acme)[0].name == "alice");
    CHECK((*in_acme)[1].name == "bob");

    REQUIRE(users.record_login(*alice_id, 12345));
    CHECK(users.get(*alice_id).value()->last_login_at_ms == 12345);
    auto no_user = users.record_login(424242, 1);
    REQUIRE_FALSE(no_user);
    CHECK(no_user.error().code == state_errc::not_found);

    auto dup = users.create(make_user("alice", user_role::tenant_viewer, "acme"));
    REQUIRE_FALSE(dup);
    CHECK(dup.error().code == state_errc::already_exists);
    CHECK(dup.error().message.find("alice") != std::string::npos);

    auto unknown = users.create(make_user("carol", user_role::tenant_viewer, "ghost"));
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().code == state_errc::constraint_violation);
    CHECK(unknown.error().message.find("ghost") != std::string::npos);

    auto op_with_tenant = users.create(make_user("dave", user_role::operator_, "acme"));
    REQUIRE_FALSE(op_with_tenant);
    CHECK(op_with_tenant.error().code == state_errc::invalid_argument);
    auto tenant_user_without = users.create(make_user("erin", user_role::tenant_admin, std::nullopt));
    REQUIRE_FALSE(tenant_user_without);
    CHECK(tenant_user_without.error().code == state_errc::invalid_argument);
    auto no_hash = make_user("frank", user_role::operator_, std::nullopt);
    no_hash.password_hash.clear();
    CHECK(users.create(no_hash).error().code == state_errc::invalid_argument);
    CHECK(users.list().value().size() == 4); // nothing half-written

    for (auto r : {user_role::operator_admin, user_role::operator_, user_role::tenant_admin, user_role::tenant_viewer})
        CHECK(parse_user_role(to_string(r)) == r);
    CHECK(to_string(user_role::operator_) == "operator");
    CHECK_FALSE(parse_user_role("root").has_value());
}

TEST_CASE("settings: get, set, overwrite, list") {
    temp_dir dir;
    auto db = open_db(dir.path / "state.db");
    settings_repository settings(*db);
    CHECK_FALSE(settings.get("a").value().has_value());
    REQUIRE(settings.set("b", "2", 1));
    REQUIRE(settings.set("a", "1", 1));
    REQUIRE(settings.set("a", "one", 2));
    CHECK(settings.get("a").value() == "one");
    auto all = settings.list();
    REQUIRE(all);
    REQUIRE(all->size() == 2);
    CHECK((*all)[0] == std::pair<std::string, std::string>{"a", "one"});
    CHECK((*all)[1] == std::pair<std::string, std::string>{"b", "2"});
    CHECK(settings.set("", "x", 3).error().code == state_errc::invalid_argument);
}

TEST_CASE("audit log: append, newest first, filters and cursor; details must be JSON") {
    temp_dir dir;
    auto db = open_db(dir.path / "state.db");
    audit_repository audit(*db);
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 5; ++i) {
        audit_entry e{0, 100 + i, i % 2 ? "user:alice" : "user:admin",
                      i % 2 ? std::optional<std::string>("acme") : std::nullopt, "tenant.list",
                      "t" + std::to_string(i), R"({"n":)" + std::to_string(i) + "}"};
        auto id = audit.append(e);
        REQUIRE(id);
        ids.push_back(*id);
    }
    auto all = audit.list_recent();
    REQUIRE(all);
    REQUIRE(all->size() == 5);
    CHECK((*all)[0].id == ids[4]);
    CHECK((*all)[0] == audit_entry{ids[4], 104, "user:admin", std::nullopt, "tenant.list", "t4", R"({"n":4})"});
    CHECK((*all)[4].id == ids[0]);

    auto acme = audit.list_recent({.tenant = "acme"});
    REQUIRE(acme);
    REQUIRE(acme->size() == 2);
    CHECK((*acme)[0].target == "t3");
    auto admin = audit.list_recent({.actor = "user:admin"});
    CHECK(admin.value().size() == 3);

    auto page1 = audit.list_recent({.limit = 2});
    REQUIRE(page1.value().size() == 2);
    auto page2 = audit.list_recent({.before_id = page1->back().id, .limit = 2});
    REQUIRE(page2.value().size() == 2);
    CHECK((*page2)[0].id == ids[2]);

    auto bad = audit.append({0, 1, "a", std::nullopt, "x", "", "{not json"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == state_errc::constraint_violation);
    CHECK(bad.error().message.find("details_is_json") != std::string::npos);
    CHECK(bad.error().message.find("json_valid") == std::string::npos); // no SQL in messages
    CHECK(audit.append({0, 1, "", std::nullopt, "x", "", "{}"}).error().code == state_errc::invalid_argument);
    CHECK(audit.list_recent().value().size() == 5);
}

TEST_CASE("rejected events: batch append, newest first, bounded by count and age") {
    temp_dir dir;
    auto db = open_db(dir.path / "state.db");
    rejected_event_repository rejected(*db, {.max_rows = 10, .max_age_ms = 1000});

    std::vector<rejected_event> batch;
    for (int i = 0; i < 8; ++i)
        batch.push_back({0, 10000 + i, i % 2 ? std::optional<std::string>("acme") : std::nullopt, "acme/dev-1",
                         "publish", "d/dev-2/telemetry", "not authorized"});
    REQUIRE(rejected.append(batch));
    auto all = rejected.list_recent();
    REQUIRE(all);
    REQUIRE(all->size() == 8);
    CHECK((*all)[0].at_ms == 10007);
    CHECK((*all)[0].tenant == "acme");
    CHECK((*all)[0].topic == "d/dev-2/telemetry");
    CHECK(rejected.list_recent({.tenant = "acme"}).value().size() == 4);
    CHECK(rejected.list_recent({.limit = 3}).value().size() == 3);

    // 8 more: only the newest 10 stay.
    for (auto& e : batch)
        e.at_ms += 100;
    REQUIRE(rejected.append(batch));
    all = rejected.list_recent();
    REQUIRE(all.value().size() == 10);
    CHECK(all->back().at_ms == 10006);

    // Age: everything more than 1000 ms older than the newest appended goes.
    rejected_event late{0, 20000, std::nullopt, "anonymous", "subscribe", "#", "not authorized"};
    REQUIRE(rejected.append({&late, 1}));
    all = rejected.list_recent();
    REQUIRE(all.value().size() == 1);
    CHECK(all->front().kind == "subscribe");

    auto pruned = rejected.prune(30000);
    REQUIRE(pruned);
    CHECK(*pruned == 1);
    CHECK(rejected.list_recent().value().empty());
}

TEST_CASE("readers on other threads see committed states while the writer writes") {
    temp_dir dir;
    auto db = open_db(dir.path / "state.db");
    constexpr int total = 300;
    std::atomic<bool> done{false};
    std::atomic<int> reader_errors{0};
    std::atomic<int> out_of_order{0};
    std::atomic<long> reads{0};

    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t) {
        readers.emplace_back([&] {
            audit_repository audit(*db);
            std::size_t last = 0;
            auto read_once = [&] {
                auto r = audit.list_recent({.limit = 1000});
                if (!r) {
                    ++reader_errors;
                    return;
                }
                ++reads;
                // Committed entries only ever grow, and a snapshot is
                // contiguous: ids n, n-1, ... 1.
                if (r->size() < last)
                    ++out_of_order;
                last = r->size();
                for (std::size_t i = 0; i < r->size(); ++i)
                    if ((*r)[i].at_ms != static_cast<std::int64_t>(r->size() - i))
                        ++out_of_order;
            };
            while (!done.load())
                read_once();
            read_once();
            if (last != total)
                ++out_of_order;
        });
    }
    audit_repository writer(*db);
    for (int i = 1; i <= total; ++i)
        REQUIRE(writer.append({0, i, "user:w", std::nullopt, "x", "", "{}"}));
    done = true;
    for (auto& r : readers)
        r.join();
    CHECK(reader_errors.load() == 0);
    CHECK(out_of_order.load() == 0);
    CHECK(reads.load() >= 4);
}

TEST_CASE("online backup of a live database is a complete, self-contained, checkable copy") {
    temp_dir dir;
    auto db = open_db(dir.path / "state.db");
    REQUIRE(tenant_repository(*db).create(make_tenant("acme")));
    REQUIRE(user_repository(*db).create(make_user("admin", user_role::operator_admin, std::nullopt)));

    // A writer keeps committing while the backup runs.
    std::atomic<bool> stop{false};
    std::atomic<int> writes{0};
    std::thread writer([&] {
        audit_repository audit(*db);
        while (!stop.load()) {
            if (audit.append({0, writes.load(), "user:w", std::nullopt, "x", "", "{}"}))
                ++writes;
        }
    });
    while (writes.load() < 20)
        std::this_thread::yield();
    auto dest = dir.path / "backup" / "state.db";
    fs::create_directories(dest.parent_path());
    auto r = sqlite_backup(*db, dest);
    stop = true;
    writer.join();
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));

    CHECK(fs::exists(dest));
    CHECK_FALSE(fs::exists(dest.string() + ".partial"));
    CHECK_FALSE(fs::exists(dest.string() + "-wal"));
    auto info = inspect_database_file(dest);
    REQUIRE_MESSAGE(info.has_value(), (info ? "" : info.error().message));
    CHECK(info->schema_version == database::latest_schema_version());

    auto copy = open_db(dest, open_mode::read_only);
    CHECK(copy->journal_mode().value() == "delete");
    CHECK(tenant_repository(*copy).get("acme").value().has_value());
    CHECK(user_repository(*copy).count_operator_admins().value() == 1);
    const auto copied = audit_repository(*copy).list_recent({.limit = 1000}).value().size();
    CHECK(copied >= 20);
    CHECK(copied <= static_cast<std::size_t>(writes.load()));
    copy.reset();

    // Never over an existing file.
    auto again = sqlite_backup(*db, dest);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == state_errc::already_exists);

    // From a read-only open too (the `pulsegate backup` process).
    auto ro = open_db(dir.path / "state.db", open_mode::read_only);
    REQUIRE(sqlite_backup(*ro, dir.path / "backup2.db"));
    CHECK(inspect_database_file(dir.path / "backup2.db").has_value());
}

TEST_CASE("inspect_database_file names missing, foreign and damaged files") {
    temp_dir dir;
    auto missing = inspect_database_file(dir.path / "nope.db");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == state_errc::not_found);

    auto text = dir.path / "notes.txt";
    std::ofstream(text) << std::string(5000, 'n');
    auto foreign = inspect_database_file(text);
    REQUIRE_FALSE(foreign);
    CHECK(foreign.error().code == state_errc::not_a_database);
    CHECK(foreign.error().message.find("notes.txt") != std::string::npos);

    // A real backup with one of its b-tree pages overwritten.
    auto file = dir.path / "state.db";
    {
        auto db = open_db(file);
        audit_repository audit(*db);
        for (int i = 0; i < 200; ++i)
            REQUIRE(audit.append({0, i, "user:w", std::nullopt, "x", std::string(200, 'x'), "{}"}));
        REQUIRE(sqlite_backup(*db, dir.path / "copy.db"));
    }
    auto copy = dir.path / "copy.db";
    REQUIRE(inspect_database_file(copy));
    const auto size = fs::file_size(copy);
    REQUIRE(size > 8 * 4096);
    {
        std::fstream f(copy, std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(static_cast<std::streamoff>(size - 3 * 4096));
        const std::string junk(4096, '\x5a');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    auto damaged = inspect_database_file(copy);
    REQUIRE_FALSE(damaged);
    CHECK(damaged.error().code == state_errc::corrupt);
    CHECK(damaged.error().message.find("copy.db") != std::string::npos);
}

TEST_CASE("data dir lock: one holder at a time, the refusal names the holder, released on destruction") {
    temp_dir dir;
    {
        auto first = data_dir_lock::try_acquire(dir.path);
        REQUIRE_MESSAGE(first.has_value(), (first ? "" : first.error().message));
        CHECK(first->file() == dir.path / "pulsegate.lock");
        auto second = data_dir_lock::try_acquire(dir.path);
        REQUIRE_FALSE(second);
        CHECK(second.error().code == state_errc::data_dir_in_use);
        CHECK(second.error().message.find(dir.path.string()) != std::string::npos);
        CHECK(second.error().message.find("pid " + std::to_string(::getpid())) != std::string::npos);

        // Moving keeps the lock held.
        auto moved = std::move(*first);
        CHECK_FALSE(data_dir_lock::try_acquire(dir.path));
    }
    auto third = data_dir_lock::try_acquire(dir.path);
    CHECK(third.has_value());

    auto nowhere = data_dir_lock::try_acquire(dir.path / "missing");
    REQUIRE_FALSE(nowhere);
    CHECK(nowhere.error().code == state_errc::io_error);
}
