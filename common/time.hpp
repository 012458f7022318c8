#pragma once
// Wall-clock time as the REST API, the alert events and the logs show it:
// epoch milliseconds inside, RFC 3339 UTC with milliseconds outside
// ("2026-11-23T12:00:00.123Z"). Pure functions of their arguments except
// now_ms(); every date of the proleptic Gregorian calendar formats exactly.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pulsegate::common {

// The system clock, epoch milliseconds.
std::int64_t now_ms();

// "2026-11-23T12:00:00.123Z" (times before 1970 format too).
std::string rfc3339(std::int64_t epoch_ms);

// "YYYY-MM-DD" of the UTC day holding `epoch_ms`.
std::string utc_date(std::int64_t epoch_ms);

// "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)" ('t' and 'z' in either
// case) to epoch ms; fractions below a millisecond are cut, a leap second
// (:60) counts as the next second. nullopt if the text is not such a time,
// has no zone, or names no real date.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

} // namespace pulsegate::common
