#include "broker/topic.hpp"

namespace pulsegate::broker::topic {

namespace {

constexpr std::string_view share_prefix = "$share/";

// Checks common to names and filters: empty, length, NUL.
std::optional<invalid> check_common(std::string_view s, const limits& lim) noexcept {
    if (s.empty()) return invalid::empty;
    if (s.size() > lim.max_length) return invalid::too_long;
    if (s.find('\0') != std::string_view::npos) return invalid::nul_character;
    return std::nullopt;
}

std::size_t level_count(std::string_view s) noexcept {
    std::size_t n = 1;
    for (char c : s) n += (c == '/');
    return n;
}

// Syntax of a plain (non-shared) filter whose common checks passed.
std::optional<invalid> check_plain_filter(std::string_view filter, const limits& lim) noexcept {
    std::size_t pos = 0;
    bool done = false;
    std::size_t levels = 0;
    while (!done) {
        const auto level = next_level(filter, pos, done);
        ++levels;
        if (level.find_first_of("+#") == std::string_view::npos) continue;
        if (level == "+") continue;
        if (level == "#" && done) continue;
        return invalid::misplaced_wildcard;
    }
    if (levels > lim.max_levels) return invalid::too_many_levels;
    return std::nullopt;
}

} // namespace

std::string_view to_string(invalid why) noexcept {
    switch (why) {
    case invalid::empty: return "empty topic";
    case invalid::too_long: return "topic too long";
    case invalid::too_many_levels: return "too many topic levels";
    case invalid::nul_character: return "topic contains U+0000";
    case invalid::wildcard_in_name: return "wildcard in topic name";
    case invalid::misplaced_wildcard: return "wildcard not occupying a whole level, or '#' not last";
    case invalid::bad_shared: return "malformed shared subscription";
    }
    return "invalid topic";
}

std::optional<invalid> check_name(std::string_view name, const limits& lim) noexcept {
    if (auto why = check_common(name, lim)) return why;
    if (name.find_first_of("+#") != std::string_view::npos) return invalid::wildcard_in_name;
    if (level_count(name) > lim.max_levels) return invalid::too_many_levels;
    return std::nullopt;
}

std::optional<invalid> check_filter(std::string_view filter, const limits& lim) noexcept {
    if (auto why = check_common(filter, lim)) return why;
    if (filter.starts_with(share_prefix)) {
        const auto shared = parse_shared(filter);
        if (!shared) return invalid::bad_shared;
        return check_plain_filter(shared->filter, lim);
    }
    return check_plain_filter(filter, lim);
}

std::optional<shared_filter> parse_shared(std::string_view filter) noexcept {
    if (!filter.starts_with(share_prefix)) return std::nullopt;
    const auto rest = filter.substr(share_prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    shared_filter out{rest.substr(0, slash), rest.substr(slash + 1)};
    if (out.group.empty() || out.filter.empty()) return std::nullopt;
    if (out.group.find_first_of("+#") != std::string_view::npos) return std::nullopt;
    return out;
}

bool matches(std::string_view filter, std::string_view name) noexcept {
    if (!name.empty() && name.front() == '$' && !filter.empty() &&
        (filter.front() == '+' || filter.front() == '#'))
        return false;

    std::size_t fpos = 0, npos = 0;
    bool fdone = false, ndone = false;
    for (;;) {
        if (fdone) return ndone;
        const auto flevel = next_level(filter, fpos, fdone);
        // '#' matches the remaining levels, including none ("a/#" matches "a").
        if (flevel == "#") return true;
        if (ndone) return false;
        const auto nlevel = next_level(name, npos, ndone);
        if (flevel != "+" && flevel != nlevel) return false;
    }
}

bool has_wildcard(std::string_view filter) noexcept {
    return filter.find_first_of("+#") != std::string_view::npos;
}

} // namespace pulsegate::broker::topic
