#pragma once
// Reading a request's JSON body.
//
// The body must be one JSON document (nesting at most 32 deep). A
// Content-Type other than application/json (parameters such as charset
// allowed) answers 415 unsupported_media_type: HTML forms cannot send JSON,
// which keeps cross-site form posts out of state-changing routes. A request
// without Content-Type is read as JSON. Bad JSON answers 400
// invalid_argument with field "body" and the position of the fault, e.g.
// "invalid JSON at line 1, column 9 (byte 8): syntax error".

#include "webui/api_error.hpp"
#include "webui/request_context.hpp"

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <string_view>

namespace pulsegate::webui {

namespace json = boost::json;

boost::system::result<json::value, api_error> parse_json_body(const request_context& ctx);

// The parse alone (no Content-Type check).
boost::system::result<json::value, api_error> parse_json(std::string_view text);

} // namespace pulsegate::webui
