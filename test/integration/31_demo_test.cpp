// 31: `serve --demo` and `pulsegate simulate` (DESIGN.md, Configuration and
// command line: "--demo creates a demo tenant, user, devices, rules and a
// simulated fleet so that a newcomer sees live charts and alerts a minute
// after start"; `simulate`, a device fleet over MQTT for demos and load).
//
// The daemon starts with --demo and a shortened breach schedule; the test
// reads the demo login from the start-up log, logs in over REST, and waits
// (with deadlines, polling REST: the engine writes alerts once a second)
// for telemetry of the simulated devices and the alerts their incidents
// open. A second start must create nothing twice. `simulate` runs as its
// own process against a broker: anonymously, and with device credentials.
#include <doctest/doctest.h>

#include "harness.hpp"
#include "tenant_world.hpp"

#include <algorithm>
#include <csignal>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace pulsegate::itest;

namespace {

constexpr std::string_view operator_password = "operator-secret-31";
constexpr std::string_view login_marker = "log in as demo / ";

const std::set<std::string> demo_device_ids{"demo-boiler", "demo-freezer", "office-1",
                                            "office-2",    "main-meter",   "dock-sensor"};

// The demo password of the start-up line found after log offset `from`,
// waiting up to `timeout`; REQUIREs one. The line is logfmt:
// msg="demo: open http://ADDR/ and log in as demo / PASSWORD".
std::string demo_password(broker_process const& b, std::size_t from, ms timeout = 30s) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
        const auto log = b.log_text();
        const auto at = log.find(login_marker, from);
        const auto end = at == std::string::npos ? std::string::npos : log.find('"', at + login_marker.size());
        if (end != std::string::npos) return log.substr(at + login_marker.size(), end - at - login_marker.size());
        REQUIRE_MESSAGE(steady::now() < deadline, "no \"" << login_marker << "\" line in the log");
        // The log is a file: nothing to wait on but time.
        std::this_thread::sleep_for(50ms);
    }
}

// Polls GET `target` until `pred` holds, for up to `timeout`; REQUIREs it
// and returns the answer. For what takes the daemon a timer (alerts open
// after for_s, heartbeats after 30 s).
template <class Pred>
json_value poll_until(rest_session const& s, std::string const& target, Pred pred, std::string_view what,
                      ms timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
        auto res = s.get(target);
        REQUIRE_MESSAGE(res.status == 200, "GET " << target << ": " << res.describe());
        auto v = json_of(res);
        if (pred(v)) return v;
        REQUIRE_MESSAGE(steady::now() < deadline, what << ": GET " << target << " still answers " << res.body);
        // Nothing to wait on over HTTP: poll.
        std::this_thread::sleep_for(250ms);
    }
}

std::set<std::string> device_ids(rest_session const& s) {
    auto v = ok(s.get("/api/v1/devices?limit=100"), "list devices");
    std::set<std::string> ids;
    for (auto const& d : v["items"].items()) ids.insert(d["id"].str());
    return ids;
}

bool has_alert(json_value const& list, std::string_view device, std::string_view kind) {
    for (auto const& a : list["items"].items())
        if (a["device"].str() == device && a["kind"].str() == kind) return true;
    return false;
}

std::size_t count_named(json_value const& list, std::string_view key, std::string_view name) {
    std::size_t n = 0;
    for (auto const& item : list["items"].items())
        if (item[key].str() == name) ++n;
    return n;
}

} // namespace

TEST_CASE("serve --demo: the login in the log, demo devices with live telemetry, alerts, and no duplicates on "
          "a second start" *
          doctest::skip(is_mosquitto())) {
    broker_options o;
    o.allow_anonymous = false;
    o.admin_password = std::string{operator_password};
    // The silent device is declared silent 30 s after its last message, not
    // after the default grace of 120 s after the start.
    o.rules_toml = "heartbeat_grace_s = 0";
    o.serve_args = {"--demo", "--demo-breach-every-s", "30", "--demo-silent-after-s", "3", "--demo-rate", "2"};
    broker_process b(o);
    const auto http = b.wait_http_port();

    const auto password = demo_password(b, 0);
    CHECK(password.size() >= 16);
    const auto log = b.log_text();
    CHECK_MESSAGE(log.find("demo: open http://127.0.0.1:" + std::to_string(http) + "/ and log in as demo / ") !=
                      std::string::npos,
                  "the start-up line does not name the HTTP address");
    CHECK(log.find("tenant_created=true") != std::string::npos);

    auto demo = rest_login(http, "demo", password);
    CHECK(device_ids(demo) == demo_device_ids);
    auto boiler = ok(demo.get("/api/v1/devices/demo-boiler"), "get demo-boiler");
    CHECK(boiler["labels"]["site"].str() == "demo-plant");
    CHECK(boiler["labels"]["kind"].str() == "boiler");
    CHECK(boiler["labels"]["floor"].str() == "basement");
    auto rules = ok(demo.get("/api/v1/rules"), "list rules");
    REQUIRE(rules["items"].size() == 2);
    for (auto const& r : rules["items"].items()) {
        CHECK(r["scope"]["labels"]["site"].str() == "demo-plant");
        if (r["kind"].str() == "threshold") {
            CHECK(r["metric"].str() == "temperature");
            CHECK(r["op"].str() == ">");
            CHECK(r["value"].num() == 80);
            CHECK(r["for_s"].num() == 10);
            CHECK(r["clear_value"].num() == 75);
            CHECK(r["severity"].str() == "major");
        } else {
            CHECK(r["kind"].str() == "heartbeat");
            CHECK(r["interval_s"].num() == 10);
            CHECK(r["missed"].num() == 3);
        }
    }

    // Live telemetry from the simulated fleet, stored and readable.
    auto latest = poll_until(
        demo, "/api/v1/devices/office-1/telemetry/latest",
        [](json_value const& v) { return v["metrics"].contains("temperature") && v["metrics"].contains("humidity"); },
        "office-1 telemetry", 20s);
    const double t = latest["metrics"]["temperature"]["value"].num();
    CHECK(t > 15);
    CHECK(t < 30);
    poll_until(
        demo, "/api/v1/devices/demo-boiler/telemetry/latest",
        [](json_value const& v) { return v["metrics"].contains("pressure_bar"); }, "demo-boiler telemetry", 20s);

    // The boiler's first breach starts 7.5 s after the start and holds for
    // longer than for_s (10 s): its alert opens about 20 s in.
    poll_until(
        demo, "/api/v1/alerts?device=demo-boiler",
        [](json_value const& v) { return has_alert(v, "demo-boiler", "THRESHOLD"); }, "the demo-boiler alert", 45s);
    // dock-sensor goes silent 3 s in: NO_HEARTBEAT 30 s later.
    poll_until(
        demo, "/api/v1/alerts?device=dock-sensor",
        [](json_value const& v) { return has_alert(v, "dock-sensor", "NO_HEARTBEAT"); }, "the dock-sensor alert",
        60s);
    // Nobody else breaches.
    auto others = ok(demo.get("/api/v1/alerts?kind=THRESHOLD"), "threshold alerts");
    for (auto const& a : others["items"].items()) CHECK(a["device"].str() == "demo-boiler");

    // Secrets never reach the log; the demo password only in its one line.
    CHECK(b.log_text().find("pgd_") == std::string::npos);
    CHECK(occurrences(b.log_text(), password) == 1);

    // Second start: the same data dir, --demo again.
    const auto before_restart = b.log_text().size();
    b.restart();
    const auto http2 = b.wait_http_port();
    const auto password2 = demo_password(b, before_restart);
    CHECK(password2 != password);
    const auto log2 = b.log_text().substr(before_restart);
    CHECK(log2.find("tenant_created=false user_created=false devices_created=0 rules_created=0") !=
          std::string::npos);
    auto refused = http_request(http2, "POST", "/api/v1/auth/login", {{"Content-Type", "application/json"}},
                                "{\"username\":\"demo\",\"password\":" + json_quote(password) + "}");
    CHECK_MESSAGE(refused.status == 401, "the previous demo password still works: " << refused.describe());
    auto demo2 = rest_login(http2, "demo", password2);
    CHECK(device_ids(demo2) == demo_device_ids);
    CHECK(ok(demo2.get("/api/v1/rules"), "rules")["items"].size() == 2);
    auto op = rest_login(http2, "admin", operator_password);
    auto tenants = ok(op.get("/api/v1/operator/tenants"), "tenants");
    CHECK(count_named(tenants, "id", "demo") == 1);
    auto users = ok(op.get("/api/v1/operator/users"), "users");
    CHECK(count_named(users, "username", "demo") == 1);

    // The fleet reconnects with its new secrets: readings newer than the restart.
    const auto restarted_ms = std::chrono::duration_cast<ms>(std::chrono::system_clock::now().time_since_epoch()).count();
    poll_until(
        demo2, "/api/v1/devices/office-2/telemetry/latest",
        [&](json_value const& v) { return v["metrics"]["temperature"]["ts"].num() > static_cast<double>(restarted_ms); },
        "office-2 telemetry after the restart", 20s);
}

TEST_CASE("simulate: an anonymous fleet publishes JSON telemetry, reports and stops by itself") {
    broker_options o;
    o.allow_anonymous = true;
    broker_process b(o);
    paho_client watcher(b, "sim-watcher");
    watcher.connect();
    watcher.subscribe("d/+/telemetry", 0);

    auto r = run_process({pulsegate_binary(), "simulate", "--url", "mqtt://127.0.0.1:" + std::to_string(b.port()),
                          "--devices", "3", "--rate", "5", "--duration", "3", "--report-every-s", "1", "--seed",
                          "7"},
                         30s);
    REQUIRE_MESSAGE(r.exit_code, "simulate did not stop: " << r.output);
    CHECK_MESSAGE(*r.exit_code == 0, r.output);
    CHECK_MESSAGE(r.output.find("fleet report") != std::string::npos, r.output);
    CHECK_MESSAGE(r.output.find("simulate: stopped") != std::string::npos, r.output);

    std::set<std::string> seen;
    std::size_t n = 0;
    while (auto m = watcher.messages().pop(500ms)) {
        ++n;
        auto v = parse_json(m->payload);
        REQUIRE_MESSAGE(v, "not JSON: " << m->payload);
        CHECK(v->is_object());
        seen.insert(m->topic);
    }
    CHECK(seen == std::set<std::string>{"d/sim-001/telemetry", "d/sim-002/telemetry", "d/sim-003/telemetry"});
    // 3 devices at 5/s for 3 s is 45; connecting takes some of it.
    CHECK(n >= 15);
    CHECK(n <= 60);
}

TEST_CASE("simulate: stops at --duration and at SIGTERM, every time") {
    broker_options o;
    o.allow_anonymous = true;
    broker_process b(o);
    const auto url = "mqtt://127.0.0.1:" + std::to_string(b.port());

    // Its half-second check and a whole --duration come due together; one
    // run in ten used to miss the end and run on. Several short runs.
    for (int run = 0; run < 6; ++run) {
        CAPTURE(run);
        auto r = run_process({pulsegate_binary(), "simulate", "--url", url, "--devices", "1", "--rate", "2",
                              "--duration", "1", "--report-every-s", "0", "--device-prefix", "dur-"},
                             20s);
        REQUIRE_MESSAGE(r.exit_code, "simulate did not stop at --duration: " << r.output);
        CHECK_MESSAGE(*r.exit_code == 0, r.output);
        CHECK_MESSAGE(r.output.find("duration reached") != std::string::npos, r.output);
    }

    // No --duration: SIGTERM ends it, as it does a service.
    child_process p({pulsegate_binary(), "simulate", "--url", url, "--devices", "2", "--rate", "2",
                     "--report-every-s", "1", "--device-prefix", "term-"});
    REQUIRE_MESSAGE(p.read_until("fleet report", 20s), p.output());
    p.send_signal(SIGTERM);
    const auto code = p.wait(20s);
    REQUIRE_MESSAGE(code, "simulate did not stop at SIGTERM: " << p.output());
    CHECK_MESSAGE(*code == 0, p.output());
    CHECK_MESSAGE(p.output().find("signal=SIGTERM") != std::string::npos, p.output());
    CHECK_MESSAGE(p.output().find("simulate: stopped") != std::string::npos, p.output());
}

TEST_CASE("simulate: --credentials against a pulsegate without anonymous access; without them it fails fast" *
          doctest::skip(is_mosquitto())) {
    world w(rules_options());
    auto t = w.make_tenant("acme", {{"s-1", R"({"site":"lab"})"}, {"s-2", R"({"site":"lab"})"}});
    const std::string creds = w.b.dir() + "/credentials.csv";
    {
        std::ofstream f(creds);
        f << "# device,secret\n";
        for (auto const& [id, secret] : t.secret) f << id << "," << secret << "\n";
    }
    const auto url = "mqtt://127.0.0.1:" + std::to_string(w.b.port());
    auto r = run_process({pulsegate_binary(), "simulate", "--url", url, "--tenant", "acme", "--credentials", creds,
                          "--devices", "2", "--rate", "5", "--duration", "3", "--steady"},
                         30s);
    REQUIRE_MESSAGE(r.exit_code, "simulate did not stop: " << r.output);
    CHECK_MESSAGE(*r.exit_code == 0, r.output);
    CHECK_MESSAGE(r.output.find("pgd_") == std::string::npos, "a secret in the output: " << r.output);
    for (std::string id : {"s-1", "s-2"}) {
        auto v = ok(t.admin.get("/api/v1/devices/" + id + "/telemetry/latest"), "latest of " + id);
        CHECK_MESSAGE(v["metrics"].contains("temperature"), id << ": " << v.dump());
    }

    // No credentials: every device is refused, and simulate says why.
    auto refused = run_process({pulsegate_binary(), "simulate", "--url", url, "--devices", "2", "--rate", "1"}, 30s);
    REQUIRE_MESSAGE(refused.exit_code, "simulate did not give up: " << refused.output);
    CHECK(*refused.exit_code == 1);
    CHECK_MESSAGE(refused.output.find("--credentials") != std::string::npos, refused.output);

    // A wrong secret: refused too.
    {
        std::ofstream f(creds);
        f << "s-1,pgd_00000000000000000000000000000000\n";
    }
    auto wrong = run_process({pulsegate_binary(), "simulate", "--url", url, "--tenant", "acme", "--credentials", creds,
                              "--devices", "1"},
                             30s);
    REQUIRE_MESSAGE(wrong.exit_code, "simulate did not give up: " << wrong.output);
    CHECK(*wrong.exit_code == 1);
    CHECK_MESSAGE(wrong.output.find("pgd_0000") == std::string::npos, "a secret in the output: " << wrong.output);
}
