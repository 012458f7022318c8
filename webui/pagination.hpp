#pragma once
// Pagination of list routes: `?limit=N&cursor=C`.
//
// `limit` is 1..1000 (default 100); `cursor` is opaque to clients: a list
// route returns it as "next_cursor" and takes it back unchanged. This parser
// checks only its length; what it means (and whether a given cursor is still
// valid) is up to the route, which answers 400 invalid_argument naming
// "cursor" when it cannot use it.

#include "webui/api_error.hpp"
#include "webui/request_context.hpp"

#include <boost/system/result.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pulsegate::webui {

struct page_request {
    static constexpr std::size_t default_limit = 100;
    static constexpr std::size_t max_limit = 1000;
    static constexpr std::size_t max_cursor_size = 1024;

    std::size_t limit = default_limit;
    std::string cursor; // empty: the first page
};

// From the query parameters of `ctx`. Errors are 400 invalid_argument with
// "limit" or "cursor" as the field.
boost::system::result<page_request, api_error> parse_page(const request_context& ctx);

// The same from the raw (decoded) values; nullopt = parameter absent.
boost::system::result<page_request, api_error> parse_page(std::optional<std::string_view> limit,
                                                          std::optional<std::string_view> cursor);

} // namespace pulsegate::webui
