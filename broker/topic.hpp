#pragma once
// Topic names and filters (MQTT 5 §4.7): validation, matching, shared
// subscription syntax.
//
// UTF-8 well-formedness is the codec's check; these functions check the
// topic syntax only: levels separated by '/', '+' a whole level, '#' a whole
// and last level, no wildcard in a name, no U+0000, length limits.

#include <cstddef>
#include <optional>
#include <string_view>

namespace pulsegate::broker::topic {

// Limits checked by the validators; the broker fills them from config.
struct limits {
    std::size_t max_length = 65535; // bytes
    std::size_t max_levels = 128;   // '/'-separated levels
};

// Why a topic or filter was refused, written for a reason string / log line.
enum class invalid : unsigned char {
    empty,
    too_long,
    too_many_levels,
    nul_character,
    wildcard_in_name,
    misplaced_wildcard,  // '+' or '#' not occupying a whole level, '#' not last
    bad_shared,          // "$share/" without a valid group or filter
};
std::string_view to_string(invalid why) noexcept;

// Names of PUBLISH topics (no wildcards).
std::optional<invalid> check_name(std::string_view name, const limits& lim = {}) noexcept;

// Filters of SUBSCRIBE/UNSUBSCRIBE, including "$share/{group}/{filter}".
std::optional<invalid> check_filter(std::string_view filter, const limits& lim = {}) noexcept;

// "$share/{group}/{filter}" split into its parts. The group is non-empty and
// has no '/', '+' or '#'; the filter is non-empty.
struct shared_filter {
    std::string_view group;
    std::string_view filter;
};
std::optional<shared_filter> parse_shared(std::string_view filter) noexcept;

// Whether a valid (non-shared) filter matches a valid name. A name whose first
// level starts with '$' is matched by neither '+' nor '#' at the first level.
bool matches(std::string_view filter, std::string_view name) noexcept;

// Splits off the next '/'-separated level of `s` starting at `pos` and
// advances `pos`. After the last level `done` is set; an empty string is one
// empty level ("a//b" has three levels).
constexpr std::string_view next_level(std::string_view s, std::size_t& pos, bool& done) noexcept {
    const auto slash = s.find('/', pos);
    if (slash == std::string_view::npos) {
        done = true;
        return s.substr(pos);
    }
    const auto level = s.substr(pos, slash - pos);
    pos = slash + 1;
    return level;
}

// Whether `filter` contains a '+' or '#'.
bool has_wildcard(std::string_view filter) noexcept;

} // namespace pulsegate::broker::topic
