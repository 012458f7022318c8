// Round trips: every packet type of both versions with every property it
// allows, encode -> frame -> decode gives the same packet; the PUBLISH header
// encoder matches the full encoder; every truncation and many mutations of a
// valid packet decode to an error or to a packet that round-trips again.

#include "codec_test_util.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <new>
#include <random>
#include <type_traits>

using namespace codec_test;

namespace {

const char* name_of(protocol_version v) { return v == protocol_version::v5 ? "v5" : "v3.1.1"; }

// Decode must either fail or give a packet that survives encode/decode.
void check_stable(std::uint8_t first_byte, std::span<const std::uint8_t> body, protocol_version v) {
    auto r = p::decode(first_byte, body, v);
    if (!r)
        return;
    const std::string again = encoded(*r, v);
    auto r2 = decode_wire(again, v);
    REQUIRE_MESSAGE(r2.has_value(), to_hex(again));
    CHECK(*r2 == *r);
}

} // namespace

TEST_CASE("every packet type round-trips with all its properties") {
    for (auto v : {protocol_version::v311, protocol_version::v5}) {
        for (const auto& pk : all_packets(v)) {
            CAPTURE(name_of(v));
            CAPTURE(pk.index());
            const std::string wire = encoded(pk, v);
            CAPTURE(to_hex(wire));
            auto r = decode_wire(wire, v);
            REQUIRE_MESSAGE(r.has_value(), r.error().detail);
            CHECK(*r == pk);
            // And the wire form is stable: re-encoding gives the same bytes.
            CHECK(encoded(*r, v) == wire);
        }
    }
}

TEST_CASE("decode_connect reads the version from the packet") {
    for (auto v : {protocol_version::v311, protocol_version::v5}) {
        const auto c = full_connect(v);
        const std::string wire = encoded(c, v);
        auto f = p::frame(bytes(wire), no_limit);
        REQUIRE(f);
        REQUIRE(*f);
        auto r = p::decode_connect((*f)->first_byte, bytes(wire).subspan((*f)->header_size));
        REQUIRE_MESSAGE(r.has_value(), r.error().detail);
        CHECK(r->version == v);
        CHECK(*r == c);
    }
}

TEST_CASE("CONNECT variants round-trip") {
    for (auto v : {protocol_version::v311, protocol_version::v5}) {
        CAPTURE(name_of(v));
        p::connect c;
        c.version = v;
        c.client_id = ""; // empty client id is legal on the wire
        CHECK(*decode_wire(keep(encoded(c, v)), v) == p::packet{c});
        c.username = "u";
        CHECK(*decode_wire(keep(encoded(c, v)), v) == p::packet{c});
        c.password = "";
        CHECK(*decode_wire(keep(encoded(c, v)), v) == p::packet{c});
        c.will = p::will_message{"w", "", 2, false, {}};
        CHECK(*decode_wire(keep(encoded(c, v)), v) == p::packet{c});
    }
    // v5 allows a password without a user name.
    p::connect c;
    c.password = "only-password";
    CHECK(*decode_wire(keep(encoded(c, protocol_version::v5)), protocol_version::v5) == p::packet{c});
}

TEST_CASE("3.1.1 code mappings") {
    const auto v = protocol_version::v311;
    SUBCASE("CONNACK return codes") {
        const std::pair<reason_code, std::uint8_t> table[] = {
            {reason_code::success, 0},
            {reason_code::unsupported_protocol_version, 1},
            {reason_code::client_identifier_not_valid, 2},
            {reason_code::server_unavailable, 3},
            {reason_code::bad_user_name_or_password, 4},
            {reason_code::not_authorized, 5},
            {reason_code::server_busy, 3},
            {reason_code::banned, 5},
            {reason_code::bad_authentication_method, 5},
            {reason_code::unspecified_error, 3},
        };
        for (auto [code, byte] : table) {
            CAPTURE(code);
            const std::string wire = encoded(p::connack{false, code, {}}, v);
            CHECK(to_hex(wire) == to_hex(hex("20 02 00") + std::string(1, static_cast<char>(byte))));
            constexpr reason_code back[] = {
                reason_code::success, reason_code::unsupported_protocol_version,
                reason_code::client_identifier_not_valid, reason_code::server_unavailable,
                reason_code::bad_user_name_or_password, reason_code::not_authorized};
            auto r = decode_wire(wire, v);
            REQUIRE(r);
            CHECK(std::get<p::connack>(*r).code == back[byte]);
        }
    }
    SUBCASE("SUBACK failure codes collapse to 0x80") {
        p::suback s;
        s.packet_id = 1;
        s.codes = {reason_code::granted_qos1, reason_code::not_authorized,
                   reason_code::topic_filter_invalid};
        CHECK(to_hex(encoded(s, v)) == "90 05 00 01 01 80 80");
    }
    SUBCASE("UNSUBACK has no codes, DISCONNECT no body") {
        p::unsuback u;
        u.packet_id = 3;
        u.codes = {reason_code::no_subscription_existed};
        CHECK(to_hex(encoded(u, v)) == "b0 02 00 03");
        CHECK(to_hex(encoded(p::disconnect{reason_code::server_shutting_down, {}}, v)) == "e0 00");
        auto r = decode_wire(keep(hex("e0 00")), v);
        REQUIRE(r);
        CHECK(std::get<p::disconnect>(*r).code == reason_code::normal_disconnection);
    }
}

TEST_CASE("v5 short forms of acks, DISCONNECT and AUTH") {
    const auto v = protocol_version::v5;
    p::ack a{p::packet_type::puback, 10, reason_code::success, {}};
    CHECK(to_hex(encoded(a, v)) == "40 02 00 0a");
    a.code = reason_code::no_matching_subscribers;
    CHECK(to_hex(encoded(a, v)) == "40 03 00 0a 10");
    a.code = reason_code::success;
    a.props.reason_string = "r";
    CHECK(to_hex(encoded(a, v)) == "40 08 00 0a 00 04 1f 00 01 72");
    CHECK(*decode_wire(keep(encoded(a, v)), v) == p::packet{a});

    // Reason code present with property length 0 also decodes.
    auto r = decode_wire(keep(hex("50 04 00 0a 00 00")), v);
    REQUIRE(r);
    CHECK(*r == p::packet{p::ack{p::packet_type::pubrec, 10, reason_code::success, {}}});
    r = decode_wire(keep(hex("62 03 00 0a 92")), v);
    REQUIRE(r);
    CHECK(*r == p::packet{p::ack{p::packet_type::pubrel, 10, reason_code::packet_identifier_not_found, {}}});

    CHECK(to_hex(encoded(p::disconnect{}, v)) == "e0 00");
    CHECK(to_hex(encoded(p::disconnect{reason_code::disconnect_with_will, {}}, v)) == "e0 01 04");
    r = decode_wire(keep(hex("e0 00")), v);
    REQUIRE(r);
    CHECK(std::get<p::disconnect>(*r).code == reason_code::normal_disconnection);
    r = decode_wire(keep(hex("e0 01 8b")), v);
    REQUIRE(r);
    CHECK(std::get<p::disconnect>(*r).code == reason_code::server_shutting_down);

    CHECK(to_hex(encoded(p::auth{}, v)) == "f0 00");
    CHECK(to_hex(encoded(p::auth{reason_code::reauthenticate, {}}, v)) == "f0 02 19 00");
    r = decode_wire(keep(hex("f0 00")), v);
    REQUIRE(r);
    CHECK(*r == p::packet{p::auth{}});
    r = decode_wire(keep(hex("f0 01 18")), v);
    REQUIRE(r);
    CHECK(std::get<p::auth>(*r).code == reason_code::continue_authentication);
}

TEST_CASE("encode_publish_header is encode() without the payload") {
    for (auto v : {protocol_version::v311, protocol_version::v5}) {
        for (std::uint8_t qos : {0, 1, 2}) {
            for (std::size_t payload_size : {std::size_t{0}, std::size_t{5}, std::size_t{200},
                                             std::size_t{20000}, std::size_t{3'000'000}}) {
                CAPTURE(name_of(v));
                CAPTURE(int(qos));
                CAPTURE(payload_size);
                const std::string payload(payload_size, 'x');
                auto pb = full_publish(v, qos);
                pb.payload = payload;
                const std::string full = encoded(pb, v);
                std::string header = "prefix"; // appends, never overwrites
                p::encode_publish_header(pb, payload.size(), v, header);
                CHECK(header.substr(0, 6) == "prefix");
                CHECK(to_hex(header.substr(6) + payload) == to_hex(full));
            }
        }
    }
}

TEST_CASE("encode_publish_header appends raw properties inside the property block") {
    const auto v = protocol_version::v5;
    // The forwardable properties, pre-encoded once ...
    p::properties fwd;
    fwd.payload_format_indicator = 1;
    fwd.content_type = "text/plain";
    fwd.correlation_data = "cd";
    fwd.user_properties.emplace_back("k1", "v1");
    fwd.user_properties.emplace_back("k2", "v2");
    std::string raw;
    p::encode_properties(fwd, raw);
    CHECK(to_hex(raw.substr(0, 2)) == "01 01");

    // ... plus per-subscriber ones in p.props.
    auto pb = full_publish(v, 1);
    pb.props = {};
    pb.props.subscription_identifiers = {5};
    pb.props.topic_alias = 3;
    const std::string payload = "hello";
    std::string wire;
    p::encode_publish_header(pb, payload.size(), v, wire, raw);
    wire += payload;

    auto r = decode_wire(wire, v);
    REQUIRE_MESSAGE(r.has_value(), r.error().detail);
    auto expected = pb;
    expected.payload = payload;
    expected.props.payload_format_indicator = 1;
    expected.props.content_type = "text/plain";
    expected.props.correlation_data = "cd";
    expected.props.user_properties = fwd.user_properties;
    CHECK(*r == p::packet{expected});

    // 3.1.1 ignores properties, raw or not.
    std::string v3;
    p::encode_publish_header(pb, 0, protocol_version::v311, v3, raw);
    CHECK(to_hex(v3) == to_hex(encoded(p::publish{1, true, true, pb.topic, pb.packet_id, {}, {}},
                                       protocol_version::v311)));
}

TEST_CASE("remaining length boundaries") {
    const std::pair<std::size_t, std::size_t> table[] = {
        // payload size so that remaining length is N, header size expected
        {127, 2}, {128, 3}, {16'383, 3}, {16'384, 4}, {2'097'151, 4}, {2'097'152, 5},
    };
    for (auto [remaining, header_size] : table) {
        CAPTURE(remaining);
        p::publish pb;
        pb.topic = "t";
        const std::string payload(remaining - 3, 'p'); // 2 + 1 bytes of topic
        pb.payload = payload;
        const std::string wire = encoded(pb, protocol_version::v311);
        auto f = p::frame(bytes(wire), no_limit);
        REQUIRE(f);
        REQUIRE(*f);
        CHECK((*f)->header_size == header_size);
        CHECK((*f)->remaining_length == remaining);
        CHECK(wire.size() == remaining + header_size);
        CHECK(p::varint_size(static_cast<std::uint32_t>(remaining)) == header_size - 1);
    }
    CHECK(p::varint_size(0) == 1);
    CHECK(p::varint_size(268'435'455) == 4);
    auto f = p::frame(bytes(hex("30 ff ff ff 7f")), no_limit);
    REQUIRE(f);
    REQUIRE(*f);
    CHECK((*f)->remaining_length == 268'435'455);
}

TEST_CASE("every prefix of a valid packet is incomplete, never a crash") {
    for (auto v : {protocol_version::v311, protocol_version::v5}) {
        for (const auto& pk : all_packets(v)) {
            const std::string wire = encoded(pk, v);
            CAPTURE(to_hex(wire));
            for (std::size_t n = 0; n < wire.size(); ++n) {
                CAPTURE(n);
                auto f = p::frame(bytes(wire).first(n), no_limit);
                REQUIRE(f);
                if (*f) {
                    CHECK((*f)->total_size() > n);
                    // A caller that ignored "incomplete" and decoded the
                    // short body anyway gets an error or a valid packet.
                    check_stable((*f)->first_byte, bytes(wire).subspan((*f)->header_size,
                                 n - (*f)->header_size), v);
                }
            }
            // Also the decoder alone on every truncation of the body.
            auto f = p::frame(bytes(wire), no_limit);
            REQUIRE(f);
            REQUIRE(*f);
            const auto body = bytes(wire).subspan((*f)->header_size);
            for (std::size_t n = 0; n < body.size(); ++n)
                check_stable((*f)->first_byte, body.first(n), v);
        }
    }
}

TEST_CASE("mutated packets decode to an error or a stable packet") {
    std::mt19937 rng(12345);
    for (auto v : {protocol_version::v311, protocol_version::v5}) {
        for (const auto& pk : all_packets(v)) {
            const std::string wire = encoded(pk, v);
            for (int i = 0; i < 400; ++i) {
                std::string m = wire;
                const int flips = 1 + static_cast<int>(rng() % 3);
                for (int k = 0; k < flips; ++k) {
                    const auto pos = rng() % m.size();
                    if (rng() % 2)
                        m[pos] = static_cast<char>(m[pos] ^ (1u << (rng() % 8)));
                    else
                        m[pos] = static_cast<char>(rng());
                }
                auto f = p::frame(bytes(m), no_limit);
                if (!f || !*f || (*f)->total_size() > m.size())
                    continue;
                check_stable((*f)->first_byte,
                             bytes(m).subspan((*f)->header_size, (*f)->remaining_length), v);
            }
        }
    }
}

// ------------------------------------------------------------------ allocation

namespace {

std::size_t allocations = 0;

bool props_inline(const p::properties& pr) {
    return pr.user_properties.size() <= 2 && pr.subscription_identifiers.size() <= 2;
}

// Whether every small_vector of `pk` fits its inline capacity (2).
bool fits_inline(const p::packet& pk) {
    return std::visit(
        [](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, p::pingreq> || std::is_same_v<T, p::pingresp>) {
                return true;
            } else {
                bool ok = props_inline(x.props);
                if constexpr (std::is_same_v<T, p::connect>)
                    ok = ok && (!x.will || props_inline(x.will->props));
                if constexpr (std::is_same_v<T, p::subscribe>)
                    ok = ok && x.entries.size() <= 2;
                if constexpr (std::is_same_v<T, p::suback> || std::is_same_v<T, p::unsuback>)
                    ok = ok && x.codes.size() <= 2;
                if constexpr (std::is_same_v<T, p::unsubscribe>)
                    ok = ok && x.filters.size() <= 2;
                return ok;
            }
        },
        pk);
}

} // namespace

void* operator new(std::size_t n) {
    ++allocations;
    if (void* ptr = std::malloc(n ? n : 1))
        return ptr;
    throw std::bad_alloc();
}
void operator delete(void* ptr) noexcept { std::free(ptr); }
void operator delete(void* ptr, std::size_t) noexcept { std::free(ptr); }

TEST_CASE("decoding allocates only for small_vectors past their inline capacity") {
    int checked = 0;
    for (auto v : {protocol_version::v311, protocol_version::v5}) {
        for (const auto& pk : all_packets(v)) {
            const std::string wire = encoded(pk, v);
            auto f = p::frame(bytes(wire), no_limit);
            REQUIRE(f);
            REQUIRE(*f);
            const auto body = bytes(wire).subspan((*f)->header_size);
            const std::size_t before = allocations;
            auto r = p::decode((*f)->first_byte, body, v);
            const std::size_t used = allocations - before;
            REQUIRE(r);
            if (fits_inline(*r)) {
                CHECK(used == 0);
                ++checked;
            }
        }
    }
    CHECK(checked > 20);
    // A malformed packet costs nothing either.
    const std::string bad = hex("82 06 00 01 00 01 74 40");
    const std::size_t before = allocations;
    auto r = p::decode(0x82, bytes(bad).subspan(2), protocol_version::v5);
    CHECK(allocations == before);
    CHECK_FALSE(r);
}
