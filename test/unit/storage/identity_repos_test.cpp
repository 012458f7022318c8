// storage/state identity repositories: devices, API tokens and web sessions
// both ways; pagination; tenant scoping (another tenant's id answers exactly
// like an unknown one); conflicts; revocation and expiry; pruning; and the
// schema version 3 migration keeping rows written by version 2. Real SQLite
// files in temporary directories.

#include "storage/state/api_token_repository.hpp"
#include "storage/state/database.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"
#include "storage/state/web_session_repository.hpp"

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"
#include <sqlite3.h>

#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace pulsegate::storage::state;
using pulsegate::test::temp_dir;

// A failed REQUIRE(result) prints the error's message.
template <class T>
struct doctest::StringMaker<boost::system::result<T, state_error>> {
    static doctest::String convert(const boost::system::result<T, state_error>& r) {
        return r ? "(a value)" : ("error: " + r.error().message).c_str();
    }
};

namespace {

// 64 hex characters, distinct per seed, shaped like engine::credential_digest.
std::string unique_digest(int seed) {
    std::string d(64, 'a');
    const auto s = std::to_string(seed);
    d.replace(0, s.size(), s);
    return d;
}

// Direct SQLite access, for what no repository offers (deleting a tenant or
// a user), with foreign keys on as the database's own connections have them.
void raw_exec(const fs::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, ("PRAGMA foreign_keys = ON; " + sql).c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

struct fixture {
    temp_dir dir;
    std::unique_ptr<database> db;
    std::int64_t admin_id = 0;
    std::int64_t alice_id = 0; // tenant_admin of acme

    fixture() {
        auto opened = database::open({.file = dir.path / "state.db"});
        REQUIRE_MESSAGE(opened.has_value(), (opened ? "" : opened.error().message));
        db = std::move(*opened);
        tenant_repository tenants(*db);
        REQUIRE(tenants.create({"acme", "Acme", 1000, false}));
        REQUIRE(tenants.create({"globex", "Globex", 1000, false}));
        user_repository users(*db);
        auto admin = users.create({std::nullopt, "admin", user_role::operator_admin, "$argon2id$fake", 1000});
        REQUIRE(admin);
        admin_id = *admin;
        auto alice = users.create({"acme", "alice", user_role::tenant_admin, "$argon2id$fake", 1000});
        REQUIRE(alice);
        alice_id = *alice;
    }
};

new_device make_device(std::string tenant, std::string id, device_labels labels = {}) {
    return {std::move(tenant), id, "Device " + id, std::move(labels), "hash-of-" + id, 5000};
}

std::vector<std::string> ids_of(const device_page& p) {
    std::vector<std::string> out;
    for (const auto& d : p.items)
        out.push_back(d.tenant + "/" + d.id);
    return out;
}

} // namespace

// ---- devices --------------------------------------------------------------

TEST_CASE("devices: create and get round trip, labels included") {
    fixture f;
    device_repository devices(*f.db);
    const device_labels labels{{"site", "plant-7"}, {"zone.a", ""}, {"quote", "say \"hi\"\\ \xc3\xa9"}};
    REQUIRE(devices.create(make_device("acme", "dev-1", labels)));

    auto got = devices.get("acme", "dev-1");
    REQUIRE(got);
    REQUIRE(got->has_value());
    const device& d = **got;
    CHECK(d.tenant == "acme");
    CHECK(d.id == "dev-1");
    CHECK(d.name == "Device dev-1");
    CHECK(d.labels == labels);
    CHECK(d.secret_hash == "hash-of-dev-1");
    CHECK(d.created_at_ms == 5000);
    CHECK_FALSE(d.disabled);
    CHECK_FALSE(d.last_seen_ms);

    auto none = devices.get("acme", "dev-2");
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
}

TEST_CASE("devices: conflicts and bad input") {
    fixture f;
    device_repository devices(*f.db);
    REQUIRE(devices.create(make_device("acme", "dev-1")));

    auto dup = devices.create(make_device("acme", "dev-1"));
    REQUIRE_FALSE(dup);
    CHECK(dup.error().code == state_errc::already_exists);
    CHECK(dup.error().message.find("tenant acme already has a device with id dev-1") != std::string::npos);

    // The same id in another tenant is another device.
    CHECK(devices.create(make_device("globex", "dev-1")));

    auto no_tenant = devices.create(make_device("initech", "dev-1"));
    REQUIRE_FALSE(no_tenant);
    CHECK(no_tenant.error().code == state_errc::constraint_violation);
    CHECK(no_tenant.error().message.find("tenant initech does not exist") != std::string::npos);

    for (const char* bad : {"", "Dev", "dev/1", "-dev"}) {
        CAPTURE(bad);
        auto r = devices.create(make_device("acme", bad));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == state_errc::invalid_argument);
    }
    auto no_hash = make_device("acme", "dev-9");
    no_hash.secret_hash.clear();
    CHECK(devices.create(no_hash).error().code == state_errc::invalid_argument);
}

TEST_CASE("devices: another tenant's device behaves exactly like an unknown one") {
    fixture f;
    device_repository devices(*f.db);
    REQUIRE(devices.create(make_device("acme", "dev-1")));

    for (const char* id : {"dev-1", "nope"}) {
        CAPTURE(id);
        auto got = devices.get("globex", id);
        REQUIRE(got);
        CHECK_FALSE(got->has_value());
        CHECK(devices.update("globex", id, {.name = "x"}).error().code == state_errc::not_found);
        CHECK(devices.set_secret_hash("globex", id, "h").error().code == state_errc::not_found);
        CHECK(devices.set_disabled("globex", id, true).error().code == state_errc::not_found);
        CHECK(devices.remove("globex", id).error().code == state_errc::not_found);
        CHECK(devices.list("globex").value().items.empty());
    }
    // The message is the same shape for both.
    CHECK(devices.remove("globex", "dev-1").error().message == "remove device: tenant globex has no device dev-1");
    CHECK(devices.remove("globex", "nope").error().message == "remove device: tenant globex has no device nope");

    // And acme's device is untouched.
    auto d = devices.get("acme", "dev-1").value();
    REQUIRE(d);
    CHECK(d->name == "Device dev-1");
    CHECK(d->secret_hash == "hash-of-dev-1");
    CHECK_FALSE(d->disabled);
}

TEST_CASE("devices: update, secret rotation, disable, remove") {
    fixture f;
    device_repository devices(*f.db);
    REQUIRE(devices.create(make_device("acme", "dev-1", {{"site", "a"}})));

    REQUIRE(devices.update("acme", "dev-1", {.name = "Boiler"}));
    auto d = devices.get("acme", "dev-1").value().value();
    CHECK(d.name == "Boiler");
    CHECK(d.labels == device_labels{{"site", "a"}}); // untouched

    REQUIRE(devices.update("acme", "dev-1", {.labels = device_labels{{"zone", "b"}}}));
    d = devices.get("acme", "dev-1").value().value();
    CHECK(d.name == "Boiler");
    CHECK(d.labels == device_labels{{"zone", "b"}}); // replaced, not merged

    REQUIRE(devices.update("acme", "dev-1", {.labels = device_labels{}}));
    CHECK(devices.get("acme", "dev-1").value()->labels.empty());
    REQUIRE(devices.update("acme", "dev-1", {})); // nothing to change, still found

    REQUIRE(devices.set_secret_hash("acme", "dev-1", "new-hash"));
    CHECK(devices.get("acme", "dev-1").value()->secret_hash == "new-hash");
    CHECK(devices.set_secret_hash("acme", "dev-1", "").error().code == state_errc::invalid_argument);

    REQUIRE(devices.set_disabled("acme", "dev-1", true));
    CHECK(devices.get("acme", "dev-1").value()->disabled);
    REQUIRE(devices.set_disabled("acme", "dev-1", false));
    CHECK_FALSE(devices.get("acme", "dev-1").value()->disabled);

    REQUIRE(devices.remove("acme", "dev-1"));
    CHECK_FALSE(devices.get("acme", "dev-1").value().has_value());
    CHECK(devices.remove("acme", "dev-1").error().code == state_errc::not_found);
    // The id can be used again.
    CHECK(devices.create(make_device("acme", "dev-1")));
}

TEST_CASE("devices: last seen is batched, never moves backwards, skips unknown devices") {
    fixture f;
    device_repository devices(*f.db);
    REQUIRE(devices.create(make_device("acme", "dev-1")));
    REQUIRE(devices.create(make_device("acme", "dev-2")));
    REQUIRE(devices.create(make_device("globex", "dev-1")));

    const std::vector<device_seen> batch = {
        {"acme", "dev-1", 10000}, {"acme", "dev-2", 11000}, {"acme", "gone", 12000}, {"initech", "dev-1", 13000}};
    auto n = devices.touch_last_seen(batch);
    REQUIRE(n);
    CHECK(*n == 2);
    CHECK(devices.get("acme", "dev-1").value()->last_seen_ms == 10000);
    CHECK(devices.get("acme", "dev-2").value()->last_seen_ms == 11000);
    CHECK_FALSE(devices.get("globex", "dev-1").value()->last_seen_ms); // same id, other tenant

    const std::vector<device_seen> older = {{"acme", "dev-1", 9000}, {"acme", "dev-2", 15000}};
    CHECK(devices.touch_last_seen(older).value() == 1);
    CHECK(devices.get("acme", "dev-1").value()->last_seen_ms == 10000);
    CHECK(devices.get("acme", "dev-2").value()->last_seen_ms == 15000);

    CHECK(devices.touch_last_seen({}).value() == 0);
}

TEST_CASE("devices: a tenant's list pages by id with a cursor") {
    fixture f;
    device_repository devices(*f.db);
    std::set<std::string> expected;
    for (int i = 0; i < 25; ++i) {
        const std::string id = "dev-" + std::string(i < 10 ? "0" : "") + std::to_string(i);
        REQUIRE(devices.create(make_device("acme", id)));
        expected.insert("acme/" + id);
    }
    REQUIRE(devices.create(make_device("globex", "dev-00")));
    REQUIRE(devices.create(make_device("globex", "zzz")));

    std::vector<std::string> seen;
    std::optional<std::string> cursor;
    int pages = 0;
    do {
        auto page = devices.list("acme", 10, cursor);
        REQUIRE(page);
        ++pages;
        CHECK(page->items.size() <= 10);
        for (const auto& id : ids_of(*page))
            seen.push_back(id);
        cursor = page->next_cursor;
    } while (cursor && pages < 10);
    CHECK(pages == 3);
    CHECK(seen == std::vector<std::string>(expected.begin(), expected.end())); // in id order, each once

    // An exact multiple: the last full page has no next cursor.
    auto all = devices.list("acme", 25);
    REQUIRE(all);
    CHECK(all->items.size() == 25);
    CHECK_FALSE(all->next_cursor);

    // A device added behind the cursor while paging is not seen twice; one
    // ahead of it is seen.
    auto first = devices.list("acme", 10).value();
    REQUIRE(first.next_cursor);
    REQUIRE(devices.create(make_device("acme", "dev-00a")));
    REQUIRE(devices.create(make_device("acme", "dev-99")));
    auto rest = devices.list("acme", 100, first.next_cursor).value();
    CHECK(rest.items.size() == 16);
    CHECK(rest.items.back().id == "dev-99");

    // Limits are clamped, cursors checked.
    CHECK(devices.list("acme", 0).value().items.size() == 1);
    CHECK(devices.list("acme", 1000000).value().items.size() == 27);
    for (const char* bad : {"", "Bad", "acme/dev-1", "../x"}) {
        CAPTURE(bad);
        auto r = devices.list("acme", 10, std::string_view(bad));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == state_errc::invalid_argument);
        CHECK(r.error().message.find("cursor") != std::string::npos);
    }
}

TEST_CASE("devices: the operators' list crosses tenants, or filters one, with its own cursor") {
    fixture f;
    device_repository devices(*f.db);
    for (const char* id : {"a", "b", "c"}) {
        REQUIRE(devices.create(make_device("acme", id)));
        REQUIRE(devices.create(make_device("globex", id)));
    }

    std::vector<std::string> seen;
    std::optional<std::string> cursor;
    int pages = 0;
    do {
        auto page = devices.list_all(4, cursor);
        REQUIRE(page);
        ++pages;
        for (const auto& id : ids_of(*page))
            seen.push_back(id);
        cursor = page->next_cursor;
    } while (cursor && pages < 10);
    CHECK(pages == 2);
    CHECK(seen == std::vector<std::string>{"acme/a", "acme/b", "acme/c", "globex/a", "globex/b", "globex/c"});

    auto only = devices.list_all(2, std::nullopt, "globex");
    REQUIRE(only);
    CHECK(ids_of(*only) == std::vector<std::string>{"globex/a", "globex/b"});
    REQUIRE(only->next_cursor);
    CHECK(*only->next_cursor == "globex/b");
    auto next = devices.list_all(2, only->next_cursor, "globex");
    REQUIRE(next);
    CHECK(ids_of(*next) == std::vector<std::string>{"globex/c"});
    CHECK_FALSE(next->next_cursor);

    CHECK(devices.list_all(10, std::nullopt, "initech").value().items.empty());
    // A cursor from the unfiltered list still works with a filter.
    CHECK(ids_of(devices.list_all(10, std::string_view("acme/c"), "globex").value()) ==
          std::vector<std::string>{"globex/a", "globex/b", "globex/c"});
    CHECK(devices.list_all(10, std::string_view("zeta/a"), "globex").value().items.empty());
    for (const char* bad : {"", "acme", "acme/", "/a", "acme/a/b", "ACME/a"}) {
        CAPTURE(bad);
        CHECK(devices.list_all(10, std::string_view(bad)).error().code == state_errc::invalid_argument);
    }
}

TEST_CASE("devices: removing the tenant removes its devices") {
    fixture f;
    device_repository devices(*f.db);
    REQUIRE(devices.create(make_device("acme", "dev-1")));
    raw_exec(f.db->file(), "DELETE FROM tenants WHERE id = 'acme'");
    CHECK_FALSE(devices.get("acme", "dev-1").value().has_value());
}

// ---- API tokens -----------------------------------------------------------

namespace {

new_api_token make_token(std::optional<std::string> tenant, std::string public_id, int seed,
                         std::optional<std::int64_t> created_by = std::nullopt,
                         std::optional<std::int64_t> expires_at = std::nullopt) {
    return {std::move(tenant), public_id, "token " + public_id, unique_digest(seed), expires_at, created_by, 7000};
}

} // namespace

TEST_CASE("API tokens: create, find by public id, get and list within the tenant") {
    fixture f;
    api_token_repository tokens(*f.db);
    auto id = tokens.create(make_token("acme", "aaaaaaaaaaaa", 1, f.alice_id, 90000));
    REQUIRE(id);
    REQUIRE(tokens.create(make_token("acme", "bbbbbbbbbbbb", 2)));
    REQUIRE(tokens.create(make_token("globex", "cccccccccccc", 3)));
    REQUIRE(tokens.create(make_token(std::nullopt, "dddddddddddd", 4, f.admin_id)));

    auto found = tokens.find_by_public_id("aaaaaaaaaaaa");
    REQUIRE(found);
    REQUIRE(found->has_value());
    const api_token& t = **found;
    CHECK(t.id == *id);
    CHECK(t.tenant == "acme");
    CHECK(t.public_id == "aaaaaaaaaaaa");
    CHECK(t.name == "token aaaaaaaaaaaa");
    CHECK(t.token_hash == unique_digest(1));
    CHECK(t.created_by == f.alice_id);
    CHECK(t.created_at_ms == 7000);
    CHECK_FALSE(t.last_used_at_ms);
    CHECK(t.expires_at_ms == 90000);
    CHECK(t.active_at(89999));
    CHECK_FALSE(t.active_at(90000));

    CHECK_FALSE(tokens.find_by_public_id("zzzzzzzzzzzz").value().has_value());

    auto acme = tokens.list("acme");
    REQUIRE(acme);
    REQUIRE(acme->size() == 2);
    CHECK((*acme)[0].public_id == "aaaaaaaaaaaa");
    CHECK((*acme)[1].public_id == "bbbbbbbbbbbb");
    CHECK((*acme)[1].active_at(1LL << 60)); // no expiry
    auto ops = tokens.list(std::nullopt);
    REQUIRE(ops);
    REQUIRE(ops->size() == 1);
    CHECK(ops->front().public_id == "dddddddddddd");
    CHECK_FALSE(ops->front().tenant);

    CHECK(tokens.get("acme", "aaaaaaaaaaaa").value().has_value());
    CHECK(tokens.get(std::nullopt, "dddddddddddd").value().has_value());
}

TEST_CASE("API tokens: another tenant's token behaves exactly like an unknown one") {
    fixture f;
    api_token_repository tokens(*f.db);
    REQUIRE(tokens.create(make_token("acme", "aaaaaaaaaaaa", 1)));
    REQUIRE(tokens.create(make_token(std::nullopt, "dddddddddddd", 4)));

    for (const char* pid : {"aaaaaaaaaaaa", "dddddddddddd", "zzzzzzzzzzzz"}) {
        CAPTURE(pid);
        CHECK_FALSE(tokens.get("globex", pid).value().has_value());
        auto r = tokens.revoke("globex", pid);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == state_errc::not_found);
        CHECK(r.error().message == "revoke API token: tenant globex has no token " + std::string(pid));
    }
    // A tenant cannot reach an operator token, nor operators (tenant none) a
    // tenant's through the scoped calls.
    CHECK(tokens.revoke("acme", "dddddddddddd").error().code == state_errc::not_found);
    CHECK(tokens.revoke(std::nullopt, "aaaaaaaaaaaa").error().code == state_errc::not_found);
    CHECK(tokens.list("globex").value().empty());
    // Both tokens still exist.
    CHECK(tokens.find_by_public_id("aaaaaaaaaaaa").value().has_value());
    CHECK(tokens.find_by_public_id("dddddddddddd").value().has_value());
}

TEST_CASE("API tokens: conflicts and bad input") {
    fixture f;
    api_token_repository tokens(*f.db);
    REQUIRE(tokens.create(make_token("acme", "aaaaaaaaaaaa", 1)));

    auto same_id = tokens.create(make_token("globex", "aaaaaaaaaaaa", 2));
    REQUIRE_FALSE(same_id);
    CHECK(same_id.error().code == state_errc::already_exists);
    CHECK(same_id.error().message.find("generate a new token") != std::string::npos);
    auto same_hash = tokens.create(make_token("acme", "bbbbbbbbbbbb", 1));
    REQUIRE_FALSE(same_hash);
    CHECK(same_hash.error().code == state_errc::already_exists);

    auto no_tenant = tokens.create(make_token("initech", "cccccccccccc", 3));
    REQUIRE_FALSE(no_tenant);
    CHECK(no_tenant.error().code == state_errc::constraint_violation);
    CHECK(no_tenant.error().message.find("tenant initech does not exist") != std::string::npos);
    auto no_user = tokens.create(make_token("acme", "cccccccccccc", 3, 4242));
    REQUIRE_FALSE(no_user);
    CHECK(no_user.error().code == state_errc::constraint_violation);
    CHECK(no_user.error().message.find("4242") != std::string::npos);

    auto t = make_token("acme", "", 5);
    CHECK(tokens.create(t).error().code == state_errc::invalid_argument);
    t = make_token("acme", "eeeeeeeeeeee", 5);
    t.name.clear();
    CHECK(tokens.create(t).error().code == state_errc::invalid_argument);
    t = make_token("acme", "eeeeeeeeeeee", 5);
    t.token_hash.clear();
    CHECK(tokens.create(t).error().code == state_errc::invalid_argument);
}

TEST_CASE("API tokens: revoke, last use, expiry") {
    fixture f;
    api_token_repository tokens(*f.db);
    REQUIRE(tokens.create(make_token("acme", "aaaaaaaaaaaa", 1, std::nullopt, 50000)));
    REQUIRE(tokens.create(make_token("acme", "bbbbbbbbbbbb", 2, std::nullopt, 60000)));
    REQUIRE(tokens.create(make_token("acme", "cccccccccccc", 3)));

    REQUIRE(tokens.touch_last_used("aaaaaaaaaaaa", 20000));
    CHECK(tokens.find_by_public_id("aaaaaaaaaaaa").value()->last_used_at_ms == 20000);
    REQUIRE(tokens.touch_last_used("aaaaaaaaaaaa", 15000)); // older: kept at 20000
    CHECK(tokens.find_by_public_id("aaaaaaaaaaaa").value()->last_used_at_ms == 20000);
    CHECK(tokens.touch_last_used("zzzzzzzzzzzz", 1).error().code == state_errc::not_found);

    REQUIRE(tokens.revoke("acme", "cccccccccccc"));
    CHECK_FALSE(tokens.find_by_public_id("cccccccccccc").value().has_value());
    CHECK(tokens.revoke("acme", "cccccccccccc").error().code == state_errc::not_found);
    CHECK(tokens.touch_last_used("cccccccccccc", 1).error().code == state_errc::not_found);

    // Expired tokens stay listed (inactive) until removed.
    auto listed = tokens.list("acme").value();
    REQUIRE(listed.size() == 2);
    CHECK_FALSE(listed[0].active_at(55000));
    CHECK(listed[1].active_at(55000));
    CHECK(tokens.remove_expired(55000).value() == 1);
    CHECK_FALSE(tokens.find_by_public_id("aaaaaaaaaaaa").value().has_value());
    CHECK(tokens.find_by_public_id("bbbbbbbbbbbb").value().has_value());
    CHECK(tokens.remove_expired(55000).value() == 0);
}

TEST_CASE("API tokens: deleting the creating user keeps the token") {
    fixture f;
    api_token_repository tokens(*f.db);
    REQUIRE(tokens.create(make_token("acme", "aaaaaaaaaaaa", 1, f.alice_id)));
    raw_exec(f.db->file(), "DELETE FROM users WHERE name = 'alice'");
    auto t = tokens.find_by_public_id("aaaaaaaaaaaa").value();
    REQUIRE(t);
    CHECK_FALSE(t->created_by);
}

// ---- web sessions ---------------------------------------------------------

namespace {

web_session make_session(std::int64_t user, int seed, std::int64_t now = 100000) {
    return {unique_digest(seed), user, "csrf-" + std::to_string(seed), now, now, now + 1800000, now + 43200000,
            "192.0.2.7"};
}

} // namespace

TEST_CASE("web sessions: create and get round trip") {
    fixture f;
    web_session_repository sessions(*f.db);
    const auto s = make_session(f.alice_id, 1);
    REQUIRE(sessions.create(s));
    auto got = sessions.get(s.id_hash, 100001);
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK(**got == s);
    CHECK_FALSE(sessions.get(unique_digest(2), 100001).value().has_value());

    auto dup = sessions.create(s);
    REQUIRE_FALSE(dup);
    CHECK(dup.error().code == state_errc::already_exists);
    auto nobody = sessions.create(make_session(4242, 3));
    REQUIRE_FALSE(nobody);
    CHECK(nobody.error().code == state_errc::constraint_violation);
    auto empty = make_session(f.alice_id, 4);
    empty.csrf_token.clear();
    CHECK(sessions.create(empty).error().code == state_errc::invalid_argument);
}

TEST_CASE("web sessions: idle and absolute expiry; touch extends only the idle one, up to the absolute") {
    fixture f;
    web_session_repository sessions(*f.db);
    auto s = make_session(f.alice_id, 1, 0);
    s.idle_expires_at_ms = 1000;
    s.expires_at_ms = 5000;
    REQUIRE(sessions.create(s));

    CHECK(sessions.get(s.id_hash, 999).value().has_value());
    CHECK_FALSE(sessions.get(s.id_hash, 1000).value().has_value()); // idle
    CHECK(sessions.touch(s.id_hash, 1000, 2000).error().code == state_errc::not_found);

    REQUIRE(sessions.touch(s.id_hash, 900, 1900));
    auto got = sessions.get(s.id_hash, 1500).value();
    REQUIRE(got);
    CHECK(got->last_seen_at_ms == 900);
    CHECK(got->idle_expires_at_ms == 1900);

    REQUIRE(sessions.touch(s.id_hash, 1800, 9000)); // capped at the absolute expiry
    got = sessions.get(s.id_hash, 4999).value();
    REQUIRE(got);
    CHECK(got->idle_expires_at_ms == 5000);
    CHECK(got->live_at(4999));
    CHECK_FALSE(got->live_at(5000));
    CHECK_FALSE(sessions.get(s.id_hash, 5000).value().has_value()); // absolute
    CHECK(sessions.touch(s.id_hash, 5000, 9000).error().code == state_errc::not_found);

    REQUIRE(sessions.touch(s.id_hash, 2000, 1000)); // never backwards
    CHECK(sessions.get(s.id_hash, 2000).value()->idle_expires_at_ms == 5000);
}

TEST_CASE("web sessions: remove, remove for a user, prune") {
    fixture f;
    web_session_repository sessions(*f.db);
    REQUIRE(sessions.create(make_session(f.alice_id, 1)));
    REQUIRE(sessions.create(make_session(f.alice_id, 2)));
    REQUIRE(sessions.create(make_session(f.admin_id, 3)));

    REQUIRE(sessions.remove(unique_digest(1)));
    CHECK_FALSE(sessions.get(unique_digest(1), 100001).value().has_value());
    CHECK(sessions.remove(unique_digest(1))); // a double logout is fine

    CHECK(sessions.remove_for_user(f.alice_id).value() == 1);
    CHECK_FALSE(sessions.get(unique_digest(2), 100001).value().has_value());
    CHECK(sessions.get(unique_digest(3), 100001).value().has_value());

    // Prune: one idle-expired, one absolutely expired, one live.
    auto idle = make_session(f.alice_id, 10, 0);
    idle.idle_expires_at_ms = 100;
    idle.expires_at_ms = 10000;
    auto absolute = make_session(f.alice_id, 11, 0);
    absolute.idle_expires_at_ms = 10000;
    absolute.expires_at_ms = 200;
    auto live = make_session(f.alice_id, 12, 0);
    live.idle_expires_at_ms = 10000;
    live.expires_at_ms = 10000;
    for (const auto& s : {idle, absolute, live})
        REQUIRE(sessions.create(s));
    CHECK(sessions.prune_expired(500).value() == 2);
    CHECK(sessions.get(live.id_hash, 500).value().has_value());
    CHECK(sessions.prune_expired(500).value() == 0);
    // The admin's session (expiring much later) survived too.
    CHECK(sessions.get(unique_digest(3), 100001).value().has_value());

    // Deleting the user deletes its sessions.
    raw_exec(f.db->file(), "DELETE FROM users WHERE name = 'alice'");
    CHECK_FALSE(sessions.get(live.id_hash, 500).value().has_value());
}

// ---- migration ------------------------------------------------------------

TEST_CASE("schema 3: devices and tokens written by version 2 are kept and usable") {
    temp_dir dir;
    const auto file = dir.path / "state.db";
    {
        auto v2 = database::open_at_version({.file = file}, 2);
        REQUIRE_MESSAGE(v2.has_value(), (v2 ? "" : v2.error().message));
        auto& db = **v2;
        REQUIRE(tenant_repository(db).create({"acme", "Acme", 1000, false}));
        // create() writes only columns version 1 already has.
        REQUIRE(device_repository(db).create(make_device("acme", "dev-1", {{"site", "a"}})));
    }
    auto opened = database::open({.file = file});
    REQUIRE(opened);
    auto& db = **opened;
    CHECK(db.schema_version() == database::latest_schema_version());
    device_repository devices(db);
    auto d = devices.get("acme", "dev-1").value();
    REQUIRE(d);
    CHECK(d->labels == device_labels{{"site", "a"}});
    CHECK_FALSE(d->last_seen_ms);
    const std::vector<device_seen> seen = {{"acme", "dev-1", 42}};
    CHECK(devices.touch_last_seen(seen).value() == 1);

    api_token_repository tokens(db);
    REQUIRE(tokens.create(make_token("acme", "aaaaaaaaaaaa", 1)));
    CHECK(tokens.find_by_public_id("aaaaaaaaaaaa").value().has_value());
}

// ---- tenants and users: changes made by the operator routes ---------------

TEST_CASE("tenants: update renames and disables in one step; unknown tenants are not_found") {
    fixture f;
    tenant_repository tenants(*f.db);
    REQUIRE(tenants.update("acme", {.name = "Acme Corp", .disabled = true}));
    auto t = tenants.get("acme").value();
    REQUIRE(t);
    CHECK(t->name == "Acme Corp");
    CHECK(t->disabled);

    REQUIRE(tenants.set_disabled("acme", false));
    CHECK_FALSE(tenants.get("acme").value()->disabled);
    CHECK(tenants.get("acme").value()->name == "Acme Corp"); // kept

    CHECK(tenants.update("acme", {.name = ""}).error().code == state_errc::invalid_argument);
    CHECK(tenants.update("nope", {.disabled = true}).error().code == state_errc::not_found);
    CHECK(tenants.get("globex").value()->name == "Globex"); // untouched
}

TEST_CASE("tenants: removal is refused while devices or users remain, unless cascading") {
    fixture f;
    tenant_repository tenants(*f.db);
    device_repository devices(*f.db);
    api_token_repository tokens(*f.db);
    REQUIRE(devices.create(make_device("acme", "dev-1")));
    REQUIRE(tokens.create({"acme", "aaaaaaaaaaaa", "ci", unique_digest(1), std::nullopt, std::nullopt, 7000}));

    auto n = tenants.contents("acme").value();
    CHECK(n.devices == 1);
    CHECK(n.users == 1); // alice
    CHECK(n.api_tokens == 1);

    auto refused = tenants.remove("acme");
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == state_errc::constraint_violation);
    CHECK(refused.error().message.find("1 device and 1 user") != std::string::npos);
    CHECK(tenants.get("acme").value().has_value());
    CHECK(devices.get("acme", "dev-1").value().has_value());

    // An empty tenant goes without cascading.
    REQUIRE(tenants.remove("globex"));
    CHECK_FALSE(tenants.get("globex").value().has_value());
    CHECK(tenants.remove("globex").error().code == state_errc::not_found);

    REQUIRE(tenants.remove("acme", tenant_removal::cascade));
    CHECK_FALSE(tenants.get("acme").value().has_value());
    CHECK_FALSE(devices.get("acme", "dev-1").value().has_value());
    CHECK_FALSE(tokens.find_by_public_id("aaaaaaaaaaaa").value().has_value());
    CHECK_FALSE(user_repository(*f.db).get_by_name("alice").value().has_value());
    CHECK(user_repository(*f.db).get_by_name("admin").value().has_value());
}

TEST_CASE("users: update sets the password hash and disabled; remove deletes") {
    fixture f;
    user_repository users(*f.db);
    REQUIRE(users.update(f.alice_id, {.password_hash = "$argon2id$new", .disabled = true}));
    auto alice = users.get(f.alice_id).value();
    REQUIRE(alice);
    CHECK(alice->password_hash == "$argon2id$new");
    CHECK(alice->disabled);

    REQUIRE(users.set_disabled(f.alice_id, false));
    REQUIRE(users.set_password_hash(f.alice_id, "$argon2id$newer"));
    alice = users.get(f.alice_id).value();
    CHECK_FALSE(alice->disabled);
    CHECK(alice->password_hash == "$argon2id$newer");

    CHECK(users.update(f.alice_id, {.password_hash = ""}).error().code == state_errc::invalid_argument);
    CHECK(users.update(9999, {.disabled = true}).error().code == state_errc::not_found);

    REQUIRE(users.remove(f.alice_id));
    CHECK_FALSE(users.get(f.alice_id).value().has_value());
    CHECK(users.remove(f.alice_id).error().code == state_errc::not_found);
}

TEST_CASE("users: the last enabled operator_admin can be neither disabled nor removed") {
    fixture f;
    user_repository users(*f.db);
    CHECK(users.set_disabled(f.admin_id, true).error().code == state_errc::constraint_violation);
    CHECK(users.remove(f.admin_id).error().code == state_errc::constraint_violation);
    CHECK_FALSE(users.get(f.admin_id).value()->disabled);
    // A new password is fine.
    REQUIRE(users.set_password_hash(f.admin_id, "$argon2id$other"));

    auto second = users.create({std::nullopt, "root2", user_role::operator_admin, "$argon2id$fake", 1000}).value();
    REQUIRE(users.set_disabled(f.admin_id, true));
    // Now root2 is the last enabled one; the disabled admin may go.
    CHECK(users.remove(second).error().code == state_errc::constraint_violation);
    REQUIRE(users.remove(f.admin_id));
    CHECK(users.count_operator_admins().value() == 1);
}
