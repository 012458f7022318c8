// engine/rules_engine with a real state database: readings handed over as
// ingest does reach the engine thread, events reach the live and durable
// sinks, alerts and liveness are written, the alert_control calls work, and
// a new engine on the same database continues where the last one stopped
// (no duplicate alert, heartbeat grace after a restart). The engine's clock
// is the test's; the engine thread itself wakes on its own.

#include "engine/rules_engine.hpp"

#include "storage/state/alert_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rule_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "test/temp_dir.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace pulsegate::engine;
namespace st = pulsegate::storage::state;
using pulsegate::storage::metric_value;

// A failed CHECK(result) prints the error's message.
template <>
struct doctest::StringMaker<boost::system::result<st::alert_record>> {
    static doctest::String convert(const boost::system::result<st::alert_record>& r) {
        return r ? "(an alert)" : ("error: " + r.error().message()).c_str();
    }
};

namespace {

constexpr std::int64_t T0 = 1'700'000'000'000;

struct recording_sink final : alert_event_sink {
    std::mutex mu;
    std::vector<alert_event> events;
    void on_alert_event(const alert_event& e) override {
        std::lock_guard lock(mu);
        events.push_back(e);
    }
    std::vector<alert_event> snapshot() {
        std::lock_guard lock(mu);
        return events;
    }
};

// Polls `f` for up to 10 s (the engine thread and the writer run on their own).
bool eventually(const std::function<bool()>& f) {
    for (int i = 0; i < 1000; ++i) {
        if (f()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return f();
}

struct fixture {
    pulsegate::test::temp_dir dir{"pg-rules-engine"};
    std::unique_ptr<st::database> db;
    std::atomic<std::int64_t> now{T0};
    std::int64_t hot_rule = 0, hb_rule = 0;

    fixture() {
        db = std::move(*st::database::open({.file = dir.path / "state.db"}));
        REQUIRE(st::tenant_repository(*db).create({.id = "acme", .name = "ACME"}));
        REQUIRE(st::device_repository(*db).create({"acme", "d1", "", {}, "digest", T0 - 1000}));
        st::rule_record r;
        r.tenant = "acme";
        r.name = "hot";
        r.metric = "temp";
        r.op = st::compare_op::gt;
        r.value = 30;
        r.clear_value = 28;
        r.created_at_ms = r.updated_at_ms = T0 - 1000;
        hot_rule = *st::rule_repository(*db).create(r);
    }
    void add_heartbeat_rule() {
        st::rule_record r;
        r.tenant = "acme";
        r.name = "alive";
        r.kind = st::rule_kind::heartbeat;
        r.interval_s = 10;
        r.missed = 3;
        r.created_at_ms = r.updated_at_ms = T0 - 1000;
        hb_rule = *st::rule_repository(*db).create(r);
    }
    std::unique_ptr<rules_engine> engine(std::int64_t grace_s = 0) {
        return std::make_unique<rules_engine>(
            *db, rules_engine_options{.heartbeat_grace_s = grace_s, .tick_ms = 20, .flush_interval_ms = 50},
            [this] { return now.load(); });
    }
    std::optional<st::alert_record> stored(std::int64_t id) { return *st::alert_repository(*db).get("acme", id); }
};

void send(rules_engine& e, double temp) {
    const metric_value v[] = {{"temp", temp}, {"other", 1}};
    e.on_message("acme", "d1", v);
}

std::size_t count(recording_sink& s, alert_event_type t) {
    std::size_t n = 0;
    for (const auto& e : s.snapshot()) n += e.type == t;
    return n;
}

} // namespace

TEST_CASE("a breaching reading opens one alert: live sink at once, database and durable sink after the write") {
    fixture f;
    recording_sink live, durable;
    auto e = f.engine();
    e->add_live_sink(live);
    e->add_durable_sink(durable);
    e->start();
    send(*e, 25);
    send(*e, 31);
    send(*e, 32);
    REQUIRE(eventually([&] { return count(durable, alert_event_type::opened) == 1; }));
    const auto opened = live.snapshot().at(0);
    CHECK(opened.type == alert_event_type::opened);
    CHECK(opened.alert.value == 31);
    CHECK(opened.alert.rule == f.hot_rule);
    REQUIRE(eventually([&] { auto a = f.stored(opened.alert.id); return a && a->count == 2; }));
    CHECK(f.stored(opened.alert.id)->last_value == 32);
    send(*e, 29); // hysteresis: still open
    send(*e, 28);
    REQUIRE(eventually([&] { return count(durable, alert_event_type::closed) == 1; }));
    CHECK(count(live, alert_event_type::opened) == 1);
    const auto closed = f.stored(opened.alert.id);
    REQUIRE(closed);
    CHECK(closed->status == st::alert_status::closed);
    CHECK(closed->last_value == 28);
    CHECK_FALSE(closed->closed_by.has_value());
    e->stop();
    const auto s = e->stats();
    CHECK(s.queued == 5);
    CHECK(s.dropped == 0);
    CHECK(s.events == 2);
}

TEST_CASE("acknowledge and close through alert_control; errors for closed, unknown and other tenants' alerts") {
    fixture f;
    recording_sink live;
    auto e = f.engine();
    e->add_live_sink(live);
    e->start();
    send(*e, 35);
    REQUIRE(eventually([&] { return count(live, alert_event_type::opened) == 1; }));
    const auto id = live.snapshot().at(0).alert.id;

    auto acked = e->acknowledge("acme", id, "alice");
    REQUIRE(acked);
    CHECK(acked->status == st::alert_status::acknowledged);
    CHECK(acked->acknowledged_by == "alice");
    CHECK(e->acknowledge("acme", id, "alice").error() == make_error_code(alert_errc::already_acknowledged));
    CHECK(e->acknowledge("other", id, "mallory").error() == make_error_code(alert_errc::not_found));
    CHECK(e->live("acme", id));

    auto closed = e->close("acme", id, "alice");
    REQUIRE(closed);
    CHECK(closed->status == st::alert_status::closed);
    CHECK(closed->closed_by == "alice");
    REQUIRE(eventually([&] { auto a = f.stored(id); return a && a->status == st::alert_status::closed; }));
    CHECK(e->close("acme", id, "alice").error() == make_error_code(alert_errc::already_closed));
    CHECK(e->acknowledge("acme", id, "alice").error() == make_error_code(alert_errc::already_closed));
    CHECK(e->close("acme", 999, "alice").error() == make_error_code(alert_errc::not_found));
    CHECK(count(live, alert_event_type::acknowledged) == 1);
    CHECK(count(live, alert_event_type::closed) == 1);
    e->stop();
    CHECK(e->acknowledge("acme", id, "alice").error() == make_error_code(alert_errc::unavailable));
}

TEST_CASE("a new engine on the same database keeps the open alert: repeats count on it, clearing closes it") {
    fixture f;
    std::int64_t id = 0;
    {
        recording_sink live;
        auto e = f.engine();
        e->add_live_sink(live);
        e->start();
        send(*e, 40);
        REQUIRE(eventually([&] { return count(live, alert_event_type::opened) == 1; }));
        id = live.snapshot().at(0).alert.id;
        e->stop(); // writes what it holds
    }
    recording_sink live;
    auto e = f.engine();
    e->add_live_sink(live);
    e->start();
    CHECK(e->live("acme", id));
    send(*e, 41);
    send(*e, 42);
    e->stop();
    CHECK(live.snapshot().empty()); // no second alert.opened
    CHECK(f.stored(id)->count == 3);
    CHECK(f.stored(id)->last_value == 42);

    auto again = f.engine();
    again->add_live_sink(live);
    again->start();
    send(*again, 20);
    REQUIRE(eventually([&] { return count(live, alert_event_type::closed) == 1; }));
    CHECK(live.snapshot().at(0).alert.id == id);
    again->stop();
}

TEST_CASE("rules_changed applies a new rule to the next reading without a restart") {
    fixture f;
    recording_sink live;
    auto e = f.engine();
    e->add_live_sink(live);
    e->start();
    const metric_value humid[] = {{"hum", 97}};
    e->on_message("acme", "d1", humid);
    st::rule_record r;
    r.tenant = "acme";
    r.name = "humid";
    r.metric = "hum";
    r.op = st::compare_op::ge;
    r.value = 95;
    const auto id = *st::rule_repository(*f.db).create(r);
    e->rules_changed("acme");
    e->on_message("acme", "d1", humid);
    REQUIRE(eventually([&] { return count(live, alert_event_type::opened) == 1; }));
    CHECK(live.snapshot().at(0).alert.rule == id);
    CHECK(live.snapshot().at(0).alert.count == 1); // the reading before the rule was not evaluated
    e->stop();
}

TEST_CASE("heartbeat liveness survives a restart; the grace period holds every device off, then silence opens") {
    fixture f;
    f.add_heartbeat_rule();
    {
        auto e = f.engine(0);
        e->start();
        e->on_message("acme", "d1", {}); // a heartbeat at T0
        e->stop();
    }
    // The gateway was down for an hour: d1 has been silent far longer than
    // 30 s, but after the restart it gets the 60 s grace to report.
    f.now = T0 + 3'600'000;
    recording_sink live;
    auto e = f.engine(60);
    e->add_live_sink(live);
    e->start();
    f.now = T0 + 3'600'000 + 30'000;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(count(live, alert_event_type::opened) == 0);
    f.now = T0 + 3'600'000 + 61'000;
    REQUIRE(eventually([&] { return count(live, alert_event_type::opened) == 1; }));
    const auto silent = live.snapshot().at(0).alert;
    CHECK(silent.kind == st::alert_kind::no_heartbeat);
    CHECK(silent.rule == f.hb_rule);
    e->on_message("acme", "d1", {});
    REQUIRE(eventually([&] { return count(live, alert_event_type::closed) == 1; }));
    e->stop();
}

TEST_CASE("a message with more watched metrics than one queue record holds is evaluated in full") {
    fixture f;
    std::vector<std::string> names;
    for (int i = 0; i < 20; ++i) {
        st::rule_record r;
        r.tenant = "acme";
        r.name = "m" + std::to_string(i);
        r.metric = r.name;
        r.op = st::compare_op::gt;
        r.value = 0;
        REQUIRE(st::rule_repository(*f.db).create(r));
        names.push_back(r.name);
    }
    recording_sink live;
    auto e = f.engine();
    e->add_live_sink(live);
    e->start();
    std::vector<metric_value> values;
    for (const auto& n : names) values.push_back({n, 1});
    e->on_message("acme", "d1", values);
    REQUIRE(eventually([&] { return count(live, alert_event_type::opened) == 20; }));
    std::set<std::string> metrics;
    for (const auto& ev : live.snapshot()) metrics.insert(ev.alert.metric);
    CHECK(metrics.size() == 20);
    e->stop();
    CHECK(e->stats().queued == 3); // 8 + 8 + 4 values
}

TEST_CASE("staged messages are handed over at flush, in order; a full staging area flushes by itself") {
    fixture f;
    recording_sink live;
    auto e = f.engine();
    e->add_live_sink(live);
    e->set_producers(2);
    e->start();
    const metric_value hot[] = {{"temp", 31}}, cool[] = {{"temp", 20}};
    e->stage(0, "acme", "d1", hot);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(live.snapshot().empty()); // staged, not handed over yet
    e->stage(0, "acme", "d1", cool);
    e->flush(0);
    REQUIRE(eventually([&] { return count(live, alert_event_type::closed) == 1; }));
    REQUIRE(live.snapshot().size() == 2);
    CHECK(live.snapshot()[0].type == alert_event_type::opened);

    // 100 messages alternating cool, hot on d2: the first 64 go when the
    // staging area is full (32 opened, 31 closed), the rest at flush.
    for (int i = 0; i < 100; ++i) e->stage(1, "acme", "d2", i % 2 == 1 ? hot : cool);
    REQUIRE(eventually([&] { return count(live, alert_event_type::closed) == 1 + 31; }));
    CHECK(count(live, alert_event_type::opened) == 1 + 32);
    e->flush(1);
    REQUIRE(eventually([&] { return count(live, alert_event_type::opened) == 1 + 50; }));
    REQUIRE(eventually([&] { return count(live, alert_event_type::closed) == 1 + 49; }));
    for (const auto& ev : live.snapshot()) CHECK(ev.alert.value == 31);
    e->stop();
    CHECK(e->stats().queued == 2 + 100);
    CHECK(e->stats().dropped == 0);
}

// A sink that holds whoever calls it first (and so the evaluator) until
// released, and notes which thread delivered each event.
struct holding_sink final : alert_event_sink {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, released = false;
    std::vector<std::pair<std::string, std::thread::id>> seen; // device, thread
    void on_alert_event(const alert_event& e) override {
        std::unique_lock lock(mu);
        seen.emplace_back(e.alert.device, std::this_thread::get_id());
        if (entered) return;
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return released; });
    }
};

TEST_CASE("a batch that finds the evaluator busy is evaluated by the thread holding it before it lets go") {
    fixture f;
    holding_sink sink;
    // Ticks and flushes an hour apart: the engine thread sleeps through the
    // test, so only the holder can evaluate what waits in the ring.
    auto e = std::make_unique<rules_engine>(
        *f.db, rules_engine_options{.tick_ms = 3'600'000, .flush_interval_ms = 3'600'000},
        [&f] { return f.now.load(); });
    e->add_live_sink(sink);
    e->set_producers(2);
    e->start();
    const metric_value hot[] = {{"temp", 31}};
    std::thread holder([&] {
        e->stage(0, "acme", "d1", hot);
        e->flush(0); // evaluates inline; the sink keeps it there
    });
    {
        std::unique_lock lock(sink.mu);
        REQUIRE(sink.cv.wait_for(lock, std::chrono::seconds(10), [&] { return sink.entered; }));
    }
    e->stage(1, "acme", "d2", hot);
    e->flush(1); // the evaluator is held: into the ring, and back at once
    {
        std::lock_guard lock(sink.mu);
        CHECK(sink.seen.size() == 1);
        sink.released = true;
    }
    sink.cv.notify_all();
    holder.join();
    // flush(0) has returned, so the holder has let go: d2's batch was
    // evaluated by then, on the holder's thread.
    std::lock_guard lock(sink.mu);
    REQUIRE(sink.seen.size() == 2);
    CHECK(sink.seen[0].first == "d1");
    CHECK(sink.seen[1].first == "d2");
    CHECK(sink.seen[1].second == sink.seen[0].second);
    CHECK(sink.seen[1].second != std::this_thread::get_id());
}
