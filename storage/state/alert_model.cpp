#include "storage/state/alert_model.hpp"

#include <array>
#include <utility>

namespace pulsegate::storage::state {

namespace {

// One table per enum keeps to_string and parse_* inverse by construction.
template <class E, std::size_t N>
using names = std::array<std::pair<E, std::string_view>, N>;

constexpr names<rule_kind, 2> rule_kinds{{{rule_kind::threshold, "threshold"}, {rule_kind::heartbeat, "heartbeat"}}};
constexpr names<compare_op, 6> compare_ops{{{compare_op::gt, ">"},
                                            {compare_op::lt, "<"},
                                            {compare_op::ge, ">="},
                                            {compare_op::le, "<="},
                                            {compare_op::eq, "=="},
                                            {compare_op::ne, "!="}}};
constexpr names<severity, 5> severities{{{severity::critical, "critical"},
                                         {severity::major, "major"},
                                         {severity::minor, "minor"},
                                         {severity::warning, "warning"},
                                         {severity::info, "info"}}};
constexpr names<alert_kind, 2> alert_kinds{
    {{alert_kind::threshold, "THRESHOLD"}, {alert_kind::no_heartbeat, "NO_HEARTBEAT"}}};
constexpr names<alert_status, 3> alert_statuses{{{alert_status::open, "open"},
                                                 {alert_status::acknowledged, "acknowledged"},
                                                 {alert_status::closed, "closed"}}};

template <class E, std::size_t N>
std::string_view name_of(const names<E, N>& table, E e) noexcept {
    for (const auto& [value, name] : table)
        if (value == e)
            return name;
    return "?"; // only for a value cast from outside the enum
}

template <class E, std::size_t N>
std::optional<E> value_of(const names<E, N>& table, std::string_view s) noexcept {
    for (const auto& [value, name] : table)
        if (name == s)
            return value;
    return std::nullopt;
}

} // namespace

std::string_view to_string(rule_kind k) noexcept { return name_of(rule_kinds, k); }
std::string_view to_string(compare_op o) noexcept { return name_of(compare_ops, o); }
std::string_view to_string(severity s) noexcept { return name_of(severities, s); }
std::string_view to_string(alert_kind k) noexcept { return name_of(alert_kinds, k); }
std::string_view to_string(alert_status s) noexcept { return name_of(alert_statuses, s); }

std::optional<rule_kind> parse_rule_kind(std::string_view s) noexcept { return value_of(rule_kinds, s); }
std::optional<compare_op> parse_compare_op(std::string_view s) noexcept { return value_of(compare_ops, s); }
std::optional<severity> parse_severity(std::string_view s) noexcept { return value_of(severities, s); }
std::optional<alert_kind> parse_alert_kind(std::string_view s) noexcept { return value_of(alert_kinds, s); }
std::optional<alert_status> parse_alert_status(std::string_view s) noexcept { return value_of(alert_statuses, s); }

} // namespace pulsegate::storage::state
