#pragma once
// MQTT 3.1.1 and 5.0 control packets as plain values.
//
// Decoded packets are *views*: every std::string_view points into the buffer
// the packet was decoded from, so a decoded packet is valid only while that
// buffer is unchanged. This keeps decoding allocation-free on the hot path;
// whoever keeps a field past the read (a retained message, a queued publish)
// copies it.
//
// One `properties` struct serves every packet type. The decoder rejects a
// property that is not allowed in the packet being decoded (a malformed
// packet, MQTT 5 §2.2.2.2), so a decoded packet carries only legal ones; the
// encoder writes whatever is set and leaves the caller responsible for
// setting only legal ones. For 3.1.1 the properties are neither read nor
// written.

#include "broker/protocol/reason_code.hpp"

#include <boost/container/small_vector.hpp>

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

namespace pulsegate::broker::protocol {

enum class protocol_version : std::uint8_t { v311 = 4, v5 = 5 };

enum class packet_type : std::uint8_t {
    connect = 1,
    connack = 2,
    publish = 3,
    puback = 4,
    pubrec = 5,
    pubrel = 6,
    pubcomp = 7,
    subscribe = 8,
    suback = 9,
    unsubscribe = 10,
    unsuback = 11,
    pingreq = 12,
    pingresp = 13,
    disconnect = 14,
    auth = 15,
};

using user_property = std::pair<std::string_view, std::string_view>;

struct properties {
    std::optional<std::uint8_t> payload_format_indicator;
    std::optional<std::uint32_t> message_expiry_interval;
    std::optional<std::string_view> content_type;
    std::optional<std::string_view> response_topic;
    std::optional<std::string_view> correlation_data;
    // PUBLISH from server to client may carry several; SUBSCRIBE carries at
    // most one. Inline capacity covers the common case without allocating.
    boost::container::small_vector<std::uint32_t, 2> subscription_identifiers;
    std::optional<std::uint32_t> session_expiry_interval;
    std::optional<std::string_view> assigned_client_identifier;
    std::optional<std::uint16_t> server_keep_alive;
    std::optional<std::string_view> authentication_method;
    std::optional<std::string_view> authentication_data;
    std::optional<std::uint8_t> request_problem_information;
    std::optional<std::uint32_t> will_delay_interval;
    std::optional<std::uint8_t> request_response_information;
    std::optional<std::string_view> response_information;
    std::optional<std::string_view> server_reference;
    std::optional<std::string_view> reason_string;
    std::optional<std::uint16_t> receive_maximum;
    std::optional<std::uint16_t> topic_alias_maximum;
    std::optional<std::uint16_t> topic_alias;
    std::optional<std::uint8_t> maximum_qos;
    std::optional<std::uint8_t> retain_available;
    // In wire order; the same key may repeat (MQTT 5 §3.3.2.3.7).
    boost::container::small_vector<user_property, 2> user_properties;
    std::optional<std::uint32_t> maximum_packet_size;
    std::optional<std::uint8_t> wildcard_subscription_available;
    std::optional<std::uint8_t> subscription_identifier_available;
    std::optional<std::uint8_t> shared_subscription_available;

    friend bool operator==(const properties&, const properties&) = default;
};

struct will_message {
    std::string_view topic;
    std::string_view payload;
    std::uint8_t qos = 0;
    bool retain = false;
    properties props; // will properties (v5)

    friend bool operator==(const will_message&, const will_message&) = default;
};

struct connect {
    protocol_version version = protocol_version::v5;
    bool clean_start = true;
    std::uint16_t keep_alive = 0;
    std::string_view client_id;
    std::optional<will_message> will;
    std::optional<std::string_view> username;
    std::optional<std::string_view> password;
    properties props;

    friend bool operator==(const connect&, const connect&) = default;
};

// For 3.1.1 the encoder maps `code` to the nearest CONNACK return code
// (0 accepted, 1 bad protocol version, 2 identifier rejected, 3 server
// unavailable, 4 bad user name or password, 5 not authorized); the decoder
// maps the other way.
struct connack {
    bool session_present = false;
    reason_code code = reason_code::success;
    properties props;

    friend bool operator==(const connack&, const connack&) = default;
};

struct publish {
    std::uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    std::string_view topic; // may be empty in v5 when a topic alias is set
    std::uint16_t packet_id = 0; // only for qos > 0
    std::string_view payload;
    properties props;

    friend bool operator==(const publish&, const publish&) = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape; `type` says which.
// In v5 the reason code and properties may be omitted on the wire when the
// code is success and there are no properties; the encoder does so.
struct ack {
    packet_type type = packet_type::puback;
    std::uint16_t packet_id = 0;
    reason_code code = reason_code::success;
    properties props;

    friend bool operator==(const ack&, const ack&) = default;
};

struct subscription_request {
    std::string_view filter;
    std::uint8_t qos = 0;
    bool no_local = false;            // v5
    bool retain_as_published = false; // v5
    std::uint8_t retain_handling = 0; // v5: 0 send, 1 send if new, 2 don't send

    friend bool operator==(const subscription_request&, const subscription_request&) = default;
};

struct subscribe {
    std::uint16_t packet_id = 0;
    boost::container::small_vector<subscription_request, 2> entries;
    properties props;

    friend bool operator==(const subscribe&, const subscribe&) = default;
};

// For 3.1.1 only granted QoS 0-2 and 0x80 (failure) exist; the encoder maps
// every v5 failure code to 0x80.
struct suback {
    std::uint16_t packet_id = 0;
    boost::container::small_vector<reason_code, 2> codes;
    properties props;

    friend bool operator==(const suback&, const suback&) = default;
};

struct unsubscribe {
    std::uint16_t packet_id = 0;
    boost::container::small_vector<std::string_view, 2> filters;
    properties props;

    friend bool operator==(const unsubscribe&, const unsubscribe&) = default;
};

// 3.1.1 UNSUBACK carries no codes; the encoder omits them and the decoder
// leaves `codes` empty.
struct unsuback {
    std::uint16_t packet_id = 0;
    boost::container::small_vector<reason_code, 2> codes;
    properties props;

    friend bool operator==(const unsuback&, const unsuback&) = default;
};

struct pingreq {
    friend bool operator==(const pingreq&, const pingreq&) = default;
};
struct pingresp {
    friend bool operator==(const pingresp&, const pingresp&) = default;
};

// 3.1.1 DISCONNECT has no body; the decoder reports normal_disconnection.
struct disconnect {
    reason_code code = reason_code::normal_disconnection;
    properties props;

    friend bool operator==(const disconnect&, const disconnect&) = default;
};

struct auth { // v5 only
    reason_code code = reason_code::success;
    properties props;

    friend bool operator==(const auth&, const auth&) = default;
};

using packet = std::variant<connect, connack, publish, ack, subscribe, suback, unsubscribe,
                            unsuback, pingreq, pingresp, disconnect, auth>;

} // namespace pulsegate::broker::protocol
