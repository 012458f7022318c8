// Malformed and illegal input: each case names the reason code the peer must
// get. Framing, fixed-header flags, CONNECT rules, PUBLISH rules, SUBSCRIBE
// options, the property table of MQTT 5 §2.2.2.2 (allowed per packet type,
// duplicates, value ranges) and UTF-8 (RFC 3629, MQTT §1.5.4).

#include "codec_test_util.hpp"

#include <doctest/doctest.h>

#include <array>

using namespace codec_test;

namespace {

constexpr auto v311 = protocol_version::v311;
constexpr auto v5 = protocol_version::v5;

reason_code frame_error(std::string_view wire, std::uint32_t max = no_limit) {
    auto f = p::frame(bytes(wire), max);
    REQUIRE_MESSAGE(f.has_error(), to_hex(wire));
    return f.error().code;
}

} // namespace

TEST_CASE("framing errors") {
    CHECK(frame_error(hex("30 80 80 80 80 01")) == reason_code::malformed_packet); // 5-byte length
    CHECK(frame_error(hex("30 ff ff ff ff")) == reason_code::malformed_packet);    // known at byte 4
    CHECK(frame_error(hex("30 80 00")) == reason_code::malformed_packet);          // not shortest
    CHECK(frame_error(hex("30 ff 80 00")) == reason_code::malformed_packet);
    CHECK(frame_error(hex("00 00")) == reason_code::malformed_packet);             // type 0
    CHECK(frame_error(hex("0f 00")) == reason_code::malformed_packet);

    // Incomplete header: empty optional.
    for (auto h : {"", "30", "30 80", "30 80 80", "30 ff ff ff"}) {
        auto f = p::frame(bytes(hex(h)), no_limit);
        REQUIRE(f);
        CHECK_FALSE(f->has_value());
    }
    // Complete header, incomplete body: total size tells how much to read.
    auto f = p::frame(bytes(hex("30 0a 00 01")), no_limit);
    REQUIRE(f);
    REQUIRE(*f);
    CHECK((*f)->total_size() == 12);
}

TEST_CASE("packet too large") {
    // Decided from the header alone, before the body arrives.
    CHECK(frame_error(hex("30 64"), 101) == reason_code::packet_too_large); // 2 + 100 > 101
    CHECK(frame_error(hex("30 ff ff ff 7f"), 1'048'576) == reason_code::packet_too_large);
    auto f = p::frame(bytes(hex("30 64")), 102); // exactly the limit
    REQUIRE(f);
    REQUIRE(*f);
    CHECK((*f)->total_size() == 102);
    const std::string big = encoded(full_publish(v5), v5);
    CHECK(frame_error(big, static_cast<std::uint32_t>(big.size() - 1)) == reason_code::packet_too_large);
    CHECK(p::frame(bytes(big), static_cast<std::uint32_t>(big.size())).has_value());
}

TEST_CASE("reserved fixed header flags") {
    struct row {
        const char* wire;
        protocol_version v;
    };
    const row rows[] = {
        {"11 0c 00 04 4d 51 54 54 04 02 00 00 00 00", v311}, // CONNECT flags 1
        {"21 02 00 00", v311},                                // CONNACK
        {"41 02 00 01", v311}, {"42 02 00 01", v5},           // PUBACK
        {"58 02 00 01", v5},                                  // PUBREC
        {"60 02 00 01", v311}, {"63 02 00 01", v5},           // PUBREL needs 0010
        {"72 02 00 01", v5},                                  // PUBCOMP
        {"80 06 00 01 00 01 74 00", v311},                    // SUBSCRIBE needs 0010
        {"83 07 00 01 00 00 01 74 00", v5},
        {"92 03 00 01 00", v311},                             // SUBACK
        {"a0 05 00 01 00 01 74", v311},                       // UNSUBSCRIBE needs 0010
        {"b2 02 00 01", v311},                                // UNSUBACK
        {"c1 00", v311}, {"c2 00", v5},                       // PINGREQ
        {"d8 00", v5},                                        // PINGRESP
        {"e1 00", v311}, {"e2 00", v5},                       // DISCONNECT
        {"f1 00", v5},                                        // AUTH
    };
    for (const auto& r : rows) {
        CAPTURE(r.wire);
        CHECK(decode_error_code(hex(r.wire), r.v) == reason_code::malformed_packet);
    }
    // The legal forms of the same packets decode.
    for (const auto* w : {"62 02 00 01", "c0 00", "e0 00"})
        CHECK(decodes(hex(w), v311));
}

TEST_CASE("AUTH does not exist in 3.1.1") {
    CHECK(decode_error_code(hex("f0 00"), v311) == reason_code::malformed_packet);
}

TEST_CASE("bodies that must be empty or of fixed size") {
    CHECK(decode_error_code(hex("c0 01 00"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("d0 01 00"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("e0 01 00"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("40 03 00 01 00"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("40 01 00"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("b0 03 00 01 00"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("20 03 00 00 00"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("20 02 00 00"), v5) == reason_code::malformed_packet); // no property length
    CHECK(decode_error_code(hex("40 05 00 01 00 00 00"), v5) == reason_code::malformed_packet); // trailing
    CHECK(decode_error_code(hex("e0 03 00 00 00"), v5) == reason_code::malformed_packet);
}

// ------------------------------------------------------------------ CONNECT

namespace {

// A v5/3.1.1 CONNECT with protocol name, level and flags given; client id "c".
std::string connect_wire(std::string_view name, std::uint8_t level, std::uint8_t flags,
                         std::string_view tail = {}) {
    std::string body = str16(name);
    body.push_back(static_cast<char>(level));
    body.push_back(static_cast<char>(flags));
    body += hex("00 3c");
    if (level == 5)
        body.push_back('\0'); // property length
    body += str16("c");
    body += tail;
    return with_header(0x10, body);
}

reason_code connect_error(std::string_view wire) {
    auto f = p::frame(bytes(wire), no_limit);
    REQUIRE(f);
    REQUIRE(*f);
    auto r = p::decode_connect((*f)->first_byte, bytes(wire).subspan((*f)->header_size));
    REQUIRE_MESSAGE(r.has_error(), to_hex(wire));
    // decode() says the same.
    auto r2 = decode_wire(wire, v5);
    REQUIRE(r2.has_error());
    CHECK(r2.error() == r.error());
    return r.error().code;
}

} // namespace

TEST_CASE("CONNECT protocol name and level") {
    CHECK(decodes(connect_wire("MQTT", 4, 0x02), v5));
    CHECK(decodes(connect_wire("MQTT", 5, 0x02), v5));
    CHECK(connect_error(connect_wire("MQIsdp", 3, 0x02)) == reason_code::unsupported_protocol_version);
    CHECK(connect_error(connect_wire("MQTT", 3, 0x02)) == reason_code::unsupported_protocol_version);
    CHECK(connect_error(connect_wire("MQTT", 6, 0x02)) == reason_code::unsupported_protocol_version);
    CHECK(connect_error(connect_wire("MQTX", 4, 0x02)) == reason_code::unsupported_protocol_version);
    CHECK(connect_error(connect_wire("mqtt", 5, 0x02)) == reason_code::unsupported_protocol_version);
    CHECK(connect_error(connect_wire("", 4, 0x02)) == reason_code::unsupported_protocol_version);
    // Too short to even hold the name: malformed, not a version question.
    CHECK(connect_error(with_header(0x10, hex("00 04 4d 51"))) == reason_code::malformed_packet);
    CHECK(connect_error(with_header(0x10, hex("00 04 4d 51 54 54"))) == reason_code::malformed_packet);
}

TEST_CASE("CONNECT flags") {
    for (std::uint8_t level : {4, 5}) {
        CAPTURE(int(level));
        CHECK(connect_error(connect_wire("MQTT", level, 0x03)) == reason_code::malformed_packet); // reserved
        CHECK(connect_error(connect_wire("MQTT", level, 0x0a)) == reason_code::malformed_packet); // will qos, no will
        CHECK(connect_error(connect_wire("MQTT", level, 0x22)) == reason_code::malformed_packet); // will retain, no will
        const std::string will_tail = (level == 5 ? std::string(1, '\0') : std::string()) +
                                      str16("t") + str16("m");
        CHECK(connect_error(connect_wire("MQTT", level, 0x1e, will_tail)) == reason_code::malformed_packet); // will qos 3
        CHECK(decodes(connect_wire("MQTT", level, 0x16, will_tail), v5)); // will qos 2
        CHECK(decodes(connect_wire("MQTT", level, 0x82, str16("u")), v5));
        CHECK(connect_error(connect_wire("MQTT", level, 0x82)) == reason_code::malformed_packet); // user name missing
        CHECK(connect_error(connect_wire("MQTT", level, 0x02, "x")) == reason_code::malformed_packet); // trailing
    }
    // Password without user name: malformed in 3.1.1, allowed in v5.
    CHECK(connect_error(connect_wire("MQTT", 4, 0x42, str16("pw"))) == reason_code::malformed_packet);
    auto r = decode_wire(keep(connect_wire("MQTT", 5, 0x42, str16("pw"))), v5);
    REQUIRE(r);
    CHECK(std::get<p::connect>(*r).password == "pw");
    CHECK_FALSE(std::get<p::connect>(*r).username.has_value());
}

TEST_CASE("CONNECT authentication data needs a method") {
    std::string body = str16("MQTT") + hex("05 02 00 3c 04 16 00 01 00") + str16("c");
    CHECK(connect_error(with_header(0x10, body)) == reason_code::protocol_error);
}

TEST_CASE("decode_connect refuses other packet types") {
    auto r = p::decode_connect(0xc0, {});
    REQUIRE(r.has_error());
    CHECK(r.error().code == reason_code::protocol_error);
}

// ------------------------------------------------------------------ PUBLISH and acks

TEST_CASE("PUBLISH rules") {
    for (auto v : {v311, v5}) {
        const std::string props = v == v5 ? std::string(1, '\0') : std::string();
        CHECK(decode_error_code(with_header(0x36, str16("t") + hex("00 01") + props), v) ==
              reason_code::malformed_packet); // QoS 3
        CHECK(decode_error_code(with_header(0x38, str16("t") + props), v) ==
              reason_code::malformed_packet); // DUP on QoS 0
        CHECK(decode_error_code(with_header(0x32, str16("t") + hex("00 00") + props), v) ==
              reason_code::protocol_error); // packet id 0
        CHECK(decode_error_code(with_header(0x34, str16("t") + hex("00 00") + props), v) ==
              reason_code::protocol_error);
        CHECK(decode_error_code(with_header(0x32, str16("t") + hex("00")), v) ==
              reason_code::malformed_packet); // truncated packet id
        CHECK(decode_error_code(with_header(0x30, hex("00 05 61 62")), v) ==
              reason_code::malformed_packet); // topic longer than packet
    }
    CHECK(decode_error_code(with_header(0x30, str16("") + "x"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(with_header(0x30, str16("") + hex("00") + "x"), v5) ==
          reason_code::protocol_error); // empty topic without alias
    CHECK(decode_error_code(with_header(0x30, str16("t") + hex("03 23 00 00")), v5) ==
          reason_code::topic_alias_invalid);
    CHECK(decode_error_code(with_header(0x30, str16("t") + hex("05 02 00 00")), v5) ==
          reason_code::malformed_packet); // property length beyond the packet
    CHECK(decode_error_code(with_header(0x30, str16("t") + hex("02 02 00 00 00 01")), v5) ==
          reason_code::malformed_packet); // property runs past its block
    CHECK(decode_error_code(with_header(0x30, str16("t") + hex("80 00")), v5) ==
          reason_code::malformed_packet); // property length not in shortest form
}

TEST_CASE("acks: packet id 0 and reason codes") {
    for (auto v : {v311, v5})
        for (auto first : {0x40, 0x50, 0x62, 0x70, 0x90, 0xb0})
            CHECK(decode_error_code(with_header(static_cast<std::uint8_t>(first),
                                                hex(first == 0x90 ? "00 00 00 00" :
                                                    first == 0xb0 && v == v5 ? "00 00 00 00" : "00 00")),
                                    v) == reason_code::protocol_error);
    CHECK(decode_error_code(hex("40 03 00 01 05"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("62 03 00 01 10"), v5) == reason_code::malformed_packet); // PUBACK-only code
    CHECK(decode_error_code(hex("70 03 00 01 87"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("90 04 00 01 00 03"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("90 03 00 01 03"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("90 03 00 01 87"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("90 03 00 01 00"), v5) == reason_code::malformed_packet); // no codes
    CHECK(decode_error_code(hex("b0 04 00 01 00 01"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("b0 03 00 01 00"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("20 02 00 06"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("20 02 02 00"), v311) == reason_code::malformed_packet); // reserved ack flag
    CHECK(decode_error_code(hex("20 03 00 18 00"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("e0 01 05"), v5) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("f0 02 01 00"), v5) == reason_code::malformed_packet);
}

// ------------------------------------------------------------------ SUBSCRIBE

TEST_CASE("SUBSCRIBE and UNSUBSCRIBE rules") {
    // No entries.
    CHECK(decode_error_code(hex("82 02 00 01"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("82 03 00 01 00"), v5) == reason_code::protocol_error);
    CHECK(decode_error_code(hex("a2 02 00 01"), v311) == reason_code::malformed_packet);
    CHECK(decode_error_code(hex("a2 03 00 01 00"), v5) == reason_code::protocol_error);
    // Packet id 0.
    CHECK(decode_error_code(hex("82 06 00 00 00 01 74 00"), v311) == reason_code::protocol_error);
    CHECK(decode_error_code(hex("a2 05 00 00 00 01 74"), v311) == reason_code::protocol_error);
    // Options.
    struct row {
        std::uint8_t options;
        protocol_version v;
        bool ok;
    };
    const row rows[] = {
        {0x00, v311, true},  {0x02, v311, true},  {0x03, v311, false}, {0x04, v311, false},
        {0x10, v311, false}, {0x80, v311, false}, {0x3e, v5, false},   {0x2e, v5, true},
        {0x30, v5, false},   {0x40, v5, false},   {0x80, v5, false},   {0x03, v5, false},
        {0x1d, v5, true},
    };
    for (const auto& r : rows) {
        CAPTURE(int(r.options));
        CAPTURE(r.v == v5);
        std::string body = hex("00 01") + (r.v == v5 ? hex("00") : "") + str16("a/b");
        body.push_back(static_cast<char>(r.options));
        const auto wire = with_header(0x82, body);
        if (r.ok)
            CHECK(decodes(wire, r.v));
        else
            CHECK(decode_error_code(wire, r.v) == reason_code::malformed_packet);
    }
    // Options byte missing after the last filter.
    CHECK(decode_error_code(hex("82 05 00 01 00 01 74"), v311) == reason_code::malformed_packet);
}

// ------------------------------------------------------------------ properties

namespace {

enum class ctx {
    connect, will, connack, publish, puback, pubrec, pubrel, pubcomp,
    subscribe, suback, unsubscribe, unsuback, disconnect, auth
};
constexpr ctx all_ctx[] = {ctx::connect, ctx::will, ctx::connack, ctx::publish, ctx::puback,
                           ctx::pubrec, ctx::pubrel, ctx::pubcomp, ctx::subscribe, ctx::suback,
                           ctx::unsubscribe, ctx::unsuback, ctx::disconnect, ctx::auth};

// A minimal valid v5 packet of kind `c` whose (only) property block is `props`.
std::string with_props(ctx c, std::string_view props) {
    const std::string block = varint(static_cast<std::uint32_t>(props.size())) + std::string(props);
    switch (c) {
    case ctx::connect:
        return with_header(0x10, str16("MQTT") + hex("05 02 00 3c") + block + str16(""));
    case ctx::will:
        return with_header(0x10, str16("MQTT") + hex("05 06 00 3c 00") + str16("c") + block +
                                     str16("t") + str16(""));
    case ctx::connack: return with_header(0x20, hex("00 00") + block);
    case ctx::publish: return with_header(0x30, str16("t") + block);
    case ctx::puback: return with_header(0x40, hex("00 01 00") + block);
    case ctx::pubrec: return with_header(0x50, hex("00 01 00") + block);
    case ctx::pubrel: return with_header(0x62, hex("00 01 00") + block);
    case ctx::pubcomp: return with_header(0x70, hex("00 01 00") + block);
    case ctx::subscribe: return with_header(0x82, hex("00 01") + block + str16("t") + hex("00"));
    case ctx::suback: return with_header(0x90, hex("00 01") + block + hex("00"));
    case ctx::unsubscribe: return with_header(0xa2, hex("00 01") + block + str16("t"));
    case ctx::unsuback: return with_header(0xb0, hex("00 01") + block + hex("00"));
    case ctx::disconnect: return with_header(0xe0, hex("00") + block);
    case ctx::auth: return with_header(0xf0, hex("00") + block);
    }
    return {};
}

struct prop_row {
    std::uint8_t id;
    const char* value_hex; // a legal value
    std::vector<ctx> allowed; // MQTT 5 §2.2.2.2, written out again here
};

const std::vector<prop_row>& prop_table() {
    using enum ctx;
    static const std::vector<prop_row> t = {
        {0x01, "01", {publish, will}},
        {0x02, "00 00 00 05", {publish, will}},
        {0x03, "00 02 63 74", {publish, will}},
        {0x08, "00 02 72 74", {publish, will}},
        {0x09, "00 02 00 ff", {publish, will}},
        {0x0b, "81 01", {publish, subscribe}},
        {0x11, "00 00 00 05", {connect, connack, disconnect}},
        {0x12, "00 02 69 64", {connack}},
        {0x13, "00 05", {connack}},
        {0x15, "00 01 6d", {connect, connack, auth}},
        {0x16, "00 02 00 ff", {connect, connack, auth}},
        {0x17, "01", {connect}},
        {0x18, "00 00 00 05", {will}},
        {0x19, "01", {connect}},
        {0x1a, "00 01 72", {connack}},
        {0x1c, "00 01 73", {connack, disconnect}},
        {0x1f, "00 01 72", {connack, puback, pubrec, pubrel, pubcomp, suback, unsuback, disconnect, auth}},
        {0x21, "00 05", {connect, connack}},
        {0x22, "00 05", {connect, connack}},
        {0x23, "00 05", {publish}},
        {0x24, "00", {connack}},
        {0x25, "01", {connack}},
        {0x26, "00 01 6b 00 01 76",
         {connect, will, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe, suback,
          unsubscribe, unsuback, disconnect, auth}},
        {0x27, "00 00 01 00", {connect, connack}},
        {0x28, "01", {connack}},
        {0x29, "00", {connack}},
        {0x2a, "01", {connack}},
    };
    return t;
}

bool allowed_in(const prop_row& r, ctx c) {
    for (auto a : r.allowed)
        if (a == c)
            return true;
    return false;
}

std::string one_prop(const prop_row& r) {
    std::string s(1, static_cast<char>(r.id));
    s += hex(r.value_hex);
    // Authentication data is only legal after a method in CONNECT.
    if (r.id == 0x16)
        s = hex("15 00 01 6d") + s;
    return s;
}

} // namespace

TEST_CASE("each property is accepted exactly where MQTT 5 allows it") {
    for (const auto& r : prop_table()) {
        for (auto c : all_ctx) {
            CAPTURE(int(r.id));
            CAPTURE(int(c));
            const auto wire = with_props(c, one_prop(r));
            if (allowed_in(r, c)) {
                auto d = decode_wire(wire, v5);
                CHECK_MESSAGE(d.has_value(), (d ? "" : d.error().detail));
            } else {
                CHECK(decode_error_code(wire, v5) == reason_code::malformed_packet);
            }
        }
    }
}

TEST_CASE("duplicate properties") {
    for (const auto& r : prop_table()) {
        for (auto c : r.allowed) {
            CAPTURE(int(r.id));
            CAPTURE(int(c));
            const auto twice = with_props(c, one_prop(r) + one_prop(r));
            const bool may_repeat = r.id == 0x26 || (r.id == 0x0b && c == ctx::publish);
            if (may_repeat) {
                auto d = decode_wire(twice, v5);
                REQUIRE(d.has_value());
            } else {
                CHECK(decode_error_code(twice, v5) == reason_code::malformed_packet);
            }
        }
    }
    // Repeated user properties and subscription ids keep their wire order.
    auto d = decode_wire(keep(with_props(ctx::publish, hex("26 00 01 6b 00 01 31  0b 03  26 00 01 6b 00 01 32  0b 01"))), v5);
    REQUIRE(d);
    const auto& pb = std::get<p::publish>(*d);
    REQUIRE(pb.props.user_properties.size() == 2);
    CHECK(pb.props.user_properties[0].second == "1");
    CHECK(pb.props.user_properties[1].second == "2");
    CHECK(pb.props.subscription_identifiers == decltype(pb.props.subscription_identifiers){3, 1});
}

TEST_CASE("unknown property identifiers") {
    for (std::uint8_t id : {0x00, 0x04, 0x0a, 0x14, 0x2b, 0x7f, 0x80, 0xff}) {
        CAPTURE(int(id));
        std::string prop(1, static_cast<char>(id));
        prop += hex("00");
        CHECK(decode_error_code(with_props(ctx::publish, prop), v5) == reason_code::malformed_packet);
    }
}

TEST_CASE("property values out of range") {
    struct row {
        ctx c;
        const char* prop_hex;
        reason_code expected;
    };
    const row rows[] = {
        {ctx::publish, "01 02", reason_code::protocol_error},
        {ctx::will, "01 ff", reason_code::protocol_error},
        {ctx::connect, "17 02", reason_code::protocol_error},
        {ctx::connect, "19 02", reason_code::protocol_error},
        {ctx::connack, "24 02", reason_code::protocol_error}, // maximum QoS is 0 or 1
        {ctx::connack, "25 02", reason_code::protocol_error},
        {ctx::connack, "28 02", reason_code::protocol_error},
        {ctx::connack, "29 02", reason_code::protocol_error},
        {ctx::connack, "2a 02", reason_code::protocol_error},
        {ctx::connect, "21 00 00", reason_code::protocol_error}, // receive maximum 0
        {ctx::connack, "21 00 00", reason_code::protocol_error},
        {ctx::connect, "27 00 00 00 00", reason_code::protocol_error}, // maximum packet size 0
        {ctx::connack, "27 00 00 00 00", reason_code::protocol_error},
        {ctx::subscribe, "0b 00", reason_code::protocol_error}, // subscription identifier 0
        {ctx::publish, "0b 00", reason_code::protocol_error},
        {ctx::publish, "0b 80 00", reason_code::malformed_packet}, // not shortest form
        {ctx::publish, "0b 80 80 80 80 01", reason_code::malformed_packet}, // 5 bytes
        {ctx::publish, "23 00 00", reason_code::topic_alias_invalid},
        {ctx::publish, "02 00 00 00", reason_code::malformed_packet}, // truncated u32
        {ctx::publish, "03 00 05 61", reason_code::malformed_packet}, // truncated string
        {ctx::publish, "26 00 01 6b", reason_code::malformed_packet}, // user property without value
    };
    for (const auto& r : rows) {
        CAPTURE(r.prop_hex);
        CAPTURE(int(r.c));
        CHECK(decode_error_code(with_props(r.c, hex(r.prop_hex)), v5) == r.expected);
    }
    // The edges that are legal.
    CHECK(decodes(with_props(ctx::publish, hex("0b ff ff ff 7f")), v5));
    CHECK(decodes(with_props(ctx::connack, hex("24 01")), v5));
    CHECK(decodes(with_props(ctx::connect, hex("21 ff ff")), v5));
    CHECK(decodes(with_props(ctx::publish, hex("23 ff ff")), v5));
}

// ------------------------------------------------------------------ UTF-8

TEST_CASE("UTF-8 in topic names") {
    struct row {
        const char* hex_text;
        bool ok;
        const char* what;
    };
    const row rows[] = {
        {"61", true, "ASCII"},
        {"c3 a9", true, "U+00E9"},
        {"e2 82 ac", true, "U+20AC"},
        {"f0 9d 84 9e", true, "U+1D11E"},
        {"ed 9f bf", true, "U+D7FF, last before surrogates"},
        {"ee 80 80", true, "U+E000, first after surrogates"},
        {"ef bf bf", true, "U+FFFF non-character is well-formed"},
        {"f4 8f bf bf", true, "U+10FFFF"},
        {"01 7f", true, "controls are not forbidden by the codec"},
        {"00", false, "U+0000"},
        {"61 62 63 64 65 66 67 00", false, "U+0000 in an 8-byte ASCII block"},
        {"61 62 63 64 65 66 67 68 69 00 61", false, "U+0000 after the fast path"},
        {"c0 80", false, "overlong U+0000"},
        {"c1 bf", false, "overlong 2-byte"},
        {"e0 80 80", false, "overlong 3-byte"},
        {"e0 9f bf", false, "overlong 3-byte, top"},
        {"f0 80 80 80", false, "overlong 4-byte"},
        {"f0 8f bf bf", false, "overlong 4-byte, top"},
        {"ed a0 80", false, "surrogate U+D800"},
        {"ed bf bf", false, "surrogate U+DFFF"},
        {"f4 90 80 80", false, "U+110000"},
        {"f5 80 80 80", false, "lead byte F5"},
        {"ff", false, "byte FF"},
        {"80", false, "stray continuation"},
        {"61 62 63 64 65 66 67 68 80", false, "stray continuation after the fast path"},
        {"e2 82", false, "truncated sequence"},
        {"c3", false, "truncated at end"},
        {"e2 28 a1", false, "bad continuation"},
        {"f0 9d 84 28", false, "bad last continuation"},
        {"61 62 63 64 65 66 67 68 c3 a9 61 62 63 64 65 66 67 68", true, "mixed"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.what);
        const std::string text = hex(r.hex_text);
        for (auto v : {v311, v5}) {
            const auto wire = with_header(0x30, str16(text) + (v == v5 ? hex("00") : "") + "pl");
            if (r.ok) {
                auto d = decode_wire(wire, v);
                REQUIRE(d);
                CHECK(std::get<p::publish>(*d).topic == text);
            } else {
                auto d = decode_wire(wire, v);
                REQUIRE(d.has_error());
                CHECK(d.error().code == reason_code::malformed_packet);
                CHECK(d.error().detail == "invalid UTF-8 in topic name");
            }
        }
    }
}

TEST_CASE("UTF-8 is checked in every string field, not in binary ones") {
    const std::string bad = hex("ed a0 80");
    const std::string b16 = str16(bad);
    auto fails = [](const std::string& wire, protocol_version v) {
        auto d = decode_wire(wire, v);
        return d.has_error() && d.error().code == reason_code::malformed_packet &&
               d.error().detail.find("UTF-8") != std::string_view::npos;
    };
    // CONNECT: client id, will topic, user name (3.1.1).
    const auto mqtt4 = str16("MQTT") + hex("04");
    CHECK(fails(with_header(0x10, mqtt4 + hex("02 00 00") + b16), v311));
    CHECK(fails(with_header(0x10, mqtt4 + hex("06 00 00") + str16("c") + b16 + str16("m")), v311));
    CHECK(fails(with_header(0x10, mqtt4 + hex("82 00 00") + str16("c") + b16), v311));
    // Password and will payload are binary.
    CHECK(decodes(with_header(0x10, mqtt4 + hex("c6 00 00") + str16("c") + str16("t") + b16 +
                                            str16("u") + str16(hex("00 ff"))),
                      v311));
    // Filters.
    CHECK(fails(with_header(0x82, hex("00 01") + b16 + hex("00")), v311));
    CHECK(fails(with_header(0xa2, hex("00 01") + b16), v311));
    // String properties, including both halves of a user property.
    for (std::uint8_t id : {0x03, 0x08})
        CHECK(fails(with_props(ctx::publish, std::string(1, static_cast<char>(id)) + b16), v5));
    CHECK(fails(with_props(ctx::connack, hex("12") + b16), v5));
    CHECK(fails(with_props(ctx::connack, hex("1a") + b16), v5));
    CHECK(fails(with_props(ctx::connack, hex("1c") + b16), v5));
    CHECK(fails(with_props(ctx::auth, hex("15") + b16), v5));
    CHECK(fails(with_props(ctx::puback, hex("1f") + b16), v5));
    CHECK(fails(with_props(ctx::puback, hex("26") + b16 + str16("v")), v5));
    CHECK(fails(with_props(ctx::puback, hex("26") + str16("k") + b16), v5));
    // Correlation and authentication data are binary.
    CHECK(decodes(with_props(ctx::publish, hex("09") + b16), v5));
    CHECK(decodes(with_props(ctx::auth, hex("15 00 01 6d 16") + b16), v5));
}
