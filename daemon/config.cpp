#include "daemon/config.hpp"
#include "daemon/text.hpp"

#include "broker/topic.hpp"

#include <toml++/toml.h>

#include <fmt/format.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>
#include <variant>

namespace pulsegate::daemon {

namespace {

// One key of the file, described once: parsing from TOML and from the
// environment, validation, printing and the error messages all read this.
using value = std::variant<std::int64_t, bool, std::string, std::vector<std::string>>;

enum class kind { integer, boolean, string, string_list };

struct field {
    std::string_view section;
    std::string_view key;
    kind type;
    // integer: inclusive bounds.
    std::int64_t lo = 0;
    std::int64_t hi = 0;
    // string / list item: the accepted form, for messages; `valid` checks it.
    std::string_view expected{};
    bool (*valid)(std::string_view) = nullptr;
    // string_list: a single string is accepted as a one-element list; the
    // list must not be empty when `non_empty`.
    bool accepts_single_string = false;
    bool non_empty = false;
    void (*set)(config&, const value&) = nullptr;
    value (*get)(const config&) = nullptr;
};

// ---- validators -----------------------------------------------------------

bool is_port(std::string_view s) {
    if (s.empty() || s.size() > 5)
        return false;
    unsigned port = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
    return ec == std::errc{} && p == s.data() + s.size() && port <= 65535;
}

bool is_ipv4(std::string_view s) {
    in_addr a{};
    return inet_pton(AF_INET, std::string(s).c_str(), &a) == 1;
}

bool is_ipv6(std::string_view s) {
    in6_addr a{};
    return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1;
}

// "a.b.c.d:port" or "[v6]:port" with an IP literal (no name resolution at
// startup: a listener binds to an address, not a name).
bool is_listen_address(std::string_view s) {
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
            return false;
        return is_ipv6(s.substr(1, close - 1)) && is_port(s.substr(close + 2));
    }
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos)
        return false;
    return is_ipv4(s.substr(0, colon)) && is_port(s.substr(colon + 1));
}

bool is_cidr(std::string_view s) {
    auto slash = s.find('/');
    auto addr = s.substr(0, slash);
    int max_prefix = 0;
    if (is_ipv4(addr))
        max_prefix = 32;
    else if (is_ipv6(addr))
        max_prefix = 128;
    else
        return false;
    if (slash == std::string_view::npos)
        return true;
    auto prefix_text = s.substr(slash + 1);
    int prefix = -1;
    auto [p, ec] = std::from_chars(prefix_text.data(), prefix_text.data() + prefix_text.size(), prefix);
    return !prefix_text.empty() && ec == std::errc{} &&
           p == prefix_text.data() + prefix_text.size() && prefix >= 0 && prefix <= max_prefix;
}

bool is_tenant_or_empty(std::string_view s) {
    if (s.empty())
        return true;
    if (s.size() > 63)
        return false;
    auto lower_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!lower_digit(s.front()))
        return false;
    return std::all_of(s.begin() + 1, s.end(),
                       [&](char c) { return lower_digit(c) || c == '_' || c == '-'; });
}

bool is_non_empty(std::string_view s) { return !s.empty(); }
bool is_durability(std::string_view s) { return s == "commit" || s == "relaxed"; }
bool is_log_format(std::string_view s) { return s == "logfmt" || s == "json"; }
bool is_log_level(std::string_view s) {
    return s == "trace" || s == "debug" || s == "info" || s == "warn" || s == "error";
}

// ---- the table --------------------------------------------------------------

template <class T>
T as(const value& v) {
    if constexpr (std::is_same_v<T, bool>)
        return std::get<bool>(v);
    else
        return static_cast<T>(std::get<std::int64_t>(v));
}

#define PG_INT(sec, name, member, lo_, hi_)                                                     \
    field {                                                                                     \
        .section = #sec, .key = #name, .type = kind::integer, .lo = (lo_), .hi = (hi_),         \
        .set = [](config& c, const value& v) { c.sec.member = as<decltype(c.sec.member)>(v); }, \
        .get = [](const config& c) -> value { return static_cast<std::int64_t>(c.sec.member); } \
    }

constexpr std::int64_t u16_max = 65535;
constexpr std::int64_t u32_max = 0xFFFFFFFFll;

const std::vector<field>& fields() {
    static const std::vector<field> table{
        field{.section = "mqtt", .key = "listen", .type = kind::string_list,
              .expected = "\"host:port\" with an IP address (e.g. \"0.0.0.0:1883\" or \"[::]:1883\")",
              .valid = is_listen_address, .accepts_single_string = true, .non_empty = true,
              .set = [](config& c, const value& v) { c.mqtt.listen = std::get<std::vector<std::string>>(v); },
              .get = [](const config& c) -> value { return c.mqtt.listen; }},
        PG_INT(mqtt, shards, shards, 0, 256),
        PG_INT(mqtt, max_keepalive, max_keepalive, 0, u16_max),
        PG_INT(mqtt, receive_maximum, receive_maximum, 1, u16_max),
        PG_INT(mqtt, topic_alias_maximum, topic_alias_maximum, 0, u16_max),
        // The largest packet MQTT can express: 1 + 4 header bytes + 268435455.
        PG_INT(mqtt, max_packet_size, max_packet_size, 64, 268435460),
        PG_INT(mqtt, max_inflight, max_inflight, 1, u16_max),
        PG_INT(mqtt, max_queued_messages, max_queued_messages, 0, 100000000),
        PG_INT(mqtt, max_connections, max_connections, 0, 10000000),
        PG_INT(mqtt, max_publish_rate, max_publish_rate, 0, 10000000),
        PG_INT(mqtt, max_publish_byte_rate, max_publish_byte_rate, 0, 1ll << 40),
        PG_INT(mqtt, publish_burst_s, publish_burst_s, 1, 3600),
        PG_INT(mqtt, max_topic_levels, max_topic_levels, 1, u16_max),
        PG_INT(mqtt, connect_timeout_ms, connect_timeout_ms, 100, 3600000),
        PG_INT(mqtt, max_session_expiry_s, max_session_expiry_s, 0, u32_max),
        PG_INT(mqtt, sys_interval_s, sys_interval_s, 0, 86400),

        field{.section = "http", .key = "listen", .type = kind::string,
              .expected = "\"host:port\" with an IP address (e.g. \"127.0.0.1:8080\")",
              .valid = is_listen_address,
              .set = [](config& c, const value& v) { c.http.listen = std::get<std::string>(v); },
              .get = [](const config& c) -> value { return c.http.listen; }},
        field{.section = "http", .key = "ui_dir", .type = kind::string,
              .expected = "a directory path, or \"\" for the UI built in", .valid = [](std::string_view) { return true; },
              .set = [](config& c, const value& v) { c.http.ui_dir = std::get<std::string>(v); },
              .get = [](const config& c) -> value { return c.http.ui_dir; }},
        field{.section = "http", .key = "https", .type = kind::boolean,
              .set = [](config& c, const value& v) { c.http.https = std::get<bool>(v); },
              .get = [](const config& c) -> value { return c.http.https; }},

        field{.section = "tls", .key = "cert", .type = kind::string,
              .expected = "a PEM certificate file path, or \"\" for no TLS", .valid = [](std::string_view) { return true; },
              .set = [](config& c, const value& v) { c.tls.cert = std::get<std::string>(v); },
              .get = [](const config& c) -> value { return c.tls.cert; }},
        field{.section = "tls", .key = "key", .type = kind::string,
              .expected = "a PEM private key file path, or \"\"", .valid = [](std::string_view) { return true; },
              .set = [](config& c, const value& v) { c.tls.key = std::get<std::string>(v); },
              .get = [](const config& c) -> value { return c.tls.key; }},
        field{.section = "tls", .key = "listen", .type = kind::string_list,
              .expected = "\"host:port\" with an IP address (e.g. \"0.0.0.0:8883\")",
              .valid = is_listen_address, .accepts_single_string = true,
              .set = [](config& c, const value& v) { c.tls.listen = std::get<std::vector<std::string>>(v); },
              .get = [](const config& c) -> value { return c.tls.listen; }},
        field{.section = "tls", .key = "client_ca", .type = kind::string,
              .expected = "a PEM CA bundle path, or \"\" for no client certificates",
              .valid = [](std::string_view) { return true; },
              .set = [](config& c, const value& v) { c.tls.client_ca = std::get<std::string>(v); },
              .get = [](const config& c) -> value { return c.tls.client_ca; }},
        field{.section = "tls", .key = "require_client_cert", .type = kind::boolean,
              .set = [](config& c, const value& v) { c.tls.require_client_cert = std::get<bool>(v); },
              .get = [](const config& c) -> value { return c.tls.require_client_cert; }},

        field{.section = "storage", .key = "data_dir", .type = kind::string,
              .expected = "a non-empty directory path", .valid = is_non_empty,
              .set = [](config& c, const value& v) { c.storage.data_dir = std::get<std::string>(v); },
              .get = [](const config& c) -> value { return c.storage.data_dir; }},
        field{.section = "storage", .key = "durability", .type = kind::string,
              .expected = "\"commit\" or \"relaxed\"", .valid = is_durability,
              .set = [](config& c, const value& v) {
                  c.storage.durability_mode = std::get<std::string>(v) == "relaxed"
                                                  ? durability::relaxed : durability::commit;
              },
              .get = [](const config& c) -> value { return std::string(to_string(c.storage.durability_mode)); }},
        PG_INT(storage, points_per_series, points_per_series, 16, 100000000),
        PG_INT(storage, minute_rollup_slots, minute_rollup_slots, 1, 10000000),
        PG_INT(storage, hour_rollup_slots, hour_rollup_slots, 1, 10000000),
        PG_INT(storage, max_size_mb, max_size_mb, 0, 1ll << 40),
        PG_INT(storage, max_metrics_per_reading, max_metrics_per_reading, 1, 4096),
        PG_INT(storage, max_metric_name_length, max_metric_name_length, 1, 1024),
        PG_INT(storage, relaxed_sync_interval_ms, relaxed_sync_interval_ms, 1, 3600000),
        PG_INT(storage, relaxed_commit_delay_ms, relaxed_commit_delay_ms, 0, 1000),
        PG_INT(storage, checkpoint_interval_ms, checkpoint_interval_ms, 10, 3600000),
        PG_INT(storage, checkpoint_points, checkpoint_points, 1024, 1ll << 32),

        field{.section = "auth", .key = "allow_anonymous", .type = kind::boolean,
              .set = [](config& c, const value& v) { c.auth.allow_anonymous = std::get<bool>(v); },
              .get = [](const config& c) -> value { return c.auth.allow_anonymous; }},
        field{.section = "auth", .key = "anonymous_tenant", .type = kind::string,
              .expected = "a tenant id ([a-z0-9][a-z0-9_-]{0,62}) or \"\" (whole untenanted tree)",
              .valid = is_tenant_or_empty,
              .set = [](config& c, const value& v) { c.auth.anonymous_tenant = std::get<std::string>(v); },
              .get = [](const config& c) -> value { return c.auth.anonymous_tenant; }},

        field{.section = "delivery", .key = "allow_private_targets", .type = kind::string_list,
              .expected = "a CIDR range (e.g. \"127.0.0.0/8\", \"fd00::/8\")", .valid = is_cidr,
              .set = [](config& c, const value& v) {
                  c.delivery.allow_private_targets = std::get<std::vector<std::string>>(v);
              },
              .get = [](const config& c) -> value { return c.delivery.allow_private_targets; }},
        PG_INT(delivery, workers, workers, 1, 256),
        PG_INT(delivery, per_integration_concurrency, per_integration_concurrency, 1, 256),
        PG_INT(delivery, max_attempts, max_attempts, 1, 1000),
        PG_INT(delivery, backoff_initial_ms, backoff_initial_ms, 10, 3600000),
        PG_INT(delivery, backoff_max_ms, backoff_max_ms, 10, 86400000),
        PG_INT(delivery, breaker_threshold, breaker_threshold, 1, 1000),
        PG_INT(delivery, breaker_cooldown_s, breaker_cooldown_s, 1, 86400),

        PG_INT(rules, heartbeat_grace_s, heartbeat_grace_s, 0, 86400),
        PG_INT(rules, alert_retention_days, alert_retention_days, 1, 36500),
        PG_INT(rules, queue_capacity, queue_capacity, 16, 10000000),

        PG_INT(quotas, devices, devices, 0, 100000000),
        PG_INT(quotas, connections, connections, 0, 10000000),
        PG_INT(quotas, messages_per_s, messages_per_s, 0, u32_max),

        field{.section = "log", .key = "level", .type = kind::string,
              .expected = "one of \"trace\", \"debug\", \"info\", \"warn\", \"error\"",
              .valid = is_log_level,
              .set = [](config& c, const value& v) { c.log.level = std::get<std::string>(v); },
              .get = [](const config& c) -> value { return c.log.level; }},
        field{.section = "log", .key = "format", .type = kind::string,
              .expected = "\"logfmt\" or \"json\"", .valid = is_log_format,
              .set = [](config& c, const value& v) {
                  c.log.format = std::get<std::string>(v) == "json" ? log_format::json : log_format::logfmt;
              },
              .get = [](const config& c) -> value { return std::string(to_string(c.log.format)); }},
    };
    return table;
}

#undef PG_INT

constexpr std::string_view sections[] = {"mqtt",     "http",  "tls",    "storage", "auth",
                                         "delivery", "rules", "quotas", "log"};

// Keys that only make sense together.
void check_together(const config& cfg, std::string_view source) {
    const auto& t = cfg.tls;
    if (t.cert.empty() != t.key.empty())
        throw config_error(fmt::format("{}: [tls] cert and key go together: set both (TLS) or neither (no TLS)",
                                       source));
    if (!t.client_ca.empty() && t.cert.empty())
        throw config_error(fmt::format("{}: [tls] client_ca needs [tls] cert and key", source));
    if (t.require_client_cert && t.client_ca.empty())
        throw config_error(fmt::format(
            "{}: [tls] require_client_cert needs [tls] client_ca (the CA that signs the client certificates)",
            source));
}

// ---- messages ---------------------------------------------------------------

std::string type_expectation(const field& f) {
    switch (f.type) {
    case kind::integer: return fmt::format("an integer {}..{}", f.lo, f.hi);
    case kind::boolean: return "true or false";
    case kind::string: return fmt::format("a string: {}", f.expected);
    case kind::string_list:
        return fmt::format("{} of strings, each {}",
                           f.accepts_single_string ? "a string or an array" : "an array", f.expected);
    }
    return {};
}

std::string describe_node_type(const toml::node& n) {
    switch (n.type()) {
    case toml::node_type::string: return fmt::format("the string {}", quote(*n.value<std::string>()));
    case toml::node_type::integer: return fmt::format("the integer {}", *n.value<std::int64_t>());
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return *n.value<bool>() ? "true" : "false";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "something else";
    }
}

// Where a value came from, for messages: "file.toml: [mqtt] listen" or
// "environment PULSEGATE_MQTT_LISTEN".
struct origin {
    std::string text;
};

[[noreturn]] void fail(const origin& o, std::string_view expected, std::string_view got) {
    throw config_error(fmt::format("{}: expected {}, got {}", o.text, expected, got));
}

// Checks a value of the right C++ type against the field's range / form and
// stores it.
void check_and_set(config& cfg, const field& f, value v, const origin& o, bool got_quoted) {
    auto show = [&](std::string_view s) { return got_quoted ? quote(s) : std::string(s); };
    switch (f.type) {
    case kind::integer: {
        auto i = std::get<std::int64_t>(v);
        if (i < f.lo || i > f.hi)
            fail(o, type_expectation(f), show(std::to_string(i)));
        break;
    }
    case kind::boolean:
        break;
    case kind::string: {
        const auto& s = std::get<std::string>(v);
        if (!f.valid(s))
            fail(o, f.expected, quote(s));
        break;
    }
    case kind::string_list: {
        const auto& items = std::get<std::vector<std::string>>(v);
        if (f.non_empty && items.empty())
            fail(o, fmt::format("a non-empty list, each {}", f.expected), "an empty list");
        for (const auto& item : items)
            if (!f.valid(item))
                fail(o, f.expected, quote(item));
        break;
    }
    }
    f.set(cfg, v);
}

void apply_toml(config& cfg, const field& f, const toml::node& n, const origin& o) {
    switch (f.type) {
    case kind::integer:
        if (auto i = n.value_exact<std::int64_t>())
            return check_and_set(cfg, f, *i, o, false);
        break;
    case kind::boolean:
        if (auto b = n.value_exact<bool>())
            return check_and_set(cfg, f, *b, o, false);
        break;
    case kind::string:
        if (auto s = n.value_exact<std::string>())
            return check_and_set(cfg, f, *s, o, false);
        break;
    case kind::string_list:
        if (f.accepts_single_string)
            if (auto s = n.value_exact<std::string>())
                return check_and_set(cfg, f, std::vector<std::string>{*s}, o, false);
        if (const auto* arr = n.as_array()) {
            std::vector<std::string> items;
            for (const auto& item : *arr) {
                auto s = item.value_exact<std::string>();
                if (!s)
                    fail(o, type_expectation(f), fmt::format("an array holding {}", describe_node_type(item)));
                items.push_back(*s);
            }
            return check_and_set(cfg, f, std::move(items), o, false);
        }
        break;
    }
    fail(o, type_expectation(f), describe_node_type(n));
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

void apply_env(config& cfg, const field& f, const std::string& text, const origin& o) {
    switch (f.type) {
    case kind::integer: {
        auto t = trim(text);
        std::int64_t i = 0;
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), i);
        if (t.empty() || ec != std::errc{} || p != t.data() + t.size())
            fail(o, type_expectation(f), quote(text));
        return check_and_set(cfg, f, i, o, true);
    }
    case kind::boolean: {
        auto t = lower(trim(text));
        if (t == "true" || t == "1")
            return check_and_set(cfg, f, true, o, true);
        if (t == "false" || t == "0")
            return check_and_set(cfg, f, false, o, true);
        fail(o, "true or false (or 1 or 0)", quote(text));
    }
    case kind::string:
        return check_and_set(cfg, f, text, o, true);
    case kind::string_list: {
        std::vector<std::string> items;
        std::string_view rest = text;
        while (!rest.empty()) {
            auto comma = rest.find(',');
            auto item = trim(rest.substr(0, comma));
            if (!item.empty())
                items.emplace_back(item);
            if (comma == std::string_view::npos)
                break;
            rest.remove_prefix(comma + 1);
        }
        return check_and_set(cfg, f, std::move(items), o, true);
    }
    }
}

const field* find_field(std::string_view section, std::string_view key) {
    for (const auto& f : fields())
        if (f.section == section && f.key == key)
            return &f;
    return nullptr;
}

std::string known_keys(std::string_view section) {
    std::string out;
    for (const auto& f : fields())
        if (f.section == section)
            out += (out.empty() ? "" : ", ") + std::string(f.key);
    return out;
}

std::string known_sections() {
    std::string out;
    for (auto s : sections)
        out += (out.empty() ? "[" : ", [") + std::string(s) + "]";
    return out;
}

acl_entry parse_acl_entry(const toml::node& node, std::string_view where) {
    const auto* t = node.as_table();
    if (!t) throw config_error(fmt::format("{}: expected a table", where));
    acl_entry e;
    auto text = [&](std::string_view key, std::string& out, std::initializer_list<std::string_view> allowed) {
        const auto* v = t->get(key);
        if (!v || !v->is_string() || v->as_string()->get().empty())
            throw config_error(fmt::format("{} {}: required, a non-empty string", where, key));
        out = v->as_string()->get();
        if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), out) == allowed.end()) {
            std::string list;
            for (auto a : allowed) list += (list.empty() ? "\"" : ", \"") + std::string(a) + "\"";
            throw config_error(fmt::format("{} {}: expected one of {}, got \"{}\"", where, key, list, out));
        }
    };
    for (const auto& [k, v] : *t) {
        (void)v;
        const auto key = k.str();
        if (key != "who" && key != "action" && key != "topic" && key != "permission")
            throw config_error(fmt::format("{} {}: unknown key (known keys: who, action, topic, permission)", where, key));
    }
    text("who", e.who, {});
    text("action", e.action, {"publish", "subscribe", "both"});
    text("topic", e.topic, {});
    text("permission", e.permission, {"allow", "deny"});
    return e;
}

// ---- [[bridge]] --------------------------------------------------------------

// Reads the keys of one table, each once, and refuses the ones not read.
class table_reader {
public:
    table_reader(const toml::table& t, std::string where) : t_(t), where_(std::move(where)) {}
    const std::string& where() const { return where_; }

    [[noreturn]] void fail(std::string_view key, std::string_view expected, std::string_view got) const {
        throw config_error(fmt::format("{} {}: expected {}, got {}", where_, key, expected, got));
    }
    [[noreturn]] void fail(std::string_view key, std::string_view problem) const {
        throw config_error(fmt::format("{} {}: {}", where_, key, problem));
    }
    const toml::node* get(std::string_view key) {
        known_.emplace_back(key);
        return t_.get(key);
    }
    void text(std::string_view key, std::string& out, bool required = false) {
        const auto* n = get(key);
        if (n == nullptr) {
            if (required) fail(key, "required, a non-empty string");
            return;
        }
        auto v = n->value_exact<std::string>();
        if (!v) fail(key, "a string", describe_node_type(*n));
        if (required && v->empty()) fail(key, "a non-empty string", "\"\"");
        out = *v;
    }
    template <class T>
    void integer(std::string_view key, T& out, std::int64_t lo, std::int64_t hi) {
        const auto* n = get(key);
        if (n == nullptr) return;
        auto v = n->value_exact<std::int64_t>();
        if (!v || *v < lo || *v > hi) fail(key, fmt::format("an integer {}..{}", lo, hi), describe_node_type(*n));
        out = static_cast<T>(*v);
    }
    void boolean(std::string_view key, bool& out) {
        const auto* n = get(key);
        if (n == nullptr) return;
        auto v = n->value_exact<bool>();
        if (!v) fail(key, "true or false", describe_node_type(*n));
        out = *v;
    }
    // After every read: a key nobody asked for is a typo.
    void no_others() const {
        for (const auto& [k, v] : t_) {
            (void)v;
            if (std::find(known_.begin(), known_.end(), k.str()) == known_.end()) {
                std::string list;
                for (const auto& key : known_) list += (list.empty() ? "" : ", ") + key;
                throw config_error(fmt::format("{} {}: unknown key (known keys: {})", where_, k.str(), list));
            }
        }
    }

private:
    const toml::table& t_;
    std::string where_;
    std::vector<std::string> known_;
};

std::vector<adapters::bridge_rule> parse_bridge_rules(table_reader& r, std::string_view key) {
    std::vector<adapters::bridge_rule> rules;
    const auto* n = r.get(key);
    if (n == nullptr) return rules;
    const auto* arr = n->as_array();
    if (arr == nullptr) r.fail(key, "an array of tables { filter, strip, prefix, qos }", describe_node_type(*n));
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto* t = arr->get(i)->as_table();
        const auto where = fmt::format("{} {}[{}]", r.where(), key, i);
        if (t == nullptr) throw config_error(fmt::format("{}: expected a table {{ filter = ..., ... }}", where));
        table_reader rr(*t, where);
        adapters::bridge_rule rule;
        rr.text("filter", rule.filter, true);
        rr.text("strip", rule.strip);
        rr.text("prefix", rule.prefix);
        rr.integer("qos", rule.qos, 0, 2);
        rr.no_others();
        if (auto bad = broker::topic::check_filter(rule.filter))
            rr.fail("filter", fmt::format("not a valid MQTT filter ({})", broker::topic::to_string(*bad)));
        if (broker::topic::parse_shared(rule.filter))
            rr.fail("filter", "a shared subscription ($share/...) cannot be bridged");
        if (rule.prefix.find_first_of("+#") != std::string::npos || rule.prefix.find('\0') != std::string::npos)
            rr.fail("prefix", "no wildcards (+ #) in a topic prefix");
        rules.push_back(std::move(rule));
    }
    return rules;
}

bool is_bridge_name(std::string_view s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    });
}

adapters::bridge_options parse_bridge_entry(const toml::node& node, std::string where) {
    const auto* t = node.as_table();
    if (!t) throw config_error(fmt::format("{}: expected a table", where));
    table_reader r(*t, std::move(where));
    adapters::bridge_options b;
    r.text("name", b.name, true);
    if (!is_bridge_name(b.name)) r.fail("name", "1 to 64 letters, digits, - or _", quote(b.name));
    r.text("url", b.url, true);
    if (auto why = adapters::check_bridge_url(b.url); !why.empty()) r.fail("url", why);
    r.text("client_id", b.client_id);
    r.text("username", b.username);
    r.text("password", b.password);
    r.text("password_file", b.password_file);
    r.text("tls_ca", b.tls_ca);
    r.text("tls_cert", b.tls_cert);
    r.text("tls_key", b.tls_key);
    r.boolean("tls_insecure", b.tls_insecure);
    r.integer("mqtt_version", b.mqtt_version, 4, 5);
    r.boolean("clean_start", b.clean_start);
    r.integer("session_expiry_s", b.session_expiry_s, 0, 0xFFFFFFFFll);
    r.integer("keepalive_s", b.keepalive_s, 0, 65535);
    b.forward = parse_bridge_rules(r, "forward");
    b.import = parse_bridge_rules(r, "import");
    r.integer("queue_max_messages", b.queue_max_messages, 1, 1'000'000'000);
    r.integer("queue_max_age_s", b.queue_max_age_s, 1, 10ll * 365 * 86400);
    r.integer("queue_max_mb", b.queue_max_mb, 1, 1 << 20);
    r.integer("max_inflight", b.max_inflight, 1, 65535);
    r.integer("reconnect_max_s", b.reconnect_max_s, 1, 3600);
    r.no_others();
    if (b.forward.empty() && b.import.empty())
        r.fail("forward", "a bridge needs at least one forward or import rule");
    const auto uri = adapters::paho_uri(b.url);
    const bool tls = uri.starts_with("ssl://") || uri.starts_with("wss://");
    if (!tls && (!b.tls_ca.empty() || !b.tls_cert.empty() || !b.tls_key.empty() || b.tls_insecure))
        r.fail("tls_ca", "TLS settings need an mqtts:// or wss:// url");
    if (b.tls_cert.empty() != b.tls_key.empty())
        r.fail("tls_cert", "tls_cert and tls_key go together: set both or neither");
    if (!b.password.empty() && !b.password_file.empty())
        r.fail("password_file", "set password or password_file, not both");
    if ((!b.password.empty() || !b.password_file.empty()) && b.username.empty())
        r.fail(b.password.empty() ? "password_file" : "password", "a password needs a username");
    if (b.session_expiry_s != 0 && b.mqtt_version != 5) r.fail("session_expiry_s", "needs mqtt_version = 5");
    return b;
}

// "file.toml:12" for a node of the file (toml++ keeps where each came from).
std::string at(std::string_view source, const toml::source_region& where) {
    return fmt::format("{}:{}", source, where.begin.line);
}

void apply_file(config& cfg, const toml::table& root, std::string_view source) {
    for (const auto& [k, node] : root) {
        std::string_view name = k.str();
        bool known = std::find(std::begin(sections), std::end(sections), name) != std::end(sections);
        if (!known) {
            if (name == "acl" || name == "bridge") {
                const auto* entries = node.as_array();
                if (!entries || !node.is_array_of_tables())
                    throw config_error(fmt::format("{}: {}: expected [[{}]] tables", at(source, k.source()), name, name));
                for (std::size_t i = 0; i < entries->size(); ++i) {
                    const auto& entry = *entries->get(i);
                    const auto where = fmt::format("{}: [[{}]] #{}", at(source, entry.source()), name, i + 1);
                    if (name == "acl") {
                        cfg.acl.push_back(parse_acl_entry(entry, where));
                        continue;
                    }
                    auto b = parse_bridge_entry(entry, where);
                    for (const auto& other : cfg.bridges)
                        if (other.name == b.name)
                            throw config_error(fmt::format("{} name: \"{}\" is used twice", where, b.name));
                    cfg.bridges.push_back(std::move(b));
                }
                continue;
            }
            if (node.is_table())
                throw config_error(fmt::format("{}: unknown section [{}] (known sections: {})", at(source, k.source()),
                                               name, known_sections()));
            throw config_error(fmt::format(
                "{}: {}: unknown top-level key (keys belong in a section: {})", at(source, k.source()), name,
                known_sections()));
        }
        const auto* section = node.as_table();
        if (!section)
            throw config_error(fmt::format("{}: [{}]: expected a table (section), got {}", at(source, k.source()), name,
                                           describe_node_type(node)));
        for (const auto& [key, value_node] : *section) {
            const auto* f = find_field(name, key.str());
            if (!f)
                throw config_error(fmt::format("{}: [{}] {}: unknown key (known keys: {})", at(source, key.source()),
                                               name, key.str(), known_keys(name)));
            apply_toml(cfg, *f, value_node,
                       origin{fmt::format("{}: [{}] {}", at(source, key.source()), name, key.str())});
        }
    }
}

void apply_environment(config& cfg, const env_lookup& env) {
    for (const auto& f : fields()) {
        auto var = env_var_name(f.section, f.key);
        if (auto text = env(var))
            apply_env(cfg, f, *text, origin{"environment " + var});
    }
}

std::string to_toml_value(const value& v) {
    struct visitor {
        std::string operator()(std::int64_t i) const { return std::to_string(i); }
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(const std::string& s) const { return quote(s); }
        std::string operator()(const std::vector<std::string>& items) const {
            std::string out = "[";
            for (std::size_t i = 0; i < items.size(); ++i)
                out += (i ? ", " : "") + quote(items[i]);
            return out + "]";
        }
    };
    return std::visit(visitor{}, v);
}

} // namespace

std::optional<std::string> process_env(const std::string& name) {
    if (const char* v = std::getenv(name.c_str()))
        return std::string(v);
    return std::nullopt;
}

std::optional<std::string> no_env(const std::string&) { return std::nullopt; }

std::string env_var_name(std::string_view section, std::string_view key) {
    std::string out = "PULSEGATE_";
    for (char c : section)
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out += '_';
    for (char c : key)
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

std::vector<std::string> unknown_env_overrides(const std::vector<std::string>& names) {
    std::vector<std::string> unknown;
    for (const auto& n : names) {
        if (n.rfind("PULSEGATE_", 0) != 0)
            continue;
        bool known = std::any_of(fields().begin(), fields().end(), [&](const field& f) {
            return env_var_name(f.section, f.key) == n;
        });
        if (!known)
            unknown.push_back(n);
    }
    return unknown;
}

config parse_config(std::string_view toml_text, std::string_view source_name, const env_lookup& env) {
    config cfg;
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& e) {
        throw config_error(fmt::format("{}:{}:{}: {}", source_name, e.source().begin.line,
                                       e.source().begin.column, e.description()));
    }
    apply_file(cfg, root, source_name);
    apply_environment(cfg, env);
    check_together(cfg, source_name);
    return cfg;
}

config load_config(const std::optional<std::filesystem::path>& file, const env_lookup& env) {
    if (!file) {
        config cfg;
        apply_environment(cfg, env);
        check_together(cfg, "environment");
        return cfg;
    }
    std::ifstream in(*file, std::ios::binary);
    if (!in)
        throw config_error(fmt::format("cannot read config file {}: {}", file->string(),
                                       std::generic_category().message(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw config_error(fmt::format("cannot read config file {}: {}", file->string(),
                                       std::generic_category().message(errno)));
    return parse_config(text.str(), file->string(), env);
}

std::string to_toml(const config& cfg, bool redact) {
    std::string out;
    std::string_view current;
    for (const auto& f : fields()) {
        if (f.section != current) {
            out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", f.section);
            current = f.section;
        }
        out += fmt::format("{} = {}\n", f.key, to_toml_value(f.get(cfg)));
    }
    for (const auto& e : cfg.acl)
        out += fmt::format("\n[[acl]]\nwho = {}\naction = {}\ntopic = {}\npermission = {}\n", quote(e.who),
                           quote(e.action), quote(e.topic), quote(e.permission));
    const auto rules = [](const std::vector<adapters::bridge_rule>& list) {
        std::string r = "[";
        for (std::size_t i = 0; i < list.size(); ++i)
            r += fmt::format("{}{{ filter = {}, strip = {}, prefix = {}, qos = {} }}", i ? ", " : "",
                             quote(list[i].filter), quote(list[i].strip), quote(list[i].prefix), list[i].qos);
        return r + "]";
    };
    for (const auto& b : cfg.bridges) {
        out += fmt::format("\n[[bridge]]\nname = {}\nurl = {}\nclient_id = {}\nusername = {}\npassword = {}\n"
                           "password_file = {}\n",
                           quote(b.name), quote(b.url), quote(b.client_id), quote(b.username),
                           quote(redact && !b.password.empty() ? "<secret>" : b.password), quote(b.password_file));
        out += fmt::format("tls_ca = {}\ntls_cert = {}\ntls_key = {}\ntls_insecure = {}\n", quote(b.tls_ca),
                           quote(b.tls_cert), quote(b.tls_key), b.tls_insecure);
        out += fmt::format("mqtt_version = {}\nclean_start = {}\nsession_expiry_s = {}\nkeepalive_s = {}\n",
                           b.mqtt_version, b.clean_start, b.session_expiry_s, b.keepalive_s);
        out += fmt::format("forward = {}\nimport = {}\n", rules(b.forward), rules(b.import));
        out += fmt::format("queue_max_messages = {}\nqueue_max_age_s = {}\nqueue_max_mb = {}\nmax_inflight = {}\n"
                           "reconnect_max_s = {}\n",
                           b.queue_max_messages, b.queue_max_age_s, b.queue_max_mb, b.max_inflight,
                           b.reconnect_max_s);
    }
    return out;
}

broker::options to_broker_options(const config& cfg) {
    const auto& m = cfg.mqtt;
    broker::options o;
    o.listen = m.listen;
    o.tls_listen = cfg.tls.listen; // used when the daemon gives the broker a certificate
    o.shards = m.shards;
    o.max_keepalive = m.max_keepalive;
    o.receive_maximum = m.receive_maximum;
    o.topic_alias_maximum = m.topic_alias_maximum;
    o.max_packet_size = m.max_packet_size;
    o.max_inflight = m.max_inflight;
    o.max_queued_messages = static_cast<std::size_t>(m.max_queued_messages);
    o.max_connections = static_cast<std::size_t>(m.max_connections);
    o.max_publish_rate = m.max_publish_rate;
    o.max_publish_byte_rate = m.max_publish_byte_rate;
    o.publish_burst_s = m.publish_burst_s;
    o.max_topic_levels = m.max_topic_levels;
    o.connect_timeout = std::chrono::milliseconds(m.connect_timeout_ms);
    o.max_session_expiry = m.max_session_expiry_s;
    o.allow_anonymous = cfg.auth.allow_anonymous;
    o.anonymous_tenant = cfg.auth.anonymous_tenant;
    o.sys_interval = std::chrono::seconds(m.sys_interval_s);
    o.tenant_max_connections = static_cast<std::uint32_t>(cfg.quotas.connections);
    o.tenant_max_publish_rate = static_cast<std::uint32_t>(cfg.quotas.messages_per_s);
    return o;
}

std::vector<std::string> restart_only_changes(const config& running, const config& reloaded) {
    std::vector<std::string> changed;
    if (running.mqtt.listen != reloaded.mqtt.listen)
        changed.emplace_back("[mqtt] listen");
    if (running.mqtt.shards != reloaded.mqtt.shards)
        changed.emplace_back("[mqtt] shards");
    if (running.http.listen != reloaded.http.listen)
        changed.emplace_back("[http] listen");
    if (running.http.https != reloaded.http.https)
        changed.emplace_back("[http] https");
    // SIGHUP reloads the files a TLS listener reads; which files and
    // listeners there are is fixed at start.
    for (const auto& f : fields())
        if (f.section == "tls" && f.get(running) != f.get(reloaded))
            changed.push_back(fmt::format("[tls] {}", f.key));
    if (running.bridges != reloaded.bridges)
        changed.emplace_back("[[bridge]]");
    // Storage opens once: every key of [storage] needs a restart.
    for (const auto& f : fields())
        if (f.section == "storage" && f.get(running) != f.get(reloaded))
            changed.push_back(fmt::format("[storage] {}", f.key));
    return changed;
}

std::string_view to_string(durability d) {
    return d == durability::relaxed ? "relaxed" : "commit";
}

std::string_view to_string(log_format f) {
    return f == log_format::json ? "json" : "logfmt";
}

} // namespace pulsegate::daemon
