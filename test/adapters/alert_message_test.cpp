#include "adapters/alert_message.hpp"

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
