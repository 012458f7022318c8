// engine digest: the period a digest covers (time zones, daylight-saving
// days), settings parsing, and the service with a real state database:
// settings checked against the tenant's email integrations, the schedule
// (nothing before the hour, one job per integration after it, never twice
// for a day, nothing when disabled), the payload's counts and rankings, and
// send-now. The email it becomes is tested with a real SMTP server in
// test/integration/19_delivery_all_test.cpp.

#include "engine/digest.hpp"

#include "common/time.hpp"
#include "storage/state/alert_repository.hpp"
#include "storage/state/delivery_repository.hpp"
#include "storage/state/integration_repository.hpp"
#include "storage/state/secret_box.hpp"
#include "storage/state/tenant_repository.hpp"
#include "test/result_string.hpp"
#include "test/temp_dir.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include <string>
#include <vector>

using namespace pulsegate::engine;
namespace st = pulsegate::storage::state;
namespace json = boost::json;

namespace {

std::int64_t at(const char* rfc3339) {
    auto ms = pulsegate::common::parse_rfc3339(rfc3339);
    REQUIRE(ms);
    return *ms;
}

digest_period period(int hour, const char* zone, const char* now) {
    auto p = latest_period(hour, zone, at(now));
    REQUIRE(p);
    return *p;
}

std::string settings_error(const std::string& text) {
    std::string why;
    auto s = parse_digest_settings(json::parse(text).as_object(), digest_settings{}, &why);
    CHECK_FALSE(s);
    return why;
}

st::secret_box::key_type test_key() {
    st::secret_box::key_type k{};
    for (std::size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<unsigned char>(i * 5 + 1);
    return k;
}

struct fixture {
    pulsegate::test::temp_dir dir{"pg-digest"};
    std::unique_ptr<st::database> db;
    st::secret_box box{test_key()};
    std::int64_t email = 0, email2 = 0, webhook = 0, globex_email = 0;

    fixture() {
        auto opened = st::database::open({.file = dir.path / "state.db"});
        REQUIRE(opened);
        db = std::move(*opened);
        REQUIRE(st::tenant_repository(*db).create({.id = "acme", .name = "ACME"}));
        REQUIRE(st::tenant_repository(*db).create({.id = "globex", .name = "Globex"}));
        email = add("ops-mail", "email");
        email2 = add("boss-mail", "email");
        webhook = add("hook", "webhook");
        globex_email = add("globex-mail", "email", "globex");
    }

    std::int64_t add(const std::string& name, const std::string& type, const std::string& tenant = "acme") {
        st::integration_record r;
        r.tenant = tenant;
        r.name = name;
        r.type = type;
        r.config = "{}";
        r.secrets = "{}";
        auto id = st::integration_repository(*db, box).create(r);
        REQUIRE(id);
        return *id;
    }

    void add_alert(std::int64_t id, const std::string& device, std::int64_t rule, std::int64_t opened,
                   std::optional<std::int64_t> closed = std::nullopt, std::int64_t count = 1,
                   st::severity sev = st::severity::major) {
        st::alert_record a;
        a.id = id;
        a.tenant = "acme";
        a.device = device;
        a.rule = rule;
        a.rule_name = "rule-" + std::to_string(rule);
        a.sev = sev;
        a.metric = "temp";
        a.count = count;
        a.opened_at_ms = opened;
        a.last_seen_at_ms = opened;
        if (closed) {
            a.status = st::alert_status::closed;
            a.closed_at_ms = closed;
        }
        REQUIRE(st::alert_repository(*db).upsert(std::vector{a}));
    }

    std::vector<st::delivery_job> jobs(const std::string& tenant = "acme") {
        auto page = st::delivery_repository(*db).list(tenant, {});
        REQUIRE(page);
        std::vector<st::delivery_job> out;
        for (auto& e : page->items)
            out.push_back(std::move(e.job));
        return out;
    }
};

digest_settings enabled(std::vector<std::int64_t> ids, int hour = 8, std::string zone = "UTC") {
    digest_settings s;
    s.enabled = true;
    s.hour = hour;
    s.time_zone = std::move(zone);
    s.integrations = std::move(ids);
    return s;
}

} // namespace

TEST_CASE("a digest covers the 24 hours up to the latest digest hour in its time zone") {
    SUBCASE("UTC: before the hour, the day before's period") {
        const auto p = period(8, "UTC", "2026-11-24T07:59:59Z");
        CHECK(p.from_ms == at("2026-11-22T08:00:00Z"));
        CHECK(p.to_ms == at("2026-11-23T08:00:00Z"));
        CHECK(p.day == "2026-11-23");
    }
    SUBCASE("UTC: at the hour, today's") {
        const auto p = period(8, "UTC", "2026-11-24T08:00:00Z");
        CHECK(p.to_ms == at("2026-11-24T08:00:00Z"));
        CHECK(p.day == "2026-11-24");
    }
    SUBCASE("Berlin in winter is UTC+1") {
        const auto p = period(8, "Europe/Berlin", "2026-11-24T07:30:00Z");
        CHECK(p.from_ms == at("2026-11-23T07:00:00Z"));
        CHECK(p.to_ms == at("2026-11-24T07:00:00Z"));
        CHECK(p.day == "2026-11-24");
    }
    SUBCASE("a local date differs from the UTC date") {
        // 2026-11-24T02:00Z is 2026-11-23 21:00 in New York (UTC-5).
        const auto p = period(20, "America/New_York", "2026-11-24T02:00:00Z");
        CHECK(p.to_ms == at("2026-11-24T01:00:00Z"));
        CHECK(p.day == "2026-11-23");
    }
    SUBCASE("the day clocks go forward has 23 hours") {
        const auto p = period(8, "Europe/Berlin", "2026-03-29T12:00:00Z");
        CHECK(p.from_ms == at("2026-03-28T07:00:00Z")); // 08:00 CET
        CHECK(p.to_ms == at("2026-03-29T06:00:00Z"));   // 08:00 CEST
    }
    SUBCASE("an hour skipped by the change counts from the change") {
        // 02:00 does not exist in Berlin on 2026-03-29: clocks jump to 03:00 (01:00Z).
        const auto p = period(2, "Europe/Berlin", "2026-03-29T05:00:00Z");
        CHECK(p.to_ms == at("2026-03-29T01:00:00Z"));
    }
    SUBCASE("unknown zones and hours are refused") {
        CHECK_FALSE(latest_period(8, "Mars/Olympus_Mons", at("2026-11-24T08:00:00Z")));
        CHECK_FALSE(latest_period(24, "UTC", at("2026-11-24T08:00:00Z")));
        CHECK_FALSE(known_time_zone(""));
        CHECK(known_time_zone("Asia/Kolkata"));
    }
}

TEST_CASE("digest settings name the field that is wrong") {
    CHECK(settings_error(R"({"hour": 24})").starts_with("hour "));
    CHECK(settings_error(R"({"hour": "8"})").starts_with("hour "));
    CHECK(settings_error(R"({"enabled": 1})").starts_with("enabled "));
    CHECK(settings_error(R"({"time_zone": "Europe/Atlantis"})").starts_with("time_zone "));
    CHECK(settings_error(R"({"integrations": [0]})").starts_with("integrations "));
    CHECK(settings_error(R"({"integrations": 3})").starts_with("integrations "));
    CHECK(settings_error(R"({"every": "day"})").starts_with("every is not a digest setting"));

    std::string why;
    digest_settings base = enabled({4}, 6, "Europe/Paris");
    auto s = parse_digest_settings(json::parse(R"({"hour": 9, "integrations": [7, 3, 7]})").as_object(), base, &why);
    REQUIRE(s);
    CHECK(s->enabled);
    CHECK(s->hour == 9);
    CHECK(s->time_zone == "Europe/Paris");
    CHECK(s->integrations == std::vector<std::int64_t>{3, 7});
    auto back = parse_digest_settings(to_json(*s), digest_settings{}, &why);
    REQUIRE(back);
    CHECK(back->integrations == s->integrations);
}

TEST_CASE("digest settings accept only the tenant's email integrations") {
    fixture f;
    digest_service svc(*f.db, f.box);
    const auto now = at("2026-11-24T10:00:00Z");

    auto hook = svc.put("acme", enabled({f.email, f.webhook}), now);
    REQUIRE_FALSE(hook);
    CHECK(hook.error().code == st::state_errc::invalid_argument);
    CHECK(hook.error().message.find("email integrations only") != std::string::npos);

    auto other = svc.put("acme", enabled({f.globex_email}), now);
    REQUIRE_FALSE(other);
    CHECK(other.error().message.find("no integration " + std::to_string(f.globex_email)) != std::string::npos);

    auto none = svc.get("acme");
    REQUIRE(none);
    CHECK_FALSE(none->enabled); // nothing was stored

    auto ok = svc.put("acme", enabled({f.email}), now);
    REQUIRE(ok);
    CHECK(ok->last_sent == "2026-11-24"); // today's 08:00 has passed: the first digest is tomorrow's
    auto got = svc.get("acme");
    REQUIRE(got);
    CHECK(got->enabled);
    CHECK(got->integrations == std::vector<std::int64_t>{f.email});
}

TEST_CASE("due digests are queued once per day after the hour, one job per integration") {
    fixture f;
    digest_service svc(*f.db, f.box, 7);
    REQUIRE(svc.put("acme", enabled({f.email, f.email2}), at("2026-11-24T10:00:00Z")));

    // In the period 2026-11-24T08:00Z .. 2026-11-25T08:00Z:
    f.add_alert(1, "boiler", 10, at("2026-11-24T09:00:00Z"), std::nullopt, 40, st::severity::critical);
    f.add_alert(2, "boiler", 11, at("2026-11-24T12:00:00Z"), at("2026-11-24T13:00:00Z"), 3);
    f.add_alert(3, "boiler", 10, at("2026-11-24T14:00:00Z"), at("2026-11-24T15:00:00Z"), 2);
    f.add_alert(4, "fridge", 10, at("2026-11-24T16:00:00Z"), std::nullopt, 1, st::severity::minor);
    // Before it: opened earlier, closed inside (counts as closed, not opened).
    f.add_alert(5, "pump", 12, at("2026-11-23T16:00:00Z"), at("2026-11-24T09:30:00Z"));
    // After it.
    f.add_alert(6, "pump", 12, at("2026-11-25T09:00:00Z"));

    auto early = svc.run_due(at("2026-11-25T07:59:00Z"));
    REQUIRE(early);
    CHECK(*early == 0);

    auto due = svc.run_due(at("2026-11-25T08:00:30Z"));
    REQUIRE(due);
    CHECK(*due == 2);
    auto jobs = f.jobs();
    REQUIRE(jobs.size() == 2);
    for (const auto& j : jobs) {
        CHECK(j.event == "digest");
        CHECK(j.event_key == "digest:2026-11-25");
        CHECK_FALSE(j.alert);
        CHECK(j.max_attempts == 7);
        CHECK(j.state == st::job_state::pending);
    }
    CHECK(((jobs[0].integration == f.email && jobs[1].integration == f.email2) ||
           (jobs[1].integration == f.email && jobs[0].integration == f.email2)));

    const auto p = json::parse(jobs[0].payload).as_object();
    CHECK(p.at("event") == "digest");
    CHECK(p.at("tenant") == "acme");
    const auto& d = p.at("digest").as_object();
    CHECK(d.at("day") == "2026-11-25");
    CHECK(d.at("from") == "2026-11-24T08:00:00.000Z");
    CHECK(d.at("opened").as_int64() == 4);
    CHECK(d.at("closed").as_int64() == 3);
    CHECK(d.at("still_open").as_int64() == 3); // 1, 4 and 6 are not closed now
    CHECK(d.at("open_by_severity").at("critical").as_int64() == 1);
    CHECK(d.at("open_by_severity").at("minor").as_int64() == 1);
    const auto& devices = d.at("noisiest_devices").as_array();
    REQUIRE(devices.size() == 2);
    CHECK(devices[0].at("device") == "boiler");
    CHECK(devices[0].at("alerts").as_int64() == 3);
    CHECK(devices[0].at("repeats").as_int64() == 45);
    CHECK(devices[1].at("device") == "fridge");
    const auto& rules = d.at("noisiest_rules").as_array();
    REQUIRE(rules.size() == 2);
    CHECK(rules[0].at("rule").as_int64() == 10);
    CHECK(rules[0].at("name") == "rule-10");
    CHECK(rules[0].at("alerts").as_int64() == 3);

    SUBCASE("a second run the same day adds nothing") {
        auto again = svc.run_due(at("2026-11-25T18:00:00Z"));
        REQUIRE(again);
        CHECK(*again == 0);
        CHECK(f.jobs().size() == 2);
        auto s = svc.get("acme");
        REQUIRE(s);
        CHECK(s->last_sent == "2026-11-25");
    }
    SUBCASE("the next day brings the next digest") {
        auto next = svc.run_due(at("2026-11-26T08:01:00Z"));
        REQUIRE(next);
        CHECK(*next == 2);
        CHECK(f.jobs().size() == 4);
    }
    SUBCASE("a gateway off for days sends only the latest") {
        auto late = svc.run_due(at("2026-11-29T11:00:00Z"));
        REQUIRE(late);
        CHECK(*late == 2);
        CHECK(f.jobs().front().event_key == "digest:2026-11-29");
    }
    SUBCASE("disabled: nothing") {
        auto s = svc.get("acme");
        REQUIRE(s);
        s->enabled = false;
        REQUIRE(svc.put("acme", *s, at("2026-11-25T09:00:00Z")));
        auto none = svc.run_due(at("2026-11-26T09:00:00Z"));
        REQUIRE(none);
        CHECK(*none == 0);
    }
    SUBCASE("a deleted integration gets no job") {
        REQUIRE(st::integration_repository(*f.db, f.box).remove("acme", f.email2));
        auto next = svc.run_due(at("2026-11-26T08:01:00Z"));
        REQUIRE(next);
        CHECK(*next == 1);
    }
    CHECK(f.jobs("globex").empty());
}

TEST_CASE("send now queues the last 24 hours for the chosen integrations") {
    fixture f;
    digest_service svc(*f.db, f.box);
    const auto now = at("2026-11-24T10:00:00Z");
    auto nothing = svc.send_now("acme", now);
    REQUIRE(nothing);
    CHECK(*nothing == 0); // no integrations chosen

    REQUIRE(svc.put("acme", enabled({f.email}), now));
    f.add_alert(1, "boiler", 10, now - 3'600'000);
    auto sent = svc.send_now("acme", now);
    REQUIRE(sent);
    CHECK(*sent == 1);
    const auto jobs = f.jobs();
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].event_key == "digest:now:" + std::to_string(now));
    CHECK(json::parse(jobs[0].payload).at("digest").at("opened").as_int64() == 1);
}
