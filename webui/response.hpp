#pragma once
// What a route handler returns, and the helpers that build the shapes every
// REST route shares (DESIGN.md, Resource shapes):
//
//   json_response(v)            200, application/json
//   json_error(404, codes::not_found, "no device \"x\"")
//                               {"error": {"code": "not_found", "message": "..."}}
//   list_response(items, next)  {"items": [...], "next_cursor": "..." | null}
//
// The server sets Content-Length, Connection and Server itself (leave them
// out of `headers`) and adds Cache-Control: no-store and
// X-Content-Type-Options: nosniff unless the handler sets those.

#include "webui/api_error.hpp"

#include <boost/beast/http/status.hpp>
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pulsegate::webui {

namespace http = boost::beast::http;
namespace json = boost::json;

inline constexpr std::string_view json_content_type = "application/json";
inline constexpr std::string_view text_content_type = "text/plain; charset=utf-8";

struct response {
    http::status status = http::status::ok;
    std::string body;
    // Sent as Content-Type when non-empty. 204 and 304 never carry a body.
    std::string content_type;
    // Extra header fields, sent as given (e.g. Allow, Set-Cookie, Location).
    std::vector<std::pair<std::string, std::string>> headers;

    // The value of an extra header set by the handler, or empty (first match,
    // case-insensitive).
    std::string_view header(std::string_view name) const noexcept;
};

// `v` serialised compactly as application/json.
response json_response(const json::value& v, http::status status = http::status::ok);

// A non-JSON body (metrics, plain text).
response text_response(std::string body, std::string_view content_type = text_content_type,
                       http::status status = http::status::ok);

// {"error": {"code", "message"}} with `status`. `code` is one of `codes`.
response json_error(http::status status, std::string_view code, std::string_view message);

// The same for an api_error (adds "field" when it names one).
response to_response(const api_error& e);

// The body of a list: {"items": items, "next_cursor": next_cursor or null}.
// A null cursor means there is no further page.
json::value list_json(json::array items, std::optional<std::string> next_cursor);
response list_response(json::array items, std::optional<std::string> next_cursor);

} // namespace pulsegate::webui
