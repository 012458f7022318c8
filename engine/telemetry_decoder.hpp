#pragma once
// Decoding of the telemetry payload a device publishes on
// `d/{device}/telemetry` (DESIGN.md, "MQTT contract") into the metrics of one
// reading. Two forms are accepted:
//
//   flat:    {"temp_c": 21.5, "door_open": false}          (optional "ts")
//   wrapped: {"ts": 1700000000000, "metrics": {"temp_c": 21.5}}
//
// Rules, each with its own telemetry_error:
//   - the payload is at most telemetry_limits::max_payload bytes of standard
//     JSON (RFC 8259: no comments, no trailing commas, valid UTF-8, nothing
//     after the value but whitespace) whose value is an object;
//   - a metric value is a finite number or a boolean (true = 1, false = 0);
//     integers, int64 or uint64 or beyond, become doubles;
//   - a metric name is 1..max_metric_name bytes of printable ASCII
//     0x21..0x7E except '/', '+' and '#' (it becomes a topic-like series key),
//     compared after JSON unescaping ("\u0074emp" is "temp"); a name appears
//     at most once per object; at most max_metrics metrics, at least one;
//   - "ts", if present, is epoch milliseconds written as a JSON integer
//     ("1.7e12", "1700000000000.0" and strings are rejected) in
//     [0, 9999-12-31T23:59:59.999Z];
//   - the object is wrapped when its "metrics" member is an object; then its
//     only other allowed member is "ts". A member "metrics" with a number or
//     boolean is an ordinary flat metric, and inside the wrapped "metrics"
//     object "ts" is an ordinary metric name.
//
// Boost.JSON's SAX parser (basic_parser) does the parsing rather than the
// DOM parser: the DOM of Boost 1.81 silently keeps the last of duplicate keys,
// and the SAX form lets a decode stop at the first bad member and needs no
// tree at all. In steady state decode() allocates nothing: the parser, the
// metric vector and the name buffer are sized at construction and reused.

#include "storage/lmdb_store.hpp" // storage::metric_value

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

namespace pulsegate::engine {

// Why a payload was rejected. 0 is not used (success).
enum class telemetry_error {
    payload_too_large = 1,  // more bytes than max_payload
    not_json,               // syntax error, invalid UTF-8, trailing data, incomplete
    not_an_object,          // the JSON value is an array, string, number, ...
    value_not_number,       // string, null, array or object where a metric value belongs
    value_not_finite,       // a number too large for a double (1e999)
    too_many_metrics,       // more than max_metrics
    name_empty,             // ""
    name_too_long,          // more than max_metric_name bytes
    name_invalid_character, // outside 0x21..0x7E, or '/', '+', '#'
    duplicate_name,         // a metric, "ts" or "metrics" twice in one object
    timestamp_not_integer,  // "ts" is a fraction, exponent form, string, ...
    timestamp_negative,     // "ts" < 0
    timestamp_out_of_range, // "ts" after year 9999 (probably micro- or nanoseconds)
    unexpected_member,      // wrapped form with a member other than "ts" and "metrics"
    no_metrics,             // {}, {"ts": ...} or {"metrics": {}}
};

// A short generic reason ("a metric value is not a number or boolean"); the
// member at fault is in telemetry_decoder::error_detail().
std::string_view to_string(telemetry_error e) noexcept;

// The error category "telemetry"; its message() is to_string().
const boost::system::error_category& telemetry_category() noexcept;

inline boost::system::error_code make_error_code(telemetry_error e) noexcept {
    return {static_cast<int>(e), telemetry_category()};
}

struct telemetry_limits {
    std::size_t max_metrics = 64;     // per payload; > 0
    std::size_t max_metric_name = 64; // bytes; > 0
    std::size_t max_payload = 65536;  // bytes
};

struct decoded_telemetry {
    std::optional<std::int64_t> ts_ms; // absent: the receiver stamps the reading
    // In payload order. The views (the span and every name) point into the
    // decoder and stay valid until its next decode(), not longer: copy what
    // must outlive it (lmdb_store::append copies).
    std::span<const storage::metric_value> metrics;
};

// Thread safety: none. One decoder per thread (each broker shard owns one);
// decode() runs on that thread for every telemetry publish.
class telemetry_decoder {
public:
    // Allocates everything decode() will ever need: a name buffer of
    // max_metrics * max_metric_name bytes and room for max_metrics metrics.
    explicit telemetry_decoder(telemetry_limits limits = {});
    ~telemetry_decoder();
    telemetry_decoder(telemetry_decoder&&) noexcept;
    telemetry_decoder& operator=(telemetry_decoder&&) noexcept;

    // Decodes one payload; the first violation found ends it. Invalidates the
    // views of the previous result, successful or not.
    boost::system::result<decoded_telemetry> decode(std::string_view payload);

    // After a failed decode(): the name of the metric or member at fault
    // (printable, bytes outside 0x20..0x7E and '\' escaped as \xNN, long names
    // cut with "..."), or for not_json the cause and byte offset ("invalid
    // JSON or UTF-8 at offset 7"); empty when the error concerns the whole
    // payload. Valid until the next decode().
    std::string_view error_detail() const noexcept;

    const telemetry_limits& limits() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace pulsegate::engine

template <>
struct boost::system::is_error_code_enum<pulsegate::engine::telemetry_error> : std::true_type {};
