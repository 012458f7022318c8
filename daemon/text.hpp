#pragma once
// Text helpers shared by the configuration and the log format.

#include <string>
#include <string_view>

namespace pulsegate::daemon {

// `s` in double quotes with '"', '\\' and control characters escaped
// (\n, \t, \r, \uXXXX for the others and DEL): valid as a TOML basic
// string, a logfmt value and a JSON string.
void append_quoted(std::string& out, std::string_view s);
std::string quote(std::string_view s);

} // namespace pulsegate::daemon
