// Byte-exact checks against packets written out by hand from the spec, both
// ways: the struct encodes to exactly these bytes and the bytes decode to
// exactly this struct. Plus the reason code error category.

#include "codec_test_util.hpp"

#include <doctest/doctest.h>

#include <boost/system/system_error.hpp>

using namespace codec_test;

namespace {

void check_both_ways(const p::packet& pk, protocol_version v, std::string_view wire_hex) {
    CHECK(to_hex(encoded(pk, v)) == to_hex(hex(wire_hex)));
    auto r = decode_wire(keep(hex(wire_hex)), v);
    REQUIRE_MESSAGE(r.has_value(), r.error().detail);
    CHECK(*r == pk);
}

} // namespace

TEST_CASE("PINGREQ, PINGRESP") {
    for (auto v : {protocol_version::v311, protocol_version::v5}) {
        check_both_ways(p::pingreq{}, v, "c0 00");
        check_both_ways(p::pingresp{}, v, "d0 00");
    }
}

TEST_CASE("3.1.1 CONNECT with user name and password") {
    p::connect c;
    c.version = protocol_version::v311;
    c.clean_start = true;
    c.keep_alive = 60;
    c.client_id = "abc";
    c.username = "u";
    c.password = "p";
    check_both_ways(c, protocol_version::v311,
                    "10 15  00 04 4d 51 54 54  04  c2  00 3c  00 03 61 62 63  00 01 75  00 01 70");
}

TEST_CASE("3.1.1 CONNECT with will") {
    p::connect c;
    c.version = protocol_version::v311;
    c.clean_start = false;
    c.keep_alive = 0;
    c.client_id = "c";
    c.will = p::will_message{"w/t", "bye", 1, true, {}};
    // flags: will retain 0x20 | will qos 1 << 3 | will 0x04
    check_both_ways(c, protocol_version::v311,
                    "10 17  00 04 4d 51 54 54  04  2c  00 00  00 01 63  00 03 77 2f 74  00 03 62 79 65");
}

TEST_CASE("v5 CONNECT with session expiry") {
    p::connect c;
    c.version = protocol_version::v5;
    c.keep_alive = 10;
    c.client_id = "c";
    c.props.session_expiry_interval = 10;
    check_both_ways(c, protocol_version::v5,
                    "10 13  00 04 4d 51 54 54  05  02  00 0a  05 11 00 00 00 0a  00 01 63");
    // decode() takes CONNECT as well; the version comes from the packet.
    auto r = decode_wire(keep(hex("10 13 00 04 4d 51 54 54 05 02 00 0a 05 11 00 00 00 0a 00 01 63")),
                         protocol_version::v311);
    REQUIRE(r);
    CHECK(std::get<p::connect>(*r).version == protocol_version::v5);
}

TEST_CASE("CONNACK") {
    check_both_ways(p::connack{false, reason_code::success, {}}, protocol_version::v311,
                    "20 02 00 00");
    check_both_ways(p::connack{true, reason_code::success, {}}, protocol_version::v311,
                    "20 02 01 00");
    check_both_ways(p::connack{false, reason_code::not_authorized, {}}, protocol_version::v311,
                    "20 02 00 05");
    check_both_ways(p::connack{true, reason_code::success, {}}, protocol_version::v5,
                    "20 03 01 00 00");
    p::connack c{false, reason_code::success, {}};
    c.props.assigned_client_identifier = "id";
    c.props.topic_alias_maximum = 5;
    check_both_ways(c, protocol_version::v5, "20 0b 00 00 08 12 00 02 69 64 22 00 05");
}

TEST_CASE("v5 PUBLISH with properties") {
    p::publish pb;
    pb.qos = 1;
    pb.topic = "a/b";
    pb.packet_id = 10;
    pb.payload = "hi";
    pb.props.message_expiry_interval = 30;
    pb.props.content_type = "json";
    pb.props.user_properties.emplace_back("k", "v");
    check_both_ways(pb, protocol_version::v5,
                    "32 1d  00 03 61 2f 62  00 0a  13  02 00 00 00 1e  03 00 04 6a 73 6f 6e"
                    "  26 00 01 6b 00 01 76  68 69");
}

TEST_CASE("PUBLISH flags and v5 topic alias with empty topic") {
    p::publish pb;
    pb.qos = 2;
    pb.dup = true;
    pb.retain = true;
    pb.topic = "t";
    pb.packet_id = 1;
    check_both_ways(pb, protocol_version::v311, "3d 05 00 01 74 00 01");
    p::publish alias;
    alias.props.topic_alias = 2;
    alias.payload = "x";
    check_both_ways(alias, protocol_version::v5, "30 07 00 00 03 23 00 02 78");
}

TEST_CASE("SUBSCRIBE and UNSUBSCRIBE") {
    p::subscribe s;
    s.packet_id = 1;
    s.entries.push_back({"a/#", 1, false, false, 0});
    check_both_ways(s, protocol_version::v311, "82 08 00 01 00 03 61 2f 23 01");
    s.entries[0].no_local = true;
    s.entries[0].retain_handling = 2;
    check_both_ways(s, protocol_version::v5, "82 09 00 01 00 00 03 61 2f 23 25");
    s.entries[0].retain_as_published = true;
    s.entries[0].qos = 2;
    s.props.subscription_identifiers.push_back(200); // two-byte varint
    check_both_ways(s, protocol_version::v5, "82 0c 00 01 03 0b c8 01 00 03 61 2f 23 2e");

    p::unsubscribe u;
    u.packet_id = 2;
    u.filters.push_back("a/b");
    check_both_ways(u, protocol_version::v311, "a2 07 00 02 00 03 61 2f 62");
    check_both_ways(u, protocol_version::v5, "a2 08 00 02 00 00 03 61 2f 62");
}

TEST_CASE("SUBACK and UNSUBACK") {
    p::suback s;
    s.packet_id = 1;
    s.codes = {reason_code::granted_qos2, reason_code::unspecified_error};
    check_both_ways(s, protocol_version::v311, "90 04 00 01 02 80");
    s.codes = {reason_code::granted_qos1, reason_code::wildcard_subscriptions_not_supported};
    check_both_ways(s, protocol_version::v5, "90 05 00 01 00 01 a2");

    p::unsuback u;
    u.packet_id = 1;
    check_both_ways(u, protocol_version::v311, "b0 02 00 01");
    u.codes = {reason_code::success, reason_code::no_subscription_existed};
    check_both_ways(u, protocol_version::v5, "b0 05 00 01 00 00 11");
}

TEST_CASE("acks") {
    check_both_ways(p::ack{p::packet_type::puback, 5, reason_code::success, {}},
                    protocol_version::v311, "40 02 00 05");
    check_both_ways(p::ack{p::packet_type::pubrec, 5, reason_code::success, {}},
                    protocol_version::v311, "50 02 00 05");
    check_both_ways(p::ack{p::packet_type::pubrel, 5, reason_code::success, {}},
                    protocol_version::v311, "62 02 00 05");
    check_both_ways(p::ack{p::packet_type::pubcomp, 5, reason_code::success, {}},
                    protocol_version::v311, "70 02 00 05");
    check_both_ways(p::ack{p::packet_type::puback, 5, reason_code::not_authorized, {}},
                    protocol_version::v5, "40 03 00 05 87");
}

TEST_CASE("v5 DISCONNECT and AUTH with properties") {
    p::disconnect d{reason_code::session_taken_over, {}};
    d.props.reason_string = "x";
    check_both_ways(d, protocol_version::v5, "e0 06 8e 04 1f 00 01 78");
    p::auth a{reason_code::continue_authentication, {}};
    a.props.authentication_method = "m";
    check_both_ways(a, protocol_version::v5, "f0 06 18 04 15 00 01 6d");
}

TEST_CASE("encode appends to what the buffer already holds") {
    std::string out = "xy";
    p::encode(p::pingreq{}, protocol_version::v5, out);
    p::encode(p::pingresp{}, protocol_version::v5, out);
    CHECK(to_hex(out) == "78 79 c0 00 d0 00");
}

TEST_CASE("several packets framed out of one buffer") {
    std::string buf;
    p::encode(full_publish(protocol_version::v5, 1), protocol_version::v5, buf);
    p::encode(p::pingreq{}, protocol_version::v5, buf);
    p::encode(full_subscribe(protocol_version::v5), protocol_version::v5, buf);
    buf += "\x30"; // start of a fourth, incomplete
    std::span<const std::uint8_t> rest = bytes(buf);
    int n = 0;
    while (true) {
        auto f = p::frame(rest, 1024);
        REQUIRE(f);
        if (!*f || (*f)->total_size() > rest.size())
            break;
        auto r = p::decode((*f)->first_byte, rest.subspan((*f)->header_size, (*f)->remaining_length),
                           protocol_version::v5);
        REQUIRE(r);
        ++n;
        rest = rest.subspan((*f)->total_size());
    }
    CHECK(n == 3);
    CHECK(rest.size() == 1);
}

TEST_CASE("reason codes are an error category") {
    const boost::system::error_code ec = reason_code::not_authorized;
    CHECK(std::string(ec.category().name()) == "mqtt");
    CHECK(ec.value() == 0x87);
    CHECK(ec.message() == "Not authorized");
    CHECK(ec.failed());
    CHECK(p::to_string(reason_code::success) == "Success");
    CHECK(p::to_string(reason_code::malformed_packet) == "Malformed Packet");
    CHECK(p::to_string(reason_code::wildcard_subscriptions_not_supported) ==
          "Wildcard Subscriptions not supported");
    CHECK(p::to_string(static_cast<reason_code>(0x42)) == "Unknown reason code");
    CHECK(boost::system::error_code(reason_code::packet_too_large) ==
          p::make_error_code(reason_code::packet_too_large));

    // result<T, decode_error>::value() throws a system_error with the detail.
    auto r = decode_wire(keep(hex("36 03 00 01 74")), protocol_version::v5);
    REQUIRE(r.has_error());
    try {
        (void)r.value();
        FAIL("value() did not throw");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == p::make_error_code(reason_code::malformed_packet));
        CHECK(std::string(e.what()).find("QoS 3") != std::string::npos);
    }
}
