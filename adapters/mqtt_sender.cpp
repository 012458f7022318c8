#include "adapters/mqtt_sender.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/json/value.hpp>
#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace pulsegate::adapters {

namespace json = boost::json;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view default_topic_template = "pulsegate/{tenant}/alerts/{device_id}/{event}";

// What a cached connection was built from: a change rebuilds it.
struct identity {
    std::string url;
    std::string username;
    std::optional<std::string> password;
    std::string client_id;
    std::string ca_file;
    bool insecure = false;
    bool operator==(const identity&) const = default;
};

struct settings {
    identity id;
    bool tls = false;
    std::string host; // without brackets
    std::uint16_t port = 0;
    std::string topic_template;
    int qos = 1;
    bool retain = false;
    milliseconds timeout{5000};
};

bool fail(std::string* why, std::string text) {
    if (why)
        *why = std::move(text);
    return false;
}

// mqtt://host[:port] or mqtts://host[:port], host a name, IPv4 or [IPv6].
bool parse_url(std::string_view url, settings& s, std::string* why) {
    const auto bad = [&](std::string_view what) {
        return fail(why, "url: " + std::string(what) +
                             "; write mqtt://host[:1883] or mqtts://host[:8883] (an IPv6 address in brackets)");
    };
    std::string_view rest;
    if (url.starts_with("mqtt://")) {
        s.tls = false;
        rest = url.substr(7);
    } else if (url.starts_with("mqtts://")) {
        s.tls = true;
        rest = url.substr(8);
    } else {
        return bad("the scheme must be mqtt:// or mqtts://");
    }
    if (rest.ends_with('/'))
        rest.remove_suffix(1);
    if (rest.find_first_of("/?#@ ") != std::string_view::npos)
        return bad("only a host and a port may follow the scheme (no user info, path or query)");
    std::string_view host = rest;
    std::string_view port;
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos)
            return bad("unclosed '[' in the host");
        host = rest.substr(1, close - 1);
        const auto after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return bad("unexpected text after the IPv6 address");
            port = after.substr(1);
            if (port.empty())
                return bad("empty port");
        }
        boost::system::error_code ec;
        (void)boost::asio::ip::make_address_v6(std::string(host), ec);
        if (ec)
            return bad("\"" + std::string(host) + "\" in brackets is not an IPv6 address");
    } else if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (port.empty())
            return bad("empty port");
    }
    if (host.empty())
        return bad("no host");
    s.host = std::string(host);
    s.port = s.tls ? 8883 : 1883;
    if (!port.empty()) {
        unsigned p = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc{} || end != port.data() + port.size() || p == 0 || p > 65535)
            return bad("the port must be a number 1..65535");
        s.port = static_cast<std::uint16_t>(p);
    }
    return true;
}

const json::value* field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v == nullptr || v->is_null() ? nullptr : v;
}

bool read_string(const json::object& o, std::string_view key, std::string& out, std::string* why) {
    if (const auto* v = field(o, key)) {
        if (!v->is_string())
            return fail(why, std::string(key) + ": must be a string");
        out = std::string(v->get_string());
    }
    return true;
}

bool read_bool(const json::object& o, std::string_view key, bool& out, std::string* why) {
    if (const auto* v = field(o, key)) {
        if (!v->is_bool())
            return fail(why, std::string(key) + ": must be true or false");
        out = v->get_bool();
    }
    return true;
}

bool read_int(const json::object& o, std::string_view key, std::int64_t lo, std::int64_t hi, std::int64_t& out,
              std::string* why) {
    if (const auto* v = field(o, key)) {
        const auto range = std::string(key) + ": must be an integer " + std::to_string(lo) + ".." + std::to_string(hi);
        std::int64_t n = 0;
        if (v->is_int64())
            n = v->get_int64();
        else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(hi))
            n = static_cast<std::int64_t>(v->get_uint64());
        else
            return fail(why, range);
        if (n < lo || n > hi)
            return fail(why, range);
        out = n;
    }
    return true;
}

// MQTT strings are UTF-8 (3.1.1 section 1.5.3); a broker closes the
// connection on an invalid one, which would look like a transient failure.
bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        char32_t cp = 0;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return false;
        if (i + n >= s.size())
            return false;
        for (std::size_t k = 1; k <= n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        const char32_t min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

// Empty when `topic` may be published to, else what is wrong with it.
std::string topic_problem(std::string_view topic) {
    if (topic.empty())
        return "is empty";
    if (topic.size() > 65535)
        return "is longer than 65535 bytes";
    if (topic.find_first_of("+#") != std::string_view::npos)
        return "contains a wildcard (+ or #), which a published topic may not";
    if (topic.find('\0') != std::string_view::npos)
        return "contains a NUL character";
    if (!valid_utf8(topic))
        return "is not valid UTF-8";
    return {};
}

bool parse_settings(const json::object& config, const json::object& secrets, std::int64_t integration_id,
                    settings& s, std::string* why) {
    const auto* url = field(config, "url");
    if (url == nullptr)
        return fail(why, "url: required, e.g. mqtts://broker.example.com:8883");
    if (!url->is_string())
        return fail(why, "url: must be a string such as mqtt://host:1883");
    s.id.url = std::string(url->get_string());
    if (!parse_url(s.id.url, s, why))
        return false;
    if (!read_string(config, "username", s.id.username, why))
        return false;
    if (const auto* p = field(secrets, "password")) {
        if (!p->is_string())
            return fail(why, "password: must be a string");
        s.id.password = std::string(p->get_string());
        if (s.id.username.empty())
            return fail(why, "password: MQTT 3.1.1 sends a password only with a user name; set username too");
    }
    s.id.client_id = "pulsegate-alerts-" + std::to_string(integration_id);
    if (field(config, "client_id") != nullptr) {
        if (!read_string(config, "client_id", s.id.client_id, why))
            return false;
        if (s.id.client_id.empty() || s.id.client_id.size() > 65535 || !valid_utf8(s.id.client_id) ||
            s.id.client_id.find('\0') != std::string::npos)
            return fail(why, "client_id: must be non-empty UTF-8 text (or left out for pulsegate-alerts-<id>)");
    }
    s.topic_template = std::string(default_topic_template);
    if (!read_string(config, "topic_template", s.topic_template, why))
        return false;
    if (s.topic_template.empty())
        return fail(why, "topic_template: must not be empty (default " + std::string(default_topic_template) + ")");
    if (s.topic_template.find_first_of("+#") != std::string::npos)
        return fail(why, "topic_template: a published topic may not contain the wildcards + or #");
    std::int64_t qos = 1;
    if (!read_int(config, "qos", 0, 2, qos, why))
        return false;
    s.qos = static_cast<int>(qos);
    if (!read_bool(config, "retain", s.retain, why))
        return false;
    std::int64_t timeout = 5000;
    if (!read_int(config, "timeout_ms", 1000, 120000, timeout, why))
        return false;
    s.timeout = milliseconds(timeout);
    if (!read_string(config, "ca_file", s.id.ca_file, why) || !read_bool(config, "insecure", s.id.insecure, why))
        return false;
    if (!s.tls && (!s.id.ca_file.empty() || s.id.insecure))
        return fail(why, std::string(s.id.ca_file.empty() ? "insecure" : "ca_file") +
                             ": applies to mqtts:// only; use an mqtts:// url or remove it");
    return true;
}

std::string host_in_uri(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// MQTT 3.1.1 CONNACK return codes (section 3.2.2.3), as Paho reports them.
std::string_view connack_reason(int rc) {
    switch (rc) {
    case 1: return "unacceptable protocol version";
    case 2: return "identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorised";
    default: return "refused";
    }
}

// Closes the Paho client when the last user lets go of it: the cache and
// every send() publishing on it hold a reference.
void close_client(mqtt::async_client* c) {
    try {
        if (c->is_connected())
            c->disconnect(1000)->wait_for(milliseconds(1000));
    } catch (const mqtt::exception& e) {
        // The connection is being thrown away; a failed DISCONNECT only
        // means the broker sees a dropped socket instead.
        spdlog::debug("mqtt sender: disconnect from {} failed: {}", c->get_server_uri(), e.what());
    }
    delete c;
}

// "MQTT error [-1]: TCP/TLS connect failure" and the like.
std::string describe(const mqtt::exception& e) { return e.what(); }

} // namespace

namespace detail {

// One integration's connection. `mutex` is held while (re)connecting, so
// one worker connects while the others wait for its result instead of
// opening connections of their own.
struct mqtt_connection {
    std::mutex mutex;
    std::optional<identity> built_for;          // what `client` was made from
    std::shared_ptr<mqtt::async_client> client; // null until the first successful connect
    steady::time_point next_attempt{};           // no connect before this
    milliseconds backoff{0};                    // the last window; 0 after a success
    std::string last_error;                     // why the last connect failed
};

} // namespace detail

bool validate_mqtt(const json::object& config, const json::object& secrets, std::string* why) {
    settings s;
    return parse_settings(config, secrets, 0, s, why);
}

mqtt_sender::mqtt_sender(const target_guard& guard) : mqtt_sender(guard, mqtt_sender_options{}) {}

mqtt_sender::mqtt_sender(const target_guard& guard, mqtt_sender_options options)
    : guard_(guard), options_(options) {}

mqtt_sender::~mqtt_sender() {
    std::lock_guard lock(mutex_);
    for (auto& [id, c] : connections_) {
        std::lock_guard entry_lock(c->mutex);
        c->client.reset();
    }
}

std::shared_ptr<detail::mqtt_connection> mqtt_sender::connection_for(std::int64_t integration_id) {
    std::lock_guard lock(mutex_);
    auto& c = connections_[integration_id];
    if (!c)
        c = std::make_shared<detail::mqtt_connection>();
    return c;
}

send_result mqtt_sender::send(const integration_target& target, const alert_message& message) {
    settings s;
    std::string why;
    if (!parse_settings(target.config, target.secrets, target.id, s, &why))
        return {outcome::failed, "", "invalid mqtt settings: " + why};
    const auto topic = render_template(s.topic_template, message);
    if (const auto problem = topic_problem(topic); !problem.empty())
        return {outcome::failed, "", "topic \"" + topic.substr(0, 200) + "\" from topic_template " + problem};

    const auto conn = connection_for(target.id);
    std::shared_ptr<mqtt::async_client> client;
    {
        std::unique_lock lock(conn->mutex);
        if (conn->built_for != s.id) {
            // New settings: the old connection and its backoff no longer apply.
            conn->client.reset();
            conn->built_for = s.id;
            conn->backoff = milliseconds(0);
            conn->next_attempt = {};
        }
        if (conn->client && conn->client->is_connected()) {
            client = conn->client;
        } else {
            conn->client.reset();
            const auto now = steady::now();
            if (now < conn->next_attempt) {
                const auto wait = std::chrono::ceil<milliseconds>(conn->next_attempt - now);
                return {outcome::retry, "",
                        "broker " + s.id.url + " unreachable (" + conn->last_error + "); next connect attempt in " +
                            std::to_string(wait.count()) + " ms"};
            }
            const auto backoff_failure = [&](std::string error) -> send_result {
                conn->backoff = conn->backoff.count() == 0 ? options_.initial_backoff
                                                           : std::min(conn->backoff * 2, options_.max_backoff);
                conn->next_attempt = steady::now() + conn->backoff;
                conn->last_error = error;
                spdlog::warn("mqtt sender: integration {} ({}): {}; next attempt in {} ms", target.id, target.tenant,
                             error, conn->backoff.count());
                return {outcome::retry, "",
                        error + "; next connect attempt in " + std::to_string(conn->backoff.count()) + " ms"};
            };

            std::string guard_why;
            const auto addresses = guard_.resolve(s.host, &guard_why);
            if (!addresses) {
                if (addresses.error() == boost::system::errc::permission_denied ||
                    addresses.error() == boost::system::errc::invalid_argument)
                    return {outcome::failed, "", guard_why};
                return backoff_failure(guard_why); // DNS trouble may pass
            }
            // See the header (SSRF guard) for why verified TLS goes by name.
            const bool by_name = s.tls && !s.id.insecure;
            const auto uri = std::string(s.tls ? "ssl://" : "tcp://") +
                             host_in_uri(by_name ? s.host : addresses->front().to_string()) + ":" +
                             std::to_string(s.port);

            try {
                std::shared_ptr<mqtt::async_client> fresh(new mqtt::async_client(uri, s.id.client_id, nullptr),
                                                          close_client);
                mqtt::connect_options opts;
                opts.set_clean_session(true);
                opts.set_mqtt_version(MQTTVERSION_3_1_1); // no silent fallback to 3.1 (a second CONNECT)
                opts.set_connect_timeout(std::chrono::ceil<std::chrono::seconds>(s.timeout));
                if (!s.id.username.empty())
                    opts.set_user_name(s.id.username);
                if (s.id.password)
                    opts.set_password(*s.id.password);
                if (s.tls) {
                    mqtt::ssl_options ssl;
                    if (!s.id.ca_file.empty())
                        ssl.set_trust_store(s.id.ca_file);
                    ssl.set_enable_server_cert_auth(!s.id.insecure);
                    ssl.set_verify(!s.id.insecure);
                    // No set_error_handler: Paho C++ 1.2 hands the C library a
                    // pointer to this ssl_options, which is gone by the time a
                    // handshake fails (crash seen in the tests).
                    opts.set_ssl(std::move(ssl));
                }
                const auto token = fresh->connect(opts);
                if (!token->wait_for(s.timeout))
                    return backoff_failure("no CONNACK from " + uri + " within " + std::to_string(s.timeout.count()) +
                                           " ms");
                conn->client = std::move(fresh);
                conn->backoff = milliseconds(0);
                conn->next_attempt = {};
                conn->last_error.clear();
                spdlog::info("mqtt sender: integration {} ({}) connected to {} as {}", target.id, target.tenant, uri,
                             s.id.client_id);
                client = conn->client;
            } catch (const mqtt::exception& e) {
                const int rc = e.get_return_code();
                if (rc >= 1 && rc <= 5 && rc != 3) {
                    const auto status = "connack " + std::to_string(rc) + " (" + std::string(connack_reason(rc)) + ")";
                    spdlog::warn("mqtt sender: integration {} ({}): {} refused the connection: {}", target.id,
                                 target.tenant, uri, status);
                    return {outcome::failed, status,
                            "broker " + s.id.url + " refused the connection: " + std::string(connack_reason(rc)) +
                                (rc == 4 || rc == 5 ? "; check username, password and the broker's ACL" : "")};
                }
                std::string text = describe(e);
                if (rc == 3)
                    text = "broker refused the connection: server unavailable";
                return backoff_failure("cannot connect to " + s.id.url + " (" + uri + "): " + text);
            }
        }
    }

    const auto acked = s.qos == 2 ? "pubcomp" : s.qos == 1 ? "puback" : "sent";
    const auto drop = [&] {
        // A broker that does not acknowledge in time is suspect: the next send
        // starts on a fresh connection (this one closes once unused).
        std::lock_guard lock(conn->mutex);
        if (conn->client == client)
            conn->client.reset();
    };
    try {
        auto msg = mqtt::make_message(topic, message.payload, s.qos, s.retain);
        const auto token = client->publish(msg);
        if (!token->wait_for(s.timeout)) {
            drop();
            return {outcome::retry, "",
                    std::string("no ") + (s.qos == 0 ? "completion" : acked) + " from " + s.id.url + " within " +
                        std::to_string(s.timeout.count()) + " ms"};
        }
    } catch (const mqtt::exception& e) {
        drop();
        return {outcome::retry, "", "publish to " + s.id.url + " failed: " + describe(e)};
    }
    return {outcome::delivered, acked, ""};
}

} // namespace pulsegate::adapters
