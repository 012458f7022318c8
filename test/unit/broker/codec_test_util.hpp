#pragma once
// Helpers shared by the codec tests: hex in and out, encode to a string,
// frame-then-decode in one call. The packet samples are in codec_samples.hpp.

#include "broker/protocol/codec.hpp"
#include "codec_samples.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <ostream>
#include <sstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::broker::protocol {

// So doctest prints reason codes by name in failed CHECKs.
inline std::ostream& operator<<(std::ostream& os, reason_code c) {
    return os << to_string(c) << " (0x" << std::hex << static_cast<int>(c) << std::dec << ")";
}

} // namespace pulsegate::broker::protocol

// boost's operator<< for result needs a printable value; packets are not, so
// print "ok" or the decode error instead.
template <class T>
struct doctest::StringMaker<boost::system::result<T, pulsegate::broker::protocol::decode_error>> {
    static String convert(const boost::system::result<T, pulsegate::broker::protocol::decode_error>& r) {
        if (r)
            return "ok";
        std::ostringstream os;
        os << "error: " << r.error().code << " " << r.error().detail;
        return os.str().c_str();
    }
};

namespace codec_test {

namespace p = pulsegate::broker::protocol;
using p::protocol_version;
using p::reason_code;

// "10 0a ff" -> bytes; spaces ignored.
inline std::string hex(std::string_view h) {
    std::string out;
    int hi = -1;
    for (char c : h) {
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<char>(hi << 4 | v));
            hi = -1;
        }
    }
    REQUIRE(hi < 0);
    return out;
}

inline std::string to_hex(std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        if (!out.empty())
            out.push_back(' ');
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

inline std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::string encoded(const p::packet& pk, protocol_version v) {
    std::string out;
    p::encode(pk, v, out);
    return out;
}

inline constexpr std::uint32_t no_limit = 268'435'455 + 5;

// Frames `wire` (which must hold exactly one whole packet) and decodes it.
inline p::decode_result<p::packet> decode_wire(std::string_view wire, protocol_version v) {
    auto f = p::frame(bytes(wire), no_limit);
    REQUIRE_MESSAGE(f.has_value(), to_hex(wire));
    REQUIRE_MESSAGE(f->has_value(), to_hex(wire));
    const auto& h = **f;
    REQUIRE_MESSAGE(h.total_size() == wire.size(), to_hex(wire));
    return p::decode(h.first_byte, bytes(wire).subspan(h.header_size), v);
}

// Keeps a buffer alive until the test program ends, for decoded packets
// whose views must outlive the expression that made the bytes.
inline const std::string& keep(std::string s) {
    static std::deque<std::string> store;
    return store.emplace_back(std::move(s));
}

// The packet would view a dead temporary: name the buffer or keep() it.
p::decode_result<p::packet> decode_wire(std::string&& wire, protocol_version v) = delete;

// Whether `wire` decodes without error.
inline bool decodes(std::string_view wire, protocol_version v) { return decode_wire(wire, v).has_value(); }

// The reason code decoding `wire` fails with; success is a test failure.
inline reason_code decode_error_code(std::string_view wire, protocol_version v) {
    auto r = decode_wire(wire, v);
    REQUIRE_MESSAGE(r.has_error(), "decoded without error: " << to_hex(wire));
    return r.error().code;
}

inline std::string varint(std::uint32_t v) {
    std::string out;
    do {
        auto b = static_cast<unsigned char>(v & 0x7F);
        v >>= 7;
        if (v)
            b |= 0x80;
        out.push_back(static_cast<char>(b));
    } while (v);
    return out;
}

// Fixed header + body: first byte, remaining length, body.
inline std::string with_header(std::uint8_t first, std::string_view body) {
    std::string out(1, static_cast<char>(first));
    out += varint(static_cast<std::uint32_t>(body.size()));
    out += body;
    return out;
}

inline std::string str16(std::string_view s) {
    std::string out;
    out.push_back(static_cast<char>(s.size() >> 8));
    out.push_back(static_cast<char>(s.size() & 0xFF));
    out += s;
    return out;
}

} // namespace codec_test
