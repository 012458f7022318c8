// daemon/telemetry_generator and the option parsing of daemon/simulate: the
// breach and silence schedules, value ranges per kind, determinism for a
// seed, the JSON published; --url, --credentials and the fleet layout.

#include "daemon/simulate.hpp"
#include "daemon/telemetry_generator.hpp"
#include "test/temp_dir.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <string>

using namespace pulsegate::daemon;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// 2026-01-15T12:00:00Z: the wall clock of the samples (the daily cycle).
constexpr std::int64_t noon_ms = 1768478400000LL;

milliseconds at_s(double s) { return milliseconds(static_cast<std::int64_t>(s * 1000)); }

} // namespace

TEST_CASE("make_schedule: default and shortened breach periods") {
    const auto d = make_schedule();
    CHECK(d.breach_every == seconds(180));
    CHECK(d.breach_length == seconds(60));
    CHECK(d.first_breach == seconds(20));
    CHECK(d.silent_after == seconds(60));
    CHECK(d.silent_for == seconds(240));

    const auto fast = make_schedule(seconds(30), seconds(5));
    CHECK(fast.breach_every == seconds(30));
    CHECK(fast.breach_length == seconds(20));
    CHECK(fast.first_breach == milliseconds(7500));
    CHECK(fast.silent_after == seconds(5));

    // Below the minimum the period is raised to it.
    CHECK(make_schedule(seconds(5)).breach_every == min_breach_every);
}

TEST_CASE("breacher: over the threshold on schedule, below the clear value otherwise") {
    const auto sched = make_schedule(); // first at 20 s, 60 s long, every 180 s
    telemetry_generator g(device_kind::boiler, device_role::breacher, sched, 42);

    CHECK_FALSE(g.breaching(at_s(0)));
    CHECK_FALSE(g.breaching(at_s(19.9)));
    CHECK(g.breaching(at_s(21)));
    CHECK(g.breach_level(at_s(50)) == doctest::Approx(1.0));
    CHECK_FALSE(g.breaching(at_s(80.5)));
    CHECK(g.breaching(at_s(200.5)));   // the next one: 200..260 s
    CHECK(g.breach_level(at_s(230)) == doctest::Approx(1.0));
    CHECK_FALSE(g.breaching(at_s(261)));

    // Sample every second for two periods: time over the threshold in one
    // breach is longer than the demo rule's for_s (10 s) and ends within the
    // breach; outside breaches the value stays under the clear value.
    double longest_over = 0, over = 0;
    for (int s = 0; s < 360; ++s) {
        const auto t = seconds(s);
        const auto r = g.sample(t, noon_ms + s * 1000LL);
        const double temp = r.number("temperature");
        REQUIRE(std::isfinite(temp));
        if (!g.breaching(t)) CHECK_MESSAGE(temp < breach_clear, "at " << s << " s: " << temp);
        if (g.breach_level(t) == 1.0) CHECK_MESSAGE(temp > breach_threshold + 5, "at " << s << " s: " << temp);
        over = temp > breach_threshold ? over + 1 : 0;
        longest_over = std::max(longest_over, over);
        CHECK(temp < 95);
        CHECK(temp > 55);
    }
    CHECK(longest_over > 30);
    CHECK(longest_over < 60);
}

TEST_CASE("breacher with the shortest period still holds the threshold longer than for_s") {
    const auto sched = make_schedule(min_breach_every);
    telemetry_generator g(device_kind::boiler, device_role::breacher, sched, 7);
    double over = 0, longest_over = 0;
    bool first_seen = false;
    // Readings every 250 ms for 40 s.
    for (int i = 0; i < 160; ++i) {
        const auto t = milliseconds(i * 250);
        const double temp = g.sample(t, noon_ms).number("temperature");
        over = temp > breach_threshold ? over + 0.25 : 0;
        longest_over = std::max(longest_over, over);
        if (temp > breach_threshold && !first_seen) {
            first_seen = true;
            // The first breach starts at 7.5 s: a test of --demo sees its
            // alert open (after for_s = 10 s) within about 20 s.
            CHECK(t >= milliseconds(7500));
            CHECK(t <= milliseconds(11000));
        }
    }
    CHECK(first_seen);
    CHECK(longest_over > 12);
}

TEST_CASE("silent device: quiet from silent_after for silent_for, then again") {
    const auto sched = make_schedule(seconds(180), seconds(60));
    telemetry_generator g(device_kind::room, device_role::goes_silent, sched, 1);
    CHECK_FALSE(g.silent(at_s(0)));
    CHECK_FALSE(g.silent(at_s(59.9)));
    CHECK(g.silent(at_s(60)));
    CHECK(g.silent(at_s(299.9)));
    CHECK_FALSE(g.silent(at_s(300)));  // back: a new period
    CHECK_FALSE(g.silent(at_s(359)));
    CHECK(g.silent(at_s(360)));
    // Never breaches.
    CHECK_FALSE(g.breaching(at_s(30)));

    telemetry_generator steady(device_kind::room, device_role::steady, sched, 1);
    CHECK_FALSE(steady.silent(at_s(100)));
    CHECK_FALSE(steady.breaching(at_s(30)));
    telemetry_generator breacher(device_kind::boiler, device_role::breacher, sched, 1);
    CHECK_FALSE(breacher.silent(at_s(100)));
}

TEST_CASE("every kind stays in its band and below the clear value") {
    const auto sched = make_schedule();
    struct band {
        device_kind kind;
        const char* metric;
        double lo, hi;
    };
    const band bands[] = {
        {device_kind::boiler, "temperature", 58, 74},   {device_kind::boiler, "pressure_bar", 1.3, 1.9},
        {device_kind::boiler, "power_w", 1000, 4000},   {device_kind::room, "temperature", 18, 25},
        {device_kind::room, "humidity", 25, 70},        {device_kind::room, "co2_ppm", 400, 1000},
        {device_kind::freezer, "temperature", -21, -15}, {device_kind::freezer, "power_w", 0, 500},
        {device_kind::meter, "power_w", 500, 8000},     {device_kind::meter, "voltage", 225, 235},
    };
    for (const auto& b : bands) {
        CAPTURE(to_string(b.kind));
        CAPTURE(b.metric);
        telemetry_generator g(b.kind, device_role::steady, sched, 99, 3);
        // A whole day, a reading every 97 s (wall clock and elapsed move together).
        for (std::int64_t s = 0; s < 24 * 3600; s += 97) {
            const auto r = g.sample(seconds(s), noon_ms + s * 1000);
            const double v = r.number(b.metric);
            REQUIRE(std::isfinite(v));
            CHECK(v >= b.lo);
            CHECK(v <= b.hi);
            if (std::string_view(b.metric) == "temperature") CHECK(v < breach_clear);
        }
    }
}

TEST_CASE("same seed and index, same readings; another index, other readings") {
    const auto sched = make_schedule();
    telemetry_generator a(device_kind::room, device_role::steady, sched, 1234, 2);
    telemetry_generator b(device_kind::room, device_role::steady, sched, 1234, 2);
    telemetry_generator c(device_kind::room, device_role::steady, sched, 1234, 3);
    bool differs = false;
    for (int s = 0; s < 50; ++s) {
        const auto ra = a.sample(seconds(s), noon_ms + s * 1000LL).to_json();
        CHECK(ra == b.sample(seconds(s), noon_ms + s * 1000LL).to_json());
        differs = differs || ra != c.sample(seconds(s), noon_ms + s * 1000LL).to_json();
    }
    CHECK(differs);
}

TEST_CASE("to_json: a flat object of numbers and booleans") {
    telemetry_generator g(device_kind::freezer, device_role::steady, make_schedule(), 5);
    const auto text = g.sample(seconds(10), noon_ms).to_json();
    auto v = boost::json::parse(text);
    REQUIRE(v.is_object());
    const auto& o = v.as_object();
    CHECK(o.size() == 3);
    CHECK(o.at("temperature").is_number());
    CHECK(o.at("power_w").is_number());
    CHECK(o.at("door_open").is_bool());

    reading r;
    r.metrics = {{"temperature", 21.456}, {"ok", true}};
    CHECK(r.to_json() == R"({"temperature":21.46,"ok":true})");
    CHECK(std::isnan(r.number("ok")));
    CHECK(std::isnan(r.number("missing")));
}

TEST_CASE("paho_uri: mqtt:// and tcp:// with a default port") {
    CHECK(*paho_uri("mqtt://127.0.0.1:1884") == "tcp://127.0.0.1:1884");
    CHECK(*paho_uri("mqtt://broker.local") == "tcp://broker.local:1883");
    CHECK(*paho_uri("tcp://localhost:1883/") == "tcp://localhost:1883");
    CHECK(*paho_uri("mqtt://[::1]:1885") == "tcp://[::1]:1885");
    CHECK(*paho_uri("mqtt://[::1]") == "tcp://[::1]:1883");
    for (const char* bad : {"127.0.0.1:1883", "mqtts://h:8883", "ws://h/mqtt", "mqtt://", "mqtt://h:0",
                            "mqtt://h:70000", "mqtt://h:12x", "mqtt://h/path", "mqtt://[::1"}) {
        CAPTURE(bad);
        CHECK_FALSE(paho_uri(bad).has_value());
    }
}

TEST_CASE("read_credentials: device,secret lines, comments and errors") {
    pulsegate::test::temp_dir dir;
    const auto file = dir.path / "creds.csv";
    {
        std::ofstream f(file);
        f << "# device,secret\n\n sensor-1 , pgd_aaaa\r\nsensor-2,pgd_bbbb\n";
    }
    auto c = read_credentials(file);
    REQUIRE(c.has_value());
    REQUIRE(c->size() == 2);
    CHECK((*c)[0] == std::pair<std::string, std::string>{"sensor-1", "pgd_aaaa"});
    CHECK((*c)[1] == std::pair<std::string, std::string>{"sensor-2", "pgd_bbbb"});

    {
        std::ofstream f(file);
        f << "sensor-1,pgd_aaaa\nno-secret-here\n";
    }
    auto bad = read_credentials(file);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find(":2:") != std::string::npos);
    CHECK(bad.error().message.find("pgd_aaaa") == std::string::npos); // never a secret

    {
        std::ofstream f(file);
        f << "# nothing\n";
    }
    CHECK_FALSE(read_credentials(file).has_value());
    CHECK_FALSE(read_credentials(dir.path / "missing.csv").has_value());
}

TEST_CASE("make_fleet_options: ids, roles and credentials") {
    simulate_options o;
    o.url = "mqtt://127.0.0.1:1999";
    o.devices = 4;
    o.seed = 9;
    auto f = make_fleet_options(o);
    REQUIRE(f.has_value());
    CHECK(f->server_uri == "tcp://127.0.0.1:1999");
    REQUIRE(f->devices.size() == 4);
    CHECK(f->devices[0].id == "sim-001");
    CHECK(f->devices[3].id == "sim-004");
    CHECK(f->devices[0].role == device_role::breacher);
    CHECK(f->devices[0].kind == device_kind::boiler);
    CHECK(f->devices[1].role == device_role::steady);
    CHECK(f->devices[3].role == device_role::goes_silent);
    CHECK(f->devices[0].username.empty()); // anonymous
    CHECK(f->seed == 9);

    o.incidents = false;
    f = make_fleet_options(o);
    REQUIRE(f.has_value());
    for (const auto& d : f->devices) CHECK(d.role == device_role::steady);

    pulsegate::test::temp_dir dir;
    const auto file = dir.path / "creds";
    {
        std::ofstream out(file);
        out << "a1,pgd_one\nb2,pgd_two\n";
    }
    o.credentials = file;
    o.tenant = "acme";
    o.devices = 2;
    f = make_fleet_options(o);
    REQUIRE(f.has_value());
    CHECK(f->devices[0].id == "a1");
    CHECK(f->devices[0].username == "acme/a1");
    CHECK(f->devices[0].password == "pgd_one");
    CHECK(f->devices[1].username == "acme/b2");

    o.username_format = "{device}@{tenant}";
    f = make_fleet_options(o);
    REQUIRE(f.has_value());
    CHECK(f->devices[1].username == "b2@acme");

    o.devices = 3; // more than the file lists
    CHECK_FALSE(make_fleet_options(o).has_value());
    o.devices = 2;
    o.rate = 0;
    CHECK_FALSE(make_fleet_options(o).has_value());
    o.rate = 1;
    o.url = "http://x";
    CHECK_FALSE(make_fleet_options(o).has_value());
}
