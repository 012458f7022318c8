#pragma once
// Maps (method, path) to a handler.
//
// Patterns are paths whose segments are either literal or a parameter
// `{name}` standing for one whole, non-empty segment, e.g.
// "/api/v1/devices/{id}/telemetry/latest" — the same syntax as OpenAPI path
// templates, so the patterns can be checked against openapi.json. Segments
// of the request path are percent-decoded before they are compared or
// captured (so "%2F" inside an id stays inside the id). When several
// patterns match, the one with a literal at the first segment where they
// differ wins ("/a/new" before "/a/{id}"). A trailing slash is significant.
//
// Answers: a matched path and method runs the handler; a path no pattern
// matches is 404 not_found; a matched path with a method not registered on
// it is 405 method_not_allowed with an Allow header. GET routes also answer
// HEAD (the server drops the body).
//
// Threads: add() during setup only; once the server runs, the router is
// read concurrently from every HTTP thread and must not change.

#include "webui/request_context.hpp"
#include "webui/response.hpp"

#include <boost/beast/http/verb.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pulsegate::webui {

namespace http = boost::beast::http;

// A route handler. It runs on an HTTP thread and must not block for long
// (no disk scans, no network); it may throw, which answers 500 and is logged.
using handler = std::function<response(const request_context&)>;

struct route_info {
    http::verb method;
    std::string pattern;
    friend bool operator==(const route_info&, const route_info&) = default;
};

class router {
public:
    // Registers `h` for `method` on `pattern`. Throws std::invalid_argument
    // (a startup error naming the pattern) when the pattern is malformed,
    // when (method, pattern) is taken, or when it has the shape of another
    // pattern with other parameter names ("/a/{id}" vs "/a/{name}").
    void add(http::verb method, std::string_view pattern, handler h);

    struct match {
        enum class outcome { found, not_found, method_not_allowed };
        outcome result = outcome::not_found;
        const handler* target = nullptr; // found
        std::string_view pattern;        // found, method_not_allowed
        std::vector<std::pair<std::string_view, std::string>> params; // found
        std::string allow;               // method_not_allowed, e.g. "GET, HEAD, POST"
    };
    // `path` is the percent-encoded path (no query). A path whose
    // percent-encoding is invalid matches nothing.
    match find(http::verb method, std::string_view path) const;

    // Finds the route of ctx.method and ctx.path, fills ctx.route and
    // ctx.path_params and runs the handler; 404/405 JSON otherwise. A
    // handler that throws answers 500 internal (the exception is logged).
    response dispatch(request_context& ctx) const;

    // Every registered (method, pattern), sorted by pattern, then method.
    // HEAD, implied by GET, is not listed.
    std::vector<route_info> routes() const;

private:
    struct segment {
        bool param = false;
        std::string text; // the literal, or the parameter's name
    };
    struct path_entry {
        std::string pattern;
        std::vector<segment> segments;
        std::vector<std::pair<http::verb, handler>> methods;
    };
    std::vector<path_entry> paths_;
};

// Percent-decodes `s` ('+' stays '+'); nullopt if a '%' is not followed by
// two hex digits.
std::optional<std::string> percent_decode(std::string_view s);

} // namespace pulsegate::webui
