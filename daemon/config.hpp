#pragma once
// The daemon's configuration: pulsegate.toml (toml++) plus environment
// overrides, validated once at startup (and again on SIGHUP).
//
// Sources, later wins: the embedded defaults below, the file, then
// environment variables PULSEGATE_<SECTION>_<KEY> (upper case; a list is
// comma-separated, e.g. PULSEGATE_MQTT_LISTEN="127.0.0.1:1884,[::1]:1884").
// Every key has a default, so running with no file at all is valid.
//
// Anything unknown or invalid is an error, never ignored: an unknown section
// or key, a wrong type, a value out of range. The error is a config_error
// whose message names the source (file name and line, or variable), the key and what
// was expected, e.g.
//   pulsegate.toml:12: [mqtt] receive_maximum: expected an integer 1..65535, got 0
// It is a startup error: the daemon prints it and exits 1 (or, on reload,
// logs it and keeps the old configuration).
//
// [[acl]] entries are static ACL rules (checked after the identity rules).
// [[bridge]] sections are upstream bridges (adapters/bridge.hpp); they have
// no environment overrides and change only with a restart.

#include "adapters/bridge.hpp"
#include "broker/options.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::daemon {

// [mqtt]: the broker's listeners and limits. Field meanings and units are
// those of broker::options (see broker/options.hpp); the key names are the
// ones documented in etc/pulsegate.toml.
struct mqtt_config {
    std::vector<std::string> listen{"0.0.0.0:1883"};  // "host:port" / "[v6]:port"; IP literals
    unsigned shards = 0;                                // 0 = one per core
    std::uint16_t max_keepalive = 0;
    std::uint16_t receive_maximum = 65535;
    std::uint16_t topic_alias_maximum = 10;
    std::uint32_t max_packet_size = 1048576;
    std::uint16_t max_inflight = 1000;
    std::uint64_t max_queued_messages = 1000;
    std::uint64_t max_connections = 0;                  // 0 = unlimited
    std::uint32_t max_publish_rate = 0;                 // per client, PUBLISH/s; 0 = none
    std::uint64_t max_publish_byte_rate = 0;            // per client, payload bytes/s; 0 = none
    std::uint32_t publish_burst_s = 5;                  // seconds of the rate a bucket holds
    std::uint32_t max_topic_levels = 128;
    std::uint32_t connect_timeout_ms = 10000;
    std::uint32_t max_session_expiry_s = 0xFFFFFFFFu;
    std::uint32_t sys_interval_s = 10;                  // 0 = no $SYS statistics

    friend bool operator==(const mqtt_config&, const mqtt_config&) = default;
};

// [http]: the web UI / REST listener (served by a later issue; the key is
// accepted and validated now so configs written today stay valid).
struct http_config {
    std::string listen = "127.0.0.1:8080";
    // Front-end development: serve the UI from this webui/ui directory
    // (src/ and node_modules/) instead of the copy embedded at build time.
    std::string ui_dir;
    // With [tls] cert and key: HTTPS on `listen` (else plain HTTP).
    bool https = true;

    friend bool operator==(const http_config&, const http_config&) = default;
};

// [tls]: the certificate of the MQTT TLS listeners and of HTTPS.
struct tls_config {
    std::string cert;      // PEM chain; "" (with key ""): no TLS
    std::string key;       // PEM private key
    std::vector<std::string> listen{"0.0.0.0:8883"}; // MQTT over TLS
    std::string client_ca; // PEM bundle: ask for client certificates and verify them
    bool require_client_cert = false;

    bool enabled() const noexcept { return !cert.empty(); }
    friend bool operator==(const tls_config&, const tls_config&) = default;
};

enum class durability { commit, relaxed };

// [storage]: where LMDB and SQLite live (later issues), and when a QoS 1/2
// publish is acknowledged relative to the commit of its reading.
struct storage_config {
    std::string data_dir = "./var";
    durability durability_mode = durability::commit;
    std::uint32_t points_per_series = 100000;  // raw ring slots per series
    std::uint32_t minute_rollup_slots = 10140; // 7 days + 1 hour
    std::uint32_t hour_rollup_slots = 8784;    // 366 days
    std::uint64_t max_size_mb = 0;             // LMDB map cap; 0: grow until the disk is full
    std::uint32_t max_metrics_per_reading = 64;
    std::uint32_t max_metric_name_length = 64;
    std::uint32_t relaxed_sync_interval_ms = 1000;
    std::uint32_t relaxed_commit_delay_ms = 10;
    std::uint32_t checkpoint_interval_ms = 10000;
    std::uint64_t checkpoint_points = 4u << 20; // journaled points that force a checkpoint sooner

    friend bool operator==(const storage_config&, const storage_config&) = default;
};

// [auth]: anonymous (no user name) clients. Off by default. When allowed they
// are mounted in `anonymous_tenant`'s tree; the empty string mounts them
// nowhere, i.e. they see the whole untenanted topic tree (lab use only).
struct auth_config {
    bool allow_anonymous = false;
    std::string anonymous_tenant = "default";

    friend bool operator==(const auth_config&, const auth_config&) = default;
};

// [delivery]: CIDR ranges ("127.0.0.0/8", "::1/128"; a bare address means
// that one host) that customer-supplied destinations may resolve to despite
// the SSRF guard.
struct delivery_config {
    std::vector<std::string> allow_private_targets;
    std::int64_t workers = 4;                   // threads sending
    std::int64_t per_integration_concurrency = 8; // sends to one integration at once
    std::int64_t max_attempts = 10;             // then the job is dead
    std::int64_t backoff_initial_ms = 1000;     // before the 2nd attempt; doubles per attempt
    std::int64_t backoff_max_ms = 300000;
    std::int64_t breaker_threshold = 5;         // retryable failures in a row that open the circuit
    std::int64_t breaker_cooldown_s = 30;

    friend bool operator==(const delivery_config&, const delivery_config&) = default;
};

// [rules]: the rules engine (README, "Rules and alerts").
struct rules_config {
    std::int64_t heartbeat_grace_s = 120;     // after a start, before any device is declared silent
    std::int64_t alert_retention_days = 90;   // closed alerts older than this are purged
    std::int64_t queue_capacity = 32768;      // messages waiting for the engine thread

    friend bool operator==(const rules_config&, const rules_config&) = default;
};

// [quotas]: per-tenant limits over all of a tenant's clients (0: none).
struct quotas_config {
    std::int64_t devices = 0;        // devices a tenant may have (API: 403 beyond)
    std::int64_t connections = 0;    // MQTT connections at once (CONNACK 0x97)
    std::int64_t messages_per_s = 0; // PUBLISH packets per second (v5 PUBACK 0x97)

    friend bool operator==(const quotas_config&, const quotas_config&) = default;
};

enum class log_format { logfmt, json };

// [log]: one line per event on stderr.
struct log_config {
    std::string level = "info";  // trace, debug, info, warn, error
    log_format format = log_format::logfmt;

    friend bool operator==(const log_config&, const log_config&) = default;
};

// One [[acl]] entry: who = "anonymous" | "*" | "{tenant}/{device}" (an MQTT
// user name), action = "publish" | "subscribe" | "both", topic = a filter in
// the client's own namespace, permission = "allow" | "deny".
struct acl_entry {
    std::string who;
    std::string action;
    std::string topic;
    std::string permission;

    friend bool operator==(const acl_entry&, const acl_entry&) = default;
};

struct config {
    mqtt_config mqtt;
    http_config http;
    tls_config tls;
    storage_config storage;
    auth_config auth;
    delivery_config delivery;
    rules_config rules;
    quotas_config quotas;
    log_config log;
    std::vector<acl_entry> acl; // in file order; the first match decides
    std::vector<adapters::bridge_options> bridges;

    friend bool operator==(const config&, const config&) = default;
};

// The one exception configuration loading throws; what() is the complete
// user-facing message (source, key, expectation).
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Looks up one environment variable; nullopt when unset. Tests inject a map;
// the daemon passes process_env.
using env_lookup = std::function<std::optional<std::string>(const std::string& name)>;

// std::getenv.
std::optional<std::string> process_env(const std::string& name);

// No environment at all (defaults + file only).
std::optional<std::string> no_env(const std::string& name);

// Defaults, then `toml_text` (named `source_name` in messages, typically the
// path as the user gave it), then the environment. Throws config_error.
config parse_config(std::string_view toml_text, std::string_view source_name,
                    const env_lookup& env);

// Reads `file` (when given; a missing or unreadable file is an error) and
// parses it as parse_config does; without a file: defaults + environment.
config load_config(const std::optional<std::filesystem::path>& file,
                   const env_lookup& env);

// The environment variable that overrides [section] key, e.g.
// env_var_name("mqtt", "listen") == "PULSEGATE_MQTT_LISTEN".
std::string env_var_name(std::string_view section, std::string_view key);

// Of `names` (typically every variable in the environment), those that start
// with PULSEGATE_ but name no known key: most likely typos, worth a warning.
std::vector<std::string> unknown_env_overrides(const std::vector<std::string>& names);

// The complete effective configuration as TOML, every key, in the order of
// etc/pulsegate.toml. parse_config(to_toml(c)) == c unless `redact` (bridge
// passwords printed as "<secret>", for check-config's output).
std::string to_toml(const config& cfg, bool redact = false);

// [mqtt] + [auth] as the broker takes them.
broker::options to_broker_options(const config& cfg);

// The keys whose change only takes effect after a restart (listeners, shard
// count, HTTP listener, storage), as "[section] key", that differ between
// `running` and `reloaded`. SIGHUP applies the rest and warns about these.
std::vector<std::string> restart_only_changes(const config& running,
                                              const config& reloaded);

std::string_view to_string(durability d);
std::string_view to_string(log_format f);

} // namespace pulsegate::daemon
