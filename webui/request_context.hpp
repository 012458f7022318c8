#pragma once
// What a route handler sees of one HTTP request. The server builds it for the
// duration of the handler call: every view points into the server's request
// buffers and is valid only until the handler returns (copy what you keep).
// Tests build it by hand.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pulsegate::webui {

namespace http = boost::beast::http;

struct request_context {
    http::verb method = http::verb::get;
    // The request-target as sent, e.g. "/api/v1/devices/a%20b?limit=5".
    std::string_view target;
    // Its path, still percent-encoded, e.g. "/api/v1/devices/a%20b".
    std::string_view path;
    // The pattern the router matched, e.g. "/api/v1/devices/{id}".
    std::string_view route;
    // Query parameters in order, percent-decoded ('+' is a space).
    std::vector<std::pair<std::string, std::string>> query;
    // Path parameters by pattern name, percent-decoded, never empty.
    std::vector<std::pair<std::string_view, std::string>> path_params;
    // Request header fields; null means none (hand-built contexts).
    const http::fields* headers = nullptr;
    std::string_view body;
    boost::asio::ip::tcp::endpoint remote;

    // The first value of query parameter `name`, if present (possibly empty).
    std::optional<std::string_view> query_param(std::string_view name) const noexcept;
    // The value of path parameter `name`. The name must be one of the
    // matched pattern's parameters (a programmer error otherwise: asserts).
    std::string_view path_param(std::string_view name) const noexcept;
    // The value of header `name` (case-insensitive), if present.
    std::optional<std::string_view> header(std::string_view name) const noexcept;
    std::optional<std::string_view> header(http::field name) const noexcept;
};

} // namespace pulsegate::webui
