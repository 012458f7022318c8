#pragma once
// PRIVATE to adapters/: reading the members of an event JSON leniently —
// a missing or mistyped member reads as empty, 0 or none (the engine made
// the JSON; a reader only needs what is there).

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pulsegate::adapters::detail {

inline std::string text_of(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

inline std::int64_t int_of(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr)
        return 0;
    if (v->is_int64())
        return v->get_int64();
    if (v->is_uint64())
        return static_cast<std::int64_t>(v->get_uint64());
    return 0;
}

inline std::optional<double> number_of(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_number())
        return std::nullopt;
    return v->to_number<double>();
}

} // namespace pulsegate::adapters::detail
