#pragma once
// Sans-I/O MQTT codec: bytes in, packets out, and packets in, bytes out.
// No sockets, no allocation when decoding (see packet.hpp), so every packet
// type can be tested byte by byte and the decoder fuzzed.
//
// Framing and decoding are two steps so a connection can take every whole
// packet out of one read buffer:
//
//   while (auto f = frame(buf, max_size)) { ... decode(f->header, body, v) ... }

#include "broker/protocol/packet.hpp"

#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pulsegate::broker::protocol {

// Why a packet could not be decoded: the reason code the peer must be given
// (malformed_packet, protocol_error, packet_too_large,
// unsupported_protocol_version, topic_alias_invalid ...) and a short static
// human-readable detail ("invalid UTF-8 in topic name") for the reason string
// and the log.
struct decode_error {
    reason_code code = reason_code::malformed_packet;
    std::string_view detail;

    friend bool operator==(const decode_error&, const decode_error&) = default;
};

// Lets boost::system::result<T, decode_error>::value() throw.
[[noreturn]] void throw_exception_from_error(const decode_error& e,
                                             const boost::source_location& loc);

template <class T>
using decode_result = boost::system::result<T, decode_error>;

// The fixed header of one packet found at the start of a buffer.
struct frame_header {
    std::uint8_t first_byte = 0;        // packet type << 4 | flags
    std::uint32_t remaining_length = 0; // bytes after the fixed header
    std::size_t header_size = 0;        // 2..5
    std::size_t total_size() const noexcept { return header_size + remaining_length; }
    packet_type type() const noexcept { return static_cast<packet_type>(first_byte >> 4); }
};

// Looks for one packet at the start of `buf`.
// - value with total_size() <= buf.size(): a whole packet is there;
// - value with total_size() >  buf.size(): the header is complete, the body
//   is not: read more (at least total_size() bytes are needed);
// - empty optional inside the result: not even the fixed header is complete;
// - error: malformed remaining length (more than 4 bytes), packet type 0, or
//   total size larger than `max_packet_size` (packet_too_large).
decode_result<std::optional<frame_header>> frame(std::span<const std::uint8_t> buf,
                                                 std::uint32_t max_packet_size) noexcept;

// Decodes a CONNECT body (the bytes after the fixed header). The protocol
// version is read from the packet itself; anything but "MQTT" level 4 or 5
// gives unsupported_protocol_version (also for "MQIsdp" level 3).
decode_result<connect> decode_connect(std::uint8_t first_byte,
                                      std::span<const std::uint8_t> body) noexcept;

// Decodes any packet body for an established connection of version `v`.
// Checks the fixed-header flags, lengths, UTF-8 (well-formed, no U+0000,
// no surrogates), property identifiers legal for the packet type, duplicate
// properties where the spec forbids them, and packet-specific rules (packet
// id non-zero when required, QoS 3, at least one topic filter, ...).
// Topic *syntax* (wildcards in names) is the broker's check, not the codec's.
decode_result<packet> decode(std::uint8_t first_byte, std::span<const std::uint8_t> body,
                             protocol_version v) noexcept;

// Encoders append one complete packet to `out`.
void encode(const packet& p, protocol_version v, std::string& out);

// Appends the fixed header and variable header of a PUBLISH whose payload
// (`payload_size` bytes) the caller sends separately, e.g. as a second buffer
// of a gathered write shared by many subscribers. `p.payload` is ignored.
// `raw_properties`, if not empty, is a pre-encoded property block (without its
// length prefix, see encode_properties) written after the properties in
// `p.props`; v5 only.
void encode_publish_header(const publish& p, std::size_t payload_size, protocol_version v,
                           std::string& out, std::string_view raw_properties = {});

// Appends the properties of `props` without the length prefix (v5 wire
// format). The broker keeps the forwardable properties of a message
// (payload format, content type, response topic, correlation data, user
// properties) in this form, encoded once.
void encode_properties(const properties& props, std::string& out);

// Size of a variable byte integer on the wire (1..4).
std::size_t varint_size(std::uint32_t value) noexcept;

} // namespace pulsegate::broker::protocol
