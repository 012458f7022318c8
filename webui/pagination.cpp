#include "webui/pagination.hpp"

#include <charconv>

namespace pulsegate::webui {

boost::system::result<page_request, api_error> parse_page(const request_context& ctx) {
    return parse_page(ctx.query_param("limit"), ctx.query_param("cursor"));
}

boost::system::result<page_request, api_error> parse_page(std::optional<std::string_view> limit,
                                                          std::optional<std::string_view> cursor) {
    page_request page;
    if (limit) {
        // from_chars on an unsigned takes digits only (no sign, no space);
        // ptr != end catches "12abc".
        std::size_t n = 0;
        const auto* end = limit->data() + limit->size();
        const auto [ptr, ec] = std::from_chars(limit->data(), end, n);
        if (ec != std::errc() || ptr != end || n < 1 || n > page_request::max_limit) {
            return api_error::invalid_argument(
                "limit", "limit must be a whole number from 1 to " + std::to_string(page_request::max_limit) +
                             " (got \"" + std::string(limit->substr(0, 32)) + "\")");
        }
        page.limit = n;
    }
    if (cursor) {
        if (cursor->size() > page_request::max_cursor_size) {
            return api_error::invalid_argument(
                "cursor", "cursor is longer than " + std::to_string(page_request::max_cursor_size) +
                              " characters; pass back the next_cursor of the previous page unchanged");
        }
        page.cursor = *cursor;
    }
    return page;
}

} // namespace pulsegate::webui
