#include "webui/json_body.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json/stream_parser.hpp>

#include <algorithm>
#include <string>

namespace pulsegate::webui {

boost::system::result<json::value, api_error> parse_json(std::string_view text) {
    json::stream_parser p;
    boost::system::error_code ec;
    std::size_t at = p.write(text.data(), text.size(), ec);
    if (!ec) {
        p.finish(ec);
        at = text.size();
    }
    if (!ec) return p.release();

    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        return api_error::invalid_argument("body", "the request body is empty; send a JSON document");
    }
    const auto before = text.substr(0, std::min(at, text.size()));
    const auto line = std::count(before.begin(), before.end(), '\n') + 1;
    const auto nl = before.rfind('\n');
    const auto column = (nl == std::string_view::npos ? before.size() : before.size() - nl - 1) + 1;
    return api_error::invalid_argument("body", "invalid JSON at line " + std::to_string(line) + ", column " +
                                                   std::to_string(column) + " (byte " + std::to_string(at) +
                                                   "): " + ec.message());
}

boost::system::result<json::value, api_error> parse_json_body(const request_context& ctx) {
    if (auto type = ctx.header(http::field::content_type)) {
        auto media = type->substr(0, type->find(';'));
        while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
        if (!boost::beast::iequals(media, "application/json")) {
            return api_error{http::status::unsupported_media_type, std::string(codes::unsupported_media_type),
                             "the request body must be JSON: send Content-Type: application/json (got \"" +
                                 std::string(type->substr(0, 64)) + "\")",
                             "Content-Type"};
        }
    }
    return parse_json(ctx.body);
}

} // namespace pulsegate::webui
