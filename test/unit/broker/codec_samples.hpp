#pragma once
// A sample of every MQTT packet type of both versions, each carrying every
// property its type allows (v5). No test framework here: the fuzz corpus
// generator (test/fuzz/make_corpus.cpp) uses these too.

#include "broker/protocol/packet.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace codec_test {

namespace p = pulsegate::broker::protocol;
using p::protocol_version;
using p::reason_code;

// Every v5 packet carries every property its type allows. Properties not in
// the allowed set of the packet are left unset.
inline p::properties will_props() {
    p::properties pr;
    pr.payload_format_indicator = 1;
    pr.message_expiry_interval = 3600;
    pr.content_type = "application/json";
    pr.response_topic = "reply/here";
    pr.correlation_data = std::string_view("\x00\xff\x01", 3);
    pr.will_delay_interval = 30;
    pr.user_properties.emplace_back("k", "v1");
    pr.user_properties.emplace_back("k", "v2");
    return pr;
}

inline p::connect full_connect(protocol_version v) {
    p::connect c;
    c.version = v;
    c.clean_start = false;
    c.keep_alive = 300;
    c.client_id = "device-1";
    p::will_message w;
    w.topic = "d/device-1/status";
    w.payload = std::string_view("off\0line", 8);
    w.qos = 1;
    w.retain = true;
    if (v == protocol_version::v5) {
        w.props = will_props();
        auto& pr = c.props;
        pr.session_expiry_interval = 86400;
        pr.authentication_method = "SCRAM-SHA-256";
        pr.authentication_data = std::string_view("\x01\x00\x02", 3);
        pr.request_problem_information = 0;
        pr.request_response_information = 1;
        pr.receive_maximum = 20;
        pr.topic_alias_maximum = 10;
        pr.user_properties.emplace_back("a", "1");
        pr.user_properties.emplace_back("b", "2");
        pr.user_properties.emplace_back("a", "3");
        pr.maximum_packet_size = 65536;
    }
    c.will = w;
    c.username = "acme/device-1";
    c.password = std::string_view("s3cr\0t\xff", 7);
    return c;
}

inline p::connack full_connack(protocol_version v) {
    p::connack c;
    c.session_present = true;
    if (v == protocol_version::v5) {
        c.code = reason_code::success;
        auto& pr = c.props;
        pr.session_expiry_interval = 120;
        pr.assigned_client_identifier = "auto-1234";
        pr.server_keep_alive = 60;
        pr.authentication_method = "SCRAM-SHA-256";
        pr.authentication_data = std::string_view("\x00\x01", 2);
        pr.response_information = "resp/";
        pr.server_reference = "other:1883";
        pr.reason_string = "welcome";
        pr.receive_maximum = 100;
        pr.topic_alias_maximum = 10;
        pr.maximum_qos = 1;
        pr.retain_available = 1;
        pr.user_properties.emplace_back("x", "y");
        pr.maximum_packet_size = 1048576;
        pr.wildcard_subscription_available = 1;
        pr.subscription_identifier_available = 0;
        pr.shared_subscription_available = 1;
    }
    return c;
}

inline p::publish full_publish(protocol_version v, std::uint8_t qos = 2) {
    p::publish pb;
    pb.qos = qos;
    pb.retain = true;
    pb.dup = qos > 0;
    pb.topic = "t/acme/d/dev/telemetry";
    pb.packet_id = qos > 0 ? 0xBEEF : 0;
    pb.payload = R"({"temp_c": 21.5})";
    if (v == protocol_version::v5) {
        auto& pr = pb.props;
        pr.payload_format_indicator = 1;
        pr.message_expiry_interval = 10;
        pr.content_type = "application/json";
        pr.response_topic = "r/t";
        pr.correlation_data = std::string_view("\x00\x01\x02", 3);
        pr.subscription_identifiers = {1, 268'435'455, 300};
        pr.topic_alias = 7;
        pr.user_properties.emplace_back("u", "v");
    }
    return pb;
}

inline p::ack full_ack(protocol_version v, p::packet_type t) {
    p::ack a;
    a.type = t;
    a.packet_id = 0x1234;
    if (v == protocol_version::v5) {
        a.code = (t == p::packet_type::pubrel || t == p::packet_type::pubcomp)
                     ? reason_code::packet_identifier_not_found
                     : reason_code::no_matching_subscribers;
        a.props.reason_string = "because";
        a.props.user_properties.emplace_back("k", "v");
    }
    return a;
}

inline p::subscribe full_subscribe(protocol_version v) {
    p::subscribe s;
    s.packet_id = 7;
    const bool v5 = v == protocol_version::v5;
    s.entries.push_back({"a/+/c", 0, false, false, 0});
    s.entries.push_back({"d/#", 1, v5, v5, v5 ? std::uint8_t{1} : std::uint8_t{0}});
    s.entries.push_back({"$share/g/x", 2, false, v5, v5 ? std::uint8_t{2} : std::uint8_t{0}});
    if (v5) {
        s.props.subscription_identifiers.push_back(42);
        s.props.user_properties.emplace_back("k", "v");
    }
    return s;
}

inline p::suback full_suback(protocol_version v) {
    p::suback s;
    s.packet_id = 7;
    if (v == protocol_version::v5) {
        s.codes = {reason_code::granted_qos0, reason_code::granted_qos1, reason_code::granted_qos2,
                   reason_code::not_authorized, reason_code::shared_subscriptions_not_supported};
        s.props.reason_string = "some denied";
        s.props.user_properties.emplace_back("k", "v");
    } else {
        s.codes = {reason_code::granted_qos0, reason_code::granted_qos1, reason_code::granted_qos2,
                   reason_code::unspecified_error};
    }
    return s;
}

inline p::unsubscribe full_unsubscribe(protocol_version v) {
    p::unsubscribe u;
    u.packet_id = 9;
    u.filters = {"a/b", "c/#"};
    if (v == protocol_version::v5)
        u.props.user_properties.emplace_back("k", "v");
    return u;
}

inline p::unsuback full_unsuback(protocol_version v) {
    p::unsuback u;
    u.packet_id = 9;
    if (v == protocol_version::v5) {
        u.codes = {reason_code::success, reason_code::no_subscription_existed};
        u.props.reason_string = "ok";
        u.props.user_properties.emplace_back("k", "v");
    }
    return u;
}

inline p::disconnect full_disconnect(protocol_version v) {
    p::disconnect d;
    if (v == protocol_version::v5) {
        d.code = reason_code::server_moved;
        d.props.session_expiry_interval = 0;
        d.props.server_reference = "elsewhere:1883";
        d.props.reason_string = "moving";
        d.props.user_properties.emplace_back("k", "v");
    }
    return d;
}

inline p::auth full_auth() {
    p::auth a;
    a.code = reason_code::continue_authentication;
    a.props.authentication_method = "SCRAM-SHA-256";
    a.props.authentication_data = std::string_view("\x00\x10\x20", 3);
    a.props.reason_string = "next step";
    a.props.user_properties.emplace_back("k", "v");
    return a;
}

// Every packet type of version `v`, fully populated.
inline std::vector<p::packet> all_packets(protocol_version v) {
    std::vector<p::packet> out;
    out.emplace_back(full_connect(v));
    out.emplace_back(full_connack(v));
    out.emplace_back(full_publish(v, 0));
    out.emplace_back(full_publish(v, 1));
    out.emplace_back(full_publish(v, 2));
    for (auto t : {p::packet_type::puback, p::packet_type::pubrec, p::packet_type::pubrel,
                   p::packet_type::pubcomp})
        out.emplace_back(full_ack(v, t));
    out.emplace_back(full_subscribe(v));
    out.emplace_back(full_suback(v));
    out.emplace_back(full_unsubscribe(v));
    out.emplace_back(full_unsuback(v));
    out.emplace_back(p::pingreq{});
    out.emplace_back(p::pingresp{});
    out.emplace_back(full_disconnect(v));
    if (v == protocol_version::v5)
        out.emplace_back(full_auth());
    return out;
}

} // namespace codec_test
