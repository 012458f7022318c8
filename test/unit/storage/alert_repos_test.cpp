// storage/state rules engine repositories: rules (tenant scoping, paging,
// scope JSON), alerts (batched upsert, at most one non-closed alert per
// (tenant, device, rule), filters and paging, purge, id high-water mark,
// statistics), silences, device liveness, the enum names, and the schema
// version 4 migration keeping rows written by version 3. Real SQLite files in
// temporary directories.

#include "storage/state/alert_model.hpp"
#include "storage/state/alert_repository.hpp"
#include "storage/state/database.hpp"
#include "storage/state/rule_repository.hpp"
#include "storage/state/silence_repository.hpp"
#include "storage/state/tenant_repository.hpp"

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"
#include <sqlite3.h>

#include <algorithm>
#include <functional>
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

constexpr std::int64_t day_ms = 86'400'000;
constexpr std::int64_t hour_ms = 3'600'000;

// Direct SQLite access, for what no repository offers (rows as version 3
// wrote them, the raw JSON of a column).
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

std::string raw_text(const fs::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr)
        out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

struct fixture {
    temp_dir dir;
    fs::path file = dir.path / "state.db";
    std::unique_ptr<database> db;

    fixture() {
        auto opened = database::open({.file = file});
        REQUIRE_MESSAGE(opened.has_value(), (opened ? "" : opened.error().message));
        db = std::move(*opened);
        tenant_repository tenants(*db);
        REQUIRE(tenants.create({"acme", "Acme", 1000, false}));
        REQUIRE(tenants.create({"globex", "Globex", 1000, false}));
    }
};

rule_record threshold_rule(std::string tenant, std::string name) {
    rule_record r;
    r.tenant = std::move(tenant);
    r.name = std::move(name);
    r.description = "too hot";
    r.kind = rule_kind::threshold;
    r.sev = severity::major;
    r.metric = "temp";
    r.op = compare_op::ge;
    r.value = 80.5;
    r.for_s = 30;
    r.clear_value = 75.0;
    r.escalate_after_s = 600;
    r.created_at_ms = 1000;
    r.updated_at_ms = 1000;
    return r;
}

rule_record heartbeat_rule(std::string tenant, std::string name) {
    rule_record r;
    r.tenant = std::move(tenant);
    r.name = std::move(name);
    r.kind = rule_kind::heartbeat;
    r.sev = severity::critical;
    r.interval_s = 60;
    r.missed = 3;
    r.enabled = false;
    r.created_at_ms = 2000;
    r.updated_at_ms = 2000;
    return r;
}

alert_record make_alert(std::int64_t id, std::string tenant, std::string device, std::int64_t rule,
                        alert_status status = alert_status::open, std::int64_t opened_at = 10'000) {
    alert_record a;
    a.id = id;
    a.tenant = std::move(tenant);
    a.device = std::move(device);
    a.rule = rule;
    a.rule_name = "rule " + std::to_string(rule);
    a.kind = alert_kind::threshold;
    a.sev = severity::warning;
    a.status = status;
    a.metric = "temp";
    a.value = 81.0;
    a.threshold = 80.0;
    a.last_value = 82.5;
    a.message = "temp >= 80";
    a.count = 1;
    a.opened_at_ms = opened_at;
    a.last_seen_at_ms = opened_at;
    if (status != alert_status::open) {
        a.acknowledged_at_ms = opened_at + 1000;
        a.acknowledged_by = "alice";
    }
    if (status == alert_status::closed)
        a.closed_at_ms = opened_at + 2000;
    return a;
}

std::vector<std::int64_t> ids_of(const std::vector<alert_record>& items) {
    std::vector<std::int64_t> out;
    for (const auto& a : items)
        out.push_back(a.id);
    return out;
}

template <class Page>
std::vector<std::int64_t> page_ids(const Page& p) {
    std::vector<std::int64_t> out;
    for (const auto& item : p.items)
        out.push_back(item.id);
    return out;
}

state_result<void> upsert_one(alert_repository& alerts, const alert_record& a) { return alerts.upsert({&a, 1}); }

} // namespace

// ---- schema -----------------------------------------------------------------

TEST_CASE("schema 4: a new database has the tables of version 4") {
    temp_dir dir;
    auto opened = database::open({.file = dir.path / "state.db"});
    REQUIRE(opened);
    CHECK((*opened)->schema_version() == database::latest_schema_version());
    CHECK(database::latest_schema_version() >= 4);
    CHECK(raw_text(dir.path / "state.db",
                   "SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema WHERE name IN "
                   "('device_liveness', 'alert_id_high_water', 'alerts_closed_at', 'alerts_tenant_id', "
                   "'alerts_keep_high_water') ORDER BY name)") ==
          "alert_id_high_water,alerts_closed_at,alerts_keep_high_water,alerts_tenant_id,device_liveness");
}

TEST_CASE("schema 4: rules and alerts written by version 3 are kept, with defaults for the new fields") {
    temp_dir dir;
    const auto file = dir.path / "state.db";
    {
        auto v3 = database::open_at_version({.file = file}, 3);
        REQUIRE_MESSAGE(v3.has_value(), (v3 ? "" : v3.error().message));
        REQUIRE(tenant_repository(**v3).create({"acme", "Acme", 1000, false}));
    }
    // What version 3 could hold, written with its columns only.
    raw_exec(file, "INSERT INTO rules (id, tenant, name, kind, metric, op, value, for_s, severity, scope, enabled, "
                   "created_at, updated_at) VALUES (7, 'acme', 'hot', 'threshold', 'temp', '>', 80.0, 0, 'major', "
                   "'{\"device\":\"dev-1\"}', 1, 100, 200);"
                   "INSERT INTO alerts (id, tenant, device, rule, kind, severity, state, metric, value, threshold, "
                   "opened_at, last_at) VALUES (40, 'acme', 'dev-1', 7, 'THRESHOLD', 'major', 'open', 'temp', 81.0, "
                   "80.0, 300, 300);"
                   "INSERT INTO alerts (id, tenant, device, rule, kind, severity, state, opened_at, last_at, "
                   "closed_at) VALUES (41, 'acme', 'dev-2', 7, 'NO_HEARTBEAT', 'critical', 'closed', 300, 300, 400);");
    auto opened = database::open({.file = file});
    REQUIRE(opened);
    auto& db = **opened;
    CHECK(db.schema_version() == database::latest_schema_version());

    auto rule = rule_repository(db).get("acme", 7).value();
    REQUIRE(rule);
    CHECK(rule->name == "hot");
    CHECK(rule->description.empty());
    CHECK_FALSE(rule->escalate_after_s);
    CHECK(rule->scope.device == "dev-1");
    CHECK(rule->op == compare_op::gt);

    alert_repository alerts(db);
    auto a = alerts.get("acme", 40).value();
    REQUIRE(a);
    CHECK(a->status == alert_status::open);
    CHECK_FALSE(a->last_value);
    CHECK(a->escalation_level == 0);
    CHECK_FALSE(a->silenced);
    auto hb = alerts.get("acme", 41).value();
    REQUIRE(hb);
    CHECK(hb->metric.empty());
    CHECK_FALSE(hb->closed_by); // closed automatically

    // The high-water mark started from the existing alerts.
    CHECK(alerts.max_id().value() == 41);
    CHECK(alerts.purge_closed_before(1'000'000).value() == 1);
    CHECK(alerts.max_id().value() == 41);
}

// ---- enum names ---------------------------------------------------------------

TEST_CASE("alert model: every name parses back; anything else is refused") {
    for (auto k : {rule_kind::threshold, rule_kind::heartbeat})
        CHECK(parse_rule_kind(to_string(k)) == k);
    for (auto o : {compare_op::gt, compare_op::lt, compare_op::ge, compare_op::le, compare_op::eq, compare_op::ne})
        CHECK(parse_compare_op(to_string(o)) == o);
    for (auto s : {severity::critical, severity::major, severity::minor, severity::warning, severity::info})
        CHECK(parse_severity(to_string(s)) == s);
    for (auto k : {alert_kind::threshold, alert_kind::no_heartbeat})
        CHECK(parse_alert_kind(to_string(k)) == k);
    for (auto s : {alert_status::open, alert_status::acknowledged, alert_status::closed})
        CHECK(parse_alert_status(to_string(s)) == s);

    CHECK(to_string(rule_kind::heartbeat) == "heartbeat");
    CHECK(to_string(compare_op::ge) == ">=");
    CHECK(to_string(compare_op::ne) == "!=");
    CHECK(to_string(severity::critical) == "critical");
    CHECK(to_string(alert_kind::no_heartbeat) == "NO_HEARTBEAT");
    CHECK(to_string(alert_status::acknowledged) == "acknowledged");

    CHECK_FALSE(parse_rule_kind("Threshold"));
    CHECK_FALSE(parse_rule_kind(""));
    CHECK_FALSE(parse_compare_op("="));
    CHECK_FALSE(parse_compare_op("=>"));
    CHECK_FALSE(parse_severity("CRITICAL"));
    CHECK_FALSE(parse_severity("fatal"));
    CHECK_FALSE(parse_alert_kind("threshold"));
    CHECK_FALSE(parse_alert_kind("NO_HEARTBEAT "));
    CHECK_FALSE(parse_alert_status("acked"));
    CHECK_FALSE(parse_alert_status(""));
}

// ---- rules --------------------------------------------------------------------

TEST_CASE("rules: create and get round trip, both kinds") {
    fixture f;
    rule_repository rules(*f.db);
    auto t = threshold_rule("acme", "hot");
    t.id = 999; // ignored
    auto tid = rules.create(t);
    REQUIRE(tid);
    CHECK(*tid != 999);
    auto h = heartbeat_rule("acme", "alive");
    auto hid = rules.create(h);
    REQUIRE(hid);
    CHECK(*hid != *tid);

    t.id = *tid;
    h.id = *hid;
    CHECK(rules.get("acme", *tid).value() == t);
    CHECK(rules.get("acme", *hid).value() == h);
    CHECK_FALSE(rules.get("acme", 12345).value());

    auto bad = rules.create(threshold_rule("initech", "x"));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == state_errc::constraint_violation);
    CHECK(bad.error().message.find("initech") != std::string::npos);
}

TEST_CASE("rules: another tenant's rule behaves exactly like an unknown one") {
    fixture f;
    rule_repository rules(*f.db);
    auto id = rules.create(threshold_rule("acme", "hot")).value();

    CHECK_FALSE(rules.get("globex", id).value());
    CHECK(rules.list("globex").value().items.empty());
    CHECK(rules.list_tenant("globex").value().empty());

    auto other = threshold_rule("globex", "stolen");
    other.id = id;
    auto replaced = rules.replace(other);
    REQUIRE_FALSE(replaced);
    CHECK(replaced.error().code == state_errc::not_found);
    auto removed = rules.remove("globex", id);
    REQUIRE_FALSE(removed);
    CHECK(removed.error().code == state_errc::not_found);
    CHECK(removed.error().message.find("remove rule") != std::string::npos);

    // Untouched.
    CHECK(rules.get("acme", id).value()->name == "hot");
}

TEST_CASE("rules: replace changes every field but id, tenant and created_at; remove deletes") {
    fixture f;
    rule_repository rules(*f.db);
    auto id = rules.create(threshold_rule("acme", "hot")).value();

    auto changed = heartbeat_rule("acme", "alive");
    changed.id = id;
    changed.description = "now a heartbeat";
    changed.scope.labels = {{"site", "b"}};
    changed.escalate_after_s = std::nullopt;
    changed.created_at_ms = 777; // ignored
    changed.updated_at_ms = 5000;
    REQUIRE(rules.replace(changed));
    auto got = rules.get("acme", id).value();
    REQUIRE(got);
    auto expected = changed;
    expected.created_at_ms = 1000;
    CHECK(*got == expected);

    auto unknown = changed;
    unknown.id = id + 100;
    CHECK(rules.replace(unknown).error().code == state_errc::not_found);

    REQUIRE(rules.remove("acme", id));
    CHECK_FALSE(rules.get("acme", id).value());
    CHECK(rules.remove("acme", id).error().code == state_errc::not_found);
}

TEST_CASE("rules: scope JSON round trip in its three forms") {
    fixture f;
    rule_repository rules(*f.db);

    auto every = threshold_rule("acme", "every");
    auto one = threshold_rule("acme", "one");
    one.scope.device = "dev-1";
    auto labelled = threshold_rule("acme", "labelled");
    labelled.scope.labels = {{"site", "plant \"7\""}, {"zone", "b"}};

    for (auto* r : {&every, &one, &labelled}) {
        r->id = rules.create(*r).value();
        CHECK(rules.get("acme", r->id).value()->scope == r->scope);
    }
    auto scope_json = [&](std::int64_t id) {
        return raw_text(f.file, "SELECT scope FROM rules WHERE id = " + std::to_string(id));
    };
    CHECK(scope_json(every.id) == "{}");
    CHECK(scope_json(one.id) == R"({"device":"dev-1"})");
    CHECK(scope_json(labelled.id) == R"({"labels":{"site":"plant \"7\"","zone":"b"}})");

    // A scope edited into something pulsegate never writes is reported, not guessed.
    raw_exec(f.file, "UPDATE rules SET scope = '{\"labels\":[1]}' WHERE id = " + std::to_string(one.id));
    auto broken = rules.get("acme", one.id);
    REQUIRE_FALSE(broken);
    CHECK(broken.error().code == state_errc::corrupt);
}

TEST_CASE("rules: a tenant's list pages by id; list_tenant and list_all") {
    fixture f;
    rule_repository rules(*f.db);
    std::vector<std::int64_t> acme;
    for (int i = 0; i < 12; ++i) {
        acme.push_back(rules.create(threshold_rule("acme", "r" + std::to_string(i))).value());
        if (i % 4 == 0)
            (void)rules.create(threshold_rule("globex", "g" + std::to_string(i))).value();
    }

    std::vector<std::int64_t> seen;
    std::optional<std::string> cursor;
    int pages = 0;
    do {
        auto page = rules.list("acme", 5, cursor);
        REQUIRE(page);
        ++pages;
        CHECK(page->items.size() <= 5);
        for (auto id : page_ids(*page))
            seen.push_back(id);
        cursor = page->next_cursor;
    } while (cursor && pages < 10);
    CHECK(pages == 3);
    CHECK(seen == acme);

    auto exact = rules.list("acme", 12).value();
    CHECK(exact.items.size() == 12);
    CHECK_FALSE(exact.next_cursor);
    CHECK(rules.list("acme", 0).value().items.size() == 1);

    for (const char* bad : {"", "abc", "-3", "0", "5x", "99999999999999999999"}) {
        CAPTURE(bad);
        auto r = rules.list("acme", 10, std::string_view(bad));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == state_errc::invalid_argument);
        CHECK(r.error().message.find("cursor") != std::string::npos);
    }

    std::vector<std::int64_t> tenant_ids;
    for (const auto& r : rules.list_tenant("acme").value())
        tenant_ids.push_back(r.id);
    CHECK(tenant_ids == acme);
    CHECK(rules.list_tenant("globex").value().size() == 3);

    auto all = rules.list_all().value();
    CHECK(all.size() == 15);
    CHECK(std::is_sorted(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; }));
}

// ---- alerts -------------------------------------------------------------------

TEST_CASE("alerts: upsert inserts, then replaces every field by id") {
    fixture f;
    alert_repository alerts(*f.db);
    auto a = make_alert(1, "acme", "dev-1", 7);
    auto b = make_alert(2, "acme", "dev-2", 7);
    b.kind = alert_kind::no_heartbeat;
    b.metric.clear();
    b.value = std::nullopt;
    b.threshold = std::nullopt;
    b.last_value = std::nullopt;
    const std::vector<alert_record> batch = {a, b};
    REQUIRE(alerts.upsert(batch));
    CHECK(alerts.get("acme", 1).value() == a);
    CHECK(alerts.get("acme", 2).value() == b);

    // Repeats, acknowledgement, escalation, silencing, then a manual close.
    a.count = 5;
    a.last_value = 90.0;
    a.last_seen_at_ms = 20'000;
    a.status = alert_status::acknowledged;
    a.acknowledged_at_ms = 15'000;
    a.acknowledged_by = "alice";
    a.escalation_level = 2;
    a.escalated_at_ms = 14'000;
    a.silenced = true;
    a.sev = severity::critical;
    a.message = "still hot";
    REQUIRE(upsert_one(alerts, a));
    CHECK(alerts.get("acme", 1).value() == a);

    a.status = alert_status::closed;
    a.closed_at_ms = 30'000;
    a.closed_by = "bob";
    REQUIRE(upsert_one(alerts, a));
    CHECK(alerts.get("acme", 1).value() == a);

    // Another tenant's alert is not there.
    CHECK_FALSE(alerts.get("globex", 1).value());
    CHECK_FALSE(alerts.get("acme", 3).value());

    // Empty batches are fine; ids start at 1.
    CHECK(alerts.upsert({}));
    auto zero = make_alert(0, "acme", "dev-9", 9);
    CHECK(upsert_one(alerts, zero).error().code == state_errc::invalid_argument);
}

TEST_CASE("alerts: at most one non-closed alert per (tenant, device, rule)") {
    fixture f;
    alert_repository alerts(*f.db);
    REQUIRE(upsert_one(alerts, make_alert(1, "acme", "dev-1", 7)));

    // A second open one, in a batch with a good alert: nothing of the batch is written.
    const std::vector<alert_record> batch = {make_alert(2, "acme", "dev-2", 7), make_alert(3, "acme", "dev-1", 7)};
    auto r = alerts.upsert(batch);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == state_errc::already_exists);
    CHECK(r.error().message.find("alert 3") != std::string::npos);
    CHECK_FALSE(alerts.get("acme", 2).value());
    CHECK_FALSE(alerts.get("acme", 3).value());

    // Acknowledged counts as non-closed; updating an existing alert into a second non-closed one too.
    CHECK(upsert_one(alerts, make_alert(3, "acme", "dev-1", 7, alert_status::acknowledged)).error().code ==
          state_errc::already_exists);
    REQUIRE(upsert_one(alerts, make_alert(4, "acme", "dev-1", 7, alert_status::closed)));
    CHECK(upsert_one(alerts, make_alert(4, "acme", "dev-1", 7, alert_status::open)).error().code ==
          state_errc::already_exists);
    CHECK(alerts.get("acme", 4).value()->status == alert_status::closed);

    // Other devices, rules and tenants are independent.
    REQUIRE(upsert_one(alerts, make_alert(5, "acme", "dev-1", 8)));
    REQUIRE(upsert_one(alerts, make_alert(6, "acme", "dev-2", 7)));
    REQUIRE(upsert_one(alerts, make_alert(7, "globex", "dev-1", 7)));

    // Closed, then a new one opens: in one batch, the close first.
    const std::vector<alert_record> reopen = {make_alert(1, "acme", "dev-1", 7, alert_status::closed),
                                              make_alert(8, "acme", "dev-1", 7)};
    REQUIRE(alerts.upsert(reopen));
    CHECK(alerts.get("acme", 1).value()->status == alert_status::closed);
    CHECK(alerts.get("acme", 8).value()->status == alert_status::open);
    // Any number of closed ones may stay behind.
    CHECK(alerts.list("acme", {.device = "dev-1", .rule = 7}).value().items.size() == 3);
}

TEST_CASE("alerts: list filters, newest first, pages with a cursor; list_all crosses tenants") {
    fixture f;
    alert_repository alerts(*f.db);
    std::vector<alert_record> all;
    for (int i = 1; i <= 12; ++i) {
        const auto status = i % 3 == 1 ? alert_status::closed : i % 3 == 2 ? alert_status::acknowledged : alert_status::open;
        auto a = make_alert(i, "acme", i % 2 ? "dev-a" : "dev-b", 100 + i, status, 1000 * i);
        a.kind = i % 3 == 0 ? alert_kind::no_heartbeat : alert_kind::threshold;
        a.sev = i % 4 == 0 ? severity::critical : severity::warning;
        all.push_back(a);
    }
    REQUIRE(alerts.upsert(all));
    const std::vector<alert_record> others = {make_alert(13, "globex", "dev-a", 101, alert_status::open, 500),
                                              make_alert(14, "globex", "dev-b", 102, alert_status::closed, 600)};
    REQUIRE(alerts.upsert(others));

    // The expected answer of a filter, computed directly.
    auto expect = [&](const std::function<bool(const alert_record&)>& keep) {
        std::vector<std::int64_t> out;
        for (auto it = all.rbegin(); it != all.rend(); ++it)
            if (keep(*it))
                out.push_back(it->id);
        return out;
    };
    auto listed = [&](const alert_filter& flt) { return page_ids(alerts.list("acme", flt).value()); };

    CHECK(listed({}) == std::vector<std::int64_t>{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
    CHECK(listed({.status = alert_status::open}) == std::vector<std::int64_t>{12, 9, 6, 3});
    CHECK(listed({.status = alert_status::acknowledged}) ==
          expect([](const auto& a) { return a.status == alert_status::acknowledged; }));
    CHECK(listed({.status = alert_status::closed}) == std::vector<std::int64_t>{10, 7, 4, 1});
    CHECK(listed({.sev = severity::critical}) == std::vector<std::int64_t>{12, 8, 4});
    CHECK(listed({.device = "dev-a"}) == std::vector<std::int64_t>{11, 9, 7, 5, 3, 1});
    CHECK(listed({.device = "dev-z"}).empty());
    CHECK(listed({.kind = alert_kind::no_heartbeat}) == std::vector<std::int64_t>{12, 9, 6, 3});
    CHECK(listed({.rule = 105}) == std::vector<std::int64_t>{5});
    CHECK(listed({.from_ms = 4000}) == std::vector<std::int64_t>{12, 11, 10, 9, 8, 7, 6, 5, 4});
    CHECK(listed({.to_ms = 4000}) == std::vector<std::int64_t>{3, 2, 1});
    CHECK(listed({.from_ms = 4000, .to_ms = 7000}) == std::vector<std::int64_t>{6, 5, 4});
    CHECK(listed({.status = alert_status::open, .device = "dev-b", .kind = alert_kind::no_heartbeat}) ==
          std::vector<std::int64_t>{12, 6});
    CHECK(listed({.sev = severity::critical, .device = "dev-b", .from_ms = 5000}) ==
          expect([](const auto& a) { return a.sev == severity::critical && a.device == "dev-b" && a.opened_at_ms >= 5000; }));

    // Pages of 5: 12..8, 7..3, 2..1.
    std::vector<std::int64_t> seen;
    std::optional<std::string> cursor;
    int pages = 0;
    do {
        auto page = alerts.list("acme", {}, 5, cursor).value();
        ++pages;
        for (auto id : page_ids(page))
            seen.push_back(id);
        cursor = page.next_cursor;
    } while (cursor && pages < 10);
    CHECK(pages == 3);
    CHECK(seen == expect([](const auto&) { return true; }));

    // A filter with paging.
    auto first = alerts.list("acme", {.status = alert_status::open}, 2).value();
    CHECK(page_ids(first) == std::vector<std::int64_t>{12, 9});
    REQUIRE(first.next_cursor);
    auto second = alerts.list("acme", {.status = alert_status::open}, 2, first.next_cursor).value();
    CHECK(page_ids(second) == std::vector<std::int64_t>{6, 3});
    CHECK_FALSE(second.next_cursor);

    // Limits are clamped, cursors checked.
    CHECK(alerts.list("acme", {}, 0).value().items.size() == 1);
    CHECK(alerts.list("acme", {}, 1'000'000).value().items.size() == 12);
    for (const char* bad : {"", "abc", "-3", "0", "5x", "acme/5"}) {
        CAPTURE(bad);
        auto r = alerts.list("acme", {}, 10, std::string_view(bad));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == state_errc::invalid_argument);
        CHECK(r.error().message.find("cursor") != std::string::npos);
        CHECK(alerts.list_all({}, 10, std::string_view(bad)).error().code == state_errc::invalid_argument);
    }

    // Operators: every tenant, or one; filters apply.
    CHECK(page_ids(alerts.list_all({}).value()) ==
          std::vector<std::int64_t>{14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
    CHECK(page_ids(alerts.list_all({}, 100, std::nullopt, "globex").value()) == std::vector<std::int64_t>{14, 13});
    CHECK(page_ids(alerts.list_all({.status = alert_status::closed}).value()) ==
          std::vector<std::int64_t>{14, 10, 7, 4, 1});
    auto top = alerts.list_all({}, 3).value();
    CHECK(page_ids(top) == std::vector<std::int64_t>{14, 13, 12});
    CHECK(page_ids(alerts.list_all({}, 3, top.next_cursor).value()) == std::vector<std::int64_t>{11, 10, 9});
    CHECK(alerts.list_all({}, 100, std::nullopt, "initech").value().items.empty());
    CHECK(alerts.list("globex", {.device = "dev-a"}).value().items.size() == 1);
}

TEST_CASE("alerts: non_closed, max_id, purge of closed alerts") {
    fixture f;
    alert_repository alerts(*f.db);
    CHECK(alerts.max_id().value() == 0);
    CHECK(alerts.non_closed().value().empty());

    auto closed_early = make_alert(1, "acme", "dev-1", 7, alert_status::closed, 1000); // closed at 3000
    auto closed_late = make_alert(2, "acme", "dev-1", 7, alert_status::closed, 8000);  // closed at 10000
    auto open = make_alert(3, "acme", "dev-1", 7, alert_status::open, 500);
    auto acked = make_alert(4, "globex", "dev-1", 7, alert_status::acknowledged, 500);
    auto newest_closed = make_alert(9, "globex", "dev-2", 7, alert_status::closed, 100); // closed at 2100
    const std::vector<alert_record> batch = {closed_early, closed_late, open, acked, newest_closed};
    REQUIRE(alerts.upsert(batch));

    CHECK(ids_of(alerts.non_closed().value()) == std::vector<std::int64_t>{3, 4});
    CHECK(alerts.max_id().value() == 9);

    // Open and acknowledged alerts are never purged, however old.
    CHECK(alerts.purge_closed_before(3000).value() == 1); // only 9 (2100); 1 closed exactly at 3000 stays
    CHECK_FALSE(alerts.get("globex", 9).value());
    CHECK(alerts.get("acme", 1).value());
    CHECK(alerts.purge_closed_before(1'000'000).value() == 2);
    CHECK(ids_of(alerts.list_all({}).value().items) == std::vector<std::int64_t>{4, 3});
    CHECK(alerts.purge_closed_before(1'000'000).value() == 0);

    // The largest id ever stored, even once purged: ids are never reused.
    CHECK(alerts.max_id().value() == 9);
    // Also when the tenant's removal deletes its alerts.
    REQUIRE(upsert_one(alerts, make_alert(20, "globex", "dev-3", 7)));
    REQUIRE(tenant_repository(*f.db).remove("globex", tenant_removal::cascade));
    CHECK(alerts.list_all({}).value().items.size() == 1);
    CHECK(alerts.max_id().value() == 20);
}

TEST_CASE("alerts: statistics over hand-made alerts") {
    fixture f;
    alert_repository alerts(*f.db);
    const std::int64_t d0 = 19'998 * day_ms; // the window of 3 days: d0, d0 + 1 day, d0 + 2 days
    const std::int64_t now = d0 + 2 * day_ms + 12 * hour_ms;

    // Opened the day before the window, closed on its first day.
    auto a1 = make_alert(1, "acme", "dev-1", 1, alert_status::closed, d0 - hour_ms);
    a1.sev = severity::info;
    a1.closed_at_ms = d0 + hour_ms;
    // Day 0: acknowledged after 60 s, closed after 600 s.
    auto a2 = make_alert(2, "acme", "dev-1", 2, alert_status::closed, d0 + 10 * hour_ms);
    a2.acknowledged_at_ms = a2.opened_at_ms + 60'000;
    a2.closed_at_ms = a2.opened_at_ms + 600'000;
    // Day 1: acknowledged after 120 s, still acknowledged.
    auto a3 = make_alert(3, "acme", "dev-1", 3, alert_status::acknowledged, d0 + day_ms + 5 * hour_ms);
    a3.sev = severity::critical;
    a3.acknowledged_at_ms = a3.opened_at_ms + 120'000;
    // Day 2: one open, one closed automatically after 1800 s without acknowledgement.
    auto a4 = make_alert(4, "acme", "dev-1", 4, alert_status::open, d0 + 2 * day_ms + hour_ms);
    a4.sev = severity::major;
    auto a5 = make_alert(5, "acme", "dev-1", 5, alert_status::closed, d0 + 2 * day_ms + 2 * hour_ms);
    a5.acknowledged_at_ms = std::nullopt;
    a5.acknowledged_by = std::nullopt;
    a5.closed_at_ms = a5.opened_at_ms + 1'800'000;
    // Another tenant's: not counted.
    auto other = make_alert(6, "globex", "dev-1", 1, alert_status::acknowledged, d0 + 2 * day_ms);
    other.sev = severity::critical;
    other.acknowledged_at_ms = other.opened_at_ms + 999'000;
    const std::vector<alert_record> batch = {a1, a2, a3, a4, a5, other};
    REQUIRE(alerts.upsert(batch));

    auto s = alerts.stats("acme", now, 3).value();
    const std::map<severity, std::int64_t> open_by_severity = {{severity::critical, 1}, {severity::major, 1},
                                                               {severity::minor, 0},    {severity::warning, 0},
                                                               {severity::info, 0}};
    CHECK(s.open_by_severity == open_by_severity);
    REQUIRE(s.per_day.size() == 3);
    CHECK(s.per_day[0].day_start_ms == d0);
    CHECK(s.per_day[1].day_start_ms == d0 + day_ms);
    CHECK(s.per_day[2].day_start_ms == d0 + 2 * day_ms);
    CHECK(s.per_day[0].opened == 1);
    CHECK(s.per_day[0].closed == 2);
    CHECK(s.per_day[1].opened == 1);
    CHECK(s.per_day[1].closed == 0);
    CHECK(s.per_day[2].opened == 2);
    CHECK(s.per_day[2].closed == 1);
    REQUIRE(s.mean_time_to_ack_s);
    CHECK(*s.mean_time_to_ack_s == doctest::Approx(90.0));
    REQUIRE(s.mean_time_to_close_s);
    CHECK(*s.mean_time_to_close_s == doctest::Approx(1200.0));

    // One day: only today's alerts (a4, a5).
    auto today = alerts.stats("acme", now, 1).value();
    REQUIRE(today.per_day.size() == 1);
    CHECK(today.per_day[0].day_start_ms == d0 + 2 * day_ms);
    CHECK(today.per_day[0].opened == 2);
    CHECK_FALSE(today.mean_time_to_ack_s);
    REQUIRE(today.mean_time_to_close_s);
    CHECK(*today.mean_time_to_close_s == doctest::Approx(1800.0));

    // The default week, for a tenant without alerts: zeros, no means.
    auto empty = alerts.stats("globex", now + 30 * day_ms).value();
    REQUIRE(empty.per_day.size() == 7);
    for (const auto& d : empty.per_day) {
        CHECK(d.opened == 0);
        CHECK(d.closed == 0);
    }
    CHECK(empty.per_day.back().day_start_ms == d0 + 32 * day_ms);
    CHECK(empty.per_day.front().day_start_ms == d0 + 26 * day_ms);
    CHECK(empty.open_by_severity.at(severity::critical) == 1); // non-closed now, whenever opened
    CHECK_FALSE(empty.mean_time_to_ack_s);
    CHECK_FALSE(empty.mean_time_to_close_s);

    CHECK(alerts.stats("acme", now, 0).error().code == state_errc::invalid_argument);
}

// ---- silences -----------------------------------------------------------------

TEST_CASE("silences: create, get, matchers round trip, bad windows, tenant scoping") {
    fixture f;
    silence_repository silences(*f.db);
    silence_record s;
    s.tenant = "acme";
    s.matchers.device = "dev-1";
    s.matchers.labels = {{"site", "a"}};
    s.matchers.rule = 7;
    s.matchers.kind = alert_kind::no_heartbeat;
    s.matchers.sev = severity::minor;
    s.comment = "maintenance";
    s.created_by = "alice";
    s.starts_at_ms = 1000;
    s.ends_at_ms = 2000;
    s.created_at_ms = 900;
    s.id = silences.create(s).value();
    CHECK(silences.get("acme", s.id).value() == s);
    CHECK(raw_text(f.file, "SELECT matchers FROM silences WHERE id = " + std::to_string(s.id)) ==
          R"({"device":"dev-1","labels":{"site":"a"},"rule":7,"kind":"NO_HEARTBEAT","severity":"minor"})");

    silence_record everything;
    everything.tenant = "acme";
    everything.created_by = "bob";
    everything.starts_at_ms = 0;
    everything.ends_at_ms = 1;
    everything.id = silences.create(everything).value();
    CHECK(silences.get("acme", everything.id).value() == everything);
    CHECK(raw_text(f.file, "SELECT matchers FROM silences WHERE id = " + std::to_string(everything.id)) == "{}");

    auto backwards = s;
    backwards.ends_at_ms = backwards.starts_at_ms;
    auto r = silences.create(backwards);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == state_errc::invalid_argument);
    backwards.ends_at_ms = backwards.starts_at_ms - 1;
    CHECK(silences.create(backwards).error().code == state_errc::invalid_argument);

    auto unknown = s;
    unknown.tenant = "initech";
    CHECK(silences.create(unknown).error().code == state_errc::constraint_violation);

    CHECK_FALSE(silences.get("globex", s.id).value());
    CHECK(silences.remove("globex", s.id).error().code == state_errc::not_found);
    CHECK(silences.get("acme", s.id).value());
}

TEST_CASE("silences: list by id with active_at and paging; not_ended; remove; purge") {
    fixture f;
    silence_repository silences(*f.db);
    auto make = [&](std::string tenant, std::int64_t starts, std::int64_t ends) {
        silence_record s;
        s.tenant = std::move(tenant);
        s.created_by = "alice";
        s.starts_at_ms = starts;
        s.ends_at_ms = ends;
        return silences.create(s).value();
    };
    const auto past = make("acme", 100, 200);
    const auto now_one = make("acme", 400, 600);
    const auto future = make("acme", 700, 900);
    const auto long_one = make("acme", 0, 10'000);
    const auto other = make("globex", 400, 600);

    auto ids = [](const silence_page& p) { return page_ids(p); };
    CHECK(ids(silences.list("acme").value()) == std::vector<std::int64_t>{past, now_one, future, long_one});
    CHECK(ids(silences.list("acme", 500).value()) == std::vector<std::int64_t>{now_one, long_one});
    // A window holds its start, not its end.
    CHECK(ids(silences.list("acme", 400).value()) == std::vector<std::int64_t>{now_one, long_one});
    CHECK(ids(silences.list("acme", 600).value()) == std::vector<std::int64_t>{long_one});
    CHECK(ids(silences.list("globex", 500).value()) == std::vector<std::int64_t>{other});

    auto first = silences.list("acme", std::nullopt, 3).value();
    CHECK(ids(first) == std::vector<std::int64_t>{past, now_one, future});
    REQUIRE(first.next_cursor);
    auto second = silences.list("acme", std::nullopt, 3, first.next_cursor).value();
    CHECK(ids(second) == std::vector<std::int64_t>{long_one});
    CHECK_FALSE(second.next_cursor);
    auto bad = silences.list("acme", std::nullopt, 3, std::string_view("x"));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == state_errc::invalid_argument);

    std::vector<std::int64_t> live;
    for (const auto& s : silences.not_ended(500).value())
        live.push_back(s.id);
    CHECK(live == std::vector<std::int64_t>{now_one, future, long_one, other});

    REQUIRE(silences.remove("acme", future));
    CHECK(silences.remove("acme", future).error().code == state_errc::not_found);
    CHECK(silences.purge_ended_before(600).value() == 1); // past; those ending at 600 stay
    CHECK(silences.purge_ended_before(601).value() == 2);
    CHECK(ids(silences.list("acme").value()) == std::vector<std::int64_t>{long_one});
}

// ---- device liveness ----------------------------------------------------------

TEST_CASE("liveness: save upserts and never moves backwards; load_all; forget a device or a tenant") {
    fixture f;
    liveness_repository liveness(*f.db);
    CHECK(liveness.load_all().value().empty());
    CHECK(liveness.save({}));

    // Devices need no devices row (anonymous clients).
    const std::vector<liveness_record> first = {
        {"acme", "dev-2", 200}, {"acme", "dev-1", 100}, {"globex", "dev-1", 300}, {"acme", "dev-1", 150}};
    REQUIRE(liveness.save(first));
    CHECK(liveness.load_all().value() ==
          std::vector<liveness_record>{{"acme", "dev-1", 150}, {"acme", "dev-2", 200}, {"globex", "dev-1", 300}});

    const std::vector<liveness_record> older = {{"acme", "dev-1", 120}, {"acme", "dev-2", 250}};
    REQUIRE(liveness.save(older));
    CHECK(liveness.load_all().value() ==
          std::vector<liveness_record>{{"acme", "dev-1", 150}, {"acme", "dev-2", 250}, {"globex", "dev-1", 300}});

    REQUIRE(liveness.forget("acme", "dev-1"));
    CHECK(liveness.load_all().value() ==
          std::vector<liveness_record>{{"acme", "dev-2", 250}, {"globex", "dev-1", 300}});
    REQUIRE(liveness.forget("acme", "unknown")); // nothing to forget is fine
    REQUIRE(liveness.save(older));
    REQUIRE(liveness.forget("acme"));
    CHECK(liveness.load_all().value() == std::vector<liveness_record>{{"globex", "dev-1", 300}});
}
