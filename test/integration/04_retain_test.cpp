// 04: retained messages: set, replace, clear, delivery on subscribe (retain
// flag), wildcards, v5 retain handling and retain-as-published (MQTT 3.1.1
// §3.3.1.3; MQTT 5.0 §3.3.1.3, §3.8.3.1).
#include <doctest/doctest.h>

#include <set>

#include "harness.hpp"

using namespace pulsegate::itest;
namespace r = pulsegate::itest::raw;

namespace {

raw_client& connected(raw_client& c, std::uint8_t v, std::string id) {
    auto ack = c.handshake(r::spec(v, std::move(id)));
    REQUIRE(ack);
    REQUIRE(ack->reason == 0);
    return c;
}

void subscribe(raw_client& c, std::uint8_t v, std::string filter, std::uint8_t opts,
               std::uint16_t id = 1) {
    c.send(r::subscribe_packet(v, id, {{std::move(filter), opts}}));
    auto sa = c.read_type(r::suback);
    REQUIRE(sa);
    REQUIRE(r::parse_ack(*sa, v).reasons == std::vector<std::uint8_t>{static_cast<std::uint8_t>(opts & 3)});
}

// QoS 1 publish from a raw publisher, waiting for its PUBACK.
void publish(raw_client& pub, std::string const& topic, std::string const& payload, bool retain,
             std::uint8_t qos = 1) {
    static std::uint16_t next_id = 1;
    auto id = next_id++;
    pub.send(r::publish_packet(pub.version(), topic, payload, qos, qos ? id : 0, retain));
    if (qos == 1) REQUIRE(pub.read_type(r::puback));
}

// Reads PUBLISH packets (acking QoS 1) until one with payload `sentinel`;
// returns the ones before it. Other packet types are a failure.
std::vector<r::publish_view> until_payload(raw_client& c, std::string const& sentinel) {
    std::vector<r::publish_view> out;
    for (;;) {
        auto p = c.read();
        REQUIRE_MESSAGE(p, "no PUBLISH with payload " << sentinel);
        REQUIRE(p->type == r::publish);
        auto pv = r::parse_publish(*p, c.version());
        if (pv.qos == 1) c.send(r::ack_packet(r::puback, pv.packet_id));
        if (pv.payload == sentinel) return out;
        out.push_back(std::move(pv));
    }
}

} // namespace

TEST_CASE("retained message: set, delivered on subscribe, replaced, cleared") {
    broker_process b;
    for (std::uint8_t v : {4, 5}) {
        CAPTURE(int(v));
        std::string t = "ret/" + std::to_string(v);
        raw_client pc{b.port()};
        auto& pub = connected(pc, v, "ret-pub");
        raw_client lc{b.port()};
        auto& live = connected(lc, v, "ret-live");
        subscribe(live, v, t, 1);

        publish(pub, t, "v1", true);
        {
            // A live subscriber gets retain=0 ([MQTT-3.3.1-9]; 5.0 with RAP=0).
            auto p = live.read_type(r::publish);
            REQUIRE(p);
            auto pv = r::parse_publish(*p, v);
            CHECK(pv.payload == "v1");
            CHECK_FALSE(pv.retain);
            live.send(r::ack_packet(r::puback, pv.packet_id));
        }
        {
            raw_client c{b.port()};
            connected(c, v, "ret-new1");
            subscribe(c, v, t, 1);
            auto p = c.read();
            REQUIRE(p);
            auto pv = r::parse_publish(*p, v);
            CHECK(pv.payload == "v1");
            CHECK(pv.retain);  // [MQTT-3.3.1-8]
            CHECK(pv.qos == 1);
            c.send(r::ack_packet(r::puback, pv.packet_id));
        }
        publish(pub, t, "v2", true);
        {
            raw_client c{b.port()};
            connected(c, v, "ret-new2");
            subscribe(c, v, t, 1);
            publish(pub, t, "live", false);
            auto before = until_payload(c, "live");
            REQUIRE(before.size() == 1);  // only the replacement, not v1
            CHECK(before[0].payload == "v2");
            CHECK(before[0].retain);
        }
        // Empty retained payload clears it ([MQTT-3.3.1-10]).
        publish(pub, t, "", true);
        {
            raw_client c{b.port()};
            connected(c, v, "ret-new3");
            subscribe(c, v, t, 1);
            publish(pub, t, "live2", false);
            auto before = until_payload(c, "live2");
            CHECK(before.empty());
        }
    }
}

TEST_CASE("retained QoS is the minimum of the stored and subscribed QoS") {
    broker_process b;
    raw_client pc{b.port()};
    auto& pub = connected(pc, 4, "retq-pub");
    pub.send(r::publish_packet(4, "retq/t", "q2", 2, 9, true));
    REQUIRE(pub.read_type(r::pubrec));
    pub.send(r::ack_packet(r::pubrel, 9));
    REQUIRE(pub.read_type(r::pubcomp));
    for (std::uint8_t q : {0, 1, 2}) {
        CAPTURE(int(q));
        raw_client c{b.port()};
        connected(c, 4, "retq-sub");
        subscribe(c, 4, "retq/t", q);
        auto p = c.read();
        REQUIRE(p);
        auto pv = r::parse_publish(*p, 4);
        CHECK(pv.qos == q);
        CHECK(pv.retain);
    }
}

TEST_CASE("retained messages are delivered to matching wildcard subscriptions") {
    broker_process b;
    raw_client pc{b.port()};
    auto& pub = connected(pc, 4, "retw-pub");
    publish(pub, "retw/a/1", "a1", true);
    publish(pub, "retw/a/2", "a2", true);
    publish(pub, "retw/b/3", "b3", true);
    publish(pub, "retw", "root", true);
    struct want {
        std::string filter;
        std::set<std::string> payloads;
    };
    for (auto const& w : {want{"retw/a/+", {"a1", "a2"}}, want{"retw/#", {"a1", "a2", "b3", "root"}},
                          want{"retw/+/3", {"b3"}}, want{"+", {"root"}}}) {
        CAPTURE(w.filter);
        raw_client c{b.port()};
        connected(c, 4, "retw-sub");
        // One SUBSCRIBE for both, so every retained message follows the SUBACK.
        c.send(r::subscribe_packet(4, 2, {{"retw-sentinel", 0}, {w.filter, 1}}));
        REQUIRE(c.read_type(r::suback));
        publish(pub, "retw-sentinel", "sentinel", false);
        std::set<std::string> got;
        for (auto const& pv : until_payload(c, "sentinel")) {
            CHECK(pv.retain);
            got.insert(pv.payload);
        }
        CHECK(c.skipped().empty());
        CHECK(got == w.payloads);
    }
}

TEST_CASE("5.0 retain handling 0/1/2") {
    broker_process b;
    raw_client pc{b.port()};
    auto& pub = connected(pc, 5, "rh-pub");
    publish(pub, "rh/t", "kept", true);

    auto count_retained = [&](raw_client& c, std::uint8_t opts, std::uint16_t id) {
        c.send(r::subscribe_packet(5, id, {{"rh-sentinel", 0}, {"rh/t", opts}}));
        REQUIRE(c.read_type(r::suback));
        publish(pub, "rh-sentinel", "sentinel", false);
        auto got = until_payload(c, "sentinel");
        CHECK(c.skipped().empty());
        for (auto const& pv : got) CHECK(pv.payload == "kept");
        return got.size();
    };
    SUBCASE("0: on every subscribe") {
        raw_client c{b.port()};
        connected(c, 5, "rh0");
        CHECK(count_retained(c, 1 | 0 << 4, 1) == 1);
        CHECK(count_retained(c, 1 | 0 << 4, 2) == 1);
    }
    SUBCASE("1: only when the subscription is new") {
        raw_client c{b.port()};
        connected(c, 5, "rh1");
        CHECK(count_retained(c, 1 | 1 << 4, 1) == 1);
        CHECK(count_retained(c, 1 | 1 << 4, 2) == 0);
    }
    SUBCASE("2: never") {
        raw_client c{b.port()};
        connected(c, 5, "rh2");
        CHECK(count_retained(c, 1 | 2 << 4, 1) == 0);
    }
}

TEST_CASE("5.0 retain as published") {
    broker_process b;
    raw_client pc{b.port()};
    auto& pub = connected(pc, 5, "rap-pub");
    raw_client c0{b.port()}, c1{b.port()};
    connected(c0, 5, "rap0");
    connected(c1, 5, "rap1");
    subscribe(c0, 5, "rap/t", 1);
    subscribe(c1, 5, "rap/t", 1 | 1 << 3);
    publish(pub, "rap/t", "r", true);
    publish(pub, "rap/t", "n", false);
    for (auto* c : {&c0, &c1}) {
        auto p1 = c->read_type(r::publish);
        auto p2 = c->read_type(r::publish);
        REQUIRE(p1);
        REQUIRE(p2);
        auto v1 = r::parse_publish(*p1, 5);
        auto v2 = r::parse_publish(*p2, 5);
        CHECK(v1.payload == "r");
        CHECK(v2.payload == "n");
        CHECK(v1.retain == (c == &c1));  // RAP=1 keeps the flag
        CHECK_FALSE(v2.retain);
    }
}

TEST_CASE("retained messages via libmosquitto and mosquitto_sub --retained-only") {
    broker_process b;
    mosq_client pub{"retcli-pub", 5};
    REQUIRE(pub.connect(b.port()) == 0);
    pub.publish("retcli/a", "alpha", 1, true);
    pub.publish("retcli/b", "beta", 1, true);
    auto res = run_process({"mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-t",
                            "retcli/#", "-v", "--retained-only", "-W", "3"});
    // --retained-only exits at the first non-retained message or on -W.
    CHECK(res.output.find("retcli/a alpha") != std::string::npos);
    CHECK(res.output.find("retcli/b beta") != std::string::npos);
}
