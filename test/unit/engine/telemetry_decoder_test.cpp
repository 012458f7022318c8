// Telemetry payloads (DESIGN.md "MQTT contract"): the accepted forms, one
// case per rejection reason, reuse of one decoder across payloads, and no
// allocation in steady state.

#include "engine/telemetry_decoder.hpp"

#include <doctest/doctest.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Counts allocations, to check that decode() makes none.
namespace {
std::size_t allocations = 0;
}

void* operator new(std::size_t n) {
    ++allocations;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace std::string_view_literals;
using pulsegate::engine::decoded_telemetry;
using pulsegate::engine::telemetry_decoder;
using pulsegate::engine::telemetry_error;
using pulsegate::engine::telemetry_limits;

namespace {

struct metric {
    std::string_view name;
    double value;
};

// A payload and what decoding it gives: an error and its detail, or a
// timestamp and metrics.
struct case_ {
    std::string_view payload;
    std::optional<telemetry_error> error;
    std::string_view detail;
    std::optional<std::int64_t> ts;
    std::vector<metric> metrics;
};

std::string number(double v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v); // shortest round-trip form
    return std::string(buf, r.ptr);
}

std::string describe(const std::optional<std::int64_t>& ts, auto const& metrics) {
    std::string s = "ok ts=" + (ts ? std::to_string(*ts) : std::string("none"));
    for (const auto& m : metrics) s += " " + std::string(m.name) + "=" + number(m.value);
    return s;
}

std::string describe(telemetry_error e, std::string_view detail) {
    return "error " + std::to_string(static_cast<int>(e)) + " (" + std::string(to_string(e)) + ") [" +
           std::string(detail) + "]";
}

std::string describe(const case_& c) {
    return c.error ? describe(*c.error, c.detail) : describe(c.ts, c.metrics);
}

std::string describe(telemetry_decoder& d, std::string_view payload) {
    auto r = d.decode(payload);
    if (r) return describe(r->ts_ms, r->metrics);
    REQUIRE(r.error().category() == pulsegate::engine::telemetry_category());
    return describe(static_cast<telemetry_error>(r.error().value()), d.error_detail());
}

// The limits of the table: small enough to reach every bound.
const telemetry_limits table_limits{.max_metrics = 4, .max_metric_name = 12, .max_payload = 200};

const std::string too_large_payload = R"({"a": 1, "pad": ")" + std::string(200, 'x') + R"("})";

case_ ok(std::string_view payload, std::vector<metric> metrics, std::optional<std::int64_t> ts = std::nullopt) {
    return {payload, std::nullopt, {}, ts, std::move(metrics)};
}
case_ fails(std::string_view payload, telemetry_error error, std::string_view detail = {}) {
    return {payload, error, detail, std::nullopt, {}};
}

using e = telemetry_error;

const case_ cases[] = {
    // Flat form.
    ok(R"({"temp_c": 21.5, "door_open": false})", {{"temp_c", 21.5}, {"door_open", 0}}),
    ok(R"({"ts": 1700000000000, "temp_c": 21.5})", {{"temp_c", 21.5}}, 1700000000000),
    ok(R"({"temp_c": 21.5, "ts": 1700000000000})", {{"temp_c", 21.5}}, 1700000000000),
    ok(R"({"a": true, "b": false})", {{"a", 1}, {"b", 0}}),
    ok(R"({"n": 42, "m": -7, "z": 0, "nz": -0})", {{"n", 42}, {"m", -7}, {"z", 0}, {"nz", 0}}),
    ok(R"({"e": 1.5e3, "f": -2E-2, "g": 1e308, "h": 5e-324})", {{"e", 1500}, {"f", -0.02}, {"g", 1e308}, {"h", 5e-324}}),
    ok(R"({"u": 18446744073709551615})", {{"u", 18446744073709551615.0}}),
    ok(R"({"big": 123456789012345678901234567890})", {{"big", 1.2345678901234568e29}}), // beyond uint64
    ok(" \r\n\t{ \"a\" : 1 }\n \t", {{"a", 1}}),
    ok(R"({"\u0074emp": 1, "a\u002Db": 2})", {{"temp", 1}, {"a-b", 2}}),
    ok(R"j({"q\"": 1, "a\\b": 2, "~!@$%^&*()": 3, "x[0].y:z_-": 4})j",
       {{"q\"", 1}, {"a\\b", 2}, {"~!@$%^&*()", 3}, {"x[0].y:z_-", 4}}),
    ok(R"({"metrics": 5})", {{"metrics", 5}}), // not an object: a flat metric
    ok(R"({"ts": 0, "a": 1})", {{"a", 1}}, 0),
    ok(R"({"ts": 253402300799999, "a": 1})", {{"a", 1}}, 253402300799999), // 9999-12-31T23:59:59.999Z
    ok(R"({"a":1,"b":2,"c":3,"d":4})", {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}}), // max_metrics
    ok(R"({"abcdefghijkl": 1})", {{"abcdefghijkl", 1}}),                        // max_metric_name

    // Wrapped form.
    ok(R"({"ts": 1700000000000, "metrics": {"temp_c": 21.5, "on": true}})", {{"temp_c", 21.5}, {"on", 1}},
       1700000000000),
    ok(R"({"metrics": {"temp_c": 21.5}, "ts": 5})", {{"temp_c", 21.5}}, 5),
    ok(R"({"metrics": {"a": 1}})", {{"a", 1}}),
    ok(R"({"metrics": {"ts": 5, "metrics": 6}})", {{"ts", 5}, {"metrics", 6}}), // plain names inside
    ok(R"({"metrics": {"a":1,"b":2,"c":3,"d":4}})", {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}}),

    // Size.
    fails(too_large_payload, e::payload_too_large),

    // Not JSON.
    fails("", e::not_json, "JSON ends too early at offset 0"),
    fails("NaN", e::not_json, "invalid JSON or UTF-8 at offset 0"),
    fails(R"({"a": NaN})", e::not_json, "invalid JSON or UTF-8 at offset 6"),
    fails(R"({"a": Infinity})", e::not_json, "invalid JSON or UTF-8 at offset 6"),
    fails(R"({"a": 1,})", e::not_json, "invalid JSON or UTF-8 at offset 8"),       // trailing comma
    fails(R"({"a": 1} x)", e::not_json, "data after the JSON value at offset 9"),  // trailing garbage
    fails(R"({"a": 1}{"b": 2})", e::not_json, "data after the JSON value at offset 8"),
    fails(R"({"a": 1 /* c */})", e::not_json, "invalid JSON or UTF-8 at offset 8"), // comment
    fails(R"({'a': 1})", e::not_json, "invalid JSON or UTF-8 at offset 1"),
    fails(R"({"a": 01})", e::not_json, "invalid JSON or UTF-8 at offset 7"),
    fails(R"({"a": 1)", e::not_json, "JSON ends too early at offset 7"),
    fails(R"({"a": 1e99999999999999999999})", e::not_json, "number exponent too large at offset 17"),
    fails("{\"a\xff\": 1}", e::not_json, "invalid JSON or UTF-8 at offset 3"),          // invalid UTF-8
    fails("{\"a\": 1, \"\xc3\": 2}", e::not_json, "invalid JSON or UTF-8 at offset 10"), // cut sequence
    fails("{\"a\tb\": 1}", e::not_json, "invalid JSON or UTF-8 at offset 3"),           // raw control char

    // Not an object.
    fails("[1, 2]", e::not_an_object),
    fails("42", e::not_an_object),
    fails("-1.5", e::not_an_object),
    fails(R"("x")", e::not_an_object),
    fails("null", e::not_an_object),
    fails("true", e::not_an_object),

    // Metric values.
    fails(R"({"a": "1"})", e::value_not_number, "a"),
    fails(R"({"ok": 1, "bad": null})", e::value_not_number, "bad"),
    fails(R"({"a": [1]})", e::value_not_number, "a"),
    fails(R"({"a": {"b": 1}})", e::value_not_number, "a"), // nested object, flat form
    fails(R"({"metrics": {"a": {"b": 1}}})", e::value_not_number, "a"),
    fails(R"({"metrics": {"a": "x"}})", e::value_not_number, "a"),
    fails(R"({"metrics": "x"})", e::value_not_number, "metrics"),
    fails(R"({"metrics": []})", e::value_not_number, "metrics"),
    fails(R"({"a": 1e999})", e::value_not_finite, "a"),
    fails(R"({"metrics": {"b": -1e999}})", e::value_not_finite, "b"),

    // Metric count.
    fails(R"({"a":1,"b":2,"c":3,"d":4,"e":5})", e::too_many_metrics, "e"),
    fails(R"({"metrics": {"a":1,"b":2,"c":3,"d":4,"e":5}})", e::too_many_metrics, "e"),

    // Metric names.
    fails(R"({"": 1})", e::name_empty),
    fails(R"({"metrics": {"": true}})", e::name_empty),
    fails(R"({"abcdefghijklm": 1})", e::name_too_long, "abcdefghijkl..."),
    fails(R"({"metrics": {"abcdefghijklm": 1}})", e::name_too_long, "abcdefghijkl..."),
    fails(R"({"\u0061bcdefghijklm": 1})", e::name_too_long, "abcdefghijkl..."),
    fails(R"({"a b": 1})", e::name_invalid_character, "a b"),
    fails(R"({"a/b": 1})", e::name_invalid_character, "a/b"),
    fails(R"({"a+b": 1})", e::name_invalid_character, "a+b"),
    fails(R"({"a#b": 1})", e::name_invalid_character, "a#b"),
    fails(R"({"a\tb": 1})", e::name_invalid_character, "a\\x09b"),
    fails(R"({"\u0000": 1})", e::name_invalid_character, "\\x00"),
    fails(R"({"\u007f": 1})", e::name_invalid_character, "\\x7f"),
    fails(R"({"caf\u00e9": 1})", e::name_invalid_character, "caf\\xc3\\xa9"),
    fails("{\"caf\xc3\xa9\": 1}", e::name_invalid_character, "caf\\xc3\\xa9"),
    fails(R"({"metrics": {"x/y": 1}})", e::name_invalid_character, "x/y"),

    // Duplicates (compared after unescaping).
    fails(R"({"a": 1, "a": 2})", e::duplicate_name, "a"),
    fails(R"({"a": 1, "\u0061": 2})", e::duplicate_name, "a"),
    fails(R"({"metrics": {"a": 1, "b": 2, "a": 3}})", e::duplicate_name, "a"),
    fails(R"({"ts": 1, "ts": 2, "a": 1})", e::duplicate_name, "ts"),
    fails(R"({"metrics": {"a": 1}, "metrics": {"b": 1}})", e::duplicate_name, "metrics"),
    fails(R"({"metrics": 1, "metrics": {"b": 1}})", e::duplicate_name, "metrics"),

    // Timestamps.
    fails(R"({"ts": 1.5, "a": 1})", e::timestamp_not_integer, "ts"),
    fails(R"({"ts": 1.7e12, "a": 1})", e::timestamp_not_integer, "ts"),
    fails(R"({"ts": 1700000000000.0, "a": 1})", e::timestamp_not_integer, "ts"),
    fails(R"({"ts": "1700000000000", "a": 1})", e::timestamp_not_integer, "ts"),
    fails(R"({"ts": null, "a": 1})", e::timestamp_not_integer, "ts"),
    fails(R"({"ts": true, "a": 1})", e::timestamp_not_integer, "ts"),
    fails(R"({"ts": [1], "a": 1})", e::timestamp_not_integer, "ts"),
    fails(R"({"ts": {}, "a": 1})", e::timestamp_not_integer, "ts"),
    fails(R"({"ts": -1, "a": 1})", e::timestamp_negative, "ts"),
    fails(R"({"ts": -5, "metrics": {"a": 1}})", e::timestamp_negative, "ts"),
    fails(R"({"ts": 253402300800000, "a": 1})", e::timestamp_out_of_range, "ts"),
    fails(R"({"ts": 1700000000000000, "a": 1})", e::timestamp_out_of_range, "ts"), // microseconds
    fails(R"({"ts": 18446744073709551615, "a": 1})", e::timestamp_out_of_range, "ts"),

    // Wrapped form with other members.
    fails(R"({"metrics": {"a": 1}, "b": 2})", e::unexpected_member, "b"),
    fails(R"({"b": 2, "metrics": {"a": 1}})", e::unexpected_member, "b"),
    fails(R"({"ts": 1, "metrics": {"a": 1}, "extra": "x"})", e::unexpected_member, "extra"),
    fails(R"({"metrics": {"a": 1}, "averyveryverylongname": 1})", e::unexpected_member, "averyveryver..."),

    // No metrics.
    fails("{}", e::no_metrics),
    fails(R"({"ts": 1700000000000})", e::no_metrics),
    fails(R"({"metrics": {}})", e::no_metrics),
    fails(R"({"ts": 1, "metrics": {}})", e::no_metrics),
};

} // namespace

TEST_CASE("decode: the table of payloads") {
    telemetry_decoder d(table_limits);
    for (const auto& c : cases) {
        CAPTURE(c.payload);
        CHECK(describe(d, c.payload) == describe(c));
    }
    // The same answers from a fresh decoder per payload (no state leaks
    // between decodes).
    for (const auto& c : cases) {
        CAPTURE(c.payload);
        telemetry_decoder fresh(table_limits);
        CHECK(describe(fresh, c.payload) == describe(c));
    }
}

TEST_CASE("decode: the error code and its category") {
    telemetry_decoder d(table_limits);
    auto r = d.decode(R"({"ok": 1, "bad": "x"})");
    REQUIRE(r.has_error());
    CHECK(r.error() == telemetry_error::value_not_number);
    CHECK(std::string_view(r.error().category().name()) == "telemetry");
    CHECK(r.error().message() == "a metric value is not a number or boolean");
    CHECK(d.error_detail() == "bad");

    // A success clears the detail.
    REQUIRE(d.decode(R"({"ok": 1})").has_value());
    CHECK(d.error_detail().empty());

    const boost::system::error_code ec = telemetry_error::no_metrics; // is_error_code_enum
    CHECK(ec == make_error_code(telemetry_error::no_metrics));
    for (int v = static_cast<int>(telemetry_error::payload_too_large); v <= static_cast<int>(telemetry_error::no_metrics);
         ++v) {
        CAPTURE(v);
        const auto m = make_error_code(static_cast<telemetry_error>(v)).message();
        CHECK(!m.empty());
        CHECK(m != "unknown telemetry error");
    }
}

TEST_CASE("decode: limits at their bounds") {
    SUBCASE("payload exactly at max_payload is decoded") {
        telemetry_decoder d(telemetry_limits{.max_payload = 12});
        CHECK(describe(d, R"({"ab": 1.25})") == "ok ts=none ab=1.25");
        CHECK(describe(d, R"({"ab": 1.255})") == describe(telemetry_error::payload_too_large, ""));
    }
    SUBCASE("names shorter than \"metrics\" do not block the wrapped form") {
        telemetry_decoder d(telemetry_limits{.max_metrics = 2, .max_metric_name = 2});
        CHECK(describe(d, R"({"ts": 5, "metrics": {"ab": 1}})") == "ok ts=5 ab=1");
        CHECK(describe(d, R"({"ab": 1, "ts": 5})") == "ok ts=5 ab=1");
        CHECK(describe(d, R"({"abc": 1})") == describe(telemetry_error::name_too_long, "abc"));
        CHECK(describe(d, R"({"metrics": {"abc": 1}})") == describe(telemetry_error::name_too_long, "abc"));
        CHECK(describe(d, R"({"metrics": {"a": 1}, "tss": 1})") ==
              describe(telemetry_error::unexpected_member, "tss"));
    }
    SUBCASE("a long escaped name arrives in parts and is cut") {
        // Escapes make Boost.JSON hand the key over in pieces; the cut happens
        // at the limit, whatever the piece boundaries.
        std::string payload = "{\"";
        for (int i = 0; i < 5000; ++i) payload += "\\u0061";
        payload += "\": 1}";
        telemetry_decoder d(telemetry_limits{.max_metric_name = 10, .max_payload = 1 << 16});
        CHECK(describe(d, payload) == describe(telemetry_error::name_too_long, "aaaaaaaaaa..."));
        // And the decoder still works afterwards.
        CHECK(describe(d, R"({"aaaaaaaaaa": 2})") == "ok ts=none aaaaaaaaaa=2");
    }
    SUBCASE("a long detail is cut") {
        telemetry_decoder d(telemetry_limits{.max_metric_name = 1000, .max_payload = 1 << 16});
        const std::string name(500, 'z');
        REQUIRE(d.decode("{\"" + name + "\": \"x\"}").has_error());
        CHECK(d.error_detail().size() < 200);
        CHECK(d.error_detail().substr(0, 10) == "zzzzzzzzzz");
        CHECK(d.error_detail().substr(d.error_detail().size() - 3) == "...");
    }
}

TEST_CASE("decode: one decoder reused across many payloads") {
    telemetry_decoder d; // default limits
    std::vector<std::string> payloads;
    for (int i = 0; i < 500; ++i) {
        std::string p = "{\"ts\": " + std::to_string(1700000000000 + i) + ", \"metrics\": {";
        const int n = 1 + i % 64;
        for (int k = 0; k < n; ++k) {
            if (k) p += ", ";
            p += "\"m" + std::to_string(i) + "_" + std::to_string(k) + "\": " + std::to_string(i * 100 + k);
        }
        p += "}}";
        payloads.push_back(std::move(p));
        // Failures in between must not disturb what follows.
        payloads.push_back(i % 2 ? R"({"a": "x"})" : R"({"a": 1,)");
        payloads.push_back(R"({"x": 1, "y": true})");
    }
    for (const auto& p : payloads) (void)d.decode(p);

    std::string last = "{";
    for (int k = 0; k < 64; ++k) {
        if (k) last += ",";
        last += "\"last_" + std::to_string(k) + "\":" + std::to_string(k) + ".5";
    }
    last += ",\"ts\":42}";
    auto r = d.decode(last);
    // Views must not depend on the payload's buffer.
    std::fill(last.begin(), last.end(), '#');
    REQUIRE(r.has_value());
    CHECK(r->ts_ms == 42);
    REQUIRE(r->metrics.size() == 64);
    for (int k = 0; k < 64; ++k) {
        CAPTURE(k);
        CHECK(r->metrics[k].name == "last_" + std::to_string(k));
        CHECK(r->metrics[k].value == k + 0.5);
    }
}

TEST_CASE("decode: allocates nothing in steady state") {
    const std::size_t at_start = allocations;
    telemetry_decoder d(table_limits);
    REQUIRE(allocations > at_start); // the counter sees the decoder's own buffers
    std::vector<std::string_view> payloads;
    for (const auto& c : cases) payloads.push_back(c.payload);
    std::size_t total = 0;
    const std::size_t before = allocations;
    for (int round = 0; round < 3; ++round) {
        for (auto p : payloads) {
            auto r = d.decode(p);
            total += r ? r->metrics.size() : d.error_detail().size();
        }
    }
    const std::size_t made = allocations - before;
    CHECK(total > 0);
    CHECK(made == 0);
}
