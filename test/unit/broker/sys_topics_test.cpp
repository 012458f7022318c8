// $SYS statistics: Mosquitto's load-average arithmetic, topic names and
// payload formats.

#include "broker/sys_topics.hpp"
#include "broker/topic.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

using namespace pulsegate::broker;

namespace {

std::map<std::string, std::string> render(const sys_stats& s, const sys_loads& l) {
    std::map<std::string, std::string> out;
    render_sys_topics(s, l, [&](std::string_view t, std::string_view p) {
        CHECK(out.emplace(std::string(t), std::string(p)).second); // each topic once
    });
    return out;
}

} // namespace

TEST_CASE("load_average: one update from zero") {
    load_average l;
    CHECK(l.value_1min() == 0);
    // 120 events in 60 s = 120/min. value = 120 + e^(-60/T) (0 - 120).
    l.update(120, 60);
    CHECK(l.value_1min() == doctest::Approx(120 * (1 - std::exp(-1.0))));        // 75.854...
    CHECK(l.value_1min() == doctest::Approx(75.8545).epsilon(1e-5));
    CHECK(l.value_5min() == doctest::Approx(120 * (1 - std::exp(-0.2))));        // 21.752...
    CHECK(l.value_5min() == doctest::Approx(21.7524).epsilon(1e-5));
    CHECK(l.value_15min() == doctest::Approx(120 * (1 - std::exp(-1.0 / 15)))); // 7.7389...
    CHECK(l.value_15min() == doctest::Approx(7.7389).epsilon(1e-4));
}

TEST_CASE("load_average: rate is per minute whatever the interval, then decays") {
    load_average l;
    // 10 events in 10 s = 60/min; 1-min factor e^(-1/6) = 0.846482.
    l.update(10, 10);
    const double v1 = 60 * (1 - std::exp(-10.0 / 60));
    CHECK(l.value_1min() == doctest::Approx(v1));
    CHECK(l.value_1min() == doctest::Approx(9.2111).epsilon(1e-4));
    // Nothing for 10 s: value * e^(-1/6).
    l.update(0, 10);
    CHECK(l.value_1min() == doctest::Approx(v1 * std::exp(-10.0 / 60)));
    CHECK(l.value_1min() == doctest::Approx(7.7970).epsilon(1e-4));
    // Zero or negative intervals are ignored.
    const double before = l.value_5min();
    l.update(1000, 0);
    l.update(1000, -5);
    CHECK(l.value_5min() == before);
}

TEST_CASE("load_average: a steady rate converges to it") {
    load_average l;
    for (int i = 0; i < 2000; ++i) l.update(50, 10); // 300/min
    CHECK(l.value_1min() == doctest::Approx(300));
    CHECK(l.value_5min() == doctest::Approx(300));
    CHECK(l.value_15min() == doctest::Approx(300));
}

TEST_CASE("sys_loads: first update is the baseline, then deltas") {
    sys_stats s;
    s.messages_received = 1000; // counted before the first render
    s.bytes_sent = 500;
    sys_loads l;
    l.update(s, 10);
    CHECK(l.load(load_kind::messages_received).value_1min() == 0);
    CHECK(l.load(load_kind::bytes_sent).value_1min() == 0);

    s.messages_received += 60; // 60 in 60 s -> 60/min
    s.connections += 6;
    l.update(s, 60);
    CHECK(l.load(load_kind::messages_received).value_1min() == doctest::Approx(60 * (1 - std::exp(-1.0))));
    CHECK(l.load(load_kind::connections).value_5min() == doctest::Approx(6 * (1 - std::exp(-0.2))));
    CHECK(l.load(load_kind::bytes_sent).value_1min() == 0);

    // A counter going backwards (reset) counts as no events, not 2^64.
    s.messages_sent = 0;
    s.sockets = 0;
    l.update(s, 60);
    CHECK(l.load(load_kind::messages_sent).value_15min() == 0);
}

TEST_CASE("sys_loads: clients/maximum is the highest total seen") {
    sys_stats s;
    sys_loads l;
    s.clients_connected = 3;
    s.clients_disconnected = 2;
    l.update(s, 10);
    CHECK(l.clients_maximum() == 5);
    s.clients_connected = 1;
    l.update(s, 10);
    CHECK(l.clients_maximum() == 5);
    s.clients_disconnected = 9;
    l.update(s, 10);
    CHECK(l.clients_maximum() == 10);
}

TEST_CASE("render_sys_topics: names and payload formats") {
    sys_stats s;
    s.version = "0.1.0";
    s.uptime_seconds = 3725;
    s.clients_connected = 4;
    s.clients_disconnected = 3;
    s.clients_expired = 2;
    s.subscriptions = 11;
    s.shared_subscriptions = 1;
    s.retained_messages = 5;
    s.stored_messages = 9;
    s.stored_bytes = 1234;
    s.messages_received = 100;
    s.messages_sent = 200;
    s.publish_messages_received = 40;
    s.publish_messages_sent = 80;
    s.publish_messages_dropped = 1;
    s.publish_bytes_received = 4000;
    s.publish_bytes_sent = 8000;
    s.bytes_received = 18446744073709551615u;
    s.bytes_sent = 9000;
    sys_loads l;
    l.update(s, 10);
    s.messages_received += 120;
    l.update(s, 60);

    const auto out = render(s, l);
    CHECK(out.at("$SYS/broker/version") == "pulsegate version 0.1.0");
    CHECK(out.at("$SYS/broker/uptime") == "3725 seconds");
    CHECK(out.at("$SYS/broker/clients/connected") == "4");
    CHECK(out.at("$SYS/broker/clients/active") == "4");
    CHECK(out.at("$SYS/broker/clients/disconnected") == "3");
    CHECK(out.at("$SYS/broker/clients/inactive") == "3");
    CHECK(out.at("$SYS/broker/clients/total") == "7");
    CHECK(out.at("$SYS/broker/clients/maximum") == "7");
    CHECK(out.at("$SYS/broker/clients/expired") == "2");
    CHECK(out.at("$SYS/broker/subscriptions/count") == "11");
    CHECK(out.at("$SYS/broker/shared_subscriptions/count") == "1");
    CHECK(out.at("$SYS/broker/retained messages/count") == "5");
    CHECK(out.at("$SYS/broker/messages/stored") == "9");
    CHECK(out.at("$SYS/broker/store/messages/count") == "9");
    CHECK(out.at("$SYS/broker/store/messages/bytes") == "1234");
    CHECK(out.at("$SYS/broker/messages/received") == "220");
    CHECK(out.at("$SYS/broker/messages/sent") == "200");
    CHECK(out.at("$SYS/broker/publish/messages/received") == "40");
    CHECK(out.at("$SYS/broker/publish/messages/sent") == "80");
    CHECK(out.at("$SYS/broker/publish/messages/dropped") == "1");
    CHECK(out.at("$SYS/broker/publish/bytes/received") == "4000");
    CHECK(out.at("$SYS/broker/publish/bytes/sent") == "8000");
    CHECK(out.at("$SYS/broker/bytes/received") == "18446744073709551615");
    CHECK(out.at("$SYS/broker/bytes/sent") == "9000");
    // 120/min for 60 s: 120(1-e^-1) = 75.85, 120(1-e^-0.2) = 21.75,
    // 120(1-e^(-1/15)) = 7.74; "%.2f" like Mosquitto.
    CHECK(out.at("$SYS/broker/load/messages/received/1min") == "75.85");
    CHECK(out.at("$SYS/broker/load/messages/received/5min") == "21.75");
    CHECK(out.at("$SYS/broker/load/messages/received/15min") == "7.74");
    CHECK(out.at("$SYS/broker/load/messages/sent/1min") == "0.00");
    CHECK(out.at("$SYS/broker/load/connections/15min") == "0.00");
    // Heap not tracked: omitted.
    CHECK(out.count("$SYS/broker/heap/current") == 0);
    CHECK(out.count("$SYS/broker/heap/maximum") == 0);

    s.heap_current = 4096;
    s.heap_maximum = 8192;
    const auto with_heap = render(s, l);
    CHECK(with_heap.at("$SYS/broker/heap/current") == "4096");
    CHECK(with_heap.at("$SYS/broker/heap/maximum") == "8192");
    CHECK(with_heap.size() == out.size() + 2);
}

TEST_CASE("sys_topic_names: Mosquitto's tree, each a valid name, all rendered") {
    const auto names = sys_topic_names();
    std::set<std::string> unique;
    for (auto n : names) {
        CAPTURE(n);
        CHECK(n.starts_with("$SYS/broker/"));
        CHECK_FALSE(topic::check_name(n));
        CHECK(unique.emplace(n).second);
    }
    // 26 plain topics + 9 load series x 3 windows.
    CHECK(names.size() == 26 + 27);
    for (const char* kind : {"messages/received", "messages/sent", "publish/dropped", "publish/received",
                             "publish/sent", "bytes/received", "bytes/sent", "sockets", "connections"})
        for (const char* win : {"1min", "5min", "15min"})
            CHECK(unique.count(std::string("$SYS/broker/load/") + kind + "/" + win) == 1);

    sys_stats s;
    s.heap_current = s.heap_maximum = 1;
    sys_loads l;
    std::set<std::string> rendered;
    for (const auto& [t, p] : render(s, l)) rendered.insert(t);
    CHECK(rendered == unique);
}
