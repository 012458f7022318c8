// 17: rules and alerts end to end (DESIGN.md, Rules and alerts; MQTT
// contract: alerts/{device}/{rule} and alert-state/{device}/{rule}; REST:
// rules, alerts, silences, dry run).
//
// The daemon is started as an operator would run it; tenants, users,
// devices, tokens and rules are made over REST; devices publish over MQTT
// with their secrets, and integrators (`{tenant}/api` + API token) watch
// `alerts/#` in their own tree. Every wait is for an event or a REST state
// with a deadline; the only time bounds asserted are lower bounds the design
// promises (for_s, heartbeat timeout, grace after restart) read from the
// alert's own times, plus upper bounds far beyond any real delay.
//
// pulsegate only: mosquitto has no rules.
#include <doctest/doctest.h>

#include "harness.hpp"
#include "tenant_world.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using namespace pulsegate::itest;

namespace {



std::int64_t now_ms() {
    return std::chrono::duration_cast<ms>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// "2026-11-23T12:00:00.123Z" (the daemon's RFC 3339: UTC, optional
// fraction) to epoch ms; nullopt for anything else.
std::optional<std::int64_t> epoch_ms(std::string const& text) {
    std::tm tm{};
    int consumed = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return std::nullopt;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    std::int64_t ms_part = 0;
    std::size_t at = static_cast<std::size_t>(consumed);
    if (at < text.size() && text[at] == '.') {
        int digits = 0;
        for (++at; at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])); ++at, ++digits)
            if (digits < 3) ms_part = ms_part * 10 + (text[at] - '0');
        for (; digits < 3; ++digits) ms_part *= 10;
    }
    if (at + 1 != text.size() || text[at] != 'Z') return std::nullopt;
    return static_cast<std::int64_t>(::timegm(&tm)) * 1000 + ms_part;
}

// A time member of a JSON answer as epoch ms; REQUIREs an RFC 3339 string.
std::int64_t time_of(json_value const& v, std::string_view what) {
    auto t = epoch_ms(v.str());
    REQUIRE_MESSAGE(t, what << " is not an RFC 3339 time: " << v.dump());
    return *t;
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

// {"temp": v}, optionally wrapped with a timestamp.
std::string temp(double v) { return "{\"temp\":" + num(v) + "}"; }
std::string temp_at(std::int64_t ts, double v) {
    return "{\"ts\":" + std::to_string(ts) + ",\"metrics\":{\"temp\":" + num(v) + "}}";
}

// The tenant's integrator, subscribed to `filter` (if any) at QoS 1.
std::unique_ptr<mosq_client> integrator(broker_process const& b, tenant_setup const& t, std::string const& name,
                                        std::string const& filter = {}) {
    auto c = mqtt_as(b, t.id + "-" + name, t.id + "/api", t.token);
    if (!filter.empty()) REQUIRE(c->subscribe(filter, 1) == 1);
    return c;
}

// One alert event as an integrator receives it.
struct alert_msg {
    std::string topic;
    json_value body;
    std::int64_t received_ms = 0;  // wall clock on arrival in the test

    std::string const& type() const { return body["event"].str(); }
    json_value const& alert() const { return body["alert"]; }
    std::string const& device() const { return alert()["device"].str(); }
    std::int64_t id() const { return static_cast<std::int64_t>(alert()["id"].num()); }
};

// Every alert event a client receives on `prefix` + ..., in arrival order;
// messages on other topics are kept apart (sentinels).
class event_log {
public:
    explicit event_log(message_queue& q, std::string prefix = "alerts/") : q_(q), prefix_(std::move(prefix)) {}

    // The first event not taken yet of `type` for `device`, waiting up to
    // `timeout`; REQUIREs one.
    alert_msg take(std::string_view type, std::string_view device, ms timeout = event_timeout) {
        const auto deadline = steady::now() + timeout;
        for (;;) {
            for (std::size_t i = 0; i < events_.size(); ++i) {
                if (taken_[i] || events_[i].type() != type || events_[i].device() != device) continue;
                taken_[i] = true;
                return events_[i];
            }
            const auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
            REQUIRE_MESSAGE(left.count() > 0, type << " for " << device << " never arrived; got " << describe());
            auto m = q_.pop(left);
            REQUIRE_MESSAGE(m, type << " for " << device << " never arrived; got " << describe());
            add(std::move(*m));
        }
    }

    // Takes in what arrives within `window`: only after an event or a
    // sentinel proved that the path is flushed.
    void settle(ms window = quiet_window) {
        while (auto m = q_.pop(window)) add(std::move(*m));
    }

    // Reads until a message on `topic` (not an alert event) arrives; REQUIREs it.
    void until_other(std::string_view topic) {
        const auto deadline = steady::now() + event_timeout;
        for (;;) {
            for (auto const& o : others_)
                if (o.topic == topic) return;
            const auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
            REQUIRE_MESSAGE(left.count() > 0, "the sentinel on " << topic << " never arrived");
            auto m = q_.pop(left);
            REQUIRE_MESSAGE(m, "the sentinel on " << topic << " never arrived");
            add(std::move(*m));
        }
    }

    // Events so far of `type` ("" any) for `device` ("" any).
    std::vector<alert_msg> of(std::string_view type, std::string_view device = {}) const {
        std::vector<alert_msg> out;
        for (auto const& e : events_)
            if ((type.empty() || e.type() == type) && (device.empty() || e.device() == device)) out.push_back(e);
        return out;
    }
    std::vector<alert_msg> const& all() const { return events_; }
    std::vector<message> const& others() const { return others_; }

    std::string describe() const {
        std::string out;
        for (auto const& e : events_)
            out += "\n  " + e.topic + " " + e.type() + " id=" + std::to_string(e.id()) + " " + e.device();
        for (auto const& o : others_) out += "\n  (other) " + o.topic + " " + o.payload;
        return out.empty() ? "(nothing)" : out;
    }

private:
    void add(message m) {
        if (!m.topic.starts_with(prefix_)) {
            others_.push_back(std::move(m));
            return;
        }
        auto v = parse_json(m.payload);
        CHECK_MESSAGE(v, "alert event that is not JSON on " << m.topic << ": " << m.payload);
        if (!v) return;
        CHECK_MESSAGE(m.qos == 1, "alert event with QoS " << m.qos << " on " << m.topic);
        events_.push_back({m.topic, std::move(*v), now_ms()});
        taken_.push_back(false);
    }

    message_queue& q_;
    std::string prefix_;
    std::vector<alert_msg> events_;
    std::vector<bool> taken_;
    std::vector<message> others_;
};

// The retained alert-state messages a fresh integrator connection gets on
// subscribing: it subscribes alert-state/#, then `sentinel` (a topic with a
// retained message the test published before); what came before the
// sentinel and within quiet_window after it.
std::vector<message> retained_alert_state(broker_process const& b, tenant_setup const& t,
                                          std::string const& client_id, std::string const& sentinel) {
    auto c = integrator(b, t, client_id, "alert-state/#");
    REQUIRE(c->subscribe(sentinel, 1) == 1);
    auto got = c->messages().collect_until_sentinel(sentinel);
    REQUIRE_MESSAGE(got, "the retained sentinel on " << sentinel << " never arrived");
    std::vector<message> out;
    for (auto& m : *got)
        if (m.topic.starts_with("alert-state/")) out.push_back(std::move(m));
    c->disconnect();
    return out;
}

// Polls fresh subscribers until the retained alert-state on `topic` is
// what `want` says (a status, or "" for none); returns the last one seen
// (nullopt: none). CHECK-fails after 15 s. The state is written by the
// engine right after the event, so a subscriber may be a moment early.
std::optional<message> wait_alert_state(broker_process const& b, tenant_setup const& t, std::string const& topic,
                                        std::string const& sentinel, std::string_view want) {
    const auto deadline = steady::now() + long_wait;
    for (int round = 0;; ++round) {
        std::optional<message> found;
        for (auto& m : retained_alert_state(b, t, "late-" + std::to_string(round), sentinel)) {
            // A message without the retain flag is a live update published
            // while this client subscribed (MQTT sends those with retain 0):
            // the retained state is what the next round sees.
            if (m.topic != topic || !m.retain) continue;
            if (m.payload.empty()) continue;  // an empty retained message is no state
            found = std::move(m);
        }
        const auto status = found ? parse_json(found->payload).value_or(json_value{})["status"].str() : std::string{};
        if (status == want) return found;
        if (steady::now() >= deadline) {
            FAIL_CHECK("retained " << topic << " is " << (found ? found->payload : "(none)") << ", want status \""
                                   << want << "\"");
            return found;
        }
        std::this_thread::sleep_for(100ms);
    }
}

// Fields every event's alert has, whatever happened.
void check_alert_shape(json_value const& a, std::string_view tenant, std::string_view device, std::int64_t rule) {
    CHECK(a["tenant"].str() == tenant);
    CHECK(a["device"].str() == device);
    CHECK(id_of(a["rule"]) == rule);
    CHECK(a["id"].is_number());
    CHECK(epoch_ms(a["opened_at"].str()));
}

} // namespace

TEST_CASE("threshold: one opened and one closed event per episode, with hysteresis, retained state and REST") {
    if (is_mosquitto()) return;
    world w{rules_options()};
    auto acme = w.make_tenant("acme", {{"s1"}});
    auto api = integrator(w.b, acme, "api", "alerts/#");
    event_log log{api->messages()};
    // The retained sentinel for late subscribers (see retained_alert_state).
    api->publish("d/s1/cmd/sentinel", "here", 1, true);
    auto dev = device_client(w.b, acme, "s1");
    const auto rule = create_rule(acme, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,
        "clear_value":28,"severity":"major","scope":{"device":"s1"}})");
    const auto topic = "alerts/s1/" + std::to_string(rule);
    const auto state_topic = "alert-state/s1/" + std::to_string(rule);

    // Episode 1: 25 (normal), 31 opens, 32 and 29 repeat (29 is above the
    // clear value 28), 27 closes.
    dev->publish("d/s1/telemetry", temp(25), 1);
    dev->publish("d/s1/telemetry", temp(31), 1);
    const auto opened1 = log.take("alert.opened", "s1");
    CHECK(opened1.topic == topic);
    CHECK(opened1.body["tenant"].str() == "acme");
    CHECK(epoch_ms(opened1.body["at"].str()));
    const auto& a1 = opened1.alert();
    check_alert_shape(a1, "acme", "s1", rule);
    CHECK(a1["kind"].str() == "THRESHOLD");
    CHECK(a1["severity"].str() == "major");
    CHECK(a1["status"].str() == "open");
    CHECK(a1["metric"].str() == "temp");
    CHECK(a1["value"].num() == 31);
    CHECK(a1["threshold"].num() == 30);
    CHECK(a1["last_value"].num() == 31);
    CHECK(a1["count"].num() == 1);
    CHECK(a1["close_reason"].is_null());
    CHECK(a1["closed_at"].is_null());
    CHECK(a1["silenced"].is_bool());
    CHECK_FALSE(a1["silenced"].boolean());
    const auto id1 = opened1.id();

    // While it is open: retained state for a late subscriber, and REST.
    auto state = wait_alert_state(w.b, acme, state_topic, "d/s1/cmd/sentinel", "open");
    if (state) CHECK(id_of(parse_json(state->payload).value_or(json_value{})["id"]) == id1);
    auto live = ok(acme.admin.get("/api/v1/alerts/" + std::to_string(id1)), "GET the open alert");
    CHECK(live["status"].str() == "open");
    CHECK(live["kind"].str() == "THRESHOLD");
    poll_get(acme.api, "/api/v1/alerts?status=open", [&](json_value const& v) { return ids_of(v) == std::vector{id1}; },
             "the open alert in the list");

    dev->publish("d/s1/telemetry", temp(32), 1);
    dev->publish("d/s1/telemetry", temp(29), 1);
    dev->publish("d/s1/telemetry", temp(27), 1);
    const auto closed1 = log.take("alert.closed", "s1");
    CHECK(closed1.topic == topic);
    CHECK(closed1.id() == id1);
    const auto& c1 = closed1.alert();
    check_alert_shape(c1, "acme", "s1", rule);
    CHECK(c1["kind"].str() == "THRESHOLD");
    CHECK(c1["status"].str() == "closed");
    CHECK(c1["value"].num() == 31);       // the trigger value
    CHECK(c1["last_value"].num() == 27);  // the clearing reading
    CHECK(c1["count"].num() == 3);        // 31, 32, 29
    CHECK(c1["close_reason"].str() == "auto");
    CHECK(c1["closed_by"].is_null());
    CHECK(time_of(c1["closed_at"], "closed_at") >= time_of(c1["opened_at"], "opened_at"));

    // Closed: the retained state is gone for a late subscriber.
    CHECK_FALSE(wait_alert_state(w.b, acme, state_topic, "d/s1/cmd/sentinel", ""));

    // Episode 2: a new alert with a new id; 20 closes it.
    dev->publish("d/s1/telemetry", temp(31), 1);
    const auto opened2 = log.take("alert.opened", "s1");
    const auto id2 = opened2.id();
    CHECK(id2 != id1);
    CHECK(opened2.alert()["count"].num() == 1);
    CHECK(opened2.alert()["value"].num() == 31);
    dev->publish("d/s1/telemetry", temp(20), 1);
    const auto closed2 = log.take("alert.closed", "s1");
    CHECK(closed2.id() == id2);
    CHECK(closed2.alert()["last_value"].num() == 20);
    CHECK(closed2.alert()["count"].num() == 1);
    CHECK(closed2.alert()["close_reason"].str() == "auto");

    // Exactly those four events, in that order.
    log.settle();
    std::vector<std::string> seq;
    for (auto const& e : log.all()) seq.push_back(e.type() + "#" + std::to_string(e.id()));
    CHECK(seq == std::vector<std::string>{"alert.opened#" + std::to_string(id1), "alert.closed#" + std::to_string(id1),
                                          "alert.opened#" + std::to_string(id2),
                                          "alert.closed#" + std::to_string(id2)});

    // REST: both, newest first, closed, as the events said.
    auto list = poll_get(acme.api, "/api/v1/alerts?device=s1",
                         [&](json_value const& v) {
                             return ids_of(v) == std::vector{id2, id1} && v["items"][0]["status"].str() == "closed" &&
                                    v["items"][1]["status"].str() == "closed";
                         },
                         "both episodes closed in the list");
    auto const& l1 = list["items"][1];
    CHECK(l1["close_reason"].str() == "auto");
    CHECK(l1["count"].num() == 3);
    CHECK(l1["value"].num() == 31);
    CHECK(l1["last_value"].num() == 27);
    CHECK(list["items"][0]["last_value"].num() == 20);
    CHECK(ids_of(ok(acme.api.get("/api/v1/alerts?status=closed"), "closed alerts")) == std::vector{id2, id1});
    CHECK(ok(acme.api.get("/api/v1/alerts?status=open"), "open alerts")["items"].size() == 0);
    auto got1 = ok(acme.api.get("/api/v1/alerts/" + std::to_string(id1)), "GET the closed alert");
    CHECK(got1["status"].str() == "closed");
    CHECK(got1["count"].num() == 3);
}

TEST_CASE("threshold with for_s opens once the breach has held that long, with no further reading") {
    if (is_mosquitto()) return;
    world w{rules_options()};
    auto acme = w.make_tenant("acme", {{"s1"}});
    auto api = integrator(w.b, acme, "api", "alerts/#");
    event_log log{api->messages()};
    auto dev = device_client(w.b, acme, "s1");
    create_rule(acme, R"({"name":"slow","kind":"threshold","metric":"temp","op":">","value":30,"for_s":2,
        "severity":"warning","scope":{"device":"s1"}})");

    const auto first = now_ms();
    dev->publish("d/s1/telemetry", temp(35), 1);
    const auto opened = log.take("alert.opened", "s1", long_wait);
    const auto opened_at = time_of(opened.alert()["opened_at"], "opened_at");
    CHECK_MESSAGE(opened_at - first >= 2000, "opened " << opened_at - first << " ms after the first reading");
    CHECK_MESSAGE(opened.received_ms - first >= 2000, "event " << opened.received_ms - first << " ms after");
    CHECK_MESSAGE(opened_at - first < 10000, "opened " << opened_at - first << " ms after the first reading");
    CHECK(opened.alert()["value"].num() == 35);
    CHECK(opened.alert()["count"].num() == 1);
    CHECK(opened.alert()["status"].str() == "open");
    log.settle();
    CHECK_MESSAGE(log.all().size() == 1, log.describe());
}

TEST_CASE("heartbeat: a silent device opens NO_HEARTBEAT, its next heartbeat or reading closes it") {
    if (is_mosquitto()) return;
    world w{rules_options("heartbeat_grace_s = 0")};
    auto acme = w.make_tenant("acme", {{"hb"}});
    auto api = integrator(w.b, acme, "api", "alerts/#");
    event_log log{api->messages()};
    auto dev = device_client(w.b, acme, "hb");
    // The last message first, then the rule: a rule counts from its
    // creation, so the deadline is 2 s after that.
    const auto last = now_ms();
    dev->publish("d/hb/telemetry", temp(20), 1);
    auto rule_json = created(acme.admin.post("/api/v1/rules", R"({"name":"beat","kind":"heartbeat","interval_s":1,
        "missed":2,"severity":"minor","scope":{"device":"hb"}})"),
                             "create the heartbeat rule");
    const auto rule = id_of(rule_json["id"]);
    const auto rule_at = time_of(rule_json["updated_at"], "updated_at");
    const auto opened = log.take("alert.opened", "hb", long_wait);
    const auto& a = opened.alert();
    check_alert_shape(a, "acme", "hb", rule);
    CHECK(opened.topic == "alerts/hb/" + std::to_string(rule));
    CHECK(a["kind"].str() == "NO_HEARTBEAT");
    CHECK(a["severity"].str() == "minor");
    CHECK(a["status"].str() == "open");
    CHECK(a["metric"].is_null());
    CHECK(a["value"].is_null());
    const auto opened_at = time_of(a["opened_at"], "opened_at");
    CHECK_MESSAGE(opened_at - last >= 2000, "opened " << opened_at - last << " ms after the last message");
    CHECK_MESSAGE(opened_at - rule_at >= 2000, "opened " << opened_at - rule_at << " ms after the rule was made");
    CHECK_MESSAGE(opened_at - rule_at < 10000, "opened " << opened_at - rule_at << " ms after the rule was made");
    poll_get(acme.api, "/api/v1/alerts?kind=NO_HEARTBEAT&status=open",
             [&](json_value const& v) { return ids_of(v) == std::vector{opened.id()}; }, "the NO_HEARTBEAT alert");

    // A heartbeat (any payload) closes it.
    dev->publish("d/hb/heartbeat", "ping", 1);
    const auto closed = log.take("alert.closed", "hb");
    CHECK(closed.id() == opened.id());
    CHECK(closed.alert()["close_reason"].str() == "auto");
    CHECK(closed.alert()["kind"].str() == "NO_HEARTBEAT");

    // Silent again: a new alert; a reading closes that one.
    const auto opened2 = log.take("alert.opened", "hb", long_wait);
    CHECK(opened2.id() != opened.id());
    CHECK(time_of(opened2.alert()["opened_at"], "opened_at") - time_of(closed.alert()["closed_at"], "closed_at") >=
          2000);
    dev->publish("d/hb/telemetry", temp(21), 1);
    const auto closed2 = log.take("alert.closed", "hb");
    CHECK(closed2.id() == opened2.id());
    CHECK(closed2.alert()["close_reason"].str() == "auto");
    auto got = poll_get(acme.api, "/api/v1/alerts?kind=NO_HEARTBEAT",
                        [&](json_value const& v) {
                            return v["items"].size() == 2 && v["items"][0]["status"].str() == "closed" &&
                                   v["items"][1]["status"].str() == "closed";
                        },
                        "both NO_HEARTBEAT alerts closed");
    CHECK(ids_of(got) == std::vector{opened2.id(), opened.id()});
}

TEST_CASE("restart: open alerts carry over; no duplicates; silent devices get the grace period") {
    if (is_mosquitto()) return;
    constexpr std::int64_t grace_ms = 5000;
    world w{rules_options("heartbeat_grace_s = 5")};
    auto acme = w.make_tenant("acme", {{"th1"}, {"hb1", R"({"hb":"yes"})"}, {"hb2", R"({"hb":"yes"})"}});
    const auto thr = create_rule(acme, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,
        "clear_value":28,"severity":"major","scope":{"device":"th1"}})");

    std::int64_t th_id = 0, hb1_id = 0, beat = 0;
    {
        auto api = integrator(w.b, acme, "api", "alerts/#");
        event_log log{api->messages()};
        // The heartbeat rule counts from its creation: the devices are
        // connected by then, so hb2 reports in time.
        auto th1 = device_client(w.b, acme, "th1");
        auto hb1 = device_client(w.b, acme, "hb1");
        auto hb2 = device_client(w.b, acme, "hb2");
        beat = create_rule(acme, R"({"name":"beat","kind":"heartbeat","interval_s":1,"missed":3,
            "severity":"minor","scope":{"labels":{"hb":"yes"}}})");
        hb2->publish("d/hb2/heartbeat", "alive", 1);
        hb1->publish("d/hb1/heartbeat", "once", 1);
        th1->publish("d/th1/telemetry", temp(35), 1);
        auto th_open = log.take("alert.opened", "th1");
        th_id = th_open.id();
        CHECK(th_open.alert()["count"].num() == 1);
        // hb1 goes silent (alerted once the grace after start is over); hb2
        // keeps reporting, well within its 3 s, until hb1 is alerted.
        const auto deadline = steady::now() + long_wait;
        for (;;) {
            hb2->publish("d/hb2/heartbeat", "alive", 1);
            log.settle(200ms);
            if (!log.of("alert.opened", "hb1").empty()) break;
            REQUIRE_MESSAGE(steady::now() < deadline, "hb1 was never alerted; got " << log.describe());
        }
        hb1_id = log.take("alert.opened", "hb1").id();
        hb2->publish("d/hb2/heartbeat", "alive", 1);
        CHECK_MESSAGE(log.of("alert.opened", "hb2").empty(), log.describe());
        CHECK(log.of("alert.opened", "hb1").size() == 1);
    }

    const auto restart_at = now_ms();
    w.b.restart();
    w.follow_restart({&acme.admin, &acme.api});

    auto api = integrator(w.b, acme, "api2", "alerts/#");
    event_log log{api->messages()};

    // The threshold alert is still open, with the same id.
    auto th = ok(acme.api.get("/api/v1/alerts/" + std::to_string(th_id)), "GET the threshold alert after restart");
    CHECK(th["status"].str() == "open");
    CHECK(th["count"].num() == 1);
    CHECK(ids_of(ok(acme.api.get("/api/v1/alerts?status=open&device=th1"), "th1's open alerts")) ==
          std::vector{th_id});
    CHECK(ids_of(ok(acme.api.get("/api/v1/alerts?status=open&device=hb1"), "hb1's open alerts")) ==
          std::vector{hb1_id});

    // A further breach counts on it; a clearing reading closes it.
    auto th1 = device_client(w.b, acme, "th1");
    th1->publish("d/th1/telemetry", temp(36), 1);
    auto counted = poll_get(acme.api, "/api/v1/alerts/" + std::to_string(th_id),
                            [](json_value const& v) { return v["last_value"].num() == 36; }, "the repeat after restart");
    CHECK(counted["count"].num() == 2);
    CHECK(counted["status"].str() == "open");
    log.settle(ms{0});
    CHECK_MESSAGE(log.of("alert.closed").empty(), "alerts closed by the restart itself:" << log.describe());
    th1->publish("d/th1/telemetry", temp(20), 1);
    auto th_closed = log.take("alert.closed", "th1");
    CHECK(th_closed.id() == th_id);
    CHECK(th_closed.alert()["count"].num() == 2);
    CHECK(th_closed.alert()["value"].num() == 35);
    CHECK(th_closed.alert()["last_value"].num() == 20);
    CHECK(th_closed.alert()["close_reason"].str() == "auto");
    CHECK(id_of(th_closed.alert()["rule"]) == thr);

    // hb2, silent since just before the restart, is alerted only after the
    // grace period; hb1, alerted before, is not alerted again.
    auto hb2_open = log.take("alert.opened", "hb2", long_wait);
    const auto hb2_at = time_of(hb2_open.alert()["opened_at"], "opened_at");
    CHECK_MESSAGE(hb2_at - restart_at >= grace_ms, "hb2 alerted " << hb2_at - restart_at << " ms after the restart");
    CHECK(hb2_open.alert()["kind"].str() == "NO_HEARTBEAT");
    CHECK(id_of(hb2_open.alert()["rule"]) == beat);
    log.settle();
    CHECK_MESSAGE(log.of("alert.opened", "hb1").empty(), log.describe());
    CHECK_MESSAGE(log.of("alert.opened", "th1").empty(), log.describe());
    auto hb1_alerts = poll_get(acme.api, "/api/v1/alerts?device=hb1",
                               [](json_value const& v) { return v["items"].size() >= 1; }, "hb1's alert");
    CHECK(ids_of(hb1_alerts) == std::vector{hb1_id});
    CHECK(hb1_alerts["items"][0]["status"].str() == "open");

    // hb1's next message closes the alert from before the restart.
    auto hb1 = device_client(w.b, acme, "hb1");
    hb1->publish("d/hb1/heartbeat", "back", 1);
    auto hb1_closed = log.take("alert.closed", "hb1");
    CHECK(hb1_closed.id() == hb1_id);
    CHECK(hb1_closed.alert()["close_reason"].str() == "auto");
}

TEST_CASE("REST lifecycle: ack, close, conflicts, unknown and other tenants' ids, viewers") {
    if (is_mosquitto()) return;
    world w{rules_options()};
    auto acme = w.make_tenant("acme", {{"s1"}});
    auto globex = w.make_tenant("globex", {{"s1"}});
    w.add_user("acme-viewer", "tenant_viewer", "acme");
    auto viewer = w.login("acme-viewer");
    auto api = integrator(w.b, acme, "api", "alerts/#");
    api->publish("d/s1/cmd/sentinel", "here", 1, true);
    event_log log{api->messages()};
    auto dev = device_client(w.b, acme, "s1");
    const auto rule = create_rule(acme, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,
        "severity":"critical"})");

    dev->publish("d/s1/telemetry", temp(40), 1);
    const auto opened = log.take("alert.opened", "s1");
    const auto id = std::to_string(opened.id());
    const auto path = "/api/v1/alerts/" + id;

    // A viewer reads but neither acknowledges nor closes.
    CHECK(viewer.get(path).status == 200);
    for (auto res : {viewer.post(path + "/ack"), viewer.post(path + "/close")}) {
        CHECK_MESSAGE(res.status == 403, res.describe());
        CHECK(error_code(res) == "forbidden");
    }
    // Another tenant's id answers like an unknown one, and changes nothing.
    for (auto res : {globex.admin.get(path), globex.admin.post(path + "/ack"), globex.admin.post(path + "/close"),
                     globex.api.post(path + "/ack"), globex.api.post(path + "/close")}) {
        CHECK_MESSAGE(res.status == 404, res.describe());
        CHECK(error_code(res) == "not_found");
    }
    for (auto res : {acme.admin.get("/api/v1/alerts/999999"), acme.admin.post("/api/v1/alerts/999999/ack"),
                     acme.admin.post("/api/v1/alerts/999999/close")}) {
        CHECK_MESSAGE(res.status == 404, res.describe());
        CHECK(error_code(res) == "not_found");
    }
    CHECK(ok(acme.admin.get(path), "GET after refused changes")["status"].str() == "open");

    // Acknowledge: the answer, the event, the retained state.
    auto acked = ok(acme.admin.post(path + "/ack"), "ack");
    CHECK(acked["status"].str() == "acknowledged");
    CHECK(acked["acknowledged_by"].str() == "acme-admin");
    CHECK(epoch_ms(acked["acknowledged_at"].str()));
    const auto ack_event = log.take("alert.acknowledged", "s1");
    CHECK(ack_event.id() == opened.id());
    CHECK(ack_event.topic == "alerts/s1/" + std::to_string(rule));
    CHECK(ack_event.alert()["status"].str() == "acknowledged");
    CHECK(ack_event.alert()["acknowledged_by"].str() == "acme-admin");
    wait_alert_state(w.b, acme, "alert-state/s1/" + std::to_string(rule), "d/s1/cmd/sentinel", "acknowledged");
    auto again = acme.admin.post(path + "/ack");
    CHECK_MESSAGE(again.status == 409, again.describe());
    CHECK(error_code(again) == "conflict");

    // Close by hand.
    auto closed = ok(acme.admin.post(path + "/close"), "close");
    CHECK(closed["status"].str() == "closed");
    CHECK(closed["close_reason"].str() == "manual");
    CHECK(closed["closed_by"].str() == "acme-admin");
    const auto close_event = log.take("alert.closed", "s1");
    CHECK(close_event.id() == opened.id());
    CHECK(close_event.alert()["close_reason"].str() == "manual");
    CHECK(close_event.alert()["closed_by"].str() == "acme-admin");
    CHECK(close_event.alert()["acknowledged_by"].str() == "acme-admin");
    for (auto const& [what, res] : std::vector<std::pair<std::string, http_response>>{
             {"close again", acme.admin.post(path + "/close")},
             {"ack once closed", acme.admin.post(path + "/ack")},
             {"close again with the token", acme.api.post(path + "/close")}}) {
        CAPTURE(what);
        CHECK_MESSAGE(res.status == 409, res.describe());
        CHECK(error_code(res) == "conflict");
    }
    // Still 404 for the other tenant once closed (not 409: nothing leaks).
    CHECK(globex.admin.post(path + "/close").status == 404);
    CHECK(globex.admin.get(path).status == 404);
    auto stored = poll_get(acme.admin, path, [](json_value const& v) { return v["status"].str() == "closed"; },
                           "the closed alert");
    CHECK(stored["close_reason"].str() == "manual");
    CHECK(stored["acknowledged_by"].str() == "acme-admin");
    CHECK(ok(globex.admin.get("/api/v1/alerts"), "globex alerts")["items"].size() == 0);

    log.settle();
    std::vector<std::string> types;
    for (auto const& e : log.all()) types.push_back(e.type());
    CHECK(types == std::vector<std::string>{"alert.opened", "alert.acknowledged", "alert.closed"});
}

TEST_CASE("escalation: an alert left unacknowledged escalates") {
    if (is_mosquitto()) return;
    world w{rules_options()};
    auto acme = w.make_tenant("acme", {{"s1"}});
    auto api = integrator(w.b, acme, "api", "alerts/#");
    event_log log{api->messages()};
    auto dev = device_client(w.b, acme, "s1");
    create_rule(acme, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,
        "severity":"major","escalate_after_s":1})");

    dev->publish("d/s1/telemetry", temp(40), 1);
    const auto opened = log.take("alert.opened", "s1");
    CHECK(opened.alert()["escalation_level"].num() == 0);
    const auto escalated = log.take("alert.escalated", "s1", long_wait);
    CHECK(escalated.id() == opened.id());
    CHECK(escalated.alert()["escalation_level"].num() == 1);
    CHECK(escalated.alert()["status"].str() == "open");
    const auto opened_at = time_of(escalated.alert()["opened_at"], "opened_at");
    const auto escalated_at = time_of(escalated.alert()["escalated_at"], "escalated_at");
    CHECK_MESSAGE(escalated_at - opened_at >= 1000, "escalated " << escalated_at - opened_at << " ms after opening");
    poll_get(acme.api, "/api/v1/alerts/" + std::to_string(opened.id()),
             [](json_value const& v) { return v["escalation_level"].num() >= 1; }, "the escalation level");
}

TEST_CASE("silences: an alert opened during a silence is recorded as silenced") {
    if (is_mosquitto()) return;
    world w{rules_options()};
    auto acme = w.make_tenant("acme", {{"s1"}, {"s2"}});
    auto api = integrator(w.b, acme, "api", "alerts/#");
    event_log log{api->messages()};
    auto s1 = device_client(w.b, acme, "s1");
    auto s2 = device_client(w.b, acme, "s2");
    create_rule(acme, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");

    auto silence = created(acme.admin.post("/api/v1/silences", R"({"matchers":{"device":"s1"},"duration_s":3600,
        "comment":"maintenance"})"),
                           "create silence");
    CHECK(silence["active"].boolean());
    CHECK(silence["matchers"]["device"].str() == "s1");

    s1->publish("d/s1/telemetry", temp(40), 1);
    s2->publish("d/s2/telemetry", temp(40), 1);
    const auto muted = log.take("alert.opened", "s1");
    const auto loud = log.take("alert.opened", "s2");
    CHECK(muted.alert()["silenced"].is_bool());
    CHECK(muted.alert()["silenced"].boolean());
    CHECK(loud.alert()["silenced"].is_bool());
    CHECK_FALSE(loud.alert()["silenced"].boolean());

    CHECK(ok(acme.admin.get("/api/v1/alerts/" + std::to_string(muted.id())), "GET silenced")["silenced"].boolean());
    auto list = poll_get(acme.api, "/api/v1/alerts",
                         [](json_value const& v) { return v["items"].size() == 2; }, "both alerts in the list");
    for (auto const& a : list["items"].items()) {
        CAPTURE(a.dump());
        CHECK(a["silenced"].boolean() == (a["device"].str() == "s1"));
    }
}

TEST_CASE("tenant isolation: a rule sees only its tenant's devices; integrators only their tenant's events") {
    if (is_mosquitto()) return;
    world w{rules_options()};
    auto acme = w.make_tenant("acme", {{"s1"}});
    auto globex = w.make_tenant("globex", {{"s1"}});
    create_rule(acme, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");
    // globex watches temp too (so its readings reach the engine), far higher.
    create_rule(globex, R"({"name":"melt","kind":"threshold","metric":"temp","op":">","value":1000,
        "severity":"major"})");
    auto a_api = integrator(w.b, acme, "api", "alerts/#");
    event_log a_log{a_api->messages()};
    auto g_api = integrator(w.b, globex, "api", "#");
    event_log g_log{g_api->messages()};
    auto a_dev = device_client(w.b, acme, "s1");
    auto g_dev = device_client(w.b, globex, "s1");

    g_dev->publish("d/s1/telemetry", temp(99), 1);   // would breach acme's rule
    a_dev->publish("d/s1/telemetry", temp(50), 1);
    const auto opened = a_log.take("alert.opened", "s1");
    CHECK(opened.alert()["value"].num() == 50);
    CHECK(opened.alert()["tenant"].str() == "acme");
    g_dev->publish("d/s1/telemetry", temp(98), 1);
    a_dev->publish("d/s1/telemetry", temp(51), 1);
    auto a = poll_get(acme.api, "/api/v1/alerts/" + std::to_string(opened.id()),
                      [](json_value const& v) { return v["last_value"].num() == 51; }, "acme's repeat");
    CHECK_MESSAGE(a["count"].num() == 2, "globex's readings counted on acme's alert: " << a.dump());
    CHECK(a["value"].num() == 50);

    // globex's integrator saw its own telemetry and no alert at all.
    g_dev->publish("d/s1/heartbeat", "sentinel", 1);
    g_log.until_other("d/s1/heartbeat");
    g_log.settle();
    CHECK_MESSAGE(g_log.all().empty(), g_log.describe());
    for (auto const& m : g_log.others()) {
        CAPTURE(m.topic);
        CHECK(m.topic.starts_with("d/s1/"));
    }
    a_log.settle();
    CHECK_MESSAGE(a_log.all().size() == 1, a_log.describe());
    CHECK(ok(globex.admin.get("/api/v1/alerts"), "globex alerts")["items"].size() == 0);
    auto a_list = poll_get(acme.api, "/api/v1/alerts", [](json_value const& v) { return v["items"].size() == 1; },
                           "acme's one alert");
    CHECK(ids_of(a_list) == std::vector{opened.id()});
}

TEST_CASE("dry run: POST /api/v1/rules/test replays stored readings and saves nothing") {
    if (is_mosquitto()) return;
    world w{rules_options()};
    auto acme = w.make_tenant("acme", {{"s1"}});
    auto dev = device_client(w.b, acme, "s1");
    // Readings a minute ago, one a second, with their own times.
    const std::int64_t base = (now_ms() / 1000 - 60) * 1000;
    const std::vector<double> values = {25, 31, 32, 29, 27, 31};
    std::vector<std::int64_t> ts;
    for (std::size_t i = 0; i < values.size(); ++i) {
        ts.push_back(base + static_cast<std::int64_t>(i) * 1000);
        dev->publish("d/s1/telemetry", temp_at(ts.back(), values[i]), 1);
    }
    const auto alerts_before = ok(acme.api.get("/api/v1/alerts"), "alerts before");
    const auto rules_before = ok(acme.api.get("/api/v1/rules"), "rules before");
    const std::string range =
        ",\"from\":" + std::to_string(base - 1000) + ",\"to\":" + std::to_string(ts.back() + 10000) + "}";

    auto res = acme.admin.post("/api/v1/rules/test",
                               R"({"rule":{"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,
        "clear_value":28,"severity":"major","scope":{"device":"s1"}})" + range);
    auto run = ok(res, "threshold dry run");
    REQUIRE_MESSAGE(run["items"].size() == 1, run.dump());
    auto const& item = run["items"][0];
    CHECK(item["device"].str() == "s1");
    CHECK(item["samples"].num() == 6);
    auto const& eps = item["alerts"];
    REQUIRE_MESSAGE(eps.size() == 2, run.dump());
    CHECK(time_of(eps[0]["opened_at"], "opened_at") == ts[1]);
    CHECK(eps[0]["value"].num() == 31);
    CHECK(time_of(eps[0]["closed_at"], "closed_at") == ts[4]);
    CHECK(eps[0]["close_value"].num() == 27);
    CHECK(eps[0]["count"].num() == 3);
    CHECK(time_of(eps[1]["opened_at"], "opened_at") == ts[5]);
    CHECK(eps[1]["value"].num() == 31);
    CHECK(eps[1]["closed_at"].is_null());

    // A heartbeat rule over the same readings: silent from the last one on.
    auto hb = ok(acme.admin.post("/api/v1/rules/test",
                                 R"({"rule":{"name":"beat","kind":"heartbeat","interval_s":1,"missed":2,
        "severity":"minor","scope":{"device":"s1"}})" + range),
                 "heartbeat dry run");
    REQUIRE_MESSAGE(hb["items"].size() == 1, hb.dump());
    auto const& gaps = hb["items"][0]["alerts"];
    REQUIRE_MESSAGE(gaps.size() == 1, hb.dump());
    CHECK(time_of(gaps[0]["opened_at"], "opened_at") == ts.back() + 2000);
    CHECK(gaps[0]["closed_at"].is_null());

    // Nothing saved: no alerts, no rules.
    CHECK(ok(acme.api.get("/api/v1/alerts"), "alerts after").dump() == alerts_before.dump());
    CHECK(ok(acme.api.get("/api/v1/rules"), "rules after").dump() == rules_before.dump());
    CHECK(alerts_before["items"].size() == 0);
    CHECK(rules_before["items"].size() == 0);
}

// Readings that cross the threshold back and forth as fast as devices can
// send them, from devices on both shards: every transition is one event,
// and each alert topic gets its events in the order they happened (an
// "opened" never follows an "opened"; a "closed" names the alert just
// opened), whether the shard that evaluated the reading routed the event
// itself or handed it to the shard that owns the topic.
TEST_CASE("threshold: a burst of crossings gives every device its events in order, one per crossing") {
    if (is_mosquitto()) return;
    world w{rules_options()};
    constexpr int devices = 8, crossings = 40; // 20 opened + 20 closed each
    std::vector<device_spec> specs;
    for (int d = 0; d < devices; ++d) specs.push_back({"b" + std::to_string(d), R"({"burst":"yes"})"});
    auto acme = w.make_tenant("acme", specs);
    auto api = integrator(w.b, acme, "api", "alerts/#");
    event_log log{api->messages()};
    create_rule(acme, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,
        "severity":"major","scope":{"labels":{"burst":"yes"}}})");
    std::vector<std::unique_ptr<mosq_client>> clients;
    for (const auto& s : specs) clients.push_back(device_client(w.b, acme, s.id));
    std::vector<std::thread> senders;
    for (int d = 0; d < devices; ++d)
        senders.emplace_back([&, d] {
            for (int i = 0; i < crossings; ++i)
                clients[static_cast<std::size_t>(d)]->publish("d/" + specs[static_cast<std::size_t>(d)].id + "/telemetry",
                                                              temp(i % 2 == 0 ? 31 : 20), 1);
        });
    for (auto& t : senders) t.join();
    const auto deadline = steady::now() + event_timeout;
    while (log.all().size() < static_cast<std::size_t>(devices * crossings) && steady::now() < deadline) log.settle();
    log.settle();
    CHECK_MESSAGE(log.all().size() == static_cast<std::size_t>(devices * crossings), log.describe());
    for (const auto& s : specs) {
        const auto mine = log.of("", s.id);
        CHECK_MESSAGE(mine.size() == static_cast<std::size_t>(crossings), s.id);
        std::int64_t open_id = 0;
        for (std::size_t i = 0; i < mine.size(); ++i) {
            const auto& e = mine[i];
            if (i % 2 == 0) {
                CHECK_MESSAGE(e.type() == "alert.opened", s.id << " event " << i << ": " << e.type());
                CHECK_MESSAGE(e.id() != open_id, s.id << " event " << i << " reopened alert " << e.id());
                open_id = e.id();
            } else {
                CHECK_MESSAGE(e.type() == "alert.closed", s.id << " event " << i << ": " << e.type());
                CHECK_MESSAGE(e.id() == open_id, s.id << " closed " << e.id() << ", open was " << open_id);
            }
        }
    }
}
