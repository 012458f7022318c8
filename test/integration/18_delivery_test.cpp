// 18: alert delivery end to end (DESIGN.md, Delivery): integrations and
// routes made over REST, a real webhook receiver on loopback
// (delivery_receiver.py, Python's http.server), alerts raised by MQTT
// telemetry, the delivery log, the SSRF guard, and a job that survives
// kill -9 while its receiver is down and is then delivered exactly once.
//
// pulsegate only: mosquitto has no rules or delivery.
#include <doctest/doctest.h>

#include "harness.hpp"
#include "tenant_world.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace pulsegate::itest;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view hook_secret = "hook-secret-18";

// The webhook receiver, a child process; its requests as parsed JSON lines.
class receiver {
public:
    receiver() : dir_(fs::temp_directory_path() / ("pg-hook-" + std::to_string(::getpid()) + "-" + std::to_string(n_++))) {
        fs::create_directories(dir_);
        const char* root = std::getenv("PULSEGATE_SOURCE_ROOT");
        REQUIRE_MESSAGE(root != nullptr, "PULSEGATE_SOURCE_ROOT is not set (test/integration/meson.build sets it)");
        proc_ = std::make_unique<child_process>(std::vector<std::string>{
            "/usr/bin/python3", std::string(root) + "/test/integration/delivery_receiver.py", dir_.string(),
            std::string(hook_secret)});
        const auto deadline = steady::now() + 15s;
        while (!fs::exists(dir_ / "port")) {
            REQUIRE_MESSAGE(steady::now() < deadline, "the webhook receiver did not start: " << proc_->output());
            std::this_thread::sleep_for(20ms);
        }
        std::ifstream(dir_ / "port") >> port_;
    }
    ~receiver() {
        proc_.reset();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::uint16_t port() const { return port_; }
    std::string url(std::string_view path) const { return "http://127.0.0.1:" + std::to_string(port_) + std::string(path); }
    void down(bool is_down) {
        if (is_down) std::ofstream(dir_ / "down") << "1";
        else fs::remove(dir_ / "down");
    }
    std::vector<json_value> requests() const {
        std::vector<json_value> out;
        std::ifstream f(dir_ / "requests.jsonl");
        for (std::string line; std::getline(f, line);)
            if (auto v = parse_json(line)) out.push_back(*v);
        return out;
    }
    // Requests whose body carries `event` for alert `alert_id`.
    std::vector<json_value> of(std::string_view event, std::int64_t alert_id) const {
        std::vector<json_value> out;
        for (auto const& r : requests()) {
            auto body = parse_json(r["body"].str());
            if (body && (*body)["event"].str() == event &&
                static_cast<std::int64_t>((*body)["alert"]["id"].num()) == alert_id)
                out.push_back(r);
        }
        return out;
    }
    // Waits until `pred(requests())` holds; CHECK-fails after long_wait.
    template <class Pred>
    bool wait(Pred pred, std::string_view what) const {
        const auto deadline = steady::now() + long_wait;
        while (steady::now() < deadline) {
            if (pred(requests())) return true;
            std::this_thread::sleep_for(50ms);
        }
        FAIL_CHECK(what << "; the receiver got " << requests().size() << " requests");
        return false;
    }

private:
    static inline int n_ = 0;
    fs::path dir_;
    std::unique_ptr<child_process> proc_;
    std::uint16_t port_ = 0;
};

broker_options delivery_options(std::string allow = R"(["127.0.0.1/32"])") {
    auto o = rules_options("heartbeat_grace_s = 0");
    o.delivery_toml = "allow_private_targets = " + allow +
                      "\nbackoff_initial_ms = 200\nbackoff_max_ms = 1000\nmax_attempts = 50\n"
                      "breaker_threshold = 1000\n";
    return o;
}

std::string webhook_body(std::string const& name, std::string const& url) {
    return R"({"name":)" + json_quote(name) + R"(,"type":"webhook","config":{"url":)" + json_quote(url) +
           R"(,"headers":{"X-Team":"ops"}},"secrets":{"secret":)" + json_quote(hook_secret) + "}}";
}

std::int64_t create_integration(tenant_setup const& t, std::string const& body) {
    return id_of(created(t.admin.post("/api/v1/integrations", body), "create integration")["id"]);
}

std::int64_t create_route(tenant_setup const& t, std::vector<std::int64_t> const& targets, std::string match = "{}") {
    std::string ids;
    for (auto i : targets) ids += (ids.empty() ? "" : ",") + std::to_string(i);
    return id_of(created(t.admin.post("/api/v1/routes", R"({"name":"all","integrations":[)" + ids +
                                                            R"(],"match":)" + match + "}"),
                         "create route")["id"]);
}

std::string temp(double v) { return "{\"temp\":" + std::to_string(v) + "}"; }

// The id of the tenant's newest alert of `device` in `status`, waiting for it.
std::int64_t alert_of(tenant_setup const& t, std::string const& device, std::string const& status) {
    auto list = poll_get(t.admin, "/api/v1/alerts?device=" + device + "&status=" + status,
                         [](json_value const& v) { return v["items"].size() > 0; }, "an alert of " + device);
    REQUIRE(list["items"].size() > 0);
    return id_of(list["items"][0]["id"]);
}

// pulsegate_delivery_outbox_depth from /metrics.
double outbox_depth(std::uint16_t http) {
    const std::string name = "\npulsegate_delivery_outbox_depth ";
    const auto text = http_get(http, "/metrics").body;
    const auto at = text.find(name);
    REQUIRE_MESSAGE(at != std::string::npos, "no outbox depth in /metrics");
    return std::stod(text.substr(at + name.size()));
}

} // namespace

TEST_CASE("integrations: settings checked, secrets masked, destinations guarded, test send" * doctest::skip(is_mosquitto())) {
    receiver hook;
    world w(delivery_options());
    auto t = w.make_tenant("acme", {});

    // The SSRF guard: only 127.0.0.1 is allowed here.
    for (std::string const& url : std::vector<std::string>{"http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data",
                                                       "http://[::1]:" + std::to_string(hook.port()) + "/ok",
                                                       "http://192.168.1.10/x"}) {
        auto res = t.admin.post("/api/v1/integrations", webhook_body("bad", url));
        CHECK_MESSAGE(res.status == 400, url << ": " << res.describe());
        CHECK_MESSAGE(res.body.find("allow_private_targets") != std::string::npos, res.body);
    }
    auto bad = t.admin.post("/api/v1/integrations", R"({"name":"x","type":"webhook","config":{"url":"ftp://a/b"}})");
    CHECK(bad.status == 400);
    CHECK(error_code(bad) == "invalid_argument");
    CHECK(t.admin.post("/api/v1/integrations", R"({"name":"x","type":"pager","config":{}})").status == 400);

    const auto id = create_integration(t, webhook_body("ops hook", hook.url("/ok")));
    auto got = ok(t.admin.get("/api/v1/integrations/" + std::to_string(id)), "get integration");
    CHECK(got["secrets"]["secret"].str() == "********");
    CHECK(got.dump().find(std::string(hook_secret)) == std::string::npos);
    CHECK(got["config"]["url"].str() == hook.url("/ok"));
    // The API token (a viewer's view) does not see it either.
    CHECK(t.api.get("/api/v1/integrations").body.find(std::string(hook_secret)) == std::string::npos);

    // PUT with the mask keeps the secret: the test send is still signed with it.
    ok(t.admin.put("/api/v1/integrations/" + std::to_string(id),
                   R"({"name":"ops hook","config":{"url":)" + json_quote(hook.url("/ok")) +
                       R"(,"headers":{"X-Team":"ops"}},"secrets":{"secret":"********"}})"),
       "update integration");
    auto sent = ok(t.admin.post("/api/v1/integrations/" + std::to_string(id) + "/test"), "test send");
    CHECK(sent["outcome"].str() == "delivered");
    CHECK(sent["status"].str() == "204");
    CHECK(sent["latency_ms"].is_number());
    auto reqs = hook.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0]["signature_ok"].boolean());
    CHECK(reqs[0]["headers"]["x-pulsegate-test"].str() == "true");
    CHECK(reqs[0]["headers"]["x-team"].str() == "ops");
    // A test send touches no job.
    CHECK(ok(t.admin.get("/api/v1/deliveries"), "deliveries")["items"].size() == 0);

    // Another tenant's id answers 404, like an unknown one.
    auto other = w.make_tenant("other", {});
    CHECK(other.admin.get("/api/v1/integrations/" + std::to_string(id)).status == 404);
    CHECK(other.admin.post("/api/v1/integrations/" + std::to_string(id) + "/test").status == 404);
    CHECK(t.admin.get("/api/v1/integrations/999999").status == 404);
    // Routes may only name the tenant's own integrations.
    auto cross = other.admin.post("/api/v1/routes", R"({"name":"r","integrations":[)" + std::to_string(id) + "]}");
    CHECK_MESSAGE(cross.status == 400, cross.describe());
}

TEST_CASE("an alert from MQTT telemetry reaches the webhook, signed; opened and closed; the log shows it" *
          doctest::skip(is_mosquitto())) {
    receiver hook;
    world w(delivery_options());
    auto t = w.make_tenant("acme", {{"s1"}});
    create_rule(t, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");
    const auto integration = create_integration(t, webhook_body("ops hook", hook.url("/ok")));
    create_route(t, {integration}, R"({"min_severity":"major"})");

    auto dev = device_client(w.b, t, "s1");
    dev->publish("d/s1/telemetry", temp(31), 1);
    const auto alert = alert_of(t, "s1", "open");
    hook.wait([&](auto const&) { return hook.of("alert.opened", alert).size() == 1; }, "alert.opened delivered");
    dev->publish("d/s1/telemetry", temp(20), 1);
    hook.wait([&](auto const&) { return hook.of("alert.closed", alert).size() == 1; }, "alert.closed delivered");

    auto opened = hook.of("alert.opened", alert);
    REQUIRE(opened.size() == 1);
    CHECK(opened[0]["signature_ok"].boolean());
    CHECK(opened[0]["headers"]["x-pulsegate-event"].str() == "alert.opened");
    auto body = parse_json(opened[0]["body"].str());
    REQUIRE(body);
    CHECK((*body)["tenant"].str() == "acme");
    CHECK((*body)["alert"]["device"].str() == "s1");
    CHECK((*body)["alert"]["value"].num() == 31);
    CHECK((*body)["sent_at"].is_string());

    // The delivery log: two jobs, each delivered at its first attempt; the
    // idempotency key the receiver saw is the job id.
    auto log = poll_get(t.admin, "/api/v1/deliveries?alert=" + std::to_string(alert),
                        [](json_value const& v) {
                            if (v["items"].size() != 2) return false;
                            for (auto const& d : v["items"].items())
                                if (d["status"].str() != "delivered") return false;
                            return true;
                        },
                        "both deliveries recorded as delivered");
    std::set<std::string> job_ids;
    for (auto const& d : log["items"].items()) {
        CHECK(d["attempts"].num() == 1);
        CHECK(d["attempt_log"].size() == 1);
        CHECK(d["attempt_log"][0]["outcome"].str() == "delivered");
        CHECK(d["attempt_log"][0]["status"].str() == "204");
        CHECK(d["integration"].num() == integration);
        job_ids.insert(std::to_string(static_cast<std::int64_t>(d["id"].num())));
    }
    CHECK(job_ids.contains(opened[0]["headers"]["idempotency-key"].str()));
    CHECK(ok(t.admin.get("/api/v1/deliveries?status=dead"), "dead deliveries")["items"].size() == 0);

    // A route for critical only does not take a major alert.
    auto crit_hook = create_integration(t, webhook_body("critical hook", hook.url("/bad")));
    create_route(t, {crit_hook}, R"({"min_severity":"critical"})");
    dev->publish("d/s1/telemetry", temp(35), 1);
    const auto second = alert_of(t, "s1", "open");
    hook.wait([&](auto const&) { return hook.of("alert.opened", second).size() == 1; }, "second alert delivered");
    CHECK(ok(t.admin.get("/api/v1/deliveries?integration=" + std::to_string(crit_hook)), "critical hook log")["items"]
              .size() == 0);
}

TEST_CASE("a receiver that answers 400 gets one attempt: the delivery is dead, with the answer in the log" *
          doctest::skip(is_mosquitto())) {
    receiver hook;
    world w(delivery_options());
    auto t = w.make_tenant("acme", {{"s1"}});
    create_rule(t, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");
    const auto integration = create_integration(t, webhook_body("strict", hook.url("/bad")));
    create_route(t, {integration}, R"({"events":["alert.opened"]})");
    device_client(w.b, t, "s1")->publish("d/s1/telemetry", temp(31), 1);
    const auto alert = alert_of(t, "s1", "open");
    auto log = poll_get(t.admin, "/api/v1/deliveries?alert=" + std::to_string(alert),
                        [](json_value const& v) { return v["items"].size() == 1 && v["items"][0]["status"].str() == "dead"; },
                        "the delivery is dead");
    CHECK(log["items"][0]["attempts"].num() == 1);
    CHECK(log["items"][0]["attempt_log"][0]["status"].str() == "400");
    CHECK(log["items"][0]["last_error"].str().find("400") != std::string::npos);
    CHECK(hook.of("alert.opened", alert).size() == 1);
}

TEST_CASE("kill -9 while the receiver is down: after the restart the job is delivered exactly once" *
          doctest::skip(is_mosquitto())) {
    receiver hook;
    hook.down(true);
    world w(delivery_options());
    auto t = w.make_tenant("acme", {{"s1"}});
    create_rule(t, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");
    const auto integration = create_integration(t, webhook_body("flaky", hook.url("/flip")));
    create_route(t, {integration}, R"({"events":["alert.opened"]})");
    device_client(w.b, t, "s1")->publish("d/s1/telemetry", temp(31), 1);
    const auto alert = alert_of(t, "s1", "open");
    // At least two refused attempts, recorded, before the kill.
    poll_get(t.admin, "/api/v1/deliveries?alert=" + std::to_string(alert),
             [](json_value const& v) {
                 return v["items"].size() == 1 && v["items"][0]["status"].str() == "pending" &&
                        v["items"][0]["attempts"].num() >= 2;
             },
             "retries recorded");
    CHECK(hook.of("alert.opened", alert).size() >= 2);
    CHECK(outbox_depth(w.http) == 1); // the job waits for the receiver
    w.b.kill9();
    hook.down(false);
    w.b.restart();
    w.follow_restart({&t.admin});
    auto log = poll_get(t.admin, "/api/v1/deliveries?alert=" + std::to_string(alert),
                        [](json_value const& v) { return v["items"].size() == 1 && v["items"][0]["status"].str() == "delivered"; },
                        "delivered after the restart");
    const auto job = std::to_string(static_cast<std::int64_t>(log["items"][0]["id"].num()));
    // Give a duplicate every chance to show up, then count.
    std::this_thread::sleep_for(1500ms);
    int acknowledged = 0;
    for (auto const& r : hook.of("alert.opened", alert)) {
        CHECK(r["headers"]["idempotency-key"].str() == job);
        if (r["status"].num() == 200) ++acknowledged;
    }
    CHECK(acknowledged == 1);
    // Every attempt is in the log: the refused ones and the one that went through.
    const auto& attempts = log["items"][0]["attempt_log"];
    CHECK(attempts.size() == hook.of("alert.opened", alert).size());
    CHECK(attempts[attempts.size() - 1]["outcome"].str() == "delivered");
    CHECK(outbox_depth(w.http) == 0);
}

TEST_CASE("a route with repeat_s reminds of a still-open alert until it closes" * doctest::skip(is_mosquitto())) {
    receiver hook;
    world w(delivery_options());
    auto t = w.make_tenant("acme", {{"s1"}});
    create_rule(t, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");
    const auto integration = create_integration(t, webhook_body("pager", hook.url("/ok")));
    created(t.admin.post("/api/v1/routes", R"({"name":"remind","integrations":[)" + std::to_string(integration) +
                                               R"(],"match":{"events":["alert.opened"]},"repeat_s":1})"),
            "create route with repeat_s");
    auto dev = device_client(w.b, t, "s1");
    dev->publish("d/s1/telemetry", temp(31), 1);
    const auto alert = alert_of(t, "s1", "open");
    const auto reminders = [&] {
        std::vector<json_value> out;
        for (auto const& r : hook.of("alert.opened", alert)) {
            auto body = parse_json(r["body"].str());
            if (body && (*body)["repeat"].is_number()) out.push_back(*body);
        }
        return out;
    };
    hook.wait([&](auto const&) { return reminders().size() >= 2; }, "two reminders of the open alert");
    for (auto const& r : reminders()) {
        CHECK(r["repeat"].num() >= 1);
        CHECK(r["alert"]["status"].str() == "open");
    }
    dev->publish("d/s1/telemetry", temp(20), 1);
    poll_get(t.admin, "/api/v1/alerts?device=s1&status=closed",
             [](json_value const& v) { return v["items"].size() == 1; }, "the alert closed");
    // The sweep runs every 5 s: after two of them, nothing more came.
    const auto after_close = reminders().size();
    std::this_thread::sleep_for(11s);
    CHECK(reminders().size() <= after_close + 1);  // one sweep may have been under way at the close
}
