// The metrics registry (metrics.hpp) and its text exposition format 0.0.4.

#include "webui/metrics.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace pulsegate::webui;

namespace {

// Every line of `text` is a comment (# HELP / # TYPE) or a sample
// `name{labels} value` with a valid name and a value that parses.
void check_exposition(const std::string& text) {
    REQUIRE(!text.empty());
    CHECK(text.back() == '\n');
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        CAPTURE(line);
        if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) continue;
        REQUIRE(!line.empty());
        REQUIRE(line[0] != '#');
        const auto space = line.rfind(' ');
        REQUIRE(space != std::string::npos);
        const auto value = line.substr(space + 1);
        if (value != "+Inf" && value != "-Inf" && value != "NaN") {
            std::size_t used = 0;
            (void)std::stod(value, &used);
            CHECK(used == value.size());
        }
        const auto series = line.substr(0, space);
        const auto brace = series.find('{');
        const auto name = series.substr(0, brace);
        REQUIRE(!name.empty());
        for (char c : name) CHECK((std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'));
        if (brace != std::string::npos) CHECK(series.back() == '}');
    }
}

} // namespace

TEST_CASE("counters and gauges render with HELP, TYPE and labels") {
    metrics m;
    auto& c = m.add_counter("test_requests_total", "Requests", {"route", "status"});
    c.with({"/a", "200"}).inc();
    c.with({"/a", "200"}).inc(2);
    c.with({"/b", "404"}).inc();
    m.add_gauge("test_temperature", "Degrees").with({}).set(-1.5);

    const auto text = m.render();
    check_exposition(text);
    CHECK(text == "# HELP test_requests_total Requests\n"
                  "# TYPE test_requests_total counter\n"
                  "test_requests_total{route=\"/a\",status=\"200\"} 3\n"
                  "test_requests_total{route=\"/b\",status=\"404\"} 1\n"
                  "# HELP test_temperature Degrees\n"
                  "# TYPE test_temperature gauge\n"
                  "test_temperature -1.5\n");
}

TEST_CASE("label values and help are escaped") {
    metrics m;
    m.add_counter("test_total", "a \\ b\nc", {"v"}).with({"q\"\\\n"}).inc();
    const auto text = m.render();
    CHECK(text.find("# HELP test_total a \\\\ b\\nc\n") != std::string::npos);
    CHECK(text.find("test_total{v=\"q\\\"\\\\\\n\"} 1\n") != std::string::npos);
    check_exposition(text);
}

TEST_CASE("histograms render cumulative buckets, sum and count") {
    metrics m;
    auto& h = m.add_histogram("test_seconds", "Latency", {0.25, 1}, {"op"}).with({"read"});
    h.observe(0.125);
    h.observe(0.25); // upper bounds are inclusive
    h.observe(0.5);
    h.observe(7);
    const auto text = m.render();
    check_exposition(text);
    CHECK(text == "# HELP test_seconds Latency\n"
                  "# TYPE test_seconds histogram\n"
                  "test_seconds_bucket{op=\"read\",le=\"0.25\"} 2\n"
                  "test_seconds_bucket{op=\"read\",le=\"1\"} 3\n"
                  "test_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"
                  "test_seconds_sum{op=\"read\"} 7.875\n"
                  "test_seconds_count{op=\"read\"} 4\n");
}

TEST_CASE("callback gauges are read at scrape time and removed with their registration") {
    metrics m;
    double depth = 3;
    {
        auto a = m.add_callback_gauge("test_queue_depth", "Depth", [&] { return depth; }, {{"queue", "a"}});
        auto b = m.add_callback_gauge("test_queue_depth", "Depth", [] { return 1.0; }, {{"queue", "b"}});
        CHECK(m.render().find("test_queue_depth{queue=\"a\"} 3\n") != std::string::npos);
        depth = 4;
        const auto text = m.render();
        CHECK(text.find("test_queue_depth{queue=\"a\"} 4\n") != std::string::npos);
        CHECK(text.find("test_queue_depth{queue=\"b\"} 1\n") != std::string::npos);
        check_exposition(text);
        CHECK_THROWS_AS((void)m.add_callback_gauge("test_queue_depth", "Depth", [] { return 0.0; }, {{"queue", "a"}}),
                        std::invalid_argument);
        b.reset();
        CHECK(m.render().find("queue=\"b\"") == std::string::npos);
    }
    CHECK(m.render().empty());
}

TEST_CASE("a callback that throws shows NaN") {
    metrics m;
    auto r = m.add_callback_counter("test_broken_total", "Broken", []() -> double { throw std::runtime_error("x"); });
    const auto text = m.render();
    CHECK(text.find("# TYPE test_broken_total counter\n") != std::string::npos);
    CHECK(text.find("test_broken_total NaN\n") != std::string::npos);
}

TEST_CASE("distinct label value lists are distinct series, whatever bytes they hold") {
    metrics m;
    auto& fam = m.add_counter("test_total", "Help", {"a", "b"});
    using sv = std::string_view;
    auto& x = fam.with({sv("x\0", 2), sv("")});
    auto& y = fam.with({sv("x"), sv("\0", 1)});
    auto& z = fam.with({sv("1:x"), sv("")});
    auto& w = fam.with({sv("1"), sv("x")});
    CHECK(&x != &y);
    CHECK(&z != &w);
    CHECK(&fam.with({sv("1"), sv("x")}) == &w);
}

TEST_CASE("special values") {
    CHECK(format_metric_value(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(format_metric_value(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(format_metric_value(std::nan("")) == "NaN");
    CHECK(format_metric_value(0) == "0");
    CHECK(format_metric_value(1e21) == "1e+21");
    CHECK(format_metric_value(0.001) == "0.001");
}

TEST_CASE("registration checks names and clashes; the same family twice is the same family") {
    metrics m;
    auto& a = m.add_counter("test_total", "Help", {"x"});
    CHECK(&m.add_counter("test_total", "Help", {"x"}) == &a);
    CHECK_THROWS_AS(m.add_counter("test_total", "Other help", {"x"}), std::invalid_argument);
    CHECK_THROWS_AS(m.add_gauge("test_total", "Help", {"x"}), std::invalid_argument);
    CHECK_THROWS_AS(m.add_counter("test_total", "Help", {"y"}), std::invalid_argument);
    CHECK_THROWS_AS(m.add_counter("1bad", "Help"), std::invalid_argument);
    CHECK_THROWS_AS(m.add_counter("bad-name", "Help"), std::invalid_argument);
    CHECK_THROWS_AS(m.add_counter("ok_total", "Help", {"__x"}), std::invalid_argument);
    CHECK_THROWS_AS(m.add_counter("ok_total", "Help", {"a", "a"}), std::invalid_argument);
    CHECK_THROWS_AS(m.add_histogram("h", "Help", {1, 1}), std::invalid_argument);
    CHECK_THROWS_AS(m.add_histogram("h", "Help", {}), std::invalid_argument);
    CHECK_THROWS_AS(m.add_histogram("h", "Help", {1}, {"le"}), std::invalid_argument);
    CHECK_THROWS_AS((void)m.add_callback_gauge("test_total", "Help", [] { return 0.0; }), std::invalid_argument);
}

TEST_CASE("increments from many threads all count") {
    metrics m;
    auto& fam = m.add_counter("test_total", "Help", {"t"});
    auto& h = m.add_histogram("test_h", "Help", {1}).with({});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10000; ++i) {
                fam.with({t % 2 == 0 ? "even" : "odd"}).inc();
                h.observe(0.5);
                if (i % 1000 == 0) (void)m.render();
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(fam.with({"even"}).value() == 20000);
    CHECK(fam.with({"odd"}).value() == 20000);
    CHECK(h.read().cumulative.back() == 40000);
}
