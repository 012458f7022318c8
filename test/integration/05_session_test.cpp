// 05: sessions: persistent subscriptions and offline queues across
// reconnects, clean start, v5 session expiry, the offline queue bound
// (MQTT 3.1.1 §3.1.2.4, §4.1; MQTT 5.0 §3.1.2.4, §3.1.2.11.2, §4.1).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <thread>

#include "harness.hpp"

using namespace pulsegate::itest;
namespace r = pulsegate::itest::raw;

namespace {

r::connect_spec session_spec(std::uint8_t v, std::string id, bool clean, std::uint32_t expiry) {
    auto s = r::spec(v, std::move(id), clean);
    if (v == 5) s.properties.four(r::prop::session_expiry, expiry);
    return s;
}

// Reads PUBLISH packets, completing their QoS flows, until `sentinel`
// payload; returns the ones before it.
std::vector<r::publish_view> until_payload(raw_client& c, std::string const& sentinel) {
    std::vector<r::publish_view> out;
    for (;;) {
        auto p = c.read();
        REQUIRE_MESSAGE(p, "no PUBLISH with payload " << sentinel);
        if (p->type == r::pubrel) {
            c.send(r::ack_packet(r::pubcomp, r::parse_ack(*p, c.version()).packet_id));
            continue;
        }
        REQUIRE(p->type == r::publish);
        auto pv = r::parse_publish(*p, c.version());
        if (pv.qos == 1) c.send(r::ack_packet(r::puback, pv.packet_id));
        if (pv.qos == 2) c.send(r::ack_packet(r::pubrec, pv.packet_id));
        if (pv.payload == sentinel) return out;
        out.push_back(std::move(pv));
    }
}

} // namespace

TEST_CASE("persistent session keeps subscriptions and queues QoS 1/2 while offline") {
    broker_process b;
    mosq_client pub{"sess-pub"};
    REQUIRE(pub.connect(b.port()) == 0);
    for (std::uint8_t v : {4, 5}) {
        CAPTURE(int(v));
        std::string id = "sess-" + std::to_string(v);
        std::string t = "sess/" + std::to_string(v);
        {
            raw_client c{b.port()};
            auto ack = c.handshake(session_spec(v, id, v == 5, 300));
            REQUIRE(ack);
            CHECK_FALSE(ack->session_present);
            c.send(r::subscribe_packet(v, 1, {{t + "/#", 2}}));
            REQUIRE(c.read_type(r::suback));
            c.send(r::disconnect_packet(v));
            REQUIRE(c.wait_closed());
        }
        pub.publish(t + "/q0", "q0", 0);
        pub.publish(t + "/q1", "q1", 1);
        pub.publish(t + "/q2", "q2", 2);

        raw_client c{b.port()};
        auto ack = c.handshake(session_spec(v, id, false, 300));
        REQUIRE(ack);
        CHECK(ack->session_present);
        // Live publish after reconnect proves the subscription survived and
        // serves as the sentinel for the queued ones.
        pub.publish(t + "/live", "live", 1);
        auto queued = until_payload(c, "live");
        std::vector<std::string> payloads;
        for (auto const& pv : queued) payloads.push_back(pv.payload);
        // QoS 0 while offline may be queued or dropped (3.1.1 §3.1.2.4
        // "optionally"; mosquitto drops it unless queue_qos0_messages).
        if (payloads.size() == 3) {
            CHECK(payloads == std::vector<std::string>{"q0", "q1", "q2"});
        } else {
            CHECK(payloads == std::vector<std::string>{"q1", "q2"});
        }
        // Complete any QoS 2 handshake left and check nothing else comes.
        while (auto p = c.read(quiet_window)) {
            REQUIRE(p->type == r::pubrel);
            c.send(r::ack_packet(r::pubcomp, r::parse_ack(*p, v).packet_id));
        }
    }
}

TEST_CASE("clean start discards the session") {
    broker_process b;
    mosq_client pub{"clean-pub"};
    REQUIRE(pub.connect(b.port()) == 0);
    for (std::uint8_t v : {4, 5}) {
        CAPTURE(int(v));
        std::string id = "clean-" + std::to_string(v);
        std::string t = "clean/" + std::to_string(v);
        {
            raw_client c{b.port()};
            REQUIRE(c.handshake(session_spec(v, id, false, 300))->reason == 0);
            c.send(r::subscribe_packet(v, 1, {{t, 1}}));
            REQUIRE(c.read_type(r::suback));
            c.send(r::disconnect_packet(v));
            REQUIRE(c.wait_closed());
        }
        pub.publish(t, "queued", 1);
        raw_client c{b.port()};
        auto ack = c.handshake(session_spec(v, id, true, 300));
        REQUIRE(ack);
        CHECK_FALSE(ack->session_present);
        c.send(r::subscribe_packet(v, 2, {{t + "-sentinel", 1}}));
        REQUIRE(c.read_type(r::suback));
        pub.publish(t, "after", 1);
        pub.publish(t + "-sentinel", "sentinel", 1);
        // Neither the queued message nor the old subscription survived.
        CHECK(until_payload(c, "sentinel").empty());
        CHECK_FALSE(c.read(quiet_window));
    }
}

TEST_CASE("5.0 session expiry interval") {
    broker_process b;
    for (auto [expiry, present] : {std::pair{1u, false}, std::pair{300u, true}}) {
        CAPTURE(expiry);
        std::string id = "expiry-" + std::to_string(expiry);
        {
            raw_client c{b.port()};
            REQUIRE(c.handshake(session_spec(5, id, true, expiry))->reason == 0);
            c.send(r::subscribe_packet(5, 1, {{"exp/t", 1}}));
            REQUIRE(c.read_type(r::suback));
            c.send(r::disconnect_packet(5));
            REQUIRE(c.wait_closed());
        }
    }
    // Expiry is a timer with no observable event before a reconnect (which
    // would itself resume the session), so wait out the 1 s interval plus
    // the broker's timer granularity.
    std::this_thread::sleep_for(3s);
    for (auto [expiry, present] : {std::pair{1u, false}, std::pair{300u, true}}) {
        CAPTURE(expiry);
        raw_client c{b.port()};
        auto ack = c.handshake(session_spec(5, "expiry-" + std::to_string(expiry), false, expiry));
        REQUIRE(ack);
        CHECK(ack->session_present == present);
    }
}

TEST_CASE("5.0 session expiry 0: the session ends with the connection") {
    broker_process b;
    {
        raw_client c{b.port()};
        REQUIRE(c.handshake(session_spec(5, "exp0", false, 0))->reason == 0);
        c.send(r::disconnect_packet(5));
        REQUIRE(c.wait_closed());
    }
    raw_client c{b.port()};
    auto ack = c.handshake(session_spec(5, "exp0", false, 0));
    REQUIRE(ack);
    CHECK_FALSE(ack->session_present);
}

TEST_CASE("offline queue bound") {
    broker_options o;
    o.max_queued_messages = 5;
    o.max_inflight = 2;
    broker_process b{o};
    {
        raw_client c{b.port()};
        REQUIRE(c.handshake(session_spec(5, "bounded", true, 300))->reason == 0);
        c.send(r::subscribe_packet(5, 1, {{"bound/t", 1}}));
        REQUIRE(c.read_type(r::suback));
        c.send(r::disconnect_packet(5));
        REQUIRE(c.wait_closed());
    }
    constexpr int n = 30;
    raw_client pub{b.port()};
    REQUIRE(pub.handshake(r::spec(5, "bound-pub"))->reason == 0);
    // All publishes go out back to back: a broker that back-pressures
    // (holds PUBACKs until the queue drains) must not deadlock the test.
    for (int i = 0; i < n; ++i)
        pub.send(r::publish_packet(5, "bound/t", std::to_string(i), 1,
                                   static_cast<std::uint16_t>(i + 1)));
    std::map<std::uint16_t, std::uint8_t> acks;  // packet id -> reason
    auto read_acks = [&](ms idle) {
        while (acks.size() < std::size_t{n}) {
            auto p = pub.read(idle);
            if (!p) return;
            REQUIRE(p->type == r::puback);
            auto av = r::parse_ack(*p, 5);
            // Success, or 0x97 Quota exceeded when the queue is full.
            CHECK((av.reason == 0x00 || av.reason == 0x97));
            acks[av.packet_id] = av.reason;
        }
    };
    read_acks(1s);
    MESSAGE("answered while the subscriber is offline: " << acks.size());

    raw_client c{b.port()};
    auto ack = c.handshake(session_spec(5, "bounded", false, 300));
    REQUIRE(ack);
    CHECK(ack->session_present);
    raw_client pub2{b.port()};
    REQUIRE(pub2.handshake(r::spec(5, "bound-pub2"))->reason == 0);
    pub2.send(r::publish_packet(5, "bound/t", "sentinel", 1, 1));
    auto delivered = until_payload(c, "sentinel");
    read_acks(event_timeout);
    CHECK(acks.size() == std::size_t{n});  // every publish answered in the end
    std::vector<std::string> acknowledged, got;
    for (auto [id, reason] : acks)
        if (reason == 0) acknowledged.push_back(std::to_string(id - 1));
    std::sort(acknowledged.begin(), acknowledged.end(),
              [](auto const& a, auto const& b) { return std::stoi(a) < std::stoi(b); });
    for (auto const& pv : delivered) got.push_back(pv.payload);
    MESSAGE("acknowledged " << acknowledged.size() << ", delivered " << got.size());

    if (is_mosquitto()) {
        // mosquitto 2.0.11 acknowledges every publish (PUBACK 0) and then
        // silently drops what exceeds max_queued_messages for the offline
        // session: acknowledged != delivered. Only the bound is checked.
        CHECK(acknowledged.size() == std::size_t{n});
        CHECK(got.size() < std::size_t{n});
        CHECK(got.size() >= 5);
    } else {
        // pulsegate: every message acknowledged to the publisher is
        // delivered, in order; the bound shows up as refusals (0x97) or as
        // PUBACKs held back until the queue drains.
        CHECK(got == acknowledged);
    }
}
