#include "adapters/alert_message.hpp"
#include "adapters/digest_text.hpp"

#include <doctest/doctest.h>

using namespace pulsegate::adapters;

namespace {
constexpr const char* event = R"({"event":"alert.opened","tenant":"acme","at":"2026-11-23T10:00:00.000Z",
  "alert":{"id":42,"tenant":"acme","device":"pump-1","rule":7,"rule_name":"hot","kind":"THRESHOLD",
  "severity":"critical","status":"open","metric":"temp","value":91.5,"threshold":90,"message":"temp 91.5 > 90",
  "opened_at":"2026-11-23T10:00:00.000Z","closed_at":null,"escalation_level":0,"labels":{"site":"a<b"}}})";
}

TEST_CASE("an event JSON is read into its fields") {
    auto m = parse_alert_message(event);
    REQUIRE(m.has_value());
    CHECK(m->event == "alert.opened");
    CHECK(m->tenant == "acme");
    CHECK(m->alert_id == 42);
    CHECK(m->device == "pump-1");
    CHECK(m->rule_id == 7);
    CHECK(m->rule_name == "hot");
    CHECK(m->severity == "critical");
    CHECK(m->value == 91.5);
    CHECK(m->threshold == 90);
    CHECK(m->closed_at.empty());
    CHECK(m->at_ms > 0);
    CHECK(m->labels.at("site") == "a<b");
    CHECK(m->payload == event);
}

TEST_CASE("not an event: refused") {
    CHECK(!parse_alert_message("{").has_value());
    CHECK(!parse_alert_message("[]").has_value());
    CHECK(!parse_alert_message(R"({"event":"alert.opened","tenant":"t"})").has_value());
}

TEST_CASE("templates substitute the documented names and leave others alone") {
    auto m = parse_alert_message(event);
    REQUIRE(m.has_value());
    CHECK(render_template("[{severity}] {alert_type} on {device_id}: {metric}={value} ({message}) at {timestamp}", *m) ==
          "[critical] THRESHOLD on pump-1: temp=91.5 (temp 91.5 > 90) at 2026-11-23T10:00:00.000Z");
    CHECK(render_template("{unknown} {value", *m) == "{unknown} {value");
    m->message = "<b>&";
    CHECK(render_template("<p>{message}</p>", *m, true) == "<p>&lt;b&gt;&amp;</p>");
    CHECK(format_value(std::nullopt).empty());
    CHECK(format_value(0.1) == "0.1");
}

namespace {
constexpr const char* digest = R"({"event":"digest","tenant":"acme","at":"2026-11-25T08:00:30.000Z",
  "digest":{"day":"2026-11-25","time_zone":"Europe/Berlin","from":"2026-11-24T07:00:00.000Z",
  "to":"2026-11-25T07:00:00.000Z","opened":4,"closed":3,"still_open":2,
  "open_by_severity":{"critical":1,"major":0,"minor":1,"warning":0,"info":0},
  "noisiest_devices":[{"device":"<script>x</script>","alerts":3,"repeats":45},{"device":"fridge","alerts":1,"repeats":1}],
  "noisiest_rules":[{"rule":10,"name":"hot & humid","alerts":3,"repeats":43}]}})";
}

TEST_CASE("a digest is an event without an alert") {
    auto m = parse_alert_message(digest);
    REQUIRE(m.has_value());
    CHECK(m->event == "digest");
    CHECK(m->tenant == "acme");
    CHECK(m->alert_id == 0);
    CHECK(m->device.empty());
    CHECK_FALSE(parse_alert_message(R"({"event":"digest","tenant":"acme"})").has_value());
}

TEST_CASE("a digest renders as subject, text and escaped HTML") {
    auto d = render_digest(digest);
    REQUIRE(d.has_value());
    CHECK(d->subject == "[pulsegate] acme digest 2026-11-25: 4 opened, 3 closed, 2 still open");
    CHECK(d->text.find("Opened:      4") != std::string::npos);
    CHECK(d->text.find("critical     1") != std::string::npos);
    CHECK(d->text.find("major") == std::string::npos); // zero rows are left out
    CHECK(d->text.find("<script>x</script>: 3 alerts, 45 repeats") != std::string::npos);
    CHECK(d->text.find("hot & humid (rule 10): 3 alerts") != std::string::npos);
    CHECK(d->html.find("<script>") == std::string::npos);
    CHECK(d->html.find("&lt;script&gt;x&lt;/script&gt;: 3 alerts") != std::string::npos);
    CHECK(d->html.find("hot &amp; humid") != std::string::npos);
    CHECK_FALSE(render_digest(event).has_value()); // an alert event is no digest

    auto quiet = render_digest(R"({"event":"digest","tenant":"t","digest":{"opened":0,"closed":0,"still_open":0}})");
    REQUIRE(quiet.has_value());
    CHECK(quiet->text.find("a quiet day") != std::string::npos);
}
