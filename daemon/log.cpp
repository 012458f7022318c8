#include "daemon/log.hpp"
#include "daemon/text.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <chrono>
#include <ctime>

namespace pulsegate::daemon {

namespace {

bool is_key_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_key_char(char c) {
    return is_key_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

// Parses `s` from `pos` to the end as space-separated key=value pairs; false
// (and `out` unspecified) if anything there is not a pair.
bool parse_pairs(std::string_view s, std::size_t pos,
                 std::vector<std::pair<std::string, std::string>>& out) {
    out.clear();
    while (pos < s.size()) {
        std::size_t key_begin = pos;
        if (!is_key_start(s[pos]))
            return false;
        while (pos < s.size() && is_key_char(s[pos]))
            ++pos;
        if (pos >= s.size() || s[pos] != '=')
            return false;
        std::string key(s.substr(key_begin, pos - key_begin));
        ++pos;
        std::string val;
        if (pos < s.size() && s[pos] == '"') {
            ++pos;
            bool closed = false;
            while (pos < s.size()) {
                char c = s[pos++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c == '\\' && pos < s.size()) {
                    char e = s[pos++];
                    val += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                } else {
                    val += c;
                }
            }
            if (!closed || (pos < s.size() && s[pos] != ' '))
                return false;
        } else {
            while (pos < s.size() && s[pos] != ' ') {
                if (s[pos] == '"')
                    return false;
                val += s[pos++];
            }
        }
        out.emplace_back(std::move(key), std::move(val));
        while (pos < s.size() && s[pos] == ' ')
            ++pos;
    }
    return true;
}

void append_json_string(std::string& out, std::string_view s) { append_quoted(out, s); }

std::string timestamp(spdlog::log_clock::time_point tp) {
    using namespace std::chrono;
    auto since = tp.time_since_epoch();
    auto secs = duration_cast<seconds>(since);
    auto ms = duration_cast<milliseconds>(since - secs).count();
    std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

std::string_view level_name(spdlog::level::level_enum l) {
    switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
    }
}

std::string field_key(std::string key) {
    if (key == "ts" || key == "level" || key == "msg")
        key += '_';
    return key;
}

class structured_formatter final : public spdlog::formatter {
public:
    explicit structured_formatter(log_format format) : format_(format) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        auto parts = split_log_message(std::string_view(msg.payload.data(), msg.payload.size()));
        std::string line;
        line.reserve(128 + msg.payload.size());
        if (format_ == log_format::json) {
            line += "{\"ts\":";
            append_json_string(line, timestamp(msg.time));
            line += ",\"level\":";
            append_json_string(line, level_name(msg.level));
            line += ",\"msg\":";
            append_json_string(line, parts.text);
            for (const auto& [k, v] : parts.pairs) {
                line += ',';
                append_json_string(line, field_key(k));
                line += ':';
                append_json_string(line, v);
            }
            line += "}\n";
        } else {
            line += "ts=" + timestamp(msg.time);
            line += " level=";
            line += level_name(msg.level);
            line += " msg=";
            // msg is always quoted so that readers see where it ends.
            line += quote(parts.text);
            for (const auto& [k, v] : parts.pairs)
                line += " " + field_key(k) + "=" + logfmt_value(v);
            line += '\n';
        }
        dest.append(line.data(), line.data() + line.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<structured_formatter>(format_);
    }

private:
    log_format format_;
};

spdlog::level::level_enum to_spdlog_level(std::string_view level) {
    if (level == "trace")
        return spdlog::level::trace;
    if (level == "debug")
        return spdlog::level::debug;
    if (level == "warn")
        return spdlog::level::warn;
    if (level == "error")
        return spdlog::level::err;
    return spdlog::level::info;
}

} // namespace

split_message split_log_message(std::string_view message) {
    split_message out;
    // The earliest word boundary from which the rest is all pairs; starting
    // inside a quoted value can only succeed later than its key does.
    for (std::size_t pos = 0; pos <= message.size(); ++pos) {
        if (pos != 0 && message[pos - 1] != ' ')
            continue;
        if (pos == message.size())
            break;
        if (parse_pairs(message, pos, out.pairs)) {
            auto text = message.substr(0, pos);
            while (!text.empty() && text.back() == ' ')
                text.remove_suffix(1);
            out.text = std::string(text);
            return out;
        }
    }
    out.pairs.clear();
    out.text = std::string(message);
    return out;
}

std::string logfmt_value(std::string_view v) {
    bool needs_quotes = v.empty();
    for (char ch : v) {
        auto c = static_cast<unsigned char>(ch);
        if (ch == ' ' || ch == '"' || ch == '=' || ch == '\\' || c < 0x20 || c == 0x7f) {
            needs_quotes = true;
            break;
        }
    }
    return needs_quotes ? quote(v) : std::string(v);
}

std::unique_ptr<spdlog::formatter> make_log_formatter(log_format format) {
    return std::make_unique<structured_formatter>(format);
}

void init_logging(const log_config& cfg) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto logger = std::make_shared<spdlog::logger>("pulsegate", std::move(sink));
    logger->set_formatter(make_log_formatter(cfg.format));
    logger->set_level(to_spdlog_level(cfg.level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

void apply_log_config(const log_config& cfg) {
    auto logger = spdlog::default_logger();
    logger->set_formatter(make_log_formatter(cfg.format));
    logger->set_level(to_spdlog_level(cfg.level));
}

} // namespace pulsegate::daemon
