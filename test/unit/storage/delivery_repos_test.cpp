// storage/state delivery: the secret box, integrations (secrets sealed in
// the table, tenant scoping, unique names), routes (targets of the tenant
// only, target list replaced on update, removed with their integration),
// delivery jobs written with their alert (alert_repository::upsert), the
// outbox repository (claiming due jobs per integration, finishing with
// attempts, requeue, defer, the delivery log and its filters, counts) and
// the schema version 5 migration. Real SQLite files in temporary directories.

#include "storage/state/alert_model.hpp"
#include "storage/state/alert_repository.hpp"
#include "storage/state/database.hpp"
#include "storage/state/delivery_model.hpp"
#include "storage/state/delivery_repository.hpp"
#include "storage/state/integration_repository.hpp"
#include "storage/state/secret_box.hpp"
#include "storage/state/tenant_repository.hpp"

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"
#include <sqlite3.h>

#include <algorithm>
#include <functional>
#include <map>
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

// Direct SQLite access, for what no repository offers (rows as version 4
// wrote them, the bytes of a column).
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

// The first column of the first row, as bytes (a BLOB may hold NULs).
std::string raw_bytes(const fs::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW) {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(s, 0));
        out.assign(p != nullptr ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s, 0)));
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

secret_box::key_type key_of(unsigned char seed) {
    secret_box::key_type k{};
    for (std::size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<unsigned char>(seed + i);
    return k;
}

struct fixture {
    temp_dir dir;
    fs::path file = dir.path / "state.db";
    std::unique_ptr<database> db;
    secret_box box{key_of(1)};

    fixture() {
        auto opened = database::open({.file = file});
        REQUIRE_MESSAGE(opened.has_value(), (opened ? "" : opened.error().message));
        db = std::move(*opened);
        tenant_repository tenants(*db);
        REQUIRE(tenants.create({"acme", "Acme", 1000, false}));
        REQUIRE(tenants.create({"globex", "Globex", 1000, false}));
    }

    integration_repository integrations() { return integration_repository(*db, box); }

    std::int64_t add_integration(const std::string& tenant, const std::string& name, bool enabled = true) {
        auto id = integrations().create(hook(tenant, name, enabled));
        REQUIRE(id);
        return *id;
    }

    static integration_record hook(const std::string& tenant, const std::string& name, bool enabled = true) {
        integration_record r;
        r.tenant = tenant;
        r.name = name;
        r.type = "webhook";
        r.config = R"({"url":"https://example.com/hook"})";
        r.secrets = R"({"token":"tok-)" + name + R"("})";
        r.enabled = enabled;
        r.created_at_ms = 1000;
        r.updated_at_ms = 1000;
        return r;
    }
};

alert_record make_alert(std::int64_t id, const std::string& tenant, const std::string& device = "dev-1",
                        std::int64_t rule = 1) {
    alert_record a;
    a.id = id;
    a.tenant = tenant;
    a.device = device;
    a.rule = rule;
    a.rule_name = "hot";
    a.kind = alert_kind::threshold;
    a.sev = severity::major;
    a.status = alert_status::open;
    a.metric = "temp";
    a.value = 81.0;
    a.threshold = 80.0;
    a.message = "temp >= 80";
    a.opened_at_ms = 1000;
    a.last_seen_at_ms = 1000;
    return a;
}

new_delivery_job make_job(const std::string& tenant, std::int64_t alert, std::int64_t integration,
                          std::int64_t created_at, const std::string& event = "alert.opened") {
    new_delivery_job j;
    j.tenant = tenant;
    j.alert = alert;
    j.integration = integration;
    j.event = event;
    j.event_key = "alert:" + std::to_string(alert) + ":" + event.substr(6) + ":" + std::to_string(created_at);
    j.payload = R"({"event":")" + event + R"("})";
    j.max_attempts = 5;
    j.created_at_ms = created_at;
    return j;
}

// Writes alert `alert` (once) and `jobs` through the repository the engine uses.
void write_jobs(fixture& f, std::int64_t alert, const std::vector<new_delivery_job>& jobs,
                const std::string& tenant = "acme") {
    const auto a = make_alert(alert, tenant, "dev-" + std::to_string(alert));
    REQUIRE(alert_repository(*f.db).upsert({&a, 1}, jobs));
}

std::vector<delivery_entry> all_jobs(fixture& f, const std::string& tenant = "acme", const delivery_filter& filter = {}) {
    std::vector<delivery_entry> out;
    std::optional<std::string> cursor;
    for (int pages = 0; pages < 100; ++pages) {
        auto page = delivery_repository(*f.db).list(tenant, filter, 1000,
                                                     cursor ? std::optional<std::string_view>(*cursor) : std::nullopt);
        REQUIRE(page);
        for (auto& e : page->items)
            out.push_back(std::move(e));
        if (!page->next_cursor)
            break;
        cursor = page->next_cursor;
    }
    return out;
}

delivery_entry job(fixture& f, std::int64_t id, const std::string& tenant = "acme") {
    auto e = delivery_repository(*f.db).get(tenant, id);
    REQUIRE(e);
    REQUIRE(e->has_value());
    return **e;
}

std::vector<std::int64_t> ids_of(const std::vector<delivery_job>& jobs) {
    std::vector<std::int64_t> out;
    for (const auto& j : jobs)
        out.push_back(j.id);
    return out;
}

std::vector<std::int64_t> ids_of(const std::vector<delivery_entry>& entries) {
    std::vector<std::int64_t> out;
    for (const auto& e : entries)
        out.push_back(e.job.id);
    return out;
}

const auto admit_all = [](const delivery_job&) { return true; };

job_completion completion(std::int64_t job, std::int64_t attempt, attempt_outcome o, job_state s,
                          std::int64_t started_at, std::int64_t next_at = 0, std::string status = "",
                          std::optional<std::string> error = std::nullopt) {
    job_completion c;
    c.attempt.job = job;
    c.attempt.attempt = attempt;
    c.attempt.started_at_ms = started_at;
    c.attempt.latency_ms = 7;
    c.attempt.outcome = o;
    c.attempt.status = std::move(status);
    c.attempt.error = std::move(error);
    c.state = s;
    c.next_attempt_at_ms = next_at;
    return c;
}

} // namespace

// ---- secret box ---------------------------------------------------------------

TEST_CASE("secret box: seal and open round trip, a random nonce per value") {
    const secret_box box(key_of(1));
    const std::string plain = R"({"password":"hunter2"})";
    const auto sealed = box.seal(plain);
    CHECK(sealed != plain);
    CHECK(sealed.find("hunter2") == std::string::npos);
    CHECK(box.seal(plain) != sealed);
    auto opened = box.open(sealed);
    REQUIRE(opened);
    CHECK(*opened == plain);

    auto empty = box.open(box.seal(""));
    REQUIRE(empty);
    CHECK(empty->empty());
}

TEST_CASE("secret box: another key, an altered or a short value is corrupt") {
    const secret_box box(key_of(1));
    const auto sealed = box.seal("secret");

    auto other = secret_box(key_of(2)).open(sealed);
    REQUIRE_FALSE(other);
    CHECK(other.error().code == state_errc::corrupt);

    auto altered = sealed;
    altered.back() = static_cast<char>(altered.back() ^ 1);
    auto bad = box.open(altered);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == state_errc::corrupt);

    auto short_one = box.open("abc");
    REQUIRE_FALSE(short_one);
    CHECK(short_one.error().code == state_errc::corrupt);

    // A derived key is another key than its root.
    auto derived = secret_box::derived_from(key_of(1)).open(sealed);
    REQUIRE_FALSE(derived);
    CHECK(derived.error().code == state_errc::corrupt);
    const auto d = secret_box::derived_from(key_of(1));
    auto same = secret_box::derived_from(key_of(1)).open(d.seal("x"));
    REQUIRE(same);
    CHECK(*same == "x");
}

TEST_CASE("secret box: from_hex takes 64 hex digits and nothing else") {
    std::string hex;
    for (int i = 0; i < 32; ++i) {
        static constexpr char digits[] = "0123456789abcdef";
        const auto b = static_cast<unsigned>(key_of(1)[static_cast<std::size_t>(i)]);
        hex += digits[b >> 4];
        hex += digits[b & 15];
    }
    auto box = secret_box::from_hex(hex);
    REQUIRE(box);
    // The same key as the bytes it spells.
    auto opened = secret_box(key_of(1)).open(box->seal("same key"));
    REQUIRE(opened);
    CHECK(*opened == "same key");

    for (const auto& bad : {std::string(), hex.substr(0, 63), hex + "0", "zz" + hex.substr(2),
                                  hex.substr(0, 62) + " 1", std::string(64, 'g')}) {
        CAPTURE(bad);
        auto r = secret_box::from_hex(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == state_errc::invalid_argument);
        CHECK(r.error().message.find("64 hexadecimal digits") != std::string::npos);
    }
}

// ---- integrations ---------------------------------------------------------------

TEST_CASE("integrations: create, get, list, update, remove") {
    fixture f;
    auto repo = f.integrations();
    auto r = fixture::hook("acme", "ops");
    r.secrets = R"({"token":"s3cr3t-XYZ-123"})";
    auto id = repo.create(r);
    REQUIRE(id);
    CHECK(*id > 0);

    auto got = repo.get("acme", *id);
    REQUIRE(got);
    REQUIRE(got->has_value());
    const auto& g = **got;
    CHECK(g.id == *id);
    CHECK(g.tenant == "acme");
    CHECK(g.name == "ops");
    CHECK(g.type == "webhook");
    CHECK(g.config == R"({"url":"https://example.com/hook"})");
    CHECK(g.secrets == R"({"token":"s3cr3t-XYZ-123"})");
    CHECK(g.enabled);
    CHECK(g.created_at_ms == 1000);
    CHECK(g.updated_at_ms == 1000);

    auto by_id = repo.get_by_id(*id);
    REQUIRE(by_id);
    REQUIRE(by_id->has_value());
    CHECK((*by_id)->secrets == R"({"token":"s3cr3t-XYZ-123"})");

    // Sealed in the table: neither the secret nor the JSON around it is there.
    const auto sql = "SELECT secrets FROM integrations WHERE id = " + std::to_string(*id);
    auto raw = raw_bytes(f.file, sql);
    CHECK_FALSE(raw.empty());
    CHECK(raw.find("s3cr3t-XYZ-123") == std::string::npos);
    CHECK(raw.find("token") == std::string::npos);

    // Another key cannot read it, and says so.
    auto wrong = integration_repository(*f.db, secret_box(key_of(9))).get("acme", *id);
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().code == state_errc::corrupt);

    // List, paged by id.
    const auto second = f.add_integration("acme", "second");
    const auto third = f.add_integration("acme", "third");
    f.add_integration("globex", "theirs");
    auto page = repo.list("acme", 2);
    REQUIRE(page);
    REQUIRE(page->items.size() == 2);
    CHECK(page->items[0].id == *id);
    CHECK(page->items[1].id == second);
    REQUIRE(page->next_cursor);
    auto rest = repo.list("acme", 2, *page->next_cursor);
    REQUIRE(rest);
    REQUIRE(rest->items.size() == 1);
    CHECK(rest->items[0].id == third);
    CHECK(rest->items[0].secrets == R"({"token":"tok-third"})");
    CHECK_FALSE(rest->next_cursor);

    // Update: name, config, secrets, enabled.
    auto changed = g;
    changed.name = "ops-renamed";
    changed.config = R"({"url":"https://example.com/other"})";
    changed.secrets = R"({"token":"n3w-s3cr3t-456"})";
    changed.enabled = false;
    changed.updated_at_ms = 2000;
    REQUIRE(repo.update(changed));
    auto after = repo.get("acme", *id);
    REQUIRE(after);
    REQUIRE(after->has_value());
    CHECK((*after)->name == "ops-renamed");
    CHECK((*after)->config == R"({"url":"https://example.com/other"})");
    CHECK((*after)->secrets == R"({"token":"n3w-s3cr3t-456"})");
    CHECK_FALSE((*after)->enabled);
    CHECK((*after)->created_at_ms == 1000);
    CHECK((*after)->updated_at_ms == 2000);
    raw = raw_bytes(f.file, sql);
    CHECK(raw.find("n3w-s3cr3t-456") == std::string::npos);
    CHECK(raw.find("s3cr3t") == std::string::npos);

    // (id, tenant, type, enabled) for the router.
    auto briefs = repo.all_briefs();
    REQUIRE(briefs);
    REQUIRE(briefs->size() == 4);
    CHECK((*briefs)[0].id == *id);
    CHECK((*briefs)[0].tenant == "acme");
    CHECK((*briefs)[0].type == "webhook");
    CHECK_FALSE((*briefs)[0].enabled);
    CHECK((*briefs)[3].tenant == "globex");

    // Remove.
    REQUIRE(repo.remove("acme", *id));
    auto gone = repo.get("acme", *id);
    REQUIRE(gone);
    CHECK_FALSE(gone->has_value());
    auto again = repo.remove("acme", *id);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == state_errc::not_found);
}

TEST_CASE("integrations: names are unique per tenant; other tenants' ids are not found") {
    fixture f;
    auto repo = f.integrations();
    const auto mine = f.add_integration("acme", "ops");

    auto dup = repo.create(fixture::hook("acme", "ops"));
    REQUIRE_FALSE(dup);
    CHECK(dup.error().code == state_errc::already_exists);
    CHECK(dup.error().message.find("\"ops\"") != std::string::npos);
    // The same name in another tenant is fine.
    const auto theirs = f.add_integration("globex", "ops");

    // Renaming onto a taken name.
    const auto other = f.add_integration("acme", "other");
    auto rename = fixture::hook("acme", "ops");
    rename.id = other;
    auto renamed = repo.update(rename);
    REQUIRE_FALSE(renamed);
    CHECK(renamed.error().code == state_errc::already_exists);

    // Unknown tenant.
    auto nobody = repo.create(fixture::hook("initech", "ops"));
    REQUIRE_FALSE(nobody);
    CHECK(nobody.error().code == state_errc::constraint_violation);

    // Another tenant's id, through every tenant-scoped call.
    auto got = repo.get("acme", theirs);
    REQUIRE(got);
    CHECK_FALSE(got->has_value());
    auto upd = fixture::hook("acme", "stolen");
    upd.id = theirs;
    auto updated = repo.update(upd);
    REQUIRE_FALSE(updated);
    CHECK(updated.error().code == state_errc::not_found);
    auto removed = repo.remove("acme", theirs);
    REQUIRE_FALSE(removed);
    CHECK(removed.error().code == state_errc::not_found);
    auto still = repo.get("globex", theirs);
    REQUIRE(still);
    REQUIRE(still->has_value());
    CHECK((*still)->name == "ops");

    auto existing = repo.existing("acme", {mine, theirs, other, 12345});
    REQUIRE(existing);
    CHECK(*existing == std::vector<std::int64_t>{mine, other});
}

// ---- routes ---------------------------------------------------------------------

TEST_CASE("routes: create with integrations of the tenant only, update replaces the list") {
    fixture f;
    auto repo = f.integrations();
    const auto a = f.add_integration("acme", "a");
    const auto b = f.add_integration("acme", "b");
    const auto c = f.add_integration("acme", "c");
    const auto theirs = f.add_integration("globex", "theirs");

    route_record r;
    r.tenant = "acme";
    r.name = "critical to ops";
    r.match = R"({"min_severity":"critical"})";
    r.integrations = {b, a};
    r.repeat_s = 600;
    r.continue_matching = false;
    r.created_at_ms = 1000;
    r.updated_at_ms = 1000;
    auto id = repo.create_route(r);
    REQUIRE(id);

    auto got = repo.get_route("acme", *id);
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK((*got)->name == "critical to ops");
    CHECK((*got)->match == R"({"min_severity":"critical"})");
    CHECK((*got)->integrations == std::vector<std::int64_t>{a, b});
    CHECK((*got)->repeat_s == 600);
    CHECK_FALSE((*got)->continue_matching);
    CHECK((*got)->enabled);

    // Another tenant's integration, or none at all: refused, naming it.
    for (const auto bad : {theirs, std::int64_t{999}}) {
        CAPTURE(bad);
        auto wrong = r;
        wrong.integrations = {a, bad};
        auto refused = repo.create_route(wrong);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().code == state_errc::constraint_violation);
        CHECK(refused.error().message.find(std::to_string(bad)) != std::string::npos);
    }
    auto routes = repo.list_routes("acme");
    REQUIRE(routes);
    CHECK(routes->items.size() == 1);

    // Update replaces the targets and the flags.
    auto changed = **got;
    changed.integrations = {c};
    changed.continue_matching = true;
    changed.enabled = false;
    changed.updated_at_ms = 2000;
    REQUIRE(repo.update_route(changed));
    auto after = repo.get_route("acme", *id);
    REQUIRE(after);
    REQUIRE(after->has_value());
    CHECK((*after)->integrations == std::vector<std::int64_t>{c});
    CHECK((*after)->continue_matching);
    CHECK_FALSE((*after)->enabled);
    CHECK((*after)->updated_at_ms == 2000);

    // An update naming another tenant's integration changes nothing.
    auto wrong = changed;
    wrong.integrations = {a, theirs};
    wrong.name = "renamed";
    auto refused = repo.update_route(wrong);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == state_errc::constraint_violation);
    after = repo.get_route("acme", *id);
    REQUIRE(after);
    REQUIRE(after->has_value());
    CHECK((*after)->name == "critical to ops");
    CHECK((*after)->integrations == std::vector<std::int64_t>{c});

    // Another tenant cannot see, change or remove it.
    auto other = repo.get_route("globex", *id);
    REQUIRE(other);
    CHECK_FALSE(other->has_value());
    auto as_globex = changed;
    as_globex.tenant = "globex";
    as_globex.integrations = {theirs};
    auto upd = repo.update_route(as_globex);
    REQUIRE_FALSE(upd);
    CHECK(upd.error().code == state_errc::not_found);
    auto rm = repo.remove_route("globex", *id);
    REQUIRE_FALSE(rm);
    CHECK(rm.error().code == state_errc::not_found);

    REQUIRE(repo.remove_route("acme", *id));
    auto gone = repo.get_route("acme", *id);
    REQUIRE(gone);
    CHECK_FALSE(gone->has_value());
}

TEST_CASE("routes: removing an integration removes it from the routes; all_routes is by id") {
    fixture f;
    auto repo = f.integrations();
    const auto a = f.add_integration("acme", "a");
    const auto b = f.add_integration("acme", "b");
    const auto theirs = f.add_integration("globex", "theirs");

    route_record r;
    r.tenant = "acme";
    r.name = "one";
    r.match = "{}";
    r.integrations = {a, b};
    const auto one = repo.create_route(r).value();
    r.name = "two";
    r.integrations = {b};
    const auto two = repo.create_route(r).value();
    route_record g;
    g.tenant = "globex";
    g.name = "theirs";
    g.match = "{}";
    g.integrations = {theirs};
    const auto three = repo.create_route(g).value();

    REQUIRE(repo.remove("acme", b));
    CHECK(repo.get_route("acme", one).value()->integrations == std::vector<std::int64_t>{a});
    CHECK(repo.get_route("acme", two).value()->integrations.empty());

    auto all = repo.all_routes();
    REQUIRE(all);
    REQUIRE(all->size() == 3);
    CHECK((*all)[0].id == one);
    CHECK((*all)[1].id == two);
    CHECK((*all)[2].id == three);
    CHECK((*all)[2].tenant == "globex");
    CHECK((*all)[2].integrations == std::vector<std::int64_t>{theirs});

    auto page = repo.list_routes("acme", 1);
    REQUIRE(page);
    REQUIRE(page->items.size() == 1);
    CHECK(page->items[0].id == one);
    REQUIRE(page->next_cursor);
    auto rest = repo.list_routes("acme", 1, *page->next_cursor);
    REQUIRE(rest);
    REQUIRE(rest->items.size() == 1);
    CHECK(rest->items[0].id == two);
    CHECK_FALSE(rest->next_cursor);
}

// ---- jobs written with their alert ---------------------------------------------------

TEST_CASE("alert upsert with jobs: one transaction; missing integrations and repeats are skipped") {
    fixture f;
    const auto hook = f.add_integration("acme", "hook");
    const auto other = f.add_integration("acme", "other");
    const auto theirs = f.add_integration("globex", "theirs");
    alert_repository alerts(*f.db);

    const auto a = make_alert(1, "acme");
    auto j1 = make_job("acme", 1, hook, 5000);
    j1.event_key = "alert:1:opened";
    auto j2 = j1;
    j2.integration = other;
    auto repeat = j1;
    repeat.payload = R"({"event":"again"})";
    auto missing = j1;
    missing.integration = 9999;
    auto foreign = j1;
    foreign.integration = theirs; // another tenant's integration
    const std::vector<new_delivery_job> jobs = {j1, missing, repeat, foreign, j2};
    REQUIRE(alerts.upsert({&a, 1}, jobs));

    auto listed = all_jobs(f);
    REQUIRE(listed.size() == 2);
    // Newest first.
    const auto& second = listed[0].job;
    const auto& first = listed[1].job;
    CHECK(first.integration == hook);
    CHECK(second.integration == other);
    CHECK(first.tenant == "acme");
    CHECK(first.alert == std::optional<std::int64_t>(1));
    CHECK(first.event == "alert.opened");
    CHECK(first.event_key == "alert:1:opened");
    CHECK(first.payload == j1.payload);
    CHECK(first.state == job_state::pending);
    CHECK(first.attempts == 0);
    CHECK(first.max_attempts == 5);
    CHECK(first.next_attempt_at_ms == 5000);
    CHECK(first.created_at_ms == 5000);
    CHECK_FALSE(first.last_error);
    CHECK(all_jobs(f, "globex").empty());

    // Written again (the engine replays an event): still one job each.
    REQUIRE(alerts.upsert({&a, 1}, jobs));
    CHECK(all_jobs(f).size() == 2);

    // An alert the batch cannot store takes its jobs with it.
    const auto twin = make_alert(2, "acme"); // a second open alert of the same (device, rule)
    auto j3 = make_job("acme", 2, hook, 6000);
    auto refused = alerts.upsert({&twin, 1}, std::vector<new_delivery_job>{j3});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == state_errc::already_exists);
    CHECK(all_jobs(f).size() == 2);

    // Jobs alone (the alert written earlier) are fine too.
    REQUIRE(alerts.upsert({}, std::vector<new_delivery_job>{make_job("acme", 1, hook, 7000, "alert.closed")}));
    CHECK(all_jobs(f).size() == 3);
}

// ---- the outbox ------------------------------------------------------------------

TEST_CASE("outbox: claim_due returns due pending jobs, oldest first, and marks them in flight") {
    fixture f;
    const auto hook = f.add_integration("acme", "hook");
    write_jobs(f, 1, {make_job("acme", 1, hook, 2000), make_job("acme", 1, hook, 1000),
                      make_job("acme", 1, hook, 9000)});
    delivery_repository repo(*f.db);
    const auto listed = all_jobs(f); // newest first: 9000, 1000, 2000
    const auto at_9000 = listed[0].job.id, at_1000 = listed[1].job.id, at_2000 = listed[2].job.id;

    auto nd = repo.next_due();
    REQUIRE(nd);
    CHECK(*nd == std::optional<std::int64_t>(1000));

    auto none = repo.claim_due(999, 10, 10, admit_all);
    REQUIRE(none);
    CHECK(none->empty());

    auto claimed = repo.claim_due(2000, 10, 10, admit_all);
    REQUIRE(claimed);
    CHECK(ids_of(*claimed) == std::vector<std::int64_t>{at_1000, at_2000});
    for (const auto& j : *claimed)
        CHECK(j.state == job_state::in_flight);
    CHECK(job(f, at_1000).job.state == job_state::in_flight);
    CHECK(job(f, at_1000).job.updated_at_ms == 2000);
    CHECK(job(f, at_9000).job.state == job_state::pending);

    auto counts = repo.count();
    REQUIRE(counts);
    CHECK(counts->pending == 1);
    CHECK(counts->in_flight == 2);
    CHECK(counts->delivered == 0);
    CHECK(counts->dead == 0);

    // In flight is not claimed twice.
    auto again = repo.claim_due(10'000, 10, 10, admit_all);
    REQUIRE(again);
    CHECK(ids_of(*again) == std::vector<std::int64_t>{at_9000});
    nd = repo.next_due();
    REQUIRE(nd);
    CHECK_FALSE(nd->has_value());
}

TEST_CASE("outbox: claim_due takes at most per_integration of each integration, at most max, as admitted") {
    fixture f;
    const auto a = f.add_integration("acme", "a");
    const auto b = f.add_integration("acme", "b");
    std::vector<new_delivery_job> jobs;
    for (std::int64_t i = 0; i < 10; ++i) {
        jobs.push_back(make_job("acme", 1, a, 1000 + i));
        jobs.push_back(make_job("acme", 1, b, 2000 + i));
    }
    write_jobs(f, 1, jobs);
    delivery_repository repo(*f.db);

    SUBCASE("two of each") {
        auto claimed = repo.claim_due(5000, 100, 2, admit_all);
        REQUIRE(claimed);
        std::map<std::int64_t, int> per;
        for (const auto& j : *claimed)
            ++per[j.integration];
        CHECK(per == std::map<std::int64_t, int>{{a, 2}, {b, 2}});
        // The oldest of each.
        CHECK((*claimed)[0].next_attempt_at_ms == 1000);
        CHECK((*claimed)[1].next_attempt_at_ms == 1001);
        CHECK((*claimed)[2].next_attempt_at_ms == 2000);
        CHECK((*claimed)[3].next_attempt_at_ms == 2001);
        CHECK(repo.count().value().in_flight == 4);
    }
    SUBCASE("max") {
        auto claimed = repo.claim_due(5000, 3, 10, admit_all);
        REQUIRE(claimed);
        CHECK(claimed->size() == 3);
        CHECK(repo.count().value().in_flight == 3);
    }
    SUBCASE("admit refuses one integration and caps the other") {
        std::vector<std::int64_t> offered;
        int taken = 0;
        auto claimed = repo.claim_due(5000, 100, 5, [&](const delivery_job& j) {
            offered.push_back(j.id);
            if (j.integration == b || taken == 3)
                return false;
            ++taken;
            return true;
        });
        REQUIRE(claimed);
        REQUIRE(claimed->size() == 3);
        for (const auto& j : *claimed)
            CHECK(j.integration == a);
        CHECK(offered.size() == 10); // 5 of each
        const auto counts = repo.count().value();
        CHECK(counts.in_flight == 3);
        CHECK(counts.pending == 17);
    }
}

TEST_CASE("outbox: finish records attempts and states; counts=false is not an attempt") {
    fixture f;
    const auto hook = f.add_integration("acme", "hook");
    write_jobs(f, 1, {make_job("acme", 1, hook, 1000), make_job("acme", 1, hook, 1001),
                      make_job("acme", 1, hook, 1002)});
    delivery_repository repo(*f.db);
    auto claimed = repo.claim_due(2000, 10, 10, admit_all).value();
    REQUIRE(claimed.size() == 3);
    const auto delivered = claimed[0].id, retried = claimed[1].id, failed = claimed[2].id;

    const std::vector<job_completion> done = {
        completion(delivered, 1, attempt_outcome::delivered, job_state::delivered, 2000, 0, "200"),
        completion(retried, 1, attempt_outcome::retry, job_state::pending, 2000, 9000, "503", "service unavailable"),
        completion(failed, 1, attempt_outcome::failed, job_state::dead, 2000, 0, "404", "not found"),
    };
    REQUIRE(repo.finish(done));

    auto d = job(f, delivered);
    CHECK(d.job.state == job_state::delivered);
    CHECK(d.job.attempts == 1);
    CHECK_FALSE(d.job.last_error);
    CHECK(d.job.updated_at_ms == 2007);
    REQUIRE(d.attempts.size() == 1);
    CHECK(d.attempts[0].job == delivered);
    CHECK(d.attempts[0].attempt == 1);
    CHECK(d.attempts[0].started_at_ms == 2000);
    CHECK(d.attempts[0].latency_ms == 7);
    CHECK(d.attempts[0].outcome == attempt_outcome::delivered);
    CHECK(d.attempts[0].status == "200");
    CHECK_FALSE(d.attempts[0].error);

    auto r = job(f, retried);
    CHECK(r.job.state == job_state::pending);
    CHECK(r.job.attempts == 1);
    CHECK(r.job.next_attempt_at_ms == 9000);
    CHECK(r.job.last_error == std::optional<std::string>("service unavailable"));
    REQUIRE(r.attempts.size() == 1);
    CHECK(r.attempts[0].outcome == attempt_outcome::retry);
    CHECK(r.attempts[0].status == "503");

    auto x = job(f, failed);
    CHECK(x.job.state == job_state::dead);
    CHECK(x.job.attempts == 1);
    CHECK(x.job.last_error == std::optional<std::string>("not found"));
    REQUIRE(x.attempts.size() == 1);
    CHECK(x.attempts[0].outcome == attempt_outcome::failed);

    // Not due before its time.
    CHECK(repo.claim_due(8999, 10, 10, admit_all).value().empty());
    auto second = repo.claim_due(9000, 10, 10, admit_all).value();
    REQUIRE(ids_of(second) == std::vector<std::int64_t>{retried});

    // Not an attempt (its circuit was open): attempts unchanged, no row.
    auto waits = completion(retried, 2, attempt_outcome::retry, job_state::pending, 9000, 12'000);
    waits.counts = false;
    REQUIRE(repo.finish(std::vector<job_completion>{waits}));
    r = job(f, retried);
    CHECK(r.job.state == job_state::pending);
    CHECK(r.job.attempts == 1);
    CHECK(r.job.next_attempt_at_ms == 12'000);
    CHECK(r.attempts.size() == 1);

    // The second real attempt, then dead.
    second = repo.claim_due(12'000, 10, 10, admit_all).value();
    REQUIRE(ids_of(second) == std::vector<std::int64_t>{retried});
    REQUIRE(repo.finish(std::vector<job_completion>{completion(retried, 2, attempt_outcome::retry, job_state::dead,
                                                               12'000, 0, "", "gave up after 2 attempts")}));
    r = job(f, retried);
    CHECK(r.job.state == job_state::dead);
    CHECK(r.job.attempts == 2);
    REQUIRE(r.attempts.size() == 2);
    CHECK(r.attempts[0].attempt == 1);
    CHECK(r.attempts[1].attempt == 2);
    CHECK(r.attempts[1].error == std::optional<std::string>("gave up after 2 attempts"));

    const auto counts = repo.count().value();
    CHECK(counts.pending == 0);
    CHECK(counts.in_flight == 0);
    CHECK(counts.delivered == 1);
    CHECK(counts.dead == 2);

    // An empty batch is fine.
    CHECK(repo.finish({}));
}

TEST_CASE("outbox: requeue_in_flight and defer") {
    fixture f;
    const auto a = f.add_integration("acme", "a");
    const auto b = f.add_integration("acme", "b");
    write_jobs(f, 1, {make_job("acme", 1, a, 1000), make_job("acme", 1, a, 1500), make_job("acme", 1, a, 50'000),
                      make_job("acme", 1, b, 1000)});
    delivery_repository repo(*f.db);
    const auto listed = all_jobs(f); // newest first
    const auto b_job = listed[0].job.id, a_late = listed[1].job.id, a_1500 = listed[2].job.id,
               a_1000 = listed[3].job.id;

    SUBCASE("requeue") {
        auto claimed = repo.claim_due(2000, 10, 10, admit_all).value();
        REQUIRE(claimed.size() == 3);
        auto n = repo.requeue_in_flight(3000);
        REQUIRE(n);
        CHECK(*n == 3);
        for (auto id : {a_1000, a_1500, b_job}) {
            const auto e = job(f, id);
            CHECK(e.job.state == job_state::pending);
            CHECK(e.job.attempts == 0);
            CHECK(e.job.next_attempt_at_ms <= 3000);
        }
        CHECK(repo.count().value().in_flight == 0);
        CHECK(repo.requeue_in_flight(3000).value() == 0);
        CHECK(repo.claim_due(3000, 10, 10, admit_all).value().size() == 3);
    }
    SUBCASE("defer") {
        // Jobs of `a` due before 20000 wait until then; b's and the later one do not move.
        auto n = repo.defer(a, 20'000);
        REQUIRE(n);
        CHECK(*n == 2);
        CHECK(job(f, a_1000).job.next_attempt_at_ms == 20'000);
        CHECK(job(f, a_1500).job.next_attempt_at_ms == 20'000);
        CHECK(job(f, a_late).job.next_attempt_at_ms == 50'000);
        CHECK(job(f, b_job).job.next_attempt_at_ms == 1000);
        CHECK(ids_of(repo.claim_due(19'999, 10, 10, admit_all).value()) == std::vector<std::int64_t>{b_job});
        CHECK(repo.claim_due(20'000, 10, 10, admit_all).value().size() == 2);
        // In flight jobs are not deferred.
        CHECK(repo.defer(a, 30'000).value() == 0);
    }
}

TEST_CASE("outbox: the delivery log filters by alert, integration and state, newest first, paged") {
    fixture f;
    const auto a = f.add_integration("acme", "a");
    const auto b = f.add_integration("acme", "b");
    const auto theirs = f.add_integration("globex", "theirs");
    write_jobs(f, 1, {make_job("acme", 1, a, 1000), make_job("acme", 1, b, 1001)});
    write_jobs(f, 2, {make_job("acme", 2, a, 1002), make_job("acme", 2, b, 1003), make_job("acme", 2, a, 1004)});
    write_jobs(f, 3, {make_job("globex", 3, theirs, 1005)}, "globex");
    delivery_repository repo(*f.db);

    const auto all = all_jobs(f);
    REQUIRE(all.size() == 5);
    const auto ids = ids_of(all);
    CHECK(std::is_sorted(ids.rbegin(), ids.rend()));
    CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());

    // Deliver the oldest two (one attempt each).
    auto claimed = repo.claim_due(1001, 10, 10, admit_all).value();
    REQUIRE(claimed.size() == 2);
    REQUIRE(repo.finish(std::vector<job_completion>{
        completion(claimed[0].id, 1, attempt_outcome::delivered, job_state::delivered, 1100, 0, "200"),
        completion(claimed[1].id, 1, attempt_outcome::failed, job_state::dead, 1100, 0, "410", "gone")}));

    const auto by_alert = all_jobs(f, "acme", {.alert = 2, .integration = {}, .state = {}});
    REQUIRE(by_alert.size() == 3);
    for (const auto& e : by_alert)
        CHECK(e.job.alert == std::optional<std::int64_t>(2));
    CHECK(ids_of(by_alert) == std::vector<std::int64_t>(ids.begin(), ids.begin() + 3));

    const auto by_integration = all_jobs(f, "acme", {.alert = {}, .integration = a, .state = {}});
    REQUIRE(by_integration.size() == 3);
    for (const auto& e : by_integration)
        CHECK(e.job.integration == a);

    const auto delivered = all_jobs(f, "acme", {.alert = {}, .integration = {}, .state = job_state::delivered});
    REQUIRE(delivered.size() == 1);
    CHECK(delivered[0].job.id == claimed[0].id);
    REQUIRE(delivered[0].attempts.size() == 1);
    CHECK(delivered[0].attempts[0].status == "200");

    const auto dead_of_b = all_jobs(f, "acme", {.alert = 1, .integration = b, .state = job_state::dead});
    REQUIRE(dead_of_b.size() == 1);
    CHECK(dead_of_b[0].job.last_error == std::optional<std::string>("gone"));
    CHECK(all_jobs(f, "acme", {.alert = 1, .integration = a, .state = job_state::dead}).empty());
    CHECK(all_jobs(f, "acme", {.alert = {}, .integration = {}, .state = job_state::pending}).size() == 3);

    // Pages of two: every job once, newest first, a cursor until the last page.
    std::vector<std::int64_t> paged;
    std::optional<std::string> cursor;
    int pages = 0;
    do {
        auto page = repo.list("acme", {}, 2, cursor ? std::optional<std::string_view>(*cursor) : std::nullopt);
        REQUIRE(page);
        ++pages;
        CHECK(page->items.size() <= 2);
        for (const auto& e : page->items)
            paged.push_back(e.job.id);
        cursor = page->next_cursor;
    } while (cursor && pages < 10);
    CHECK(pages == 3);
    CHECK(paged == ids);

    // Another tenant's jobs stay theirs.
    CHECK(all_jobs(f, "globex").size() == 1);
    auto foreign = repo.get("acme", all_jobs(f, "globex")[0].job.id);
    REQUIRE(foreign);
    CHECK_FALSE(foreign->has_value());

    const auto counts = repo.count().value(); // every tenant
    CHECK(counts.pending == 4);
    CHECK(counts.in_flight == 0);
    CHECK(counts.delivered == 1);
    CHECK(counts.dead == 1);

    auto bad_cursor = repo.list("acme", {}, 2, "not-a-cursor");
    CHECK_FALSE(bad_cursor);
}

// ---- schema -----------------------------------------------------------------------

TEST_CASE("schema 5: continue_matching defaults to 1 for routes written by version 4") {
    temp_dir dir;
    const auto file = dir.path / "state.db";
    {
        auto v4 = database::open_at_version({.file = file}, 4);
        REQUIRE_MESSAGE(v4.has_value(), (v4 ? "" : v4.error().message));
        CHECK((*v4)->schema_version() == 4);
        REQUIRE(tenant_repository(**v4).create({"acme", "Acme", 1000, false}));
    }
    raw_exec(file, "INSERT INTO integrations (id, tenant, name, type, config, created_at, updated_at) VALUES "
                   "(5, 'acme', 'old hook', 'webhook', '{}', 100, 100);"
                   "INSERT INTO routes (id, tenant, name, match, repeat_s, enabled, created_at, updated_at) VALUES "
                   "(3, 'acme', 'old route', '{\"min_severity\":\"major\"}', 60, 1, 100, 200);"
                   "INSERT INTO route_integrations (route, integration) VALUES (3, 5);");

    auto opened = database::open({.file = file});
    REQUIRE(opened);
    auto& db = **opened;
    CHECK(db.schema_version() == database::latest_schema_version());
    CHECK(database::latest_schema_version() >= 5);

    const secret_box box(key_of(1));
    integration_repository repo(db, box);
    auto route = repo.get_route("acme", 3);
    REQUIRE(route);
    REQUIRE(route->has_value());
    CHECK((*route)->continue_matching);
    CHECK((*route)->name == "old route");
    CHECK((*route)->repeat_s == 60);
    CHECK((*route)->integrations == std::vector<std::int64_t>{5});
    // No secrets written yet: an empty object.
    auto hook = repo.get("acme", 5);
    REQUIRE(hook);
    REQUIRE(hook->has_value());
    CHECK((*hook)->secrets == "{}");

    CHECK(raw_bytes(file, "SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema WHERE name IN "
                          "('delivery_jobs_tenant_id', 'delivery_jobs_integration') ORDER BY name)") ==
          "delivery_jobs_integration,delivery_jobs_tenant_id");

    // A new route may say stop.
    route_record r;
    r.tenant = "acme";
    r.name = "stop";
    r.match = "{}";
    r.continue_matching = false;
    const auto id = repo.create_route(r).value();
    CHECK_FALSE(repo.get_route("acme", id).value()->continue_matching);
}

TEST_CASE("schema 5: a new database is at the latest version, 5 or later") {
    temp_dir dir;
    auto opened = database::open({.file = dir.path / "state.db"});
    REQUIRE(opened);
    CHECK((*opened)->schema_version() == database::latest_schema_version());
    CHECK(database::latest_schema_version() >= 5);
    CHECK(raw_bytes(dir.path / "state.db", "SELECT dflt_value FROM pragma_table_info('routes') WHERE name = "
                                           "'continue_matching'") == "1");
}

TEST_CASE("job states and outcomes by name") {
    for (auto s : {job_state::pending, job_state::in_flight, job_state::delivered, job_state::dead})
        CHECK(parse_job_state(to_string(s)) == std::optional<job_state>(s));
    CHECK(to_string(job_state::in_flight) == "in_flight");
    CHECK_FALSE(parse_job_state("Pending"));
    CHECK_FALSE(parse_job_state(""));
    CHECK(to_string(attempt_outcome::delivered) == "delivered");
    CHECK(to_string(attempt_outcome::retry) == "retry");
    CHECK(to_string(attempt_outcome::failed) == "failed");
}
