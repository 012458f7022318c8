#include "common/time.hpp"

#include <chrono>
#include <cstdio>

namespace pulsegate::common {

namespace {

constexpr std::int64_t day_ms = 86400000;

// Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms):
// exact for every date of the proleptic Gregorian calendar.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil {
    std::int64_t y;
    unsigned m, d;
};

civil civil_from_days(std::int64_t z) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

unsigned days_in_month(std::int64_t y, unsigned m) {
    static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

// Floor division, so that times before 1970 split right too.
void split(std::int64_t epoch_ms, std::int64_t& days, std::int64_t& rest) {
    days = epoch_ms / day_ms;
    rest = epoch_ms % day_ms;
    if (rest < 0) {
        rest += day_ms;
        --days;
    }
}

// Exactly `n` digits at `p` of `s` as a number, or -1.
int digits(std::string_view s, std::size_t p, std::size_t n) {
    if (p + n > s.size()) return -1;
    int v = 0;
    for (std::size_t i = p; i < p + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

} // namespace

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string rfc3339(std::int64_t epoch_ms) {
    std::int64_t days = 0, rest = 0;
    split(epoch_ms, days, rest);
    const auto c = civil_from_days(days);
    const auto ms = static_cast<int>(rest % 1000);
    const auto secs = static_cast<int>(rest / 1000);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<long long>(c.y), c.m, c.d,
                  secs / 3600, secs / 60 % 60, secs % 60, ms);
    return buf;
}

std::string utc_date(std::int64_t epoch_ms) {
    std::int64_t days = 0, rest = 0;
    split(epoch_ms, days, rest);
    const auto c = civil_from_days(days);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(c.y), c.m, c.d);
    return buf;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
    // 2026-11-23T12:00:00 is 19 characters; then a fraction, then the zone.
    const int y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2);
    const int h = digits(s, 11, 2), mi = digits(s, 14, 2), sec = digits(s, 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return std::nullopt;
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return std::nullopt;
    if (static_cast<unsigned>(d) > days_in_month(y, static_cast<unsigned>(mo))) return std::nullopt;
    std::size_t p = 19;
    std::int64_t ms = 0;
    if (p < s.size() && s[p] == '.') {
        ++p;
        const std::size_t start = p;
        int scale = 100;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
            ms += (s[p] - '0') * scale;
            scale /= 10;
            ++p;
        }
        if (p == start) return std::nullopt;
    }
    std::int64_t offset_min = 0;
    if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
        ++p;
    } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
        const int oh = digits(s, p + 1, 2), om = digits(s, p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59 || p + 3 >= s.size() || s[p + 3] != ':') return std::nullopt;
        offset_min = (s[p] == '+' ? 1 : -1) * (oh * 60 + om);
        p += 6;
    } else {
        return std::nullopt; // a time without a zone is ambiguous
    }
    if (p != s.size()) return std::nullopt;
    const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    return secs * 1000 + ms;
}

} // namespace pulsegate::common
