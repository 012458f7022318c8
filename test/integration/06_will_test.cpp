// 06: will messages: abnormal disconnect, clean DISCONNECT, v5 DISCONNECT
// 0x04, retain, QoS, v5 will delay, keep-alive timeout, session takeover
// (MQTT 3.1.1 §3.1.2.5-3.1.2.7; MQTT 5.0 §3.1.2.5, §3.1.3.2, §3.14.2.1).
#include <doctest/doctest.h>

#include "harness.hpp"

using namespace pulsegate::itest;
namespace r = pulsegate::itest::raw;

namespace {

r::connect_spec with_will(std::uint8_t v, std::string id, std::string topic, std::string payload,
                          std::uint8_t qos = 0, bool retain = false) {
    auto s = r::spec(v, std::move(id));
    s.will = r::will_spec{std::move(topic), std::move(payload), qos, retain, {}};
    return s;
}

void connect_ok(raw_client& c, r::connect_spec const& s) {
    auto ack = c.handshake(s);
    REQUIRE(ack);
    REQUIRE(ack->reason == 0);
}

struct watcher {
    mosq_client sub;
    watcher(broker_process const& b, std::string filter, int qos = 2)
        : sub{"will-watcher-" + filter, 5} {
        REQUIRE(sub.connect(b.port()) == 0);
        REQUIRE(sub.subscribe(filter, qos) == qos);
        REQUIRE(sub.subscribe("will-sentinel", 0) == 0);
    }
    // Messages before a sentinel published now by a separate client.
    std::vector<message> before_sentinel(broker_process const& b) {
        mosq_client p{"will-sentinel-pub", 5};
        REQUIRE(p.connect(b.port()) == 0);
        p.publish("will-sentinel", "s", 1);
        auto got = sub.messages().collect_until_sentinel("will-sentinel");
        REQUIRE(got);
        return *got;
    }
};

} // namespace

TEST_CASE("will is published on abnormal disconnect") {
    broker_process b;
    for (std::uint8_t v : {4, 5}) {
        CAPTURE(int(v));
        watcher w{b, "will/abn/#"};
        raw_client c{b.port()};
        connect_ok(c, with_will(v, "will-abn", "will/abn/x", "gone", 1));
        c.close();
        auto m = w.sub.messages().pop();
        REQUIRE(m);
        CHECK(m->topic == "will/abn/x");
        CHECK(m->payload == "gone");
        CHECK(m->qos == 1);
        CHECK_FALSE(m->retain);
    }
}

TEST_CASE("will is not published after a normal DISCONNECT") {
    broker_process b;
    for (std::uint8_t v : {4, 5}) {
        CAPTURE(int(v));
        watcher w{b, "will/clean/#"};
        raw_client c{b.port()};
        connect_ok(c, with_will(v, "will-clean", "will/clean/x", "gone", 1));
        c.send(r::disconnect_packet(v));
        REQUIRE(c.wait_closed());
        CHECK(w.before_sentinel(b).empty());
    }
}

TEST_CASE("5.0: DISCONNECT with reason 0x04 publishes the will") {
    broker_process b;
    watcher w{b, "will/x04/#"};
    raw_client c{b.port()};
    connect_ok(c, with_will(5, "will-x04", "will/x04/x", "asked for", 1));
    c.send(r::disconnect_packet(5, 0x04));
    REQUIRE(c.wait_closed());
    auto m = w.sub.messages().pop();
    REQUIRE(m);
    CHECK(m->topic == "will/x04/x");
    CHECK(m->payload == "asked for");
}

TEST_CASE("will retain and will QoS") {
    broker_process b;
    SUBCASE("retained will is stored") {
        watcher w{b, "will/ret/#", 1};
        raw_client c{b.port()};
        connect_ok(c, with_will(4, "will-ret", "will/ret/x", "last words", 1, true));
        c.close();
        // The live copy proves the will is out (retain 0 for a live
        // subscriber); a new subscriber then gets the retained copy.
        auto live = w.sub.messages().pop();
        REQUIRE(live);
        CHECK(live->payload == "last words");
        CHECK_FALSE(live->retain);
        mosq_client later{"will-ret-later", 5};
        REQUIRE(later.connect(b.port()) == 0);
        REQUIRE(later.subscribe("will/ret/#", 1) == 1);
        auto m2 = later.messages().pop();
        REQUIRE(m2);
        CHECK(m2->topic == "will/ret/x");
        CHECK(m2->payload == "last words");
        CHECK(m2->retain);
    }
    SUBCASE("will QoS is the publish QoS, downgraded by the subscription") {
        mosq_client s2{"will-qos-2", 5}, s1{"will-qos-1", 5};
        REQUIRE(s2.connect(b.port()) == 0);
        REQUIRE(s1.connect(b.port()) == 0);
        REQUIRE(s2.subscribe("will/qos", 2) == 2);
        REQUIRE(s1.subscribe("will/qos", 1) == 1);
        raw_client c{b.port()};
        connect_ok(c, with_will(4, "will-qos", "will/qos", "q2", 2));
        c.close();
        auto m2 = s2.messages().pop();
        auto m1 = s1.messages().pop();
        REQUIRE(m2);
        REQUIRE(m1);
        CHECK(m2->qos == 2);
        CHECK(m1->qos == 1);
    }
}

TEST_CASE("5.0 will delay interval") {
    broker_process b;
    auto delayed = [](std::string id) {
        auto s = with_will(5, std::move(id), "will/delay", "late", 1);
        s.properties.four(r::prop::session_expiry, 300);
        s.will->properties.four(r::prop::will_delay, 2);
        return s;
    };
    SUBCASE("published after the delay") {
        watcher w{b, "will/delay"};
        raw_client c{b.port()};
        connect_ok(c, delayed("will-delay"));
        auto start = steady::now();
        c.close();
        auto m = w.sub.messages().pop(15s);
        REQUIRE(m);
        auto took = steady::now() - start;
        MESSAGE("will after " << std::chrono::duration_cast<ms>(took).count() << " ms");
        CHECK(m->payload == "late");
        CHECK(took >= 1800ms);
        // mosquitto checks will delays about once a second.
        CHECK(took <= 6s);
    }
    SUBCASE("cancelled when the client reconnects within the delay") {
        watcher w{b, "will/delay"};
        {
            raw_client c{b.port()};
            connect_ok(c, delayed("will-cancel"));
            c.close();
        }
        raw_client again{b.port()};
        auto s = r::spec(5, "will-cancel", false);
        s.properties.four(r::prop::session_expiry, 300);
        auto ack = again.handshake(s);
        REQUIRE(ack);
        CHECK(ack->session_present);
        // The will would be due 2 s after the close: watch past that.
        CHECK_FALSE(w.sub.messages().pop(3500ms));
    }
}

TEST_CASE("will is published when keep alive expires") {
    broker_process b;
    watcher w{b, "will/ka"};
    raw_client c{b.port()};
    auto s = with_will(4, "will-ka", "will/ka", "timed out", 1);
    s.keep_alive = 1;
    connect_ok(c, s);
    // Silent client: closed after 1.5 x keep alive (mosquitto: up to ~7 s).
    auto m = w.sub.messages().pop(15s);
    REQUIRE(m);
    CHECK(m->payload == "timed out");
    CHECK(c.wait_closed());
}

TEST_CASE("will is published on session takeover") {
    broker_process b;
    for (std::uint8_t v : {4, 5}) {
        CAPTURE(int(v));
        watcher w{b, "will/takeover"};
        raw_client old_c{b.port()};
        connect_ok(old_c, with_will(v, "will-takeover", "will/takeover", "taken over", 1));
        raw_client new_c{b.port()};
        connect_ok(new_c, r::spec(v, "will-takeover"));
        REQUIRE(old_c.wait_closed());
        // 3.1.1: the server closed the connection, not a DISCONNECT ->
        // will ([MQTT-3.1.2-8]); 5.0: the old session ends (clean start) and
        // the connection was closed without DISCONNECT 0x00.
        auto m = w.sub.messages().pop();
        REQUIRE(m);
        CHECK(m->payload == "taken over");
    }
}
