#pragma once
// Text helpers shared by the configuration and the log format.

#include <string>
#include <string_view>

namespace pulsegate::daemon {

// `s` in double quotes with '"', '\\' and control characters escaped
// (\n, \t, \r, \uXXXX): valid as a TOML basic string and as a logfmt value.
std::string quote(std::string_view s);

} // namespace pulsegate::daemon
