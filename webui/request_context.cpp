#include "webui/request_context.hpp"

#include <boost/assert.hpp>

namespace pulsegate::webui {

std::optional<std::string_view> request_context::query_param(std::string_view name) const noexcept {
    for (const auto& [k, v] : query)
        if (k == name) return std::string_view(v);
    return std::nullopt;
}

std::string_view request_context::path_param(std::string_view name) const noexcept {
    for (const auto& [k, v] : path_params)
        if (k == name) return v;
    BOOST_ASSERT_MSG(false, "path_param: the route has no such parameter");
    return {};
}

std::optional<std::string_view> request_context::header(std::string_view name) const noexcept {
    if (headers == nullptr) return std::nullopt;
    auto it = headers->find(name);
    if (it == headers->end()) return std::nullopt;
    return std::string_view(it->value());
}

std::optional<std::string_view> request_context::header(http::field name) const noexcept {
    if (headers == nullptr) return std::nullopt;
    auto it = headers->find(name);
    if (it == headers->end()) return std::nullopt;
    return std::string_view(it->value());
}

} // namespace pulsegate::webui
