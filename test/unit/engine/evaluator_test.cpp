// engine/evaluator driven directly with its own clock (every call takes
// now_ms; nothing sleeps): threshold alerts (open, repeat, close, for_s,
// hysteresis), scopes, tenant isolation, rule changes, the ingest interest,
// heartbeats (grace, registration, restore, many devices), the alert
// lifecycle, escalation, silences, restore and liveness. Each test reads
// events() and clears it between steps, as the rules engine does.

#include "engine/evaluator.hpp"

#include "engine/alert_control.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace pulsegate::engine;
namespace st = pulsegate::storage::state;
using st::compare_op;

// A failed CHECK(result) prints the error's message.
template <>
struct doctest::StringMaker<boost::system::result<st::alert_record>> {
    static doctest::String convert(const boost::system::result<st::alert_record>& r) {
        return r ? "(an alert)" : ("error: " + r.error().message()).c_str();
    }
};
template <>
struct doctest::StringMaker<alert_event_type> {
    static doctest::String convert(alert_event_type t) { return std::string(to_string(t)).c_str(); }
};

namespace {

using ev = alert_event_type;

// A start time on a whole second, so that deadlines built from whole
// seconds fall on tick boundaries (tick_ms = 100).
constexpr std::int64_t T0 = 1'700'000'000'000;
constexpr std::int64_t day_ms = 86'400'000;

st::rule_record th_rule(std::int64_t id, std::string metric, compare_op op, double value) {
    st::rule_record r;
    r.id = id;
    r.tenant = "t1";
    r.name = "rule-" + std::to_string(id);
    r.kind = st::rule_kind::threshold;
    r.sev = st::severity::major;
    r.metric = std::move(metric);
    r.op = op;
    r.value = value;
    r.created_at_ms = r.updated_at_ms = T0 - day_ms;
    return r;
}

st::rule_record hb_rule(std::int64_t id, std::int64_t interval_s, std::int64_t missed) {
    st::rule_record r;
    r.id = id;
    r.tenant = "t1";
    r.name = "hb-" + std::to_string(id);
    r.kind = st::rule_kind::heartbeat;
    r.sev = st::severity::critical;
    r.interval_s = interval_s;
    r.missed = missed;
    r.created_at_ms = r.updated_at_ms = T0 - day_ms;
    return r;
}

using device_list = std::vector<evaluator::registered_device>;

struct engine {
    evaluator ev;

    explicit engine(std::int64_t grace_ms = 0, std::int64_t next_id = 1)
        : ev(evaluator_options{grace_ms, 100}, T0, next_id) {}

    void rules(std::string_view tenant, const std::vector<st::rule_record>& r, std::int64_t now = T0) {
        ev.set_rules(tenant, r, now);
    }
    void devices(std::string_view tenant, const device_list& d, std::int64_t now = T0) {
        ev.set_devices(tenant, d, now);
    }
    std::uint32_t metric(std::string_view name) const {
        const auto id = ev.metric_id(name);
        REQUIRE(id.has_value());
        return *id;
    }
    // One message carrying one metric value, as ingest hands it over.
    void reading(std::string_view tenant, std::string_view device, std::string_view metric_name, double v,
                 std::int64_t at) {
        ev.on_message(tenant, device, at);
        ev.on_reading(tenant, device, metric(metric_name), v, at);
    }
    // The events since the last call (the consumer clears events()).
    std::vector<alert_event> take() {
        std::vector<alert_event> out;
        out.swap(ev.events());
        return out;
    }
    std::vector<st::alert_record> dirty() {
        std::vector<st::alert_record> out;
        ev.take_dirty(out);
        return out;
    }
};

template <class T>
boost::system::error_code error_of(const boost::system::result<T>& r) {
    return r ? boost::system::error_code{} : r.error();
}

bool is_open_event(const alert_event& e, std::string_view device) {
    return e.type == ev::opened && e.alert.device == device;
}

} // namespace

// ---- threshold ---------------------------------------------------------------

TEST_CASE("threshold: one alert opens, repeats update it, it closes automatically, a new breach opens a new one") {
    engine e;
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
    CHECK(e.take().empty());

    e.reading("t1", "d1", "temp", 25, T0 + 1'000);
    CHECK(e.take().empty());

    e.reading("t1", "d1", "temp", 31, T0 + 2'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::opened);
    CHECK(evs[0].at_ms == T0 + 2'000);
    {
        const auto& a = evs[0].alert;
        CHECK(a.id == 1);
        CHECK(a.tenant == "t1");
        CHECK(a.device == "d1");
        CHECK(a.rule == 1);
        CHECK(a.rule_name == "rule-1");
        CHECK(a.kind == st::alert_kind::threshold);
        CHECK(a.sev == st::severity::major);
        CHECK(a.status == st::alert_status::open);
        CHECK(a.metric == "temp");
        CHECK(a.value == 31);
        CHECK(a.threshold == 30);
        CHECK(a.last_value == 31);
        CHECK(a.count == 1);
        CHECK(a.opened_at_ms == T0 + 2'000);
        CHECK(a.last_seen_at_ms == T0 + 2'000);
        CHECK_FALSE(a.closed_at_ms);
        CHECK_FALSE(a.closed_by);
        CHECK_FALSE(a.acknowledged_at_ms);
        CHECK(a.escalation_level == 0);
        CHECK_FALSE(a.silenced);
        CHECK(a.message.find("d1") != std::string::npos);
    }
    CHECK(e.dirty().empty()); // the opened event carries it

    // Repeats: no event, the record changes.
    e.reading("t1", "d1", "temp", 35, T0 + 3'000);
    CHECK(e.take().empty());
    auto d = e.dirty();
    REQUIRE(d.size() == 1);
    CHECK(d[0].id == 1);
    CHECK(d[0].count == 2);
    CHECK(d[0].last_value == 35);
    CHECK(d[0].last_seen_at_ms == T0 + 3'000);
    CHECK(d[0].value == 31);
    CHECK(d[0].status == st::alert_status::open);

    e.reading("t1", "d1", "temp", 40, T0 + 4'000);
    e.reading("t1", "d1", "temp", 33, T0 + 5'000);
    CHECK(e.take().empty());
    d = e.dirty();
    REQUIRE(d.size() == 1); // once per take, however many repeats
    CHECK(d[0].count == 4);
    CHECK(d[0].last_value == 33);
    CHECK(e.dirty().empty());
    CHECK(e.ev.active_alerts().size() == 1);
    auto live = e.ev.live("t1", 1);
    REQUIRE(live);
    CHECK(live->count == 4);
    CHECK(live->last_value == 33);

    // 30 is not > 30: closes.
    e.reading("t1", "d1", "temp", 30, T0 + 6'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].at_ms == T0 + 6'000);
    CHECK(evs[0].alert.id == 1);
    CHECK(evs[0].alert.status == st::alert_status::closed);
    CHECK(evs[0].alert.closed_at_ms == T0 + 6'000);
    CHECK_FALSE(evs[0].alert.closed_by); // automatic
    CHECK(evs[0].alert.last_value == 30);
    CHECK(evs[0].alert.count == 4);
    CHECK(evs[0].alert.value == 31);
    CHECK(e.dirty().empty());
    CHECK(error_of(e.ev.live("t1", 1)) == make_error_code(alert_errc::not_found));
    CHECK(e.ev.active_alerts().empty());

    // A new breach: a new alert with a new id.
    e.reading("t1", "d1", "temp", 32, T0 + 7'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::opened);
    CHECK(evs[0].alert.id == 2);
    CHECK(evs[0].alert.value == 32);
    CHECK(evs[0].alert.count == 1);

    // A repeat then a close before the caller takes the dirty list: the
    // closed event has the final record, nothing stays dirty.
    e.reading("t1", "d1", "temp", 33, T0 + 8'000);
    e.reading("t1", "d1", "temp", 20, T0 + 9'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.id == 2);
    CHECK(evs[0].alert.count == 2);
    CHECK(evs[0].alert.last_value == 20);
    CHECK(e.dirty().empty());

    const auto s = e.ev.stats();
    CHECK(s.opened == 2);
    CHECK(s.closed == 2);
    CHECK(s.open_alerts == 0);
}

TEST_CASE("threshold: the message states the condition") {
    engine e;
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    e.rules("t1", {r});
    e.reading("t1", "d1", "temp", 31, T0 + 1'000);
    const auto evs = e.take();
    REQUIRE(evs.size() == 1);
    const auto& m = evs[0].alert.message;
    CAPTURE(m);
    CHECK(m.find("temp 31 > 30") != std::string::npos);
    CHECK(m.find("d1") != std::string::npos);
}

TEST_CASE("threshold: never two non-closed alerts per (tenant, device, rule)") {
    engine e;
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
    for (int i = 0; i < 50; ++i) e.reading("t1", "d1", "temp", 31 + i, T0 + 1'000 * i);
    const auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::opened);
    CHECK(e.ev.active_alerts().size() == 1);
    CHECK(e.ev.live("t1", 1)->count == 50);
}

TEST_CASE("threshold for_s: opened by tick at since + for_s without a further reading") {
    engine e;
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.for_s = 60;
    e.rules("t1", {r});

    SUBCASE("opens at the due time") {
        e.reading("t1", "d1", "temp", 31, T0 + 1'000);
        CHECK(e.take().empty());
        e.ev.tick(T0 + 30'000);
        e.reading("t1", "d1", "temp", 40, T0 + 30'000); // still pending
        CHECK(e.take().empty());
        e.ev.tick(T0 + 60'900);
        CHECK(e.take().empty());
        e.ev.tick(T0 + 61'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::opened);
        CHECK(evs[0].at_ms == T0 + 61'000);
        CHECK(evs[0].alert.opened_at_ms == T0 + 61'000);
        CHECK(evs[0].alert.value == 31); // the first breaching reading
        CHECK(evs[0].alert.last_value == 31);
        CHECK(evs[0].alert.count == 1);
        CHECK(evs[0].alert.message.find("60") != std::string::npos);
        e.ev.tick(T0 + 300'000);
        CHECK(e.take().empty());
    }
    SUBCASE("a non-breaching reading in between cancels") {
        e.reading("t1", "d1", "temp", 31, T0 + 1'000);
        e.ev.tick(T0 + 10'000);
        e.reading("t1", "d1", "temp", 29, T0 + 20'000);
        for (auto t = T0 + 20'000; t <= T0 + 200'000; t += 1'000) e.ev.tick(t);
        CHECK(e.take().empty());
        CHECK(e.ev.active_alerts().empty());
    }
    SUBCASE("a new breach after a cancel counts from its own start; the old timer is ignored") {
        e.reading("t1", "d1", "temp", 31, T0 + 1'000);
        e.reading("t1", "d1", "temp", 29, T0 + 20'000);
        e.reading("t1", "d1", "temp", 35, T0 + 30'000);
        e.ev.tick(T0 + 61'000);
        e.ev.tick(T0 + 89'900);
        CHECK(e.take().empty());
        e.ev.tick(T0 + 90'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].alert.opened_at_ms == T0 + 90'000);
        CHECK(evs[0].alert.value == 35);
    }
    SUBCASE("a breaching reading after the due time opens before the timer does") {
        e.reading("t1", "d1", "temp", 31, T0 + 1'000);
        e.reading("t1", "d1", "temp", 45, T0 + 61'000); // no tick yet
        auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].alert.opened_at_ms == T0 + 61'000);
        CHECK(evs[0].alert.value == 31);
        CHECK(evs[0].alert.last_value == 45);
        e.ev.tick(T0 + 61'000);
        e.ev.tick(T0 + 120'000);
        CHECK(e.take().empty());
        CHECK(e.ev.active_alerts().size() == 1);
    }
}

TEST_CASE("threshold for_s: a due time inside a tick opens within a tick, ticking as the rules engine does") {
    // The rules engine ticks every tick_ms at any phase: the tick at
    // T0 + 61,000 comes before the due time T0 + 61,050 in the same 100 ms;
    // the next one (T0 + 61,100) must open it, not one a revolution later.
    engine e;
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.for_s = 60;
    e.rules("t1", {r});
    e.reading("t1", "d1", "temp", 31, T0 + 1'050);
    std::optional<std::int64_t> opened;
    for (auto t = T0; t <= T0 + 62'000 && !opened; t += 100) {
        e.ev.tick(t);
        for (const auto& x : e.take())
            if (x.type == ev::opened) opened = t;
    }
    REQUIRE(opened);
    CHECK(*opened >= T0 + 61'050);
    CHECK(*opened <= T0 + 61'100);
}

TEST_CASE("threshold hysteresis through the evaluator") {
    engine e;
    SUBCASE("> 30 clear 28") {
        auto r = th_rule(1, "temp", compare_op::gt, 30);
        r.clear_value = 28;
        e.rules("t1", {r});
        e.reading("t1", "d1", "temp", 31, T0 + 1'000);
        REQUIRE(e.take().size() == 1);
        e.reading("t1", "d1", "temp", 29, T0 + 2'000);
        e.reading("t1", "d1", "temp", 28.5, T0 + 3'000);
        CHECK(e.take().empty());
        CHECK(e.ev.live("t1", 1)->count == 3);
        e.reading("t1", "d1", "temp", 28, T0 + 4'000);
        auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::closed);
        CHECK(evs[0].alert.last_value == 28);
        e.reading("t1", "d1", "temp", 29, T0 + 5'000); // below the threshold: nothing
        CHECK(e.take().empty());
        e.reading("t1", "d1", "temp", 31, T0 + 6'000);
        evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::opened);
        CHECK(evs[0].alert.id == 2);
    }
    SUBCASE("< 10 clear 12") {
        auto r = th_rule(1, "temp", compare_op::lt, 10);
        r.clear_value = 12;
        e.rules("t1", {r});
        e.reading("t1", "d1", "temp", 9, T0 + 1'000);
        REQUIRE(e.take().size() == 1);
        e.reading("t1", "d1", "temp", 11, T0 + 2'000);
        CHECK(e.take().empty());
        e.reading("t1", "d1", "temp", 12, T0 + 3'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::closed);
        CHECK(evs[0].alert.count == 2);
    }
}

// ---- scopes and tenants ------------------------------------------------------

TEST_CASE("scope {}: every device of the tenant, registered or not") {
    engine e;
    e.devices("t1", {{"d1", {}, T0}});
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
    e.reading("t1", "d1", "temp", 50, T0 + 1'000);
    e.reading("t1", "d2", "temp", 50, T0 + 2'000);
    const auto evs = e.take();
    REQUIRE(evs.size() == 2);
    CHECK(is_open_event(evs[0], "d1"));
    CHECK(is_open_event(evs[1], "d2"));
}

TEST_CASE("scope device: only that device is evaluated") {
    engine e;
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.scope.device = "d1";
    e.rules("t1", {r});
    e.reading("t1", "d2", "temp", 50, T0 + 1'000);
    e.reading("t1", "d10", "temp", 50, T0 + 1'000);
    CHECK(e.take().empty());
    CHECK(e.ev.stats().evaluations == 0);
    e.reading("t1", "d1", "temp", 50, T0 + 2'000);
    const auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(is_open_event(evs[0], "d1"));
}

TEST_CASE("scope labels: devices carrying the labels; leaving the scope closes the alert") {
    engine e;
    e.devices("t1", {{"d1", {{"site", "a"}, {"floor", "1"}}, T0}, {"d2", {{"site", "b"}}, T0}, {"d3", {}, T0}});
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.scope.labels = {{"site", "a"}};
    e.rules("t1", {r});
    for (const auto* d : {"d1", "d2", "d3", "d4"}) e.reading("t1", d, "temp", 50, T0 + 1'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(is_open_event(evs[0], "d1"));
    CHECK(evs[0].labels == st::label_map{{"site", "a"}, {"floor", "1"}});
    const auto d1_alert = evs[0].alert.id;

    // d1 moves to site b, d2 to site a.
    e.devices("t1", {{"d1", {{"site", "b"}}, T0}, {"d2", {{"site", "a"}}, T0}, {"d3", {}, T0}}, T0 + 10'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.id == d1_alert);
    CHECK(evs[0].at_ms == T0 + 10'000);
    CHECK_FALSE(evs[0].alert.closed_by);
    e.reading("t1", "d1", "temp", 50, T0 + 11'000);
    CHECK(e.take().empty());
    e.reading("t1", "d2", "temp", 50, T0 + 11'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(is_open_event(evs[0], "d2"));

    // A device no longer registered loses its labels, so its alert closes.
    e.devices("t1", {}, T0 + 20'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.device == "d2");
}

TEST_CASE("scope labels: a pending for_s episode of a device that left the scope does not open") {
    // BUG: set_devices -> rescope closes alerts of devices that left a
    // rule's scope but leaves their pending threshold episodes alone, and
    // fire() (case timer_kind::pending, evaluator.cpp) does not check
    // in_scope: the timer opens an alert for a device the rule no longer
    // watches (here at T0 + 61 s), which then stays open until a reading
    // clears it or the labels change again.
    engine e;
    e.devices("t1", {{"d1", {{"site", "a"}}, T0}});
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.scope.labels = {{"site", "a"}};
    r.for_s = 60;
    e.rules("t1", {r});
    e.reading("t1", "d1", "temp", 31, T0 + 1'000);
    e.devices("t1", {{"d1", {{"site", "b"}}, T0}}, T0 + 10'000);
    for (auto t = T0 + 10'000; t <= T0 + 120'000; t += 1'000) e.ev.tick(t);
    CHECK(e.take().empty());
    CHECK(e.ev.active_alerts().empty());
}

TEST_CASE("tenants are isolated: the same device and metric in t2 do not see t1's rules") {
    engine e;
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
    auto r2 = th_rule(2, "temp", compare_op::gt, 100);
    r2.tenant = "t2";
    r2.scope.device = "d1";
    e.rules("t2", {r2});

    e.reading("t2", "d1", "temp", 50, T0 + 1'000);
    e.reading("t3", "d1", "temp", 5'000, T0 + 1'000); // no rules at all
    CHECK(e.take().empty());

    e.reading("t1", "d1", "temp", 50, T0 + 2'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.tenant == "t1");
    CHECK(evs[0].alert.rule == 1);

    e.reading("t2", "d1", "temp", 150, T0 + 3'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.tenant == "t2");
    CHECK(evs[0].alert.rule == 2);
    CHECK(evs[0].alert.id == 2);

    // t1's clear reading touches only t1's alert.
    e.reading("t1", "d1", "temp", 10, T0 + 4'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.tenant == "t1");
    CHECK(e.ev.live("t2", 2));
    CHECK(error_of(e.ev.live("t1", 2)) == make_error_code(alert_errc::not_found));

    // Replacing t1's rules leaves t2's alerts alone.
    e.rules("t1", {}, T0 + 5'000);
    CHECK(e.take().empty());
    CHECK(e.ev.live("t2", 2));
    e.rules("t2", {}, T0 + 6'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.tenant == "t2");
}

// ---- rule changes and the ingest interest ------------------------------------

TEST_CASE("set_rules: disabled or deleted rules close their alerts; a changed threshold applies to the next reading") {
    engine e;
    auto r1 = th_rule(1, "temp", compare_op::gt, 30);
    auto r2 = th_rule(2, "temp", compare_op::gt, 40);
    auto r3 = th_rule(3, "hum", compare_op::lt, 10);
    e.rules("t1", {r3, r2, r1}); // the order given does not matter

    // One reading, two rules: opened in rule id order.
    e.reading("t1", "d1", "temp", 50, T0 + 1'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 2);
    CHECK(evs[0].alert.rule == 1);
    CHECK(evs[0].alert.id == 1);
    CHECK(evs[1].alert.rule == 2);
    CHECK(evs[1].alert.id == 2);
    e.reading("t1", "d1", "hum", 5, T0 + 1'000);
    REQUIRE(e.take().size() == 1);

    // Unchanged rules: nothing happens.
    e.rules("t1", {r1, r2, r3}, T0 + 5'000);
    CHECK(e.take().empty());

    // Disabled.
    r1.enabled = false;
    e.rules("t1", {r1, r2, r3}, T0 + 10'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.id == 1);
    CHECK(evs[0].at_ms == T0 + 10'000);
    CHECK_FALSE(evs[0].alert.closed_by);

    // Deleted.
    e.rules("t1", {r1, r3}, T0 + 20'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.id == 2);

    // Neither fires any more.
    e.reading("t1", "d1", "temp", 50, T0 + 21'000);
    CHECK(e.take().empty());

    // hum < 10 becomes hum < 3: the open alert stays until the next reading,
    // which is judged by the new threshold.
    r3.value = 3;
    e.rules("t1", {r1, r3}, T0 + 30'000);
    CHECK(e.take().empty());
    e.reading("t1", "d1", "hum", 5, T0 + 31'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.id == 3);
    CHECK(evs[0].alert.last_value == 5);
    e.reading("t1", "d1", "hum", 4, T0 + 32'000);
    CHECK(e.take().empty());
    e.reading("t1", "d1", "hum", 2, T0 + 33'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.threshold == 3);
    CHECK(evs[0].alert.id == 4);

    // Re-enabled: applies to the next reading.
    r1.enabled = true;
    e.rules("t1", {r1, r3}, T0 + 40'000);
    CHECK(e.take().empty());
    e.reading("t1", "d1", "temp", 50, T0 + 41'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.rule == 1);
    CHECK(evs[0].alert.id == 5);

    // Everything removed: closed in id order.
    e.rules("t1", {}, T0 + 50'000);
    evs = e.take();
    REQUIRE(evs.size() == 2);
    CHECK(evs[0].alert.id == 4);
    CHECK(evs[1].alert.id == 5);
}

TEST_CASE("set_rules: a changed rule restarts a pending for_s episode, an unchanged one keeps it") {
    engine e;
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.for_s = 60;
    e.rules("t1", {r});
    e.reading("t1", "d1", "temp", 31, T0 + 1'000);

    SUBCASE("unchanged") {
        e.rules("t1", {r}, T0 + 10'000);
        e.ev.tick(T0 + 61'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].alert.opened_at_ms == T0 + 61'000);
    }
    SUBCASE("changed") {
        r.for_s = 120;
        r.updated_at_ms = T0 + 10'000;
        e.rules("t1", {r}, T0 + 10'000);
        e.ev.tick(T0 + 61'000);
        e.ev.tick(T0 + 121'000);
        CHECK(e.take().empty());
        // The next breaching reading starts a new episode.
        e.reading("t1", "d1", "temp", 32, T0 + 130'000);
        e.ev.tick(T0 + 249'900);
        CHECK(e.take().empty());
        e.ev.tick(T0 + 250'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].alert.value == 32);
    }
}

TEST_CASE("make_interest: each tenant's watched metrics and heartbeat flag, nothing for tenants without rules") {
    engine e;
    auto disabled = th_rule(4, "pressure", compare_op::gt, 1);
    disabled.enabled = false;
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30), th_rule(2, "hum", compare_op::lt, 10), hb_rule(3, 10, 3),
                   disabled});
    auto only_disabled = th_rule(5, "volt", compare_op::gt, 1);
    only_disabled.enabled = false;
    e.rules("t2", {only_disabled});
    e.rules("t3", {hb_rule(6, 60, 2)});
    e.ev.on_message("t4", "d1", T0 + 1'000);
    e.rules("t5", {});

    const auto snap = e.ev.make_interest();
    REQUIRE(snap);
    CHECK(snap->tenants.size() == 2);
    REQUIRE(snap->tenants.count("t1") == 1);
    const auto& t1 = snap->tenants.find("t1")->second;
    CHECK(t1.heartbeat);
    CHECK(t1.metrics.size() == 2);
    REQUIRE(t1.metrics.count("temp") == 1);
    REQUIRE(t1.metrics.count("hum") == 1);
    CHECK(t1.metrics.find("temp")->second == e.metric("temp"));
    CHECK(t1.metrics.find("hum")->second == e.metric("hum"));
    CHECK(e.metric("temp") != e.metric("hum"));
    CHECK(t1.metrics.count("pressure") == 0);
    REQUIRE(snap->tenants.count("t3") == 1);
    CHECK(snap->tenants.find("t3")->second.heartbeat);
    CHECK(snap->tenants.find("t3")->second.metrics.empty());
    CHECK(snap->tenants.count("t2") == 0);
    CHECK(snap->tenants.count("t4") == 0);
    CHECK(snap->tenants.count("t5") == 0);
    CHECK_FALSE(e.ev.metric_id("never-used"));

    // A new snapshot follows the rules; the old one does not change.
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)}, T0 + 1'000);
    const auto next = e.ev.make_interest();
    const auto& t1b = next->tenants.find("t1")->second;
    CHECK_FALSE(t1b.heartbeat);
    CHECK(t1b.metrics.size() == 1);
    CHECK(t1b.metrics.count("temp") == 1);
    CHECK(snap->tenants.find("t1")->second.metrics.size() == 2);
    e.rules("t1", {}, T0 + 2'000);
    CHECK(e.ev.make_interest()->tenants.count("t1") == 0);
}

// ---- heartbeat ---------------------------------------------------------------

TEST_CASE("heartbeat: NO_HEARTBEAT opens at the deadline, the next message closes it and re-arms") {
    for (const std::int64_t grace : {std::int64_t{0}, std::int64_t{60'000}}) {
        CAPTURE(grace);
        engine e(grace);
        e.rules("t1", {hb_rule(5, 10, 3)}); // 30 s
        e.ev.on_message("t1", "d1", T0 + 1'000);
        const auto deadline = std::max(T0 + 31'000, T0 + grace);

        e.ev.tick(deadline - 100);
        CHECK(e.take().empty());
        e.ev.tick(deadline);
        auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::opened);
        CHECK(evs[0].at_ms == deadline);
        const auto& a = evs[0].alert;
        CHECK(a.id == 1);
        CHECK(a.kind == st::alert_kind::no_heartbeat);
        CHECK(a.device == "d1");
        CHECK(a.rule == 5);
        CHECK(a.sev == st::severity::critical);
        CHECK(a.metric.empty());
        CHECK_FALSE(a.value);
        CHECK_FALSE(a.threshold);
        CHECK(a.count == 1);
        CHECK(a.opened_at_ms == deadline);
        CHECK(a.message.find("d1") != std::string::npos);

        // Still silent: no second alert.
        for (auto t = deadline; t <= deadline + 120'000; t += 1'000) e.ev.tick(t);
        CHECK(e.take().empty());

        const auto msg = deadline + 125'000;
        e.ev.on_message("t1", "d1", msg);
        evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::closed);
        CHECK(evs[0].alert.id == 1);
        CHECK(evs[0].alert.closed_at_ms == msg);
        CHECK_FALSE(evs[0].alert.closed_by);

        // Re-armed from that message.
        e.ev.tick(msg + 29'900);
        CHECK(e.take().empty());
        e.ev.tick(msg + 30'000);
        evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::opened);
        CHECK(evs[0].alert.id == 2);
    }
}

TEST_CASE("heartbeat: a device that keeps sending never alerts") {
    engine e;
    e.rules("t1", {hb_rule(5, 10, 3)});
    for (auto t = T0; t <= T0 + 600'000; t += 1'000) {
        if ((t - T0) % 10'000 == 0) e.ev.on_message("t1", "d1", t);
        e.ev.tick(t);
    }
    CHECK(e.take().empty());
    // Then it stops: 30 s after its last message.
    const auto last = T0 + 600'000;
    e.ev.tick(last + 29'900);
    CHECK(e.take().empty());
    e.ev.tick(last + 30'000);
    const auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.opened_at_ms == last + 30'000);
}

TEST_CASE("heartbeat: a device silent across a due time inside a tick alerts within a tick") {
    // As above: the deadline T0 + 31,050 lies inside the tick at T0 + 31,000.
    engine e;
    e.rules("t1", {hb_rule(5, 10, 3)});
    e.ev.on_message("t1", "d1", T0 + 1'050);
    std::optional<std::int64_t> opened;
    for (auto t = T0; t <= T0 + 32'000 && !opened; t += 100) {
        e.ev.tick(t);
        for (const auto& x : e.take())
            if (x.type == ev::opened) opened = t;
    }
    REQUIRE(opened);
    CHECK(*opened >= T0 + 31'050);
    CHECK(*opened <= T0 + 31'100);
}

TEST_CASE("heartbeat: a registered device that never sent anything alerts, counted from max(registration, rule change)") {
    engine e;
    SUBCASE("registered after the rule changed") {
        e.rules("t1", {hb_rule(5, 10, 3)}); // updated a day ago
        e.devices("t1", {{"d1", {}, T0 + 5'000}}, T0 + 5'000);
        e.ev.tick(T0 + 34'900);
        CHECK(e.take().empty());
        e.ev.tick(T0 + 35'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].alert.device == "d1");
        CHECK(evs[0].alert.kind == st::alert_kind::no_heartbeat);
    }
    SUBCASE("the rule changed after the registration") {
        e.devices("t1", {{"d1", {}, T0 - day_ms}}, T0);
        auto r = hb_rule(5, 10, 3);
        r.updated_at_ms = T0 + 10'000;
        e.rules("t1", {r}, T0 + 10'000);
        e.ev.tick(T0 + 39'900);
        CHECK(e.take().empty());
        e.ev.tick(T0 + 40'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].alert.device == "d1");
    }
}

TEST_CASE("heartbeat: label scope; a device leaving it closes its NO_HEARTBEAT alert") {
    engine e;
    e.devices("t1", {{"d1", {{"site", "a"}}, T0}, {"d2", {{"site", "b"}}, T0}});
    auto r = hb_rule(5, 10, 3);
    r.scope.labels = {{"site", "a"}};
    e.rules("t1", {r});
    e.ev.tick(T0 + 30'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.device == "d1");
    e.devices("t1", {{"d1", {}, T0}, {"d2", {{"site", "b"}}, T0}}, T0 + 40'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.device == "d1");
    for (auto t = T0 + 40'000; t <= T0 + 200'000; t += 1'000) e.ev.tick(t);
    CHECK(e.take().empty());
}

TEST_CASE("heartbeat after restore(): past liveness gets the grace period, then alerts") {
    constexpr std::int64_t grace = 60'000;
    engine e(grace);
    const std::vector<st::liveness_record> seen{
        {"t1", "d1", T0 - 3'600'000}, // long silent
        {"t1", "d2", T0 - 100'000},
        {"t1", "d3", T0 - 1'000}, // deadline T0 + 119 s, after the grace
    };
    e.ev.restore({}, seen);
    e.rules("t1", {hb_rule(5, 60, 2)}); // 120 s
    std::vector<st::liveness_record> liveness;
    e.ev.take_liveness(liveness);
    CHECK(liveness.empty()); // restoring is not news

    e.ev.tick(T0 + 59'900);
    CHECK(e.take().empty());
    e.ev.tick(T0 + grace);
    auto evs = e.take();
    REQUIRE(evs.size() == 2);
    std::set<std::string> devices;
    for (const auto& x : evs) {
        CHECK(x.type == ev::opened);
        CHECK(x.alert.opened_at_ms == T0 + grace);
        devices.insert(x.alert.device);
    }
    CHECK(devices == std::set<std::string>{"d1", "d2"});
    e.ev.tick(T0 + 118'900);
    CHECK(e.take().empty());
    e.ev.tick(T0 + 119'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.device == "d3");
}

TEST_CASE("heartbeat after restore(): an open NO_HEARTBEAT alert is kept, not duplicated, and closed by the next message") {
    engine e(0);
    st::alert_record a;
    a.id = 7;
    a.tenant = "t1";
    a.device = "d1";
    a.rule = 5;
    a.rule_name = "hb-5";
    a.kind = st::alert_kind::no_heartbeat;
    a.sev = st::severity::critical;
    a.status = st::alert_status::open;
    a.opened_at_ms = T0 - 50'000;
    a.last_seen_at_ms = T0 - 50'000;
    const std::vector<st::alert_record> open{a};
    const std::vector<st::liveness_record> seen{{"t1", "d1", T0 - 200'000}};
    e.ev.restore(open, seen);
    e.rules("t1", {hb_rule(5, 10, 3)});
    for (auto t = T0; t <= T0 + 600'000; t += 1'000) e.ev.tick(t);
    CHECK(e.take().empty());
    const auto live = e.ev.live("t1", 7);
    REQUIRE(live);
    CHECK(*live == a);

    e.ev.on_message("t1", "d1", T0 + 601'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.id == 7);
    CHECK_FALSE(evs[0].alert.closed_by);
    // Re-armed; a new alert gets an id above the restored one.
    e.ev.tick(T0 + 631'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::opened);
    CHECK(evs[0].alert.id == 8);
}

TEST_CASE("heartbeat: 10,000 devices whose deadlines keep moving; only the silent ones alert") {
    engine e;
    e.rules("t1", {hb_rule(5, 10, 3)}); // 30 s
    constexpr int n = 10'000;
    std::vector<std::string> names;
    names.reserve(n);
    for (int i = 0; i < n; ++i) names.push_back("dev-" + std::to_string(i));
    auto silent = [](int i) { return i % 1'000 == 7; }; // 10 devices

    // Every device sends every 10 s at its own offset (a multiple of the
    // tick); the silent ones only once.
    std::map<std::string, std::int64_t> last_of_silent;
    std::vector<alert_event> opened;
    for (std::int64_t k = 0; k <= 3'000; ++k) { // 300 s in 100 ms steps
        const auto t = T0 + 100 * k;
        for (int i = static_cast<int>(k % 100); i < n; i += 100) {
            if (silent(i) && k >= 100) continue;
            e.ev.on_message("t1", names[static_cast<std::size_t>(i)], t);
            if (silent(i)) last_of_silent[names[static_cast<std::size_t>(i)]] = t;
        }
        e.ev.tick(t);
        for (auto& x : e.take()) {
            CHECK(x.type == ev::opened);
            opened.push_back(std::move(x));
        }
    }
    REQUIRE(last_of_silent.size() == 10);
    CHECK(opened.size() == 10);
    for (const auto& x : opened) {
        CAPTURE(x.alert.device);
        REQUIRE(last_of_silent.count(x.alert.device) == 1);
        CHECK(x.alert.opened_at_ms == last_of_silent[x.alert.device] + 30'000);
    }
    const auto s = e.ev.stats();
    CHECK(s.devices == static_cast<std::size_t>(n));
    CHECK(s.open_alerts == 10);
    CHECK(s.timers <= static_cast<std::size_t>(n)); // one per device at most, not one per message
}

// ---- lifecycle ---------------------------------------------------------------

TEST_CASE("acknowledge and close: events, fields and errors") {
    engine e;
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
    e.reading("t1", "d1", "temp", 50, T0 + 1'000);
    e.reading("t1", "d2", "temp", 50, T0 + 1'000);
    REQUIRE(e.take().size() == 2);

    auto acked = e.ev.acknowledge("t1", 1, "alice", T0 + 2'000);
    REQUIRE(acked);
    CHECK(acked->status == st::alert_status::acknowledged);
    CHECK(acked->acknowledged_by == "alice");
    CHECK(acked->acknowledged_at_ms == T0 + 2'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::acknowledged);
    CHECK(evs[0].at_ms == T0 + 2'000);
    CHECK(evs[0].alert == *acked);
    CHECK(e.ev.live("t1", 1)->status == st::alert_status::acknowledged);

    CHECK(error_of(e.ev.acknowledge("t1", 1, "bob", T0 + 3'000)) ==
          make_error_code(alert_errc::already_acknowledged));
    CHECK(e.ev.live("t1", 1)->acknowledged_by == "alice");

    // Unknown ids and other tenants' alerts.
    CHECK(error_of(e.ev.acknowledge("t1", 99, "bob", T0 + 3'000)) == make_error_code(alert_errc::not_found));
    CHECK(error_of(e.ev.close("t1", 99, "bob", T0 + 3'000)) == make_error_code(alert_errc::not_found));
    CHECK(error_of(e.ev.acknowledge("t2", 2, "mallory", T0 + 3'000)) == make_error_code(alert_errc::not_found));
    CHECK(error_of(e.ev.close("t2", 2, "mallory", T0 + 3'000)) == make_error_code(alert_errc::not_found));
    CHECK(error_of(e.ev.live("t2", 2)) == make_error_code(alert_errc::not_found));
    CHECK(e.take().empty());
    CHECK(e.ev.live("t1", 2)->status == st::alert_status::open);

    // An acknowledged alert still counts repeats.
    e.reading("t1", "d1", "temp", 60, T0 + 4'000);
    const auto d = e.dirty();
    REQUIRE(d.size() == 1);
    CHECK(d[0].count == 2);
    CHECK(d[0].status == st::alert_status::acknowledged);

    // Manual close.
    auto closed = e.ev.close("t1", 2, "bob", T0 + 5'000);
    REQUIRE(closed);
    CHECK(closed->status == st::alert_status::closed);
    CHECK(closed->closed_by == "bob");
    CHECK(closed->closed_at_ms == T0 + 5'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert == *closed);
    // The engine no longer holds it, but remembers it closed (the database
    // may not have the close yet); for another tenant it does not exist.
    CHECK(error_of(e.ev.close("t1", 2, "bob", T0 + 6'000)) == make_error_code(alert_errc::already_closed));
    CHECK(error_of(e.ev.acknowledge("t1", 2, "bob", T0 + 6'000)) == make_error_code(alert_errc::already_closed));
    CHECK(error_of(e.ev.close("t2", 2, "mallory", T0 + 6'000)) == make_error_code(alert_errc::not_found));
    CHECK(error_of(e.ev.live("t1", 2)) == make_error_code(alert_errc::not_found));

    // The acknowledged one closes automatically and keeps who acknowledged it.
    e.reading("t1", "d1", "temp", 10, T0 + 7'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::closed);
    CHECK(evs[0].alert.id == 1);
    CHECK_FALSE(evs[0].alert.closed_by);
    CHECK(evs[0].alert.acknowledged_by == "alice");

    const auto s = e.ev.stats();
    CHECK(s.acknowledged == 1);
    CHECK(s.closed == 2);
    CHECK(s.open_alerts == 0);
}

TEST_CASE("closing a NO_HEARTBEAT alert by hand while the device is silent: no new one before a full timeout") {
    engine e;
    e.rules("t1", {hb_rule(5, 10, 3)}); // 30 s
    e.ev.on_message("t1", "d1", T0 + 1'000);
    e.ev.tick(T0 + 31'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 1);
    const auto id = evs[0].alert.id;

    auto closed = e.ev.close("t1", id, "alice", T0 + 40'000);
    REQUIRE(closed);
    CHECK(closed->closed_by == "alice");
    REQUIRE(e.take().size() == 1);

    for (auto t = T0 + 40'000; t < T0 + 70'000; t += 100) e.ev.tick(t);
    CHECK(e.take().empty());
    e.ev.tick(T0 + 70'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::opened);
    CHECK(evs[0].alert.id == id + 1);
    CHECK(evs[0].alert.opened_at_ms == T0 + 70'000);
}

// ---- escalation --------------------------------------------------------------

TEST_CASE("escalation: unacknowledged alerts escalate every escalate_after_s; acknowledged ones do not") {
    engine e;
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.escalate_after_s = 60;
    e.rules("t1", {r});
    e.reading("t1", "d1", "temp", 50, T0 + 1'000); // id 1: left alone
    e.reading("t1", "d2", "temp", 50, T0 + 1'000); // id 2: acknowledged in time
    e.reading("t1", "d3", "temp", 50, T0 + 1'000); // id 3: acknowledged after one escalation
    REQUIRE(e.take().size() == 3);
    REQUIRE(e.ev.acknowledge("t1", 2, "alice", T0 + 30'000));
    REQUIRE(e.take().size() == 1);

    e.ev.tick(T0 + 60'900);
    CHECK(e.take().empty());
    e.ev.tick(T0 + 61'000);
    auto evs = e.take();
    REQUIRE(evs.size() == 2);
    std::sort(evs.begin(), evs.end(), [](const auto& a, const auto& b) { return a.alert.id < b.alert.id; });
    for (const auto& x : evs) {
        CHECK(x.type == ev::escalated);
        CHECK(x.at_ms == T0 + 61'000);
        CHECK(x.alert.escalation_level == 1);
        CHECK(x.alert.escalated_at_ms == T0 + 61'000);
        CHECK(x.alert.status == st::alert_status::open);
    }
    CHECK(evs[0].alert.id == 1);
    CHECK(evs[1].alert.id == 3);
    CHECK(e.ev.live("t1", 1)->escalation_level == 1);

    REQUIRE(e.ev.acknowledge("t1", 3, "bob", T0 + 90'000));
    REQUIRE(e.take().size() == 1);
    e.ev.tick(T0 + 120'900);
    CHECK(e.take().empty());
    e.ev.tick(T0 + 121'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == ev::escalated);
    CHECK(evs[0].alert.id == 1);
    CHECK(evs[0].alert.escalation_level == 2);
    CHECK(evs[0].alert.escalated_at_ms == T0 + 121'000);

    for (auto t = T0 + 122'000; t <= T0 + 178'000; t += 1'000) e.ev.tick(t);
    CHECK(e.take().empty());
    e.ev.tick(T0 + 181'000);
    evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].alert.escalation_level == 3);
    CHECK(e.ev.stats().escalated == 4);
}

TEST_CASE("escalation follows rule changes") {
    engine e;
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.escalate_after_s = 60;
    e.rules("t1", {r});
    e.reading("t1", "d1", "temp", 50, T0 + 1'000);
    REQUIRE(e.take().size() == 1);

    SUBCASE("a longer escalate_after_s") {
        r.escalate_after_s = 600;
        e.rules("t1", {r}, T0 + 30'000);
        for (auto t = T0 + 30'000; t < T0 + 601'000; t += 1'000) e.ev.tick(t);
        CHECK(e.take().empty());
        e.ev.tick(T0 + 601'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::escalated);
        CHECK(evs[0].alert.escalation_level == 1);
    }
    SUBCASE("escalation removed from the rule") {
        // BUG: set_rules calls schedule_escalation for the changed rule, which
        // returns early when escalate_after_s is none without bumping
        // escalation_gen (evaluator.cpp, schedule_escalation, first line), and
        // fire() (case escalate) does not look at the rule's escalate_after_s:
        // the timer armed when the alert opened still escalates it once at
        // T0 + 61 s.
        r.escalate_after_s.reset();
        e.rules("t1", {r}, T0 + 30'000);
        for (auto t = T0 + 30'000; t <= T0 + 300'000; t += 1'000) e.ev.tick(t);
        CHECK(e.take().empty());
        CHECK(e.ev.live("t1", 1)->escalation_level == 0);
    }
}

// ---- silences ----------------------------------------------------------------

TEST_CASE("silences: a matching active silence marks the alert silenced; it is still opened and held") {
    struct row {
        const char* what;
        st::silence_matchers m;
        std::int64_t starts, ends;
        bool silenced;
    };
    const auto hour = 3'600'000;
    const auto with = [](auto set) {
        st::silence_matchers m;
        set(m);
        return m;
    };
    const row rows[] = {
        {"everything", {}, T0, T0 + hour, true},
        {"device", with([](auto& m) { m.device = "d1"; }), T0, T0 + hour, true},
        {"other device", with([](auto& m) { m.device = "d2"; }), T0, T0 + hour, false},
        {"labels", with([](auto& m) { m.labels = {{"site", "a"}}; }), T0, T0 + hour, true},
        {"other labels", with([](auto& m) { m.labels = {{"site", "a"}, {"floor", "2"}}; }), T0, T0 + hour, false},
        {"rule", with([](auto& m) { m.rule = 1; }), T0, T0 + hour, true},
        {"other rule", with([](auto& m) { m.rule = 2; }), T0, T0 + hour, false},
        {"kind", with([](auto& m) { m.kind = st::alert_kind::threshold; }), T0, T0 + hour, true},
        {"other kind", with([](auto& m) { m.kind = st::alert_kind::no_heartbeat; }), T0, T0 + hour, false},
        {"severity", with([](auto& m) { m.sev = st::severity::major; }), T0, T0 + hour, true},
        {"other severity", with([](auto& m) { m.sev = st::severity::critical; }), T0, T0 + hour, false},
        {"all of them", {"d1", {{"site", "a"}}, 1, st::alert_kind::threshold, st::severity::major}, T0, T0 + hour,
         true},
        {"all but one", {"d1", {{"site", "a"}}, 1, st::alert_kind::threshold, st::severity::info}, T0, T0 + hour,
         false},
        {"ended", {}, T0 - hour, T0 + 1'000, false}, // the alert opens at T0 + 1 s
        {"ends just after", {}, T0 - hour, T0 + 1'001, true},
        {"not started", {}, T0 + 1'001, T0 + hour, false},
        {"starts then", {}, T0 + 1'000, T0 + hour, true},
    };
    for (const auto& r : rows) {
        CAPTURE(r.what);
        engine e;
        e.devices("t1", {{"d1", {{"site", "a"}, {"floor", "1"}}, T0}});
        e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
        st::silence_record s;
        s.id = 1;
        s.tenant = "t1";
        s.matchers = r.m;
        s.starts_at_ms = r.starts;
        s.ends_at_ms = r.ends;
        e.ev.set_silences("t1", std::vector<st::silence_record>{s});
        e.reading("t1", "d1", "temp", 50, T0 + 1'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::opened);
        CHECK(evs[0].alert.silenced == r.silenced);
        REQUIRE(e.ev.live("t1", 1));
        CHECK(e.ev.active_alerts().size() == 1);
        CHECK(e.ev.stats().opened == 1);
    }
}

TEST_CASE("silences: another tenant's silence does not apply") {
    engine e;
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
    st::silence_record s;
    s.tenant = "t2";
    s.starts_at_ms = T0;
    s.ends_at_ms = T0 + 3'600'000;
    e.ev.set_silences("t2", std::vector<st::silence_record>{s});
    e.reading("t1", "d1", "temp", 50, T0 + 1'000);
    const auto evs = e.take();
    REQUIRE(evs.size() == 1);
    CHECK_FALSE(evs[0].alert.silenced);
}

// ---- restore and liveness ----------------------------------------------------

TEST_CASE("restore(): non-closed alerts are held; a THRESHOLD one repeats and closes; new ids continue above") {
    st::alert_record a;
    a.id = 41;
    a.tenant = "t1";
    a.device = "d1";
    a.rule = 1;
    a.rule_name = "rule-1";
    a.kind = st::alert_kind::threshold;
    a.sev = st::severity::major;
    a.status = st::alert_status::open;
    a.metric = "temp";
    a.value = 35;
    a.threshold = 30;
    a.last_value = 36;
    a.count = 3;
    a.opened_at_ms = T0 - 100'000;
    a.last_seen_at_ms = T0 - 50'000;
    auto b = a; // acknowledged, another device
    b.id = 17;
    b.device = "d2";
    b.status = st::alert_status::acknowledged;
    b.acknowledged_by = "alice";
    b.acknowledged_at_ms = T0 - 60'000;
    const std::vector<st::alert_record> open{a, b};

    SUBCASE("held, repeated, closed, then a new id") {
        engine e(0, 1);
        e.ev.restore(open, {});
        e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
        CHECK(e.take().empty());
        REQUIRE(e.ev.live("t1", 41));
        CHECK(*e.ev.live("t1", 41) == a);
        CHECK(e.ev.live("t1", 17)->status == st::alert_status::acknowledged);
        const auto active = e.ev.active_alerts();
        REQUIRE(active.size() == 2);
        CHECK(active[0].id == 17);
        CHECK(active[1].id == 41);
        CHECK(error_of(e.ev.acknowledge("t1", 17, "bob", T0)) == make_error_code(alert_errc::already_acknowledged));

        e.reading("t1", "d1", "temp", 40, T0 + 1'000);
        CHECK(e.take().empty()); // no second alert
        const auto d = e.dirty();
        REQUIRE(d.size() == 1);
        CHECK(d[0].id == 41);
        CHECK(d[0].count == 4);
        CHECK(d[0].last_value == 40);
        CHECK(d[0].value == 35);

        e.reading("t1", "d1", "temp", 20, T0 + 2'000);
        auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::closed);
        CHECK(evs[0].alert.id == 41);

        e.reading("t1", "d1", "temp", 50, T0 + 3'000);
        evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::opened);
        CHECK(evs[0].alert.id == 42);
    }
    SUBCASE("a larger next_alert_id wins") {
        engine e(0, 100);
        e.ev.restore(open, {});
        e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30)});
        e.reading("t1", "d3", "temp", 50, T0 + 1'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].alert.id == 100);
    }
    SUBCASE("the rule is gone: the restored alerts close") {
        engine e;
        e.ev.restore(open, {});
        e.rules("t1", {}, T0);
        const auto evs = e.take();
        REQUIRE(evs.size() == 2);
        CHECK(evs[0].alert.id == 17);
        CHECK(evs[1].alert.id == 41);
        for (const auto& x : evs) CHECK(x.type == ev::closed);
    }
    SUBCASE("a restored escalation continues from its last escalation") {
        auto c = a;
        c.escalation_level = 2;
        c.escalated_at_ms = T0 - 10'000;
        engine e;
        e.ev.restore(std::vector<st::alert_record>{c}, {});
        auto r = th_rule(1, "temp", compare_op::gt, 30);
        r.escalate_after_s = 60;
        e.rules("t1", {r});
        e.ev.tick(T0 + 49'900);
        CHECK(e.take().empty());
        e.ev.tick(T0 + 50'000);
        const auto evs = e.take();
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].type == ev::escalated);
        CHECK(evs[0].alert.escalation_level == 3);
    }
}

TEST_CASE("take_liveness reports each device whose last message changed, once") {
    engine e;
    e.ev.on_message("t1", "d1", T0 + 1'000);
    e.ev.on_message("t1", "d2", T0 + 1'500);
    e.ev.on_message("t1", "d1", T0 + 2'000);
    e.ev.on_message("t2", "d1", T0 + 2'500);
    std::vector<st::liveness_record> out;
    e.ev.take_liveness(out);
    REQUIRE(out.size() == 3);
    CHECK(out[0] == st::liveness_record{"t1", "d1", T0 + 2'000});
    CHECK(out[1] == st::liveness_record{"t1", "d2", T0 + 1'500});
    CHECK(out[2] == st::liveness_record{"t2", "d1", T0 + 2'500});

    out.clear();
    e.ev.take_liveness(out);
    CHECK(out.empty());

    e.ev.on_message("t1", "d2", T0 + 3'000);
    e.ev.take_liveness(out);
    REQUIRE(out.size() == 1);
    CHECK(out[0] == st::liveness_record{"t1", "d2", T0 + 3'000});
    CHECK(e.ev.stats().messages == 5);
    CHECK(e.ev.stats().devices == 3);
}

TEST_CASE("a deleted device: its alerts close and no heartbeat rule declares it silent afterwards") {
    engine e;
    e.devices("t1", {{"d1", {}, T0 - day_ms}, {"d2", {}, T0 - day_ms}});
    e.rules("t1", {th_rule(1, "temp", compare_op::gt, 30), hb_rule(2, 10, 1)});
    e.reading("t1", "d1", "temp", 31, T0 + 1000);
    e.reading("t1", "d2", "temp", 20, T0 + 1000);
    auto opened = e.take();
    REQUIRE(opened.size() == 1);
    CHECK(is_open_event(opened[0], "d1"));

    // d1 is deleted (no longer listed): its threshold alert closes.
    e.devices("t1", {{"d2", {}, T0 - day_ms}}, T0 + 2000);
    auto closed = e.take();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].type == ev::closed);
    CHECK(closed[0].alert.device == "d1");
    CHECK_FALSE(closed[0].alert.closed_by.has_value());

    // Both fall silent: only d2, still registered, gets NO_HEARTBEAT.
    e.ev.tick(T0 + 60'000);
    auto silent = e.take();
    REQUIRE(silent.size() == 1);
    CHECK(is_open_event(silent[0], "d2"));
    CHECK(silent[0].alert.kind == st::alert_kind::no_heartbeat);
}

TEST_CASE("load_tenant after restore keeps an alert whose rule selects its device by label") {
    engine e;
    st::alert_record a;
    a.id = 7;
    a.tenant = "t1";
    a.device = "d1";
    a.rule = 1;
    a.kind = st::alert_kind::threshold;
    a.metric = "temp";
    a.value = 31;
    a.opened_at_ms = a.last_seen_at_ms = T0 - 5000;
    e.ev.restore(std::vector{a}, {});
    auto r = th_rule(1, "temp", compare_op::gt, 30);
    r.scope.labels = {{"room", "a"}};
    const device_list devices{{"d1", {{"room", "a"}}, T0 - day_ms}};
    e.ev.load_tenant("t1", devices, std::vector{r}, {}, T0);
    CHECK(e.take().empty()); // not closed: the device is in scope
    CHECK(e.ev.live("t1", 7));
    e.reading("t1", "d1", "temp", 20, T0 + 1000);
    auto closed = e.take();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].type == ev::closed);
    CHECK(closed[0].alert.id == 7);
}
