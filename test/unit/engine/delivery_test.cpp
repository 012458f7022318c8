// engine delivery: the router (route match parsing and matching, routes in
// id order with "continue": false, one job per integration, no job for
// disabled routes or integrations or silenced alerts, event keys) and the
// outbox's retry logic with a real state database, an in-process scripted
// sender and the test's clock: delivered once, retry with backoff, giving up
// after max_attempts, failed is dead at once, per-integration concurrency,
// the circuit breaker, requeue at start, disabled integrations, stop()
// losing nothing, and test sends. Real receivers are tested elsewhere
// (test/integration, test/e2e).

#include "engine/alert_event.hpp"
#include "engine/outbox.hpp"
#include "engine/router.hpp"

#include "adapters/sender.hpp"
#include "storage/state/alert_repository.hpp"
#include "storage/state/delivery_repository.hpp"
#include "storage/state/integration_repository.hpp"
#include "storage/state/secret_box.hpp"
#include "storage/state/tenant_repository.hpp"
#include "test/result_string.hpp"
#include "test/temp_dir.hpp"

#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace pulsegate::engine;
namespace st = pulsegate::storage::state;
namespace adapters = pulsegate::adapters;
namespace json = boost::json;

namespace {

constexpr std::int64_t T0 = 1'700'000'000'000;

// Polls `f` until it holds or 10 s have passed (the outbox runs on its own threads).
bool eventually(const std::function<bool()>& f) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        if (f())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return f();
}

st::secret_box::key_type test_key() {
    st::secret_box::key_type k{};
    for (std::size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<unsigned char>(i * 7 + 3);
    return k;
}

st::alert_record make_alert(std::int64_t id, const std::string& tenant = "acme") {
    st::alert_record a;
    a.id = id;
    a.tenant = tenant;
    a.device = "dev-" + std::to_string(id);
    a.rule = 12;
    a.rule_name = "hot";
    a.kind = st::alert_kind::threshold;
    a.sev = st::severity::major;
    a.metric = "temp";
    a.value = 81;
    a.threshold = 80;
    a.message = "temp > 80";
    a.opened_at_ms = T0;
    a.last_seen_at_ms = T0;
    return a;
}

alert_event make_event(alert_event_type type, const st::alert_record& a, st::label_map labels = {}) {
    alert_event e;
    e.type = type;
    e.at_ms = T0 + 5;
    e.alert = a;
    e.labels = std::move(labels);
    return e;
}

// A database with tenants acme and globex and helpers to add integrations.
struct db_fixture {
    pulsegate::test::temp_dir dir{"pg-delivery"};
    std::unique_ptr<st::database> db;
    st::secret_box box{test_key()};

    db_fixture() {
        auto opened = st::database::open({.file = dir.path / "state.db"});
        REQUIRE(opened);
        db = std::move(*opened);
        REQUIRE(st::tenant_repository(*db).create({.id = "acme", .name = "ACME"}));
        REQUIRE(st::tenant_repository(*db).create({.id = "globex", .name = "Globex"}));
    }

    st::integration_repository integrations() { return st::integration_repository(*db, box); }

    std::int64_t add_integration(const std::string& name, bool enabled = true, const std::string& tenant = "acme",
                                 const std::string& type = "webhook") {
        st::integration_record r;
        r.tenant = tenant;
        r.name = name;
        r.type = type;
        r.config = R"({"url":"https://example.com/)" + name + R"("})";
        r.secrets = R"({"token":"tok-)" + name + R"("})";
        r.enabled = enabled;
        r.created_at_ms = T0;
        r.updated_at_ms = T0;
        auto id = integrations().create(r);
        REQUIRE(id);
        return *id;
    }

    std::int64_t add_route(const std::string& name, const std::string& match, std::vector<std::int64_t> targets,
                           bool continue_matching = true, bool enabled = true, const std::string& tenant = "acme") {
        st::route_record r;
        r.tenant = tenant;
        r.name = name;
        r.match = match;
        r.integrations = std::move(targets);
        r.continue_matching = continue_matching;
        r.enabled = enabled;
        auto id = integrations().create_route(r);
        REQUIRE(id);
        return *id;
    }
};

std::set<std::int64_t> targets_of(const std::vector<st::new_delivery_job>& jobs) {
    std::set<std::int64_t> out;
    for (const auto& j : jobs)
        out.insert(j.integration);
    return out;
}

std::string parse_error(const std::string& text) {
    std::string why;
    auto m = parse_route_match(json::parse(text).as_object(), &why);
    CHECK_FALSE(m);
    return why;
}

route_match parse_ok(const std::string& text) {
    std::string why;
    auto m = parse_route_match(json::parse(text).as_object(), &why);
    REQUIRE_MESSAGE(m.has_value(), why);
    return *m;
}

// ---- the outbox's sender and fixture -------------------------------------------

// Answers from a script per integration (then `fallback`), records every
// call, and can hold an integration's calls until released.
class scripted_sender final : public adapters::sender {
public:
    struct call {
        std::int64_t integration = 0;
        std::int64_t job = 0;
        bool test = false;
        std::string event;
        std::string url;
        std::string token;
    };

    adapters::send_result send(const adapters::integration_target& t, const adapters::alert_message& m) override {
        std::unique_lock l(mu_);
        call c{t.id, m.job_id, m.test, m.event, "", ""};
        if (const auto* u = t.config.if_contains("url"); u && u->is_string())
            c.url = std::string(u->get_string());
        if (const auto* k = t.secrets.if_contains("token"); k && k->is_string())
            c.token = std::string(k->get_string());
        calls_.push_back(std::move(c));
        const auto n = ++active_[t.id];
        max_active_[t.id] = std::max(max_active_[t.id], n);
        cv_.wait(l, [&] { return !blocked_.contains(t.id); });
        --active_[t.id];
        auto& q = script_[t.id];
        if (!q.empty()) {
            auto r = q.front();
            q.pop_front();
            return r;
        }
        if (auto it = fallback_.find(t.id); it != fallback_.end())
            return it->second;
        return {adapters::outcome::delivered, "200", ""};
    }

    void script(std::int64_t integration, std::vector<adapters::send_result> results) {
        std::lock_guard l(mu_);
        for (auto& r : results)
            script_[integration].push_back(std::move(r));
    }
    void fallback(std::int64_t integration, adapters::send_result r) {
        std::lock_guard l(mu_);
        fallback_[integration] = std::move(r);
    }
    void block(std::int64_t integration) {
        std::lock_guard l(mu_);
        blocked_.insert(integration);
    }
    void release(std::int64_t integration) {
        {
            std::lock_guard l(mu_);
            blocked_.erase(integration);
        }
        cv_.notify_all();
    }
    void release_all() {
        {
            std::lock_guard l(mu_);
            blocked_.clear();
        }
        cv_.notify_all();
    }
    std::vector<call> calls() {
        std::lock_guard l(mu_);
        return calls_;
    }
    std::size_t calls_of(std::int64_t integration) {
        std::lock_guard l(mu_);
        return static_cast<std::size_t>(std::count_if(calls_.begin(), calls_.end(),
                                                      [&](const call& c) { return c.integration == integration; }));
    }
    int max_active(std::int64_t integration) {
        std::lock_guard l(mu_);
        return max_active_[integration];
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<call> calls_;
    std::map<std::int64_t, int> active_, max_active_;
    std::set<std::int64_t> blocked_;
    std::map<std::int64_t, std::deque<adapters::send_result>> script_;
    std::map<std::int64_t, adapters::send_result> fallback_;
};

adapters::send_result retry(std::string status = "503", std::string error = "service unavailable") {
    return {adapters::outcome::retry, std::move(status), std::move(error)};
}
adapters::send_result delivered(std::string status = "200") { return {adapters::outcome::delivered, std::move(status), ""}; }
adapters::send_result failed(std::string status = "404", std::string error = "not found") {
    return {adapters::outcome::failed, std::move(status), std::move(error)};
}

outbox_options quiet_options() {
    outbox_options o;
    o.workers = 2;
    o.per_integration = 4;
    o.backoff_initial_ms = 1000;
    o.backoff_max_ms = 60'000;
    o.breaker_threshold = 1000; // off unless a test wants it
    o.breaker_cooldown_ms = 30'000;
    return o;
}

struct outbox_fixture : db_fixture {
    std::atomic<std::int64_t> now{T0};
    scripted_sender sender;
    std::unique_ptr<outbox> ob;
    int jobs_made = 0;

    outbox_fixture() {
        const auto a = make_alert(1);
        REQUIRE(st::alert_repository(*db).upsert({&a, 1}));
    }
    ~outbox_fixture() {
        sender.release_all();
        ob.reset();
    }

    void make_outbox(outbox_options o = quiet_options()) {
        ob = std::make_unique<outbox>(*db, box, o, std::map<std::string, adapters::sender*, std::less<>>{{"webhook", &sender}},
                                      [this] { return now.load(); });
    }
    void start(outbox_options o = quiet_options()) {
        make_outbox(o);
        ob->start();
    }

    // A job for alert 1 (its payload the event JSON, as the router makes it); returns its id.
    std::int64_t add_job(std::int64_t integration, std::int64_t max_attempts = 10) {
        const auto a = make_alert(1);
        st::new_delivery_job j;
        j.tenant = "acme";
        j.alert = 1;
        j.integration = integration;
        j.event = "alert.opened";
        j.event_key = "alert:1:opened:" + std::to_string(++jobs_made);
        j.payload = event_json(make_event(alert_event_type::opened, a));
        j.max_attempts = max_attempts;
        j.created_at_ms = now.load();
        REQUIRE(st::alert_repository(*db).upsert({}, std::vector<st::new_delivery_job>{j}));
        auto page = st::delivery_repository(*db).list("acme", {}, 1);
        REQUIRE(page);
        REQUIRE(page->items.size() == 1);
        REQUIRE(page->items[0].job.event_key == j.event_key);
        if (ob)
            ob->notify();
        return page->items[0].job.id;
    }

    st::delivery_entry job(std::int64_t id) {
        auto e = st::delivery_repository(*db).get("acme", id);
        REQUIRE(e);
        REQUIRE(e->has_value());
        return **e;
    }
    bool in_state(std::int64_t id, st::job_state s) {
        auto e = st::delivery_repository(*db).get("acme", id);
        return e && e->has_value() && (*e)->job.state == s;
    }
    bool attempted(std::int64_t id, std::int64_t attempts, st::job_state s) {
        auto e = st::delivery_repository(*db).get("acme", id);
        return e && e->has_value() && (*e)->job.attempts == attempts && (*e)->job.state == s;
    }
    st::delivery_repository::counts counts() {
        auto c = st::delivery_repository(*db).count();
        REQUIRE(c);
        return *c;
    }
    // The clock jumps; the outbox looks at once.
    void advance_to(std::int64_t t) {
        now = t;
        ob->notify();
    }
};

} // namespace

// ---- route match ------------------------------------------------------------------

TEST_CASE("route match: parse errors name the field") {
    CHECK(parse_error(R"({"events": ["alert.bogus"]})").starts_with("match.events must be an array of"));
    CHECK(parse_error(R"({"events": "alert.opened"})").starts_with("match.events"));
    CHECK(parse_error(R"({"min_severity": "severe"})").starts_with("match.min_severity must be"));
    CHECK(parse_error(R"({"min_severity": 2})").starts_with("match.min_severity"));
    CHECK(parse_error(R"({"colour": "red"})").starts_with("match.colour is not a match criterion"));
    CHECK(parse_error(R"({"kinds": ["THRESHOLD", "threshold"]})").starts_with("match.kinds"));
    CHECK(parse_error(R"({"devices": [""]})").starts_with("match.devices"));
    CHECK(parse_error(R"({"devices": [7]})").starts_with("match.devices"));
    CHECK(parse_error(R"({"labels": {"site": 1}})") == "match.labels.site must be a string");
    CHECK(parse_error(R"({"labels": ["site"]})").starts_with("match.labels must be an object"));
    for (const auto* bad : {R"({"rules": [0]})", R"({"rules": [-3]})", R"({"rules": ["12"]})", R"({"rules": [1.5]})",
                            R"({"rules": 12})"}) {
        CAPTURE(bad);
        CHECK(parse_error(bad).starts_with("match.rules must be an array of rule ids"));
    }
    // No `why`: still refused.
    CHECK_FALSE(parse_route_match(json::parse(R"({"colour": 1})").as_object(), nullptr));
}

TEST_CASE("route match: every criterion, and its JSON") {
    const auto m = parse_ok(R"({"events": ["alert.opened", "alert.escalated"], "min_severity": "major",
        "kinds": ["THRESHOLD"], "devices": ["dev-1", "dev-2"], "labels": {"site": "a"}, "rules": [12, 13]})");
    CHECK(m.events == std::set<std::string>{"alert.escalated", "alert.opened"});
    CHECK(m.min_severity == std::optional(st::severity::major));
    CHECK(m.kinds == std::set<std::string>{"THRESHOLD"});
    CHECK(m.devices == std::set<std::string>{"dev-1", "dev-2"});
    CHECK(m.labels == std::map<std::string, std::string>{{"site", "a"}});
    CHECK(m.rules == std::set<std::int64_t>{12, 13});
    // to_json reads back as the same match.
    const auto back = parse_route_match(to_json(m), nullptr);
    REQUIRE(back);
    CHECK(back->events == m.events);
    CHECK(back->min_severity == m.min_severity);
    CHECK(back->kinds == m.kinds);
    CHECK(back->devices == m.devices);
    CHECK(back->labels == m.labels);
    CHECK(back->rules == m.rules);
    // Null is absent.
    const auto nulls = parse_ok(R"({"events": null, "min_severity": null, "labels": null, "rules": null})");
    CHECK(nulls.events.empty());
    CHECK_FALSE(nulls.min_severity);
    CHECK(to_json(parse_ok("{}")).empty());

    auto a = make_alert(1);
    a.device = "dev-1";
    const st::label_map labels{{"site", "a"}, {"floor", "2"}};
    const auto matching = make_event(alert_event_type::opened, a, labels);
    CHECK(m.matches(matching));
    CHECK(parse_ok("{}").matches(matching));

    auto e = matching;
    e.type = alert_event_type::closed;
    CHECK_FALSE(m.matches(e));
    e.type = alert_event_type::escalated;
    CHECK(m.matches(e));

    e = matching;
    e.alert.sev = st::severity::critical; // more severe than major
    CHECK(m.matches(e));
    e.alert.sev = st::severity::minor;
    CHECK_FALSE(m.matches(e));

    e = matching;
    e.alert.kind = st::alert_kind::no_heartbeat;
    CHECK_FALSE(m.matches(e));

    e = matching;
    e.alert.device = "dev-3";
    CHECK_FALSE(m.matches(e));

    e = matching;
    e.labels = {{"site", "b"}};
    CHECK_FALSE(m.matches(e));
    e.labels = {};
    CHECK_FALSE(m.matches(e));

    e = matching;
    e.alert.rule = 14;
    CHECK_FALSE(m.matches(e));
    e.alert.rule = 13;
    CHECK(m.matches(e));

    CHECK(parse_ok(R"({"min_severity": "info"})").matches(matching));
    CHECK_FALSE(parse_ok(R"({"min_severity": "critical"})").matches(matching));
    CHECK(parse_ok(R"({"kinds": ["NO_HEARTBEAT", "THRESHOLD"]})").matches(matching));
}

TEST_CASE("event keys: one per event, escalations by level") {
    auto a = make_alert(42);
    a.escalation_level = 2;
    CHECK(event_key(make_event(alert_event_type::opened, a)) == "alert:42:opened");
    CHECK(event_key(make_event(alert_event_type::acknowledged, a)) == "alert:42:acknowledged");
    CHECK(event_key(make_event(alert_event_type::escalated, a)) == "alert:42:escalated:2");
    CHECK(event_key(make_event(alert_event_type::closed, a)) == "alert:42:closed");
    a.escalation_level = 3;
    CHECK(event_key(make_event(alert_event_type::escalated, a)) == "alert:42:escalated:3");
}

// ---- the router -------------------------------------------------------------------

TEST_CASE("router: matching routes in id order, continue false stops, one job per integration") {
    db_fixture f;
    const auto ops = f.add_integration("ops");
    const auto pager = f.add_integration("pager");
    const auto chat = f.add_integration("chat");
    const auto archive = f.add_integration("archive");
    f.add_route("everything to ops", "{}", {ops});
    f.add_route("critical to pager, then stop", R"({"min_severity": "critical"})", {pager, ops}, false);
    f.add_route("site a to chat", R"({"labels": {"site": "a"}})", {chat, ops});
    f.add_route("closed to archive", R"({"events": ["alert.closed"]})", {archive});

    job_router router(*f.db, {.max_attempts = 7});
    REQUIRE(router.reload());

    auto a = make_alert(5);
    const st::label_map site_a{{"site", "a"}};

    // Major, site a: routes 1 and 3 (ops named twice: one job).
    auto jobs = router.jobs_for(make_event(alert_event_type::opened, a, site_a), "{\"p\":1}");
    CHECK(targets_of(jobs) == std::set<std::int64_t>{ops, chat});
    REQUIRE(jobs.size() == 2);
    for (const auto& j : jobs) {
        CHECK(j.tenant == "acme");
        CHECK(j.alert == 5);
        CHECK(j.event == "alert.opened");
        CHECK(j.event_key == "alert:5:opened");
        CHECK(j.payload == "{\"p\":1}");
        CHECK(j.max_attempts == 7);
        CHECK(j.created_at_ms == T0 + 5);
    }

    // Critical: route 2 matches and stops; routes 3 and 4 are not considered.
    a.sev = st::severity::critical;
    jobs = router.jobs_for(make_event(alert_event_type::closed, a, site_a), "{}");
    CHECK(targets_of(jobs) == std::set<std::int64_t>{ops, pager});
    CHECK(jobs.size() == 2);

    // Not critical, closed, no labels: routes 1 and 4.
    a.sev = st::severity::warning;
    jobs = router.jobs_for(make_event(alert_event_type::closed, a), "{}");
    CHECK(targets_of(jobs) == std::set<std::int64_t>{ops, archive});

    // Another tenant's routes are not ours.
    auto theirs = make_alert(6, "globex");
    CHECK(router.jobs_for(make_event(alert_event_type::opened, theirs, site_a), "{}").empty());
}

TEST_CASE("router: continue false stops only routes after it") {
    db_fixture f;
    const auto first = f.add_integration("first");
    const auto second = f.add_integration("second");
    const auto third = f.add_integration("third");
    f.add_route("1", "{}", {first}, true);
    f.add_route("2 stops", R"({"devices": ["dev-1"]})", {second}, false);
    f.add_route("3", "{}", {third}, true);
    job_router router(*f.db, {});
    REQUIRE(router.reload());

    auto a = make_alert(1);
    CHECK(targets_of(router.jobs_for(make_event(alert_event_type::opened, a), "{}")) ==
          std::set<std::int64_t>{first, second});
    a.device = "dev-2"; // route 2 does not match: no stop
    CHECK(targets_of(router.jobs_for(make_event(alert_event_type::opened, a), "{}")) ==
          std::set<std::int64_t>{first, third});
}

TEST_CASE("router: disabled routes, disabled integrations and silenced alerts make no jobs") {
    db_fixture f;
    const auto on = f.add_integration("on");
    const auto off = f.add_integration("off", false);
    const auto spare = f.add_integration("spare");
    f.add_route("disabled", "{}", {spare}, false, false); // would stop everything after it if enabled
    f.add_route("both", "{}", {on, off});
    f.add_route("invalid match is ignored", R"({"colour": "red"})", {spare});
    job_router router(*f.db, {});

    auto a = make_alert(3);
    // Before reload: no table yet.
    CHECK(router.jobs_for(make_event(alert_event_type::opened, a), "{}").empty());
    REQUIRE(router.reload());
    CHECK(targets_of(router.jobs_for(make_event(alert_event_type::opened, a), "{}")) == std::set<std::int64_t>{on});

    a.silenced = true;
    for (auto t : {alert_event_type::opened, alert_event_type::acknowledged, alert_event_type::escalated,
                   alert_event_type::closed})
        CHECK(router.jobs_for(make_event(t, a), "{}").empty());
    a.silenced = false;

    // Changes are seen after reload.
    auto repo = f.integrations();
    auto in = repo.get("acme", on).value().value();
    in.enabled = false;
    REQUIRE(repo.update(in));
    auto out = repo.get("acme", off).value().value();
    out.enabled = true;
    REQUIRE(repo.update(out));
    CHECK(targets_of(router.jobs_for(make_event(alert_event_type::opened, a), "{}")) == std::set<std::int64_t>{on});
    REQUIRE(router.reload());
    CHECK(targets_of(router.jobs_for(make_event(alert_event_type::opened, a), "{}")) == std::set<std::int64_t>{off});
}

TEST_CASE("router: its jobs are written with the alert, once per event and integration") {
    db_fixture f;
    const auto ops = f.add_integration("ops");
    f.add_route("all", "{}", {ops});
    job_router router(*f.db, {.max_attempts = 3});
    REQUIRE(router.reload());

    const auto a = make_alert(9);
    const auto e = make_event(alert_event_type::opened, a);
    const auto jobs = router.jobs_for(e, event_json(e));
    REQUIRE(jobs.size() == 1);
    st::alert_repository alerts(*f.db);
    REQUIRE(alerts.upsert({&a, 1}, jobs));
    REQUIRE(alerts.upsert({&a, 1}, jobs)); // replayed: nothing new
    auto page = st::delivery_repository(*f.db).list("acme", {});
    REQUIRE(page);
    REQUIRE(page->items.size() == 1);
    CHECK(page->items[0].job.event_key == "alert:9:opened");
    CHECK(page->items[0].job.max_attempts == 3);
    CHECK(page->items[0].job.integration == ops);
}

// ---- the outbox -------------------------------------------------------------------

TEST_CASE("outbox: a delivered job is sent once and recorded with one attempt") {
    outbox_fixture f;
    const auto ops = f.add_integration("ops");
    const auto id = f.add_job(ops);
    f.start();

    REQUIRE(eventually([&] { return f.in_state(id, st::job_state::delivered); }));
    const auto e = f.job(id);
    CHECK(e.job.attempts == 1);
    CHECK_FALSE(e.job.last_error);
    REQUIRE(e.attempts.size() == 1);
    CHECK(e.attempts[0].attempt == 1);
    CHECK(e.attempts[0].outcome == st::attempt_outcome::delivered);
    CHECK(e.attempts[0].status == "200");
    CHECK(e.attempts[0].started_at_ms == T0);

    auto calls = f.sender.calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].integration == ops);
    CHECK(calls[0].job == id); // the receiver's idempotency key
    CHECK_FALSE(calls[0].test);
    CHECK(calls[0].event == "alert.opened");
    CHECK(calls[0].url == "https://example.com/ops");
    CHECK(calls[0].token == "tok-ops"); // secrets opened for the sender

    // A later job goes through too; the first is not sent again.
    const auto next = f.add_job(ops);
    REQUIRE(eventually([&] { return f.in_state(next, st::job_state::delivered); }));
    CHECK(f.sender.calls().size() == 2);
    CHECK(f.job(id).attempts.size() == 1);
    const auto stats = f.ob->stats();
    CHECK(stats.attempts == 2);
    CHECK(stats.delivered == 2);
    CHECK(stats.retried == 0);
    CHECK(stats.dead == 0);
}

TEST_CASE("outbox: retry after the backoff, then delivered") {
    outbox_fixture f;
    const auto ops = f.add_integration("ops");
    f.sender.script(ops, {retry(), delivered("202")});
    const auto id = f.add_job(ops);
    f.start();

    REQUIRE(eventually([&] { return f.attempted(id, 1, st::job_state::pending); }));
    auto e = f.job(id);
    // Attempt 1: backoff_initial * 2^0, half of it random.
    CHECK(e.job.next_attempt_at_ms >= T0 + 500);
    CHECK(e.job.next_attempt_at_ms <= T0 + 1000);
    CHECK(e.job.last_error == std::optional<std::string>("service unavailable"));
    REQUIRE(e.attempts.size() == 1);
    CHECK(e.attempts[0].outcome == st::attempt_outcome::retry);
    CHECK(e.attempts[0].status == "503");
    CHECK(f.sender.calls().size() == 1);

    f.advance_to(T0 + 1001);
    REQUIRE(eventually([&] { return f.in_state(id, st::job_state::delivered); }));
    e = f.job(id);
    CHECK(e.job.attempts == 2);
    CHECK_FALSE(e.job.last_error);
    REQUIRE(e.attempts.size() == 2);
    CHECK(e.attempts[1].attempt == 2);
    CHECK(e.attempts[1].outcome == st::attempt_outcome::delivered);
    CHECK(e.attempts[1].status == "202");
    CHECK(e.attempts[1].started_at_ms == T0 + 1001);
    CHECK(f.sender.calls().size() == 2);
    CHECK(f.ob->stats().retried == 1);
}

TEST_CASE("outbox: after max_attempts retries the job is dead; backoff doubles") {
    outbox_fixture f;
    const auto ops = f.add_integration("ops");
    f.sender.fallback(ops, retry("", "connection refused"));
    const auto id = f.add_job(ops, 4);
    f.start();

    for (std::int64_t n = 1; n < 4; ++n) {
        CAPTURE(n);
        REQUIRE(eventually([&] { return f.attempted(id, n, st::job_state::pending); }));
        const auto e = f.job(id);
        const auto full = std::int64_t{1000} << (n - 1);
        const auto wait = e.job.next_attempt_at_ms - f.now.load();
        CHECK(wait >= full / 2);
        CHECK(wait <= full);
        CHECK(f.sender.calls().size() == static_cast<std::size_t>(n));
        f.advance_to(e.job.next_attempt_at_ms);
    }
    REQUIRE(eventually([&] { return f.in_state(id, st::job_state::dead); }));
    const auto e = f.job(id);
    CHECK(e.job.attempts == 4);
    REQUIRE(e.job.last_error);
    CHECK(e.job.last_error->find("gave up after 4 attempts") != std::string::npos);
    CHECK(e.job.last_error->find("connection refused") != std::string::npos);
    REQUIRE(e.attempts.size() == 4);
    for (const auto& a : e.attempts)
        CHECK(a.outcome == st::attempt_outcome::retry);
    CHECK(f.sender.calls().size() == 4);
    CHECK(f.ob->stats().dead == 1);
}

TEST_CASE("outbox: backoff is capped at backoff_max") {
    outbox_fixture f;
    const auto ops = f.add_integration("ops");
    f.sender.fallback(ops, retry());
    const auto id = f.add_job(ops, 10);
    auto o = quiet_options();
    o.backoff_max_ms = 3000;
    f.start(o);
    for (std::int64_t n = 1; n <= 4; ++n) {
        CAPTURE(n);
        REQUIRE(eventually([&] { return f.attempted(id, n, st::job_state::pending); }));
        const auto e = f.job(id);
        const auto full = std::min<std::int64_t>(std::int64_t{1000} << (n - 1), 3000);
        const auto wait = e.job.next_attempt_at_ms - f.now.load();
        CHECK(wait >= full / 2);
        CHECK(wait <= full);
        f.advance_to(e.job.next_attempt_at_ms);
    }
}

TEST_CASE("outbox: failed is dead after one attempt") {
    outbox_fixture f;
    const auto ops = f.add_integration("ops");
    f.sender.fallback(ops, failed("401", "authentication refused"));
    const auto id = f.add_job(ops);
    f.start();

    REQUIRE(eventually([&] { return f.in_state(id, st::job_state::dead); }));
    const auto e = f.job(id);
    CHECK(e.job.attempts == 1);
    CHECK(e.job.last_error == std::optional<std::string>("authentication refused"));
    REQUIRE(e.attempts.size() == 1);
    CHECK(e.attempts[0].outcome == st::attempt_outcome::failed);
    CHECK(e.attempts[0].status == "401");
    CHECK(f.sender.calls().size() == 1);
}

TEST_CASE("outbox: at most per_integration sends at once per integration; others go on") {
    outbox_fixture f;
    const auto slow = f.add_integration("slow");
    const auto fast = f.add_integration("fast");
    std::vector<std::int64_t> slow_jobs;
    for (int i = 0; i < 3; ++i)
        slow_jobs.push_back(f.add_job(slow));
    const auto fast_job = f.add_job(fast);
    f.sender.block(slow);
    auto o = quiet_options();
    o.workers = 4;
    o.per_integration = 1;
    f.start(o);

    // One slow send is held; the fast integration's job still goes through.
    REQUIRE(eventually([&] { return f.in_state(fast_job, st::job_state::delivered); }));
    REQUIRE(eventually([&] { return f.sender.calls_of(slow) == 1; }));
    const auto c = f.counts();
    CHECK(c.in_flight == 1);
    CHECK(c.pending == 2);
    // More fast jobs flow while the slow one is held.
    const auto fast_two = f.add_job(fast);
    REQUIRE(eventually([&] { return f.in_state(fast_two, st::job_state::delivered); }));
    CHECK(f.sender.calls_of(slow) == 1);
    CHECK(f.sender.max_active(slow) == 1);

    f.sender.release(slow);
    REQUIRE(eventually([&] { return f.counts().delivered == 5; }));
    CHECK(f.sender.calls_of(slow) == 3);
    CHECK(f.sender.max_active(slow) == 1);
    for (auto id : slow_jobs)
        CHECK(f.job(id).job.attempts == 1);
}

TEST_CASE("outbox: the circuit breaker holds a failing integration until its cooldown") {
    outbox_fixture f;
    const auto down = f.add_integration("down");
    const auto up = f.add_integration("up");
    f.sender.fallback(down, retry("", "timeout"));
    std::vector<std::int64_t> down_jobs;
    for (int i = 0; i < 3; ++i)
        down_jobs.push_back(f.add_job(down));
    auto o = quiet_options();
    o.workers = 4;
    o.breaker_threshold = 3;
    o.breaker_cooldown_ms = 30'000;
    f.start(o);

    REQUIRE(eventually([&] {
        return std::all_of(down_jobs.begin(), down_jobs.end(),
                           [&](auto id) { return f.attempted(id, 1, st::job_state::pending); });
    }));
    CHECK(f.ob->stats().circuits_opened == 1);
    CHECK(f.sender.calls_of(down) == 3);

    // Past every backoff, before the cooldown: the failing integration waits,
    // the other one is served.
    f.advance_to(T0 + 10'000);
    const auto up_job = f.add_job(up);
    REQUIRE(eventually([&] { return f.in_state(up_job, st::job_state::delivered); }));
    const auto up_two = f.add_job(up);
    REQUIRE(eventually([&] { return f.in_state(up_two, st::job_state::delivered); }));
    CHECK(f.sender.calls_of(down) == 3);
    for (auto id : down_jobs) {
        const auto e = f.job(id);
        CHECK(e.job.state == st::job_state::pending);
        CHECK(e.job.attempts == 1); // waiting is not an attempt
    }

    // After the cooldown the receiver is back.
    f.sender.fallback(down, delivered());
    f.advance_to(T0 + 30'001);
    REQUIRE(eventually([&] {
        return std::all_of(down_jobs.begin(), down_jobs.end(),
                           [&](auto id) { return f.in_state(id, st::job_state::delivered); });
    }));
    CHECK(f.sender.calls_of(down) == 6);
    for (auto id : down_jobs)
        CHECK(f.job(id).job.attempts == 2);
    CHECK(f.ob->stats().circuits_opened == 1);
}

TEST_CASE("outbox: jobs left in flight are sent again at start") {
    outbox_fixture f;
    const auto ops = f.add_integration("ops");
    const auto id = f.add_job(ops);
    // A previous process claimed it and stopped.
    auto claimed = st::delivery_repository(*f.db).claim_due(T0, 10, 10, [](const st::delivery_job&) { return true; });
    REQUIRE(claimed);
    REQUIRE(claimed->size() == 1);
    REQUIRE(f.in_state(id, st::job_state::in_flight));

    f.start();
    REQUIRE(eventually([&] { return f.in_state(id, st::job_state::delivered); }));
    CHECK(f.job(id).job.attempts == 1);
    REQUIRE(f.sender.calls().size() == 1);
    CHECK(f.sender.calls()[0].job == id);
}

TEST_CASE("outbox: a disabled integration's job is dead with a clear error, and nothing is sent") {
    outbox_fixture f;
    const auto off = f.add_integration("off", false);
    const auto snmp = f.add_integration("trap", true, "acme", "snmp"); // no sender for snmp here
    const auto off_job = f.add_job(off);
    const auto snmp_job = f.add_job(snmp);
    f.start();

    REQUIRE(eventually([&] {
        return f.in_state(off_job, st::job_state::dead) && f.in_state(snmp_job, st::job_state::dead);
    }));
    auto e = f.job(off_job);
    CHECK(e.job.last_error == std::optional<std::string>("the integration is disabled"));
    REQUIRE(e.attempts.size() == 1);
    CHECK(e.attempts[0].outcome == st::attempt_outcome::failed);
    e = f.job(snmp_job);
    REQUIRE(e.job.last_error);
    CHECK(e.job.last_error->find("cannot send to snmp integrations") != std::string::npos);
    CHECK(f.sender.calls().empty());
}

TEST_CASE("outbox: stop() loses no job; a restart delivers the rest once each") {
    outbox_fixture f;
    const auto ops = f.add_integration("ops");
    constexpr int total = 12;
    for (int i = 0; i < total; ++i)
        f.add_job(ops);
    f.sender.block(ops);
    f.start();
    REQUIRE(eventually([&] { return f.sender.calls_of(ops) >= 1; }));

    std::atomic<bool> stopping{false};
    std::thread stopper([&] {
        stopping = true;
        f.ob->stop();
    });
    REQUIRE(eventually([&] { return stopping.load(); }));
    f.sender.release(ops); // the sends in progress finish while (or before) stop() waits
    stopper.join();

    // Everything is recorded: nothing in flight, every call has its attempt row.
    auto c = f.counts();
    CHECK(c.in_flight == 0);
    CHECK(c.dead == 0);
    CHECK(c.pending + c.delivered == total);
    const auto sent = f.sender.calls().size();
    CHECK(static_cast<std::int64_t>(sent) == c.delivered);
    auto page = st::delivery_repository(*f.db).list("acme", {}, 100);
    REQUIRE(page);
    REQUIRE(page->items.size() == static_cast<std::size_t>(total));
    std::size_t rows = 0;
    for (const auto& e : page->items) {
        rows += e.attempts.size();
        CHECK(e.job.attempts == static_cast<std::int64_t>(e.attempts.size()));
    }
    CHECK(rows == sent);

    // A second outbox on the same database sends the rest, each job once.
    f.start();
    REQUIRE(eventually([&] { return f.counts().delivered == total; }));
    const auto calls = f.sender.calls();
    CHECK(calls.size() == static_cast<std::size_t>(total));
    std::set<std::int64_t> jobs;
    for (const auto& call : calls)
        jobs.insert(call.job);
    CHECK(jobs.size() == static_cast<std::size_t>(total));
}

TEST_CASE("outbox: send_test sends a test alert once and touches no job") {
    outbox_fixture f;
    const auto ops = f.add_integration("ops");
    const auto id = f.add_job(ops);
    f.make_outbox(); // not started: send_test needs no thread
    f.sender.script(ops, {failed("500", "boom")});

    const auto r = f.integrations().get("acme", ops).value().value();
    const auto out = f.ob->send_test(r);
    CHECK(out.result.result == adapters::outcome::failed);
    CHECK(out.result.status == "500");
    CHECK(out.result.error == "boom");
    CHECK(out.latency_ms >= 0);

    auto calls = f.sender.calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].test);
    CHECK(calls[0].job == 0);
    CHECK(calls[0].integration == ops);
    CHECK(calls[0].event == "alert.opened");
    CHECK(calls[0].token == "tok-ops");

    // No sender for the type: refused without a call.
    auto snmp = r;
    snmp.type = "snmp";
    const auto refused = f.ob->send_test(snmp);
    CHECK(refused.result.result == adapters::outcome::failed);
    CHECK(refused.result.error.find("cannot send to snmp integrations") != std::string::npos);
    CHECK(f.sender.calls().size() == 1);

    const auto e = f.job(id);
    CHECK(e.job.state == st::job_state::pending);
    CHECK(e.job.attempts == 0);
    CHECK(e.attempts.empty());
    const auto c = f.counts();
    CHECK(c.pending == 1);
    CHECK(c.in_flight + c.delivered + c.dead == 0);
    CHECK(f.ob->stats().attempts == 0);

    const auto text = test_event_json("acme", T0);
    const auto v = json::parse(text).as_object();
    CHECK(v.at("test").as_bool());
    CHECK(v.at("tenant").as_string() == "acme");
}

TEST_CASE("router: reminders of an open alert, once per repeat interval, for routes that take alert.opened") {
    db_fixture f;
    const auto pager = f.add_integration("pager");
    const auto archive = f.add_integration("archive");
    st::route_record r;
    r.tenant = "acme";
    r.name = "remind";
    r.match = R"({"events": ["alert.opened"]})";
    r.integrations = {pager};
    r.repeat_s = 60;
    const auto remind = f.integrations().create_route(r);
    REQUIRE(remind);
    r.name = "closed only";
    r.match = R"({"events": ["alert.closed"]})";
    r.integrations = {archive};
    REQUIRE(f.integrations().create_route(r));

    job_router router(*f.db, {});
    CHECK(router.has_repeats() == false); // not loaded yet
    REQUIRE(router.reload());
    CHECK(router.has_repeats());

    const auto a = make_alert(9);
    const auto e = make_event(alert_event_type::opened, a);
    CHECK(router.repeats_for(e, T0 + 59'999).empty()); // the first interval has not passed
    auto jobs = router.repeats_for(e, T0 + 60'000);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].integration == pager);
    CHECK(jobs[0].event == "alert.opened");
    CHECK(jobs[0].event_key == "alert:9:repeat:" + std::to_string(*remind) + ":1");
    CHECK(jobs[0].payload.find("\"repeat\":1") != std::string::npos);
    // The same interval gives the same key (a second sweep adds nothing);
    // the next interval a new one.
    CHECK(router.repeats_for(e, T0 + 119'999)[0].event_key == jobs[0].event_key);
    CHECK(router.repeats_for(e, T0 + 120'000)[0].event_key == "alert:9:repeat:" + std::to_string(*remind) + ":2");

    auto silenced = a;
    silenced.silenced = true;
    CHECK(router.repeats_for(make_event(alert_event_type::opened, silenced), T0 + 600'000).empty());
    auto closed = a;
    closed.status = st::alert_status::closed;
    CHECK(router.repeats_for(make_event(alert_event_type::opened, closed), T0 + 600'000).empty());
}
