#pragma once
// Logging: one structured line per event on stderr, logfmt or JSON.
//
// Every part logs through spdlog's default logger (named "pulsegate"), which
// init_logging installs. The convention for messages is a short human text
// followed by key=value pairs, already formatted logfmt-style:
//
//   spdlog::info("client connected client_id={} tenant={}", id, tenant);
//   spdlog::warn("reload failed error=\"{}\"", what);   // quote values with spaces
//
// The formatter splits the message into its text and its trailing run of
// key=value pairs and writes
//
//   logfmt: ts=2024-05-01T12:00:00.123Z level=info msg="client connected" client_id=c1 tenant=acme
//   json:   {"ts":"2024-05-01T12:00:00.123Z","level":"info","msg":"client connected","client_id":"c1","tenant":"acme"}
//
// A message whose tail does not parse as pairs is all text; nothing is lost,
// and newlines or quotes in it are escaped, so an event is always one line.
// Pair values are emitted as JSON strings (the formatter does not guess
// types); a pair key equal to ts, level or msg gets a trailing underscore.

#include "daemon/config.hpp"

#include <spdlog/formatter.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pulsegate::daemon {

// A message split as described above. `pairs` values are unquoted/unescaped.
struct split_message {
    std::string text;
    std::vector<std::pair<std::string, std::string>> pairs;
};
split_message split_log_message(std::string_view message);

// logfmt value: bare if it needs no quoting, else "..." with \" \\ \n \t \r
// escapes (and \u00XX for other control characters).
std::string logfmt_value(std::string_view v);

// A spdlog formatter producing the lines above (newline-terminated).
std::unique_ptr<spdlog::formatter> make_log_formatter(log_format format);

// Installs the default logger "pulsegate" on stderr with `cfg`'s level and
// format. Call once at startup, before other threads log.
void init_logging(const log_config& cfg);

// Changes level and format of the default logger at run time (SIGHUP).
void apply_log_config(const log_config& cfg);

} // namespace pulsegate::daemon
