#pragma once
// An error as the REST API reports it (DESIGN.md, Web UI and REST API):
//
//   HTTP/1.1 400 Bad Request
//   {"error": {"code": "invalid_argument", "message": "...", "field": "limit"}}
//
// `code` is a stable, machine-readable word from `codes` below; `message` is
// for people and says what was wrong and what to do; `field` names the input
// at fault when there is one (query parameter, JSON member) and is omitted
// otherwise. Handlers return api_error through boost::system::result<T,
// api_error> and turn it into a response with to_response() (response.hpp).

#include <boost/assert/source_location.hpp>
#include <boost/beast/http/status.hpp>

#include <string>
#include <string_view>

namespace pulsegate::webui {

namespace http = boost::beast::http;

// The error codes clients can rely on. New ones may be added; existing ones
// keep their meaning.
namespace codes {
inline constexpr std::string_view invalid_argument = "invalid_argument";     // 400, field named
inline constexpr std::string_view malformed_request = "malformed_request";   // 400, not HTTP/1.1 we can read
inline constexpr std::string_view unauthorized = "unauthorized";             // 401
inline constexpr std::string_view forbidden = "forbidden";                   // 403
inline constexpr std::string_view quota_exceeded = "quota_exceeded";         // 403, a tenant quota
inline constexpr std::string_view not_found = "not_found";                   // 404
inline constexpr std::string_view method_not_allowed = "method_not_allowed"; // 405, with Allow
inline constexpr std::string_view conflict = "conflict";                     // 409
inline constexpr std::string_view payload_too_large = "payload_too_large";   // 413
inline constexpr std::string_view unsupported_media_type = "unsupported_media_type"; // 415
inline constexpr std::string_view upgrade_required = "upgrade_required";     // 426
inline constexpr std::string_view too_many_requests = "too_many_requests";   // 429
inline constexpr std::string_view header_too_large = "header_too_large";     // 431
inline constexpr std::string_view internal = "internal";                     // 500
inline constexpr std::string_view unavailable = "unavailable";               // 503
} // namespace codes

struct api_error {
    http::status status = http::status::internal_server_error;
    std::string code{codes::internal};
    std::string message;
    std::string field; // empty: no single input at fault

    // 400 invalid_argument naming `field`.
    static api_error invalid_argument(std::string field, std::string message);
    static api_error not_found(std::string message);
    static api_error conflict(std::string message);
};

// Lets boost::system::result<T, api_error>::value() throw (it is meant for
// tests; handlers branch on has_error()). Throws std::runtime_error.
[[noreturn]] void throw_exception_from_error(const api_error& e, const boost::source_location& loc);

} // namespace pulsegate::webui
