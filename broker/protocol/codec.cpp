#include "broker/protocol/codec.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include <array>
#include <cassert>
#include <cstring>
#include <string>
#include <type_traits>
#include <variant>

namespace pulsegate::broker::protocol {

void throw_exception_from_error(const decode_error& e, const boost::source_location& loc) {
    boost::throw_exception(boost::system::system_error(make_error_code(e.code), std::string(e.detail)),
                           loc);
}

namespace {

constexpr std::uint32_t max_varint = 268'435'455;

// ---------------------------------------------------------------- UTF-8

// Well-formed UTF-8 per RFC 3629 (no overlongs, no surrogates, nothing above
// U+10FFFF) and no U+0000, as MQTT §1.5.4 requires.
bool valid_utf8(std::string_view s) noexcept {
    auto p = reinterpret_cast<const unsigned char*>(s.data());
    const auto e = p + s.size();
    while (p < e) {
        // ASCII fast path, eight bytes at a time: no high bit and no zero byte.
        if (e - p >= 8) {
            std::uint64_t x;
            std::memcpy(&x, p, 8);
            constexpr std::uint64_t ones = 0x0101010101010101ull;
            constexpr std::uint64_t highs = 0x8080808080808080ull;
            if (((x | ((x - ones) & ~x)) & highs) == 0) {
                p += 8;
                continue;
            }
        }
        const unsigned c = *p;
        if (c < 0x80) {
            if (c == 0)
                return false;
            ++p;
            continue;
        }
        std::size_t n;
        unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
        if (c < 0xC2) {
            return false; // stray continuation byte or overlong 2-byte form
        } else if (c < 0xE0) {
            n = 1;
        } else if (c < 0xF0) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; // overlong
            else if (c == 0xED)
                hi = 0x9F; // surrogates U+D800..U+DFFF
        } else if (c < 0xF5) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; // overlong
            else if (c == 0xF4)
                hi = 0x8F; // above U+10FFFF
        } else {
            return false;
        }
        if (static_cast<std::size_t>(e - p) <= n)
            return false;
        if (p[1] < lo || p[1] > hi)
            return false;
        for (std::size_t i = 2; i <= n; ++i)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n + 1;
    }
    return true;
}

// ---------------------------------------------------------------- reader

// Bounds-checked cursor over a packet body. Every read either succeeds or
// records why not in `err` and returns false; callers return at once.
struct reader {
    const std::uint8_t* p;
    const std::uint8_t* end;
    decode_error err{};

    std::size_t left() const noexcept { return static_cast<std::size_t>(end - p); }

    bool fail(reason_code code, std::string_view detail) noexcept {
        err = {code, detail};
        return false;
    }
    bool truncated() noexcept { return fail(reason_code::malformed_packet, "packet truncated"); }

    bool u8(std::uint8_t& v) noexcept {
        if (left() < 1)
            return truncated();
        v = *p++;
        return true;
    }
    bool u16(std::uint16_t& v) noexcept {
        if (left() < 2)
            return truncated();
        v = static_cast<std::uint16_t>(p[0] << 8 | p[1]);
        p += 2;
        return true;
    }
    bool u32(std::uint32_t& v) noexcept {
        if (left() < 4)
            return truncated();
        v = std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
            std::uint32_t{p[3]};
        p += 4;
        return true;
    }
    bool varint(std::uint32_t& v) noexcept {
        std::uint32_t value = 0;
        for (int i = 0; i < 4; ++i) {
            if (left() < 1)
                return truncated();
            const std::uint8_t b = *p++;
            value |= std::uint32_t{b & 0x7Fu} << (7 * i);
            if ((b & 0x80) == 0) {
                if (i > 0 && b == 0)
                    return fail(reason_code::malformed_packet,
                                "variable byte integer not in its shortest form");
                v = value;
                return true;
            }
        }
        return fail(reason_code::malformed_packet, "variable byte integer longer than 4 bytes");
    }
    bool binary(std::string_view& v) noexcept {
        std::uint16_t n;
        if (!u16(n))
            return false;
        if (left() < n)
            return truncated();
        v = {reinterpret_cast<const char*>(p), n};
        p += n;
        return true;
    }
    bool utf8(std::string_view& v, std::string_view invalid_detail) noexcept {
        if (!binary(v))
            return false;
        if (!valid_utf8(v))
            return fail(reason_code::malformed_packet, invalid_detail);
        return true;
    }
    bool at_end(std::string_view detail) noexcept {
        return p == end || fail(reason_code::malformed_packet, detail);
    }
};

// ---------------------------------------------------------------- properties

// Where a property block sits; a property is legal where its mask bit is set
// (MQTT 5 §2.2.2.2).
enum prop_ctx : std::uint16_t {
    in_connect = 1u << 0,
    in_connack = 1u << 1,
    in_publish = 1u << 2,
    in_will = 1u << 3,
    in_pub_ack = 1u << 4, // PUBACK, PUBREC, PUBREL, PUBCOMP
    in_subscribe = 1u << 5,
    in_suback = 1u << 6,
    in_unsubscribe = 1u << 7,
    in_unsuback = 1u << 8,
    in_disconnect = 1u << 9,
    in_auth = 1u << 10,
    in_all = 0x7FF,
};

constexpr std::uint8_t max_prop_id = 0x2A;

constexpr auto allowed_table = [] {
    std::array<std::uint16_t, max_prop_id + 1> t{};
    t[0x01] = in_publish | in_will;  // payload format indicator
    t[0x02] = in_publish | in_will;  // message expiry interval
    t[0x03] = in_publish | in_will;  // content type
    t[0x08] = in_publish | in_will;  // response topic
    t[0x09] = in_publish | in_will;  // correlation data
    t[0x0B] = in_publish | in_subscribe; // subscription identifier
    t[0x11] = in_connect | in_connack | in_disconnect; // session expiry interval
    t[0x12] = in_connack;            // assigned client identifier
    t[0x13] = in_connack;            // server keep alive
    t[0x15] = in_connect | in_connack | in_auth; // authentication method
    t[0x16] = in_connect | in_connack | in_auth; // authentication data
    t[0x17] = in_connect;            // request problem information
    t[0x18] = in_will;               // will delay interval
    t[0x19] = in_connect;            // request response information
    t[0x1A] = in_connack;            // response information
    t[0x1C] = in_connack | in_disconnect; // server reference
    t[0x1F] = in_connack | in_pub_ack | in_suback | in_unsuback | in_disconnect | in_auth; // reason string
    t[0x21] = in_connect | in_connack; // receive maximum
    t[0x22] = in_connect | in_connack; // topic alias maximum
    t[0x23] = in_publish;            // topic alias
    t[0x24] = in_connack;            // maximum qos
    t[0x25] = in_connack;            // retain available
    t[0x26] = in_all;                // user property
    t[0x27] = in_connect | in_connack; // maximum packet size
    t[0x28] = in_connack;            // wildcard subscription available
    t[0x29] = in_connack;            // subscription identifier available
    t[0x2A] = in_connack;            // shared subscription available
    return t;
}();

bool read_flag(reader& r, std::optional<std::uint8_t>& out, std::string_view detail) {
    std::uint8_t b;
    if (!r.u8(b))
        return false;
    if (b > 1)
        return r.fail(reason_code::protocol_error, detail);
    out = b;
    return true;
}

bool read_str(reader& r, std::optional<std::string_view>& out, std::string_view detail) {
    std::string_view s;
    if (!r.utf8(s, detail))
        return false;
    out = s;
    return true;
}

bool read_bin(reader& r, std::optional<std::string_view>& out) {
    std::string_view s;
    if (!r.binary(s))
        return false;
    out = s;
    return true;
}

template <class T>
bool read_int(reader& r, std::optional<T>& out) {
    T v;
    bool ok;
    if constexpr (sizeof(T) == 2)
        ok = r.u16(v);
    else
        ok = r.u32(v);
    if (ok)
        out = v;
    return ok;
}

bool read_one_property(reader& r, std::uint8_t id, properties& out) {
    using rc = reason_code;
    switch (id) {
    case 0x01: return read_flag(r, out.payload_format_indicator, "payload format indicator not 0 or 1");
    case 0x02: return read_int(r, out.message_expiry_interval);
    case 0x03: return read_str(r, out.content_type, "invalid UTF-8 in content type");
    case 0x08: return read_str(r, out.response_topic, "invalid UTF-8 in response topic");
    case 0x09: return read_bin(r, out.correlation_data);
    case 0x0B: {
        std::uint32_t v;
        if (!r.varint(v))
            return false;
        if (v == 0)
            return r.fail(rc::protocol_error, "subscription identifier 0");
        out.subscription_identifiers.push_back(v);
        return true;
    }
    case 0x11: return read_int(r, out.session_expiry_interval);
    case 0x12: return read_str(r, out.assigned_client_identifier, "invalid UTF-8 in assigned client identifier");
    case 0x13: return read_int(r, out.server_keep_alive);
    case 0x15: return read_str(r, out.authentication_method, "invalid UTF-8 in authentication method");
    case 0x16: return read_bin(r, out.authentication_data);
    case 0x17: return read_flag(r, out.request_problem_information, "request problem information not 0 or 1");
    case 0x18: return read_int(r, out.will_delay_interval);
    case 0x19: return read_flag(r, out.request_response_information, "request response information not 0 or 1");
    case 0x1A: return read_str(r, out.response_information, "invalid UTF-8 in response information");
    case 0x1C: return read_str(r, out.server_reference, "invalid UTF-8 in server reference");
    case 0x1F: return read_str(r, out.reason_string, "invalid UTF-8 in reason string");
    case 0x21:
        if (!read_int(r, out.receive_maximum))
            return false;
        return *out.receive_maximum != 0 || r.fail(rc::protocol_error, "receive maximum 0");
    case 0x22: return read_int(r, out.topic_alias_maximum);
    case 0x23:
        if (!read_int(r, out.topic_alias))
            return false;
        return *out.topic_alias != 0 || r.fail(rc::topic_alias_invalid, "topic alias 0");
    case 0x24: return read_flag(r, out.maximum_qos, "maximum QoS not 0 or 1");
    case 0x25: return read_flag(r, out.retain_available, "retain available not 0 or 1");
    case 0x26: {
        std::string_view k, v;
        if (!r.utf8(k, "invalid UTF-8 in user property") || !r.utf8(v, "invalid UTF-8 in user property"))
            return false;
        out.user_properties.emplace_back(k, v);
        return true;
    }
    case 0x27:
        if (!read_int(r, out.maximum_packet_size))
            return false;
        return *out.maximum_packet_size != 0 || r.fail(rc::protocol_error, "maximum packet size 0");
    case 0x28: return read_flag(r, out.wildcard_subscription_available, "wildcard subscription available not 0 or 1");
    case 0x29: return read_flag(r, out.subscription_identifier_available, "subscription identifier available not 0 or 1");
    case 0x2A: return read_flag(r, out.shared_subscription_available, "shared subscription available not 0 or 1");
    }
    return r.fail(rc::malformed_packet, "unknown property identifier");
}

// Reads a property length and the block it announces.
bool read_properties(reader& r, prop_ctx ctx, properties& out) {
    std::uint32_t len;
    if (!r.varint(len))
        return false;
    if (len > r.left())
        return r.fail(reason_code::malformed_packet, "property length exceeds packet");
    const auto outer_end = r.end;
    r.end = r.p + len;
    std::uint64_t seen = 0;
    while (r.p != r.end) {
        const std::uint8_t id = *r.p++;
        if (id > max_prop_id || (allowed_table[id] & ctx) == 0)
            return r.fail(reason_code::malformed_packet, "property not allowed in this packet");
        const bool may_repeat = id == 0x26 || (id == 0x0B && ctx == in_publish);
        if (!may_repeat) {
            if (seen & (std::uint64_t{1} << id))
                return r.fail(reason_code::malformed_packet, "duplicate property");
            seen |= std::uint64_t{1} << id;
        }
        if (!read_one_property(r, id, out))
            return false;
    }
    r.end = outer_end;
    return true;
}

// ---------------------------------------------------------------- reason codes

bool valid_connack_code(std::uint8_t c) {
    switch (c) {
    case 0x00: case 0x80: case 0x81: case 0x82: case 0x83: case 0x84: case 0x85: case 0x86:
    case 0x87: case 0x88: case 0x89: case 0x8A: case 0x8C: case 0x90: case 0x95: case 0x97:
    case 0x99: case 0x9A: case 0x9B: case 0x9C: case 0x9D: case 0x9F:
        return true;
    }
    return false;
}

bool valid_pub_ack_code(packet_type t, std::uint8_t c) {
    if (t == packet_type::pubrel || t == packet_type::pubcomp)
        return c == 0x00 || c == 0x92;
    switch (c) {
    case 0x00: case 0x10: case 0x80: case 0x83: case 0x87: case 0x90: case 0x91: case 0x97: case 0x99:
        return true;
    }
    return false;
}

bool valid_suback_code(std::uint8_t c) {
    switch (c) {
    case 0x00: case 0x01: case 0x02: case 0x80: case 0x83: case 0x87: case 0x8F: case 0x91:
    case 0x97: case 0x9E: case 0xA1: case 0xA2:
        return true;
    }
    return false;
}

bool valid_unsuback_code(std::uint8_t c) {
    switch (c) {
    case 0x00: case 0x11: case 0x80: case 0x83: case 0x87: case 0x8F: case 0x91:
        return true;
    }
    return false;
}

bool valid_disconnect_code(std::uint8_t c) {
    switch (c) {
    case 0x00: case 0x04: case 0x80: case 0x81: case 0x82: case 0x83: case 0x87: case 0x89:
    case 0x8B: case 0x8D: case 0x8E: case 0x8F: case 0x90: case 0x93: case 0x94: case 0x95:
    case 0x96: case 0x97: case 0x98: case 0x99: case 0x9A: case 0x9B: case 0x9C: case 0x9D:
    case 0x9E: case 0x9F: case 0xA0: case 0xA1: case 0xA2:
        return true;
    }
    return false;
}

bool valid_auth_code(std::uint8_t c) { return c == 0x00 || c == 0x18 || c == 0x19; }

// 3.1.1 CONNACK return codes 0..5 and back.
constexpr reason_code v311_connack_codes[] = {
    reason_code::success,
    reason_code::unsupported_protocol_version,
    reason_code::client_identifier_not_valid,
    reason_code::server_unavailable,
    reason_code::bad_user_name_or_password,
    reason_code::not_authorized,
};

std::uint8_t to_v311_connack(reason_code c) {
    switch (c) {
    case reason_code::success: return 0;
    case reason_code::unsupported_protocol_version: return 1;
    case reason_code::client_identifier_not_valid: return 2;
    case reason_code::bad_user_name_or_password: return 4;
    case reason_code::not_authorized:
    case reason_code::banned:
    case reason_code::bad_authentication_method: return 5;
    default: return 3;
    }
}

// ---------------------------------------------------------------- decoders

bool packet_id(reader& r, std::uint16_t& id) {
    if (!r.u16(id))
        return false;
    return id != 0 || r.fail(reason_code::protocol_error, "packet identifier 0");
}

bool decode_connect_body(reader& r, std::uint8_t first_byte, connect& c) {
    using rc = reason_code;
    if ((first_byte >> 4) != static_cast<std::uint8_t>(packet_type::connect))
        return r.fail(rc::protocol_error, "first packet is not CONNECT");
    if ((first_byte & 0x0F) != 0)
        return r.fail(rc::malformed_packet, "reserved fixed header flags set in CONNECT");
    std::string_view name;
    std::uint8_t level;
    if (!r.binary(name) || !r.u8(level))
        return false;
    if (name != "MQTT" || (level != 4 && level != 5))
        return r.fail(rc::unsupported_protocol_version, "unsupported protocol name or level");
    c.version = static_cast<protocol_version>(level);
    const bool v5 = c.version == protocol_version::v5;

    std::uint8_t flags;
    if (!r.u8(flags))
        return false;
    if (flags & 0x01)
        return r.fail(rc::malformed_packet, "reserved CONNECT flag set");
    c.clean_start = flags & 0x02;
    const bool has_will = flags & 0x04;
    const auto will_qos = static_cast<std::uint8_t>((flags >> 3) & 0x03);
    const bool will_retain = flags & 0x20;
    const bool has_password = flags & 0x40;
    const bool has_username = flags & 0x80;
    if (!has_will && (will_qos != 0 || will_retain))
        return r.fail(rc::malformed_packet, "will QoS or retain set without will flag");
    if (will_qos == 3)
        return r.fail(rc::malformed_packet, "will QoS 3");
    if (!v5 && has_password && !has_username)
        return r.fail(rc::malformed_packet, "password flag without user name flag");
    if (!r.u16(c.keep_alive))
        return false;
    if (v5) {
        if (!read_properties(r, in_connect, c.props))
            return false;
        if (c.props.authentication_data && !c.props.authentication_method)
            return r.fail(rc::protocol_error, "authentication data without authentication method");
    }
    if (!r.utf8(c.client_id, "invalid UTF-8 in client identifier"))
        return false;
    if (has_will) {
        auto& w = c.will.emplace();
        w.qos = will_qos;
        w.retain = will_retain;
        if (v5 && !read_properties(r, in_will, w.props))
            return false;
        if (!r.utf8(w.topic, "invalid UTF-8 in will topic") || !r.binary(w.payload))
            return false;
    }
    if (has_username && !r.utf8(c.username.emplace(), "invalid UTF-8 in user name"))
        return false;
    if (has_password && !r.binary(c.password.emplace()))
        return false;
    return r.at_end("trailing bytes in CONNECT");
}

bool decode_connack(reader& r, bool v5, connack& c) {
    std::uint8_t flags, code;
    if (!r.u8(flags) || !r.u8(code))
        return false;
    if (flags & 0xFE)
        return r.fail(reason_code::malformed_packet, "reserved CONNACK flag set");
    c.session_present = flags & 0x01;
    if (v5) {
        if (!valid_connack_code(code))
            return r.fail(reason_code::malformed_packet, "invalid CONNACK reason code");
        c.code = static_cast<reason_code>(code);
        if (!read_properties(r, in_connack, c.props))
            return false;
    } else {
        if (code > 5)
            return r.fail(reason_code::malformed_packet, "invalid CONNACK return code");
        c.code = v311_connack_codes[code];
    }
    return r.at_end("trailing bytes in CONNACK");
}

bool decode_publish(reader& r, std::uint8_t flags, bool v5, publish& p) {
    using rc = reason_code;
    p.retain = flags & 0x01;
    p.qos = static_cast<std::uint8_t>((flags >> 1) & 0x03);
    p.dup = flags & 0x08;
    if (p.qos == 3)
        return r.fail(rc::malformed_packet, "QoS 3 in PUBLISH");
    if (p.dup && p.qos == 0)
        return r.fail(rc::malformed_packet, "DUP set on a QoS 0 PUBLISH");
    if (!r.utf8(p.topic, "invalid UTF-8 in topic name"))
        return false;
    if (p.qos > 0 && !packet_id(r, p.packet_id))
        return false;
    if (v5 && !read_properties(r, in_publish, p.props))
        return false;
    if (p.topic.empty()) {
        if (!v5)
            return r.fail(rc::malformed_packet, "empty topic name");
        if (!p.props.topic_alias)
            return r.fail(rc::protocol_error, "empty topic name without topic alias");
    }
    p.payload = {reinterpret_cast<const char*>(r.p), r.left()};
    r.p = r.end;
    return true;
}

bool decode_ack(reader& r, packet_type t, bool v5, ack& a) {
    a.type = t;
    if (!packet_id(r, a.packet_id))
        return false;
    if (v5 && r.left() > 0) {
        std::uint8_t code;
        if (!r.u8(code))
            return false;
        if (!valid_pub_ack_code(t, code))
            return r.fail(reason_code::malformed_packet, "invalid reason code in publish acknowledgement");
        a.code = static_cast<reason_code>(code);
        if (r.left() > 0 && !read_properties(r, in_pub_ack, a.props))
            return false;
    }
    return r.at_end("trailing bytes in publish acknowledgement");
}

bool subscription_options(reader& r, bool v5, subscription_request& s) {
    std::uint8_t o;
    if (!r.u8(o))
        return false;
    s.qos = o & 0x03;
    if (s.qos == 3)
        return r.fail(reason_code::malformed_packet, "QoS 3 in subscription options");
    if (!v5) {
        if (o & 0xFC)
            return r.fail(reason_code::malformed_packet, "reserved subscription option bits set");
        return true;
    }
    if (o & 0xC0)
        return r.fail(reason_code::malformed_packet, "reserved subscription option bits set");
    s.no_local = o & 0x04;
    s.retain_as_published = o & 0x08;
    s.retain_handling = static_cast<std::uint8_t>((o >> 4) & 0x03);
    if (s.retain_handling == 3)
        return r.fail(reason_code::malformed_packet, "retain handling 3");
    return true;
}

bool decode_subscribe(reader& r, bool v5, subscribe& s) {
    if (!packet_id(r, s.packet_id))
        return false;
    if (v5 && !read_properties(r, in_subscribe, s.props))
        return false;
    if (r.left() == 0)
        return r.fail(v5 ? reason_code::protocol_error : reason_code::malformed_packet,
                      "SUBSCRIBE without topic filter");
    while (r.left() > 0) {
        auto& e = s.entries.emplace_back();
        if (!r.utf8(e.filter, "invalid UTF-8 in topic filter") || !subscription_options(r, v5, e))
            return false;
    }
    return true;
}

bool decode_suback(reader& r, bool v5, suback& s) {
    if (!packet_id(r, s.packet_id))
        return false;
    if (v5 && !read_properties(r, in_suback, s.props))
        return false;
    if (r.left() == 0)
        return r.fail(reason_code::malformed_packet, "SUBACK without reason codes");
    while (r.left() > 0) {
        const std::uint8_t c = *r.p++;
        if (v5 ? !valid_suback_code(c) : (c > 2 && c != 0x80))
            return r.fail(reason_code::malformed_packet, "invalid SUBACK reason code");
        s.codes.push_back(static_cast<reason_code>(c));
    }
    return true;
}

bool decode_unsubscribe(reader& r, bool v5, unsubscribe& u) {
    if (!packet_id(r, u.packet_id))
        return false;
    if (v5 && !read_properties(r, in_unsubscribe, u.props))
        return false;
    if (r.left() == 0)
        return r.fail(v5 ? reason_code::protocol_error : reason_code::malformed_packet,
                      "UNSUBSCRIBE without topic filter");
    while (r.left() > 0) {
        if (!r.utf8(u.filters.emplace_back(), "invalid UTF-8 in topic filter"))
            return false;
    }
    return true;
}

bool decode_unsuback(reader& r, bool v5, unsuback& u) {
    if (!packet_id(r, u.packet_id))
        return false;
    if (!v5)
        return r.at_end("trailing bytes in UNSUBACK");
    if (!read_properties(r, in_unsuback, u.props))
        return false;
    if (r.left() == 0)
        return r.fail(reason_code::malformed_packet, "UNSUBACK without reason codes");
    while (r.left() > 0) {
        const std::uint8_t c = *r.p++;
        if (!valid_unsuback_code(c))
            return r.fail(reason_code::malformed_packet, "invalid UNSUBACK reason code");
        u.codes.push_back(static_cast<reason_code>(c));
    }
    return true;
}

bool decode_disconnect(reader& r, bool v5, disconnect& d) {
    if (v5 && r.left() > 0) {
        std::uint8_t code;
        if (!r.u8(code))
            return false;
        if (!valid_disconnect_code(code))
            return r.fail(reason_code::malformed_packet, "invalid DISCONNECT reason code");
        d.code = static_cast<reason_code>(code);
        if (r.left() > 0 && !read_properties(r, in_disconnect, d.props))
            return false;
    }
    return r.at_end("trailing bytes in DISCONNECT");
}

bool decode_auth(reader& r, auth& a) {
    if (r.left() > 0) {
        std::uint8_t code;
        if (!r.u8(code))
            return false;
        if (!valid_auth_code(code))
            return r.fail(reason_code::malformed_packet, "invalid AUTH reason code");
        a.code = static_cast<reason_code>(code);
        if (r.left() > 0 && !read_properties(r, in_auth, a.props))
            return false;
    }
    return r.at_end("trailing bytes in AUTH");
}

// Fixed-header flags every packet type but PUBLISH must carry (§2.1.3).
constexpr std::uint8_t required_flags(packet_type t) {
    switch (t) {
    case packet_type::pubrel:
    case packet_type::subscribe:
    case packet_type::unsubscribe: return 0x02;
    default: return 0x00;
    }
}

decode_result<packet> finish(reader& r, packet&& pk, bool ok) {
    if (!ok)
        return r.err;
    return std::move(pk);
}

// ---------------------------------------------------------------- encoding

// The encoders run twice over the same code: once with size_sink to learn the
// remaining length, once with string_sink to write. One code path keeps the
// two in step.
struct size_sink {
    std::size_t n = 0;
    void u8(std::uint8_t) { n += 1; }
    void u16(std::uint16_t) { n += 2; }
    void u32(std::uint32_t) { n += 4; }
    void varint(std::uint32_t v) { n += varint_size(v); }
    void str(std::string_view s) { n += 2 + s.size(); }
    void raw(std::string_view s) { n += s.size(); }
};

struct string_sink {
    std::string& out;
    void u8(std::uint8_t b) { out.push_back(static_cast<char>(b)); }
    void u16(std::uint16_t v) {
        const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
        out.append(b, 2);
    }
    void u32(std::uint32_t v) {
        const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                           static_cast<char>(v >> 8), static_cast<char>(v)};
        out.append(b, 4);
    }
    void varint(std::uint32_t v) {
        assert(v <= max_varint);
        do {
            auto b = static_cast<std::uint8_t>(v & 0x7F);
            v >>= 7;
            if (v)
                b |= 0x80;
            out.push_back(static_cast<char>(b));
        } while (v);
    }
    void str(std::string_view s) {
        assert(s.size() <= 0xFFFF);
        u16(static_cast<std::uint16_t>(s.size()));
        out.append(s);
    }
    void raw(std::string_view s) { out.append(s); }
};

template <class S>
void write_properties(const properties& p, S& s) {
    auto b = [&](std::uint8_t id, const std::optional<std::uint8_t>& v) {
        if (v) { s.u8(id); s.u8(*v); }
    };
    auto h = [&](std::uint8_t id, const std::optional<std::uint16_t>& v) {
        if (v) { s.u8(id); s.u16(*v); }
    };
    auto w = [&](std::uint8_t id, const std::optional<std::uint32_t>& v) {
        if (v) { s.u8(id); s.u32(*v); }
    };
    auto str = [&](std::uint8_t id, const std::optional<std::string_view>& v) {
        if (v) { s.u8(id); s.str(*v); }
    };
    b(0x01, p.payload_format_indicator);
    w(0x02, p.message_expiry_interval);
    str(0x03, p.content_type);
    str(0x08, p.response_topic);
    str(0x09, p.correlation_data);
    for (auto id : p.subscription_identifiers) {
        s.u8(0x0B);
        s.varint(id);
    }
    w(0x11, p.session_expiry_interval);
    str(0x12, p.assigned_client_identifier);
    h(0x13, p.server_keep_alive);
    str(0x15, p.authentication_method);
    str(0x16, p.authentication_data);
    b(0x17, p.request_problem_information);
    w(0x18, p.will_delay_interval);
    b(0x19, p.request_response_information);
    str(0x1A, p.response_information);
    str(0x1C, p.server_reference);
    str(0x1F, p.reason_string);
    h(0x21, p.receive_maximum);
    h(0x22, p.topic_alias_maximum);
    h(0x23, p.topic_alias);
    b(0x24, p.maximum_qos);
    b(0x25, p.retain_available);
    for (const auto& [k, v] : p.user_properties) {
        s.u8(0x26);
        s.str(k);
        s.str(v);
    }
    w(0x27, p.maximum_packet_size);
    b(0x28, p.wildcard_subscription_available);
    b(0x29, p.subscription_identifier_available);
    b(0x2A, p.shared_subscription_available);
}

std::uint32_t properties_size(const properties& p) {
    size_sink s;
    write_properties(p, s);
    return static_cast<std::uint32_t>(s.n);
}

// Property length and block.
template <class S>
void property_block(const properties& p, S& s) {
    const auto n = properties_size(p);
    s.varint(n);
    if constexpr (std::is_same_v<S, size_sink>)
        s.n += n;
    else
        write_properties(p, s);
}

template <class S>
void body(const connect& c, protocol_version, S& s) {
    const bool v5 = c.version == protocol_version::v5;
    s.str("MQTT");
    s.u8(static_cast<std::uint8_t>(c.version));
    std::uint8_t flags = 0;
    if (c.clean_start)
        flags |= 0x02;
    if (c.will) {
        flags |= 0x04;
        flags |= static_cast<std::uint8_t>((c.will->qos & 0x03) << 3);
        if (c.will->retain)
            flags |= 0x20;
    }
    if (c.password)
        flags |= 0x40;
    if (c.username)
        flags |= 0x80;
    s.u8(flags);
    s.u16(c.keep_alive);
    if (v5)
        property_block(c.props, s);
    s.str(c.client_id);
    if (c.will) {
        if (v5)
            property_block(c.will->props, s);
        s.str(c.will->topic);
        s.str(c.will->payload);
    }
    if (c.username)
        s.str(*c.username);
    if (c.password)
        s.str(*c.password);
}

template <class S>
void body(const connack& c, protocol_version v, S& s) {
    s.u8(c.session_present ? 1 : 0);
    if (v == protocol_version::v5) {
        s.u8(static_cast<std::uint8_t>(c.code));
        property_block(c.props, s);
    } else {
        s.u8(to_v311_connack(c.code));
    }
}

template <class S>
void body(const ack& a, protocol_version v, S& s) {
    s.u16(a.packet_id);
    if (v != protocol_version::v5)
        return;
    const bool no_props = properties_size(a.props) == 0;
    if (a.code == reason_code::success && no_props)
        return;
    s.u8(static_cast<std::uint8_t>(a.code));
    if (!no_props)
        property_block(a.props, s);
}

template <class S>
void body(const subscribe& p, protocol_version v, S& s) {
    const bool v5 = v == protocol_version::v5;
    s.u16(p.packet_id);
    if (v5)
        property_block(p.props, s);
    for (const auto& e : p.entries) {
        s.str(e.filter);
        auto o = static_cast<std::uint8_t>(e.qos & 0x03);
        if (v5) {
            if (e.no_local)
                o |= 0x04;
            if (e.retain_as_published)
                o |= 0x08;
            o |= static_cast<std::uint8_t>((e.retain_handling & 0x03) << 4);
        }
        s.u8(o);
    }
}

template <class S>
void body(const suback& p, protocol_version v, S& s) {
    const bool v5 = v == protocol_version::v5;
    s.u16(p.packet_id);
    if (v5)
        property_block(p.props, s);
    for (auto c : p.codes) {
        auto b = static_cast<std::uint8_t>(c);
        s.u8(v5 || b < 0x80 ? b : std::uint8_t{0x80});
    }
}

template <class S>
void body(const unsubscribe& p, protocol_version v, S& s) {
    s.u16(p.packet_id);
    if (v == protocol_version::v5)
        property_block(p.props, s);
    for (auto f : p.filters)
        s.str(f);
}

template <class S>
void body(const unsuback& p, protocol_version v, S& s) {
    s.u16(p.packet_id);
    if (v != protocol_version::v5)
        return;
    property_block(p.props, s);
    for (auto c : p.codes)
        s.u8(static_cast<std::uint8_t>(c));
}

template <class S>
void body(const pingreq&, protocol_version, S&) {}

template <class S>
void body(const pingresp&, protocol_version, S&) {}

template <class S>
void body(const disconnect& d, protocol_version v, S& s) {
    if (v != protocol_version::v5)
        return;
    const bool no_props = properties_size(d.props) == 0;
    if (d.code == reason_code::normal_disconnection && no_props)
        return;
    s.u8(static_cast<std::uint8_t>(d.code));
    if (!no_props)
        property_block(d.props, s);
}

template <class S>
void body(const auth& a, protocol_version, S& s) {
    // Only the all-default AUTH may drop both fields; otherwise the property
    // length is always written (§3.15.2.2.1).
    const bool no_props = properties_size(a.props) == 0;
    if (a.code == reason_code::success && no_props)
        return;
    s.u8(static_cast<std::uint8_t>(a.code));
    property_block(a.props, s);
}

std::uint8_t first_byte_of(const packet& p) {
    struct visitor {
        std::uint8_t operator()(const connect&) const { return 0x10; }
        std::uint8_t operator()(const connack&) const { return 0x20; }
        std::uint8_t operator()(const publish&) const { return 0x30; }
        std::uint8_t operator()(const ack& a) const {
            assert(a.type == packet_type::puback || a.type == packet_type::pubrec ||
                   a.type == packet_type::pubrel || a.type == packet_type::pubcomp);
            return static_cast<std::uint8_t>(static_cast<std::uint8_t>(a.type) << 4 |
                                             required_flags(a.type));
        }
        std::uint8_t operator()(const subscribe&) const { return 0x82; }
        std::uint8_t operator()(const suback&) const { return 0x90; }
        std::uint8_t operator()(const unsubscribe&) const { return 0xA2; }
        std::uint8_t operator()(const unsuback&) const { return 0xB0; }
        std::uint8_t operator()(const pingreq&) const { return 0xC0; }
        std::uint8_t operator()(const pingresp&) const { return 0xD0; }
        std::uint8_t operator()(const disconnect&) const { return 0xE0; }
        std::uint8_t operator()(const auth&) const { return 0xF0; }
    };
    return std::visit(visitor{}, p);
}

void write_fixed_header(std::uint8_t first_byte, std::size_t remaining, std::string& out) {
    assert(remaining <= max_varint);
    string_sink s{out};
    s.u8(first_byte);
    s.varint(static_cast<std::uint32_t>(remaining));
}

} // namespace

// ---------------------------------------------------------------- public API

std::size_t varint_size(std::uint32_t value) noexcept {
    if (value < 128u)
        return 1;
    if (value < 16'384u)
        return 2;
    if (value < 2'097'152u)
        return 3;
    return 4;
}

decode_result<std::optional<frame_header>> frame(std::span<const std::uint8_t> buf,
                                                 std::uint32_t max_packet_size) noexcept {
    if (buf.empty())
        return std::optional<frame_header>{};
    frame_header h;
    h.first_byte = buf[0];
    if ((h.first_byte >> 4) == 0)
        return decode_error{reason_code::malformed_packet, "reserved packet type 0"};
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        if (buf.size() <= 1 + i)
            return std::optional<frame_header>{};
        const std::uint8_t b = buf[1 + i];
        value |= std::uint32_t{b & 0x7Fu} << (7 * i);
        if ((b & 0x80) == 0) {
            if (i > 0 && b == 0)
                return decode_error{reason_code::malformed_packet,
                                    "remaining length not in its shortest form"};
            h.remaining_length = value;
            h.header_size = 2 + i;
            if (h.total_size() > max_packet_size)
                return decode_error{reason_code::packet_too_large, "packet too large"};
            return std::optional<frame_header>{h};
        }
    }
    return decode_error{reason_code::malformed_packet, "remaining length longer than 4 bytes"};
}

decode_result<connect> decode_connect(std::uint8_t first_byte,
                                      std::span<const std::uint8_t> body) noexcept {
    reader r{body.data(), body.data() + body.size()};
    connect c;
    if (!decode_connect_body(r, first_byte, c))
        return r.err;
    return c;
}

decode_result<packet> decode(std::uint8_t first_byte, std::span<const std::uint8_t> body,
                             protocol_version v) noexcept {
    using rc = reason_code;
    reader r{body.data(), body.data() + body.size()};
    const bool v5 = v == protocol_version::v5;
    const auto type = static_cast<packet_type>(first_byte >> 4);
    const std::uint8_t flags = first_byte & 0x0F;
    if (first_byte >> 4 == 0)
        return decode_error{rc::malformed_packet, "reserved packet type 0"};
    if (type == packet_type::auth && !v5)
        return decode_error{rc::malformed_packet, "reserved packet type 15 in MQTT 3.1.1"};
    if (type != packet_type::publish && type != packet_type::connect &&
        flags != required_flags(type))
        return decode_error{rc::malformed_packet, "invalid fixed header flags"};

    switch (type) {
    case packet_type::connect: {
        packet pk{std::in_place_type<connect>};
        return finish(r, std::move(pk), decode_connect_body(r, first_byte, std::get<connect>(pk)));
    }
    case packet_type::connack: {
        packet pk{std::in_place_type<connack>};
        return finish(r, std::move(pk), decode_connack(r, v5, std::get<connack>(pk)));
    }
    case packet_type::publish: {
        packet pk{std::in_place_type<publish>};
        const bool ok = decode_publish(r, flags, v5, std::get<publish>(pk));
        return finish(r, std::move(pk), ok);
    }
    case packet_type::puback:
    case packet_type::pubrec:
    case packet_type::pubrel:
    case packet_type::pubcomp: {
        packet pk{std::in_place_type<ack>};
        const bool ok = decode_ack(r, type, v5, std::get<ack>(pk));
        return finish(r, std::move(pk), ok);
    }
    case packet_type::subscribe: {
        packet pk{std::in_place_type<subscribe>};
        const bool ok = decode_subscribe(r, v5, std::get<subscribe>(pk));
        return finish(r, std::move(pk), ok);
    }
    case packet_type::suback: {
        packet pk{std::in_place_type<suback>};
        const bool ok = decode_suback(r, v5, std::get<suback>(pk));
        return finish(r, std::move(pk), ok);
    }
    case packet_type::unsubscribe: {
        packet pk{std::in_place_type<unsubscribe>};
        const bool ok = decode_unsubscribe(r, v5, std::get<unsubscribe>(pk));
        return finish(r, std::move(pk), ok);
    }
    case packet_type::unsuback: {
        packet pk{std::in_place_type<unsuback>};
        const bool ok = decode_unsuback(r, v5, std::get<unsuback>(pk));
        return finish(r, std::move(pk), ok);
    }
    case packet_type::pingreq:
        if (!r.at_end("PINGREQ with a body"))
            return r.err;
        return packet{pingreq{}};
    case packet_type::pingresp:
        if (!r.at_end("PINGRESP with a body"))
            return r.err;
        return packet{pingresp{}};
    case packet_type::disconnect: {
        packet pk{std::in_place_type<disconnect>};
        const bool ok = decode_disconnect(r, v5, std::get<disconnect>(pk));
        return finish(r, std::move(pk), ok);
    }
    case packet_type::auth: {
        packet pk{std::in_place_type<auth>};
        const bool ok = decode_auth(r, std::get<auth>(pk));
        return finish(r, std::move(pk), ok);
    }
    }
    return decode_error{rc::malformed_packet, "unknown packet type"};
}

void encode_properties(const properties& props, std::string& out) {
    string_sink s{out};
    write_properties(props, s);
}

void encode_publish_header(const publish& p, std::size_t payload_size, protocol_version v,
                           std::string& out, std::string_view raw_properties) {
    const bool v5 = v == protocol_version::v5;
    std::size_t props_len = 0;
    std::size_t remaining = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + payload_size;
    if (v5) {
        props_len = properties_size(p.props) + raw_properties.size();
        remaining += varint_size(static_cast<std::uint32_t>(props_len)) + props_len;
    }
    const auto first = static_cast<std::uint8_t>(0x30 | (p.dup ? 0x08 : 0) | ((p.qos & 0x03) << 1) |
                                                 (p.retain ? 0x01 : 0));
    out.reserve(out.size() + 5 + remaining - payload_size);
    write_fixed_header(first, remaining, out);
    string_sink s{out};
    s.str(p.topic);
    if (p.qos > 0)
        s.u16(p.packet_id);
    if (v5) {
        s.varint(static_cast<std::uint32_t>(props_len));
        write_properties(p.props, s);
        s.raw(raw_properties);
    }
}

void encode(const packet& pk, protocol_version v, std::string& out) {
    std::visit(
        [&](const auto& x) {
            if constexpr (std::is_same_v<std::decay_t<decltype(x)>, publish>) {
                encode_publish_header(x, x.payload.size(), v, out);
                out.append(x.payload);
            } else {
                size_sink n;
                body(x, v, n);
                out.reserve(out.size() + 5 + n.n);
                write_fixed_header(first_byte_of(pk), n.n, out);
                string_sink s{out};
                body(x, v, s);
            }
        },
        pk);
}

} // namespace pulsegate::broker::protocol
