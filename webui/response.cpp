#include "webui/response.hpp"

#include "common/json_text.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json/object.hpp>

namespace pulsegate::webui {

std::string_view response::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers)
        if (boost::beast::iequals(k, name)) return v;
    return {};
}

response json_response(const json::value& v, http::status status) {
    return {status, common::to_json_text(v), std::string(json_content_type), {}};
}

response text_response(std::string body, std::string_view content_type, http::status status) {
    return {status, std::move(body), std::string(content_type), {}};
}

response json_error(http::status status, std::string_view code, std::string_view message) {
    return to_response(api_error{status, std::string(code), std::string(message), {}});
}

response to_response(const api_error& e) {
    json::object inner;
    inner["code"] = e.code;
    inner["message"] = e.message;
    if (!e.field.empty()) inner["field"] = e.field;
    json::object outer;
    outer["error"] = std::move(inner);
    return json_response(outer, e.status);
}

json::value list_json(json::array items, std::optional<std::string> next_cursor) {
    json::object o;
    o["items"] = std::move(items);
    if (next_cursor) o["next_cursor"] = *next_cursor;
    else o["next_cursor"] = nullptr;
    return o;
}

response list_response(json::array items, std::optional<std::string> next_cursor) {
    return json_response(list_json(std::move(items), std::move(next_cursor)));
}

} // namespace pulsegate::webui
