// 07: MQTT 5.0 features: topic aliases both ways, message expiry,
// subscription identifiers, no-local, user properties, request/response
// properties, maximum packet size both ways, reason strings (MQTT 5.0
// §3.3.2.3, §3.8.3.1, §3.1.2.11, §4.13).
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <thread>

#include "harness.hpp"

using namespace pulsegate::itest;
namespace r = pulsegate::itest::raw;

namespace {

r::connack_view connect_ok(raw_client& c, r::connect_spec const& s) {
    auto ack = c.handshake(s);
    REQUIRE(ack);
    REQUIRE(ack->reason == 0);
    return *ack;
}

void subscribe(raw_client& c, std::string filter, std::uint8_t opts, r::props p = {},
               std::uint16_t id = 1) {
    c.send(r::subscribe_packet(5, id, {{std::move(filter), opts}}, p));
    auto sa = c.read_type(r::suback);
    REQUIRE(sa);
    REQUIRE(r::parse_ack(*sa, 5).reasons ==
            std::vector<std::uint8_t>{static_cast<std::uint8_t>(opts & 3)});
}

r::publish_view next_publish(raw_client& c, ms timeout = event_timeout) {
    auto p = c.read_type(r::publish, timeout);
    REQUIRE(p);
    auto pv = r::parse_publish(*p, 5);
    if (pv.qos == 1) c.send(r::ack_packet(r::puback, pv.packet_id));
    return pv;
}

} // namespace

TEST_CASE("topic alias from client to broker") {
    broker_options o;
    o.topic_alias_maximum = 5;
    broker_process b{o};
    raw_client sub{b.port()};
    connect_ok(sub, r::spec(5, "ta-sub"));
    subscribe(sub, "ta/#", 0);

    raw_client pub{b.port()};
    auto ack = connect_ok(pub, r::spec(5, "ta-pub"));
    auto tam = ack.props.integer(r::prop::topic_alias_maximum);
    REQUIRE(tam);
    CHECK(*tam == 5);

    pub.send(r::publish_packet(5, "ta/x", "1", 0, 0, false, false,
                               r::props{}.two(r::prop::topic_alias, 1)));
    pub.send(r::publish_packet(5, "", "2", 0, 0, false, false,
                               r::props{}.two(r::prop::topic_alias, 1)));
    // Re-map alias 1 to another topic.
    pub.send(r::publish_packet(5, "ta/y", "3", 0, 0, false, false,
                               r::props{}.two(r::prop::topic_alias, 1)));
    pub.send(r::publish_packet(5, "", "4", 0, 0, false, false,
                               r::props{}.two(r::prop::topic_alias, 1)));
    std::vector<std::pair<std::string, std::string>> got;
    for (int i = 0; i < 4; ++i) {
        auto pv = next_publish(sub);
        got.emplace_back(pv.topic, pv.payload);
        CHECK_FALSE(pv.props.has(r::prop::topic_alias));  // sub allowed none
    }
    CHECK(got == std::vector<std::pair<std::string, std::string>>{
                     {"ta/x", "1"}, {"ta/x", "2"}, {"ta/y", "3"}, {"ta/y", "4"}});

    SUBCASE("alias above the maximum: DISCONNECT 0x94") {
        pub.send(r::publish_packet(5, "ta/z", "x", 0, 0, false, false,
                                   r::props{}.two(r::prop::topic_alias, 6)));
        REQUIRE(pub.wait_closed());
        if (is_pulsegate()) REQUIRE(pub.skipped().size() == 1);
        for (auto const& p : pub.skipped()) {
            REQUIRE(p.type == r::disconnect);
            auto d = r::parse_ack(p, 5);
            CHECK(d.reason == 0x94);
            // Reason strings are optional, but pulsegate gives one when the
            // client did not turn problem information off.
            if (is_pulsegate()) CHECK(d.props.text(r::prop::reason_string));
            if (auto rs = d.props.text(r::prop::reason_string)) CHECK_FALSE(rs->empty());
        }
    }
    SUBCASE("unknown alias with an empty topic: DISCONNECT 0x82") {
        pub.send(r::publish_packet(5, "", "x", 0, 0, false, false,
                                   r::props{}.two(r::prop::topic_alias, 3)));
        REQUIRE(pub.wait_closed());
        if (is_pulsegate()) REQUIRE(pub.skipped().size() == 1);
        for (auto const& p : pub.skipped()) {
            REQUIRE(p.type == r::disconnect);
            CHECK(r::parse_ack(p, 5).reason == 0x82);
        }
    }
}

TEST_CASE("topic alias from broker to client, when the client allows it") {
    broker_process b;
    raw_client sub{b.port()};
    auto s = r::spec(5, "tab-sub");
    s.properties.two(r::prop::topic_alias_maximum, 3);
    connect_ok(sub, s);
    subscribe(sub, "tab/#", 0);
    mosq_client pub{"tab-pub", 5};
    REQUIRE(pub.connect(b.port()) == 0);
    std::vector<std::string> topics;
    for (int i = 0; i < 10; ++i) topics.push_back("tab/t" + std::to_string(i % 5));
    for (std::size_t i = 0; i < topics.size(); ++i)
        pub.publish(topics[i], std::to_string(i), 0);
    // Aliases are optional for the broker (mosquitto 2.0.11 sends none);
    // when used they must stay within 1..3 and resolve to the right topic.
    std::map<std::uint32_t, std::string> aliases;
    int used = 0;
    for (std::size_t i = 0; i < topics.size(); ++i) {
        auto pv = next_publish(sub);
        CHECK(pv.payload == std::to_string(i));
        std::string topic = pv.topic;
        if (auto a = pv.props.integer(r::prop::topic_alias)) {
            ++used;
            CHECK(*a >= 1);
            CHECK(*a <= 3);
            if (topic.empty()) {
                REQUIRE(aliases.count(*a) == 1);
                topic = aliases[*a];
            } else {
                aliases[*a] = topic;
            }
        } else {
            CHECK_FALSE(topic.empty());
        }
        CHECK(topic == topics[i]);
    }
    MESSAGE("broker used topic aliases in " << used << " of " << topics.size() << " publishes");
}

TEST_CASE("message expiry: expired queued messages are dropped, others carry the rest") {
    broker_process b;
    auto s = r::spec(5, "mexp-sub", true);
    s.properties.four(r::prop::session_expiry, 300);
    {
        raw_client c{b.port()};
        connect_ok(c, s);
        subscribe(c, "mexp/#", 1);
        c.send(r::disconnect_packet(5));
        REQUIRE(c.wait_closed());
    }
    raw_client pub{b.port()};
    connect_ok(pub, r::spec(5, "mexp-pub"));
    pub.send(r::publish_packet(5, "mexp/short", "short", 1, 1, false, false,
                               r::props{}.four(r::prop::message_expiry, 1)));
    REQUIRE(pub.read_type(r::puback));
    pub.send(r::publish_packet(5, "mexp/long", "long", 1, 2, false, false,
                               r::props{}.four(r::prop::message_expiry, 100)));
    REQUIRE(pub.read_type(r::puback));
    // Expiry is a timer; nothing observable happens when it fires.
    std::this_thread::sleep_for(2500ms);
    s.clean = false;
    raw_client c{b.port()};
    CHECK(connect_ok(c, s).session_present);
    pub.send(r::publish_packet(5, "mexp/sentinel", "sentinel", 1, 3));
    std::vector<r::publish_view> got;
    for (;;) {
        auto pv = next_publish(c);
        if (pv.payload == "sentinel") break;
        got.push_back(pv);
    }
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "long");
    auto left = got[0].props.integer(r::prop::message_expiry);
    REQUIRE(left);  // [MQTT-3.3.2-6]
    CHECK(*left < 100);
    CHECK(*left >= 90);
}

TEST_CASE("subscription identifiers are delivered") {
    broker_process b;
    raw_client sub{b.port()};
    connect_ok(sub, r::spec(5, "sid-sub"));
    subscribe(sub, "sid/#", 1, r::props{}.var(r::prop::subscription_id, 7), 1);
    subscribe(sub, "sid/+", 1, r::props{}.var(r::prop::subscription_id, 300), 2);
    subscribe(sub, "sid/sentinel", 0, {}, 3);  // no identifier
    mosq_client pub{"sid-pub", 5};
    REQUIRE(pub.connect(b.port()) == 0);
    pub.publish("sid/a", "both", 1);
    pub.publish("sid/a/b", "deep", 1);
    pub.publish("sid/sentinel", "sentinel", 1);
    std::set<std::uint32_t> ids_both, ids_deep;
    for (;;) {
        auto pv = next_publish(sub);
        auto ids = pv.props.integers(r::prop::subscription_id);
        if (pv.payload == "sentinel") {
            // Matches sid/# (7), sid/+ (300) and the id-less subscription.
            std::set<std::uint32_t> all(ids.begin(), ids.end());
            for (auto i : all) CHECK((i == 7 || i == 300));
            break;
        }
        (pv.payload == "both" ? ids_both : ids_deep).insert(ids.begin(), ids.end());
    }
    // One copy with both ids or one copy per subscription: the union is
    // the same ([MQTT-3.3.4-3], [MQTT-3.3.4-4]).
    CHECK(ids_both == std::set<std::uint32_t>{7, 300});
    CHECK(ids_deep == std::set<std::uint32_t>{7});
}

TEST_CASE("no-local: own publishes are not delivered back") {
    broker_process b;
    raw_client c{b.port()};
    connect_ok(c, r::spec(5, "nl"));
    subscribe(c, "nl/t", 1 | 1 << 2);
    c.send(r::publish_packet(5, "nl/t", "own", 1, 1));
    // Our own publish is acknowledged and not delivered back.
    REQUIRE(c.read_type(r::puback));
    for (const auto& p : c.skipped()) CHECK(p.type != r::publish);
    c.skipped().clear();
    mosq_client other{"nl-other", 5};
    REQUIRE(other.connect(b.port()) == 0);
    other.publish("nl/t", "other", 1);
    auto pv = next_publish(c);
    CHECK(pv.payload == "other");
    CHECK_FALSE(c.read(quiet_window));
}

TEST_CASE("user properties and request/response properties pass through") {
    broker_process b;
    raw_client sub{b.port()};
    connect_ok(sub, r::spec(5, "props-sub"));
    subscribe(sub, "props/#", 1);
    raw_client pub{b.port()};
    connect_ok(pub, r::spec(5, "props-pub"));
    std::string corr{"\x00\x01corr\xff", 7};
    r::props p;
    p.byte(r::prop::payload_format, 1)
        .text(r::prop::content_type, "application/json")
        .text(r::prop::response_topic, "props/reply")
        .text(r::prop::correlation_data, corr)
        .user("k", "1")
        .user("dup", "a")
        .user("k", "2")
        .user("dup", "a");
    pub.send(r::publish_packet(5, "props/req", "{}", 1, 1, false, false, p));
    REQUIRE(pub.read_type(r::puback));
    auto pv = next_publish(sub);
    CHECK(pv.topic == "props/req");
    CHECK(pv.props.integer(r::prop::payload_format) == 1u);
    CHECK(pv.props.text(r::prop::content_type) == "application/json");
    CHECK(pv.props.text(r::prop::response_topic) == "props/reply");
    CHECK(pv.props.text(r::prop::correlation_data) == corr);
    // [MQTT-3.3.2-17/18]: unaltered, in order, duplicates kept.
    CHECK(pv.props.user() == std::vector<std::pair<std::string, std::string>>{
                                 {"k", "1"}, {"dup", "a"}, {"k", "2"}, {"dup", "a"}});

    SUBCASE("also through Paho and libmosquitto") {
        mosq_client m{"props-mosq", 5};
        REQUIRE(m.connect(b.port()) == 0);
        REQUIRE(m.subscribe("props/#", 1) == 1);
        paho_client pp{b, "props-paho", 5};
        pp.connect();
        mqtt::properties mp{{mqtt::property::USER_PROPERTY, "x", "1"},
                            {mqtt::property::USER_PROPERTY, "y", "2"}};
        pp.publish("props/paho", "p", 1, false, mp);
        auto msg = m.messages().pop();
        REQUIRE(msg);
        CHECK(msg->user_properties == std::vector<std::pair<std::string, std::string>>{
                                          {"x", "1"}, {"y", "2"}});
    }
}

TEST_CASE("maximum packet size, both ways") {
    SUBCASE("the broker does not send packets larger than the client's maximum") {
        broker_process b;
        raw_client sub{b.port()};
        auto s = r::spec(5, "mps-sub");
        s.properties.four(r::prop::maximum_packet_size, 128);
        connect_ok(sub, s);
        subscribe(sub, "mps/#", 1);
        mosq_client pub{"mps-pub", 5};
        REQUIRE(pub.connect(b.port()) == 0);
        pub.publish("mps/big", std::string(500, 'x'), 1);
        pub.publish("mps/small", "small", 1);
        // [MQTT-3.1.2-25]: the big one is discarded (not an error).
        auto pv = next_publish(sub);
        CHECK(pv.topic == "mps/small");
        CHECK_FALSE(sub.read(quiet_window));
        CHECK_FALSE(sub.closed());
    }
    SUBCASE("a packet larger than the broker's maximum: DISCONNECT 0x95") {
        broker_options o;
        o.max_packet_size = 1000;
        broker_process b{o};
        raw_client pub{b.port()};
        auto ack = connect_ok(pub, r::spec(5, "mps-big"));
        CHECK(ack.props.integer(r::prop::maximum_packet_size) == 1000u);
        pub.send(r::publish_packet(5, "mps/t", std::string(900, 'a'), 1, 1));
        auto ok = pub.read();
        REQUIRE(ok);
        CHECK(ok->type == r::puback);
        pub.send(r::publish_packet(5, "mps/t", std::string(2000, 'a'), 1, 2));
        REQUIRE(pub.wait_closed());
        // [MQTT-3.2.2-15]... 4.13: DISCONNECT 0x95 is optional before the close
        // (pulsegate sends it).
        if (is_pulsegate()) REQUIRE(pub.skipped().size() == 1);
        for (auto const& p : pub.skipped()) {
            REQUIRE(p.type == r::disconnect);
            CHECK(r::parse_ack(p, 5).reason == 0x95);
        }
    }
}

TEST_CASE("request problem information = 0 suppresses reason strings on acks") {
    // [MQTT-3.1.2-29]: no Reason String or User Property on anything but
    // PUBLISH, CONNACK and DISCONNECT.
    broker_process b;
    raw_client c{b.port()};
    auto s = r::spec(5, "rpi0");
    s.properties.byte(r::prop::request_problem_info, 0);
    connect_ok(c, s);
    c.send(r::subscribe_packet(5, 1, {{"ok/t", 1}}));
    c.send(r::unsubscribe_packet(5, 2, {"never/subscribed"}));
    c.send(r::publish_packet(5, "nobody/listens", "x", 1, 3));
    c.send(r::publish_packet(5, "nobody/listens", "x", 2, 4));
    std::set<std::uint8_t> types;
    for (int i = 0; i < 4; ++i) {
        auto p = c.read();
        REQUIRE(p);
        types.insert(p->type);
        auto a = r::parse_ack(*p, 5);
        CHECK_FALSE(a.props.has(r::prop::reason_string));
        CHECK_FALSE(a.props.has(r::prop::user_property));
        if (p->type == r::unsuback) {
            REQUIRE(a.reasons.size() == 1);
            CHECK((a.reasons[0] == 0x00 || a.reasons[0] == 0x11));
        }
    }
    CHECK(types == std::set<std::uint8_t>{r::suback, r::unsuback, r::puback, r::pubrec});
}
