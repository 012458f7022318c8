#include "daemon/observability.hpp"

#include "broker/server.hpp"
#include "daemon/bridges.hpp"
#include "daemon/ingest.hpp"
#include "daemon/mqtt_identity.hpp"
#include "daemon/mqtt_websocket.hpp"
#include "daemon/delivery.hpp"
#include "engine/rules_engine.hpp"
#include "webui/api.hpp"
#include "storage/lmdb_store.hpp"
#include "storage/state/delivery_repository.hpp"
#include "webui/builtin_routes.hpp"
#include "webui/static_assets.hpp"

#include <functional>

namespace pulsegate::daemon {

namespace {

// What the REST API changes reaches MQTT (disconnects) and the rules engine
// (device labels and existence decide rule scopes; a removed tenant's
// alerts close).
class api_hooks final : public webui::identity_hooks {
public:
    api_hooks(mqtt_identity& identity, engine::rules_engine& rules) : identity_(identity), rules_(rules) {}
    void device_changed(std::string_view tenant, std::string_view device) override {
        identity_.device_changed(tenant, device);
        rules_.devices_changed(tenant);
    }
    void token_revoked(const std::optional<std::string_view>& tenant, std::string_view public_id) override {
        identity_.token_revoked(tenant, public_id);
    }
    void tenant_changed(std::string_view tenant) override {
        identity_.tenant_changed(tenant);
        rules_.devices_changed(tenant);
        rules_.rules_changed(tenant);
    }
    void user_changed(std::string_view name) override { identity_.user_changed(name); }

private:
    mqtt_identity& identity_;
    engine::rules_engine& rules_;
};

} // namespace

namespace {

// "address:port", "[v6]:port".
std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep) {
    const auto a = ep.address().to_string();
    return (ep.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(ep.port());
}

} // namespace

observability::observability(broker::server& server, storage::lmdb_store& store, const ingest& telemetry,
                             const std::atomic<bool>& storage_ok, storage::state::database& db,
                             const engine::server_key& key, mqtt_identity& identity, engine::rules_engine& rules,
                             delivery& alerts_out, http_options opts)
    : hooks_(std::make_unique<api_hooks>(identity, rules)) {
    using stats_of = std::function<double(const broker::sys_stats&)>;
    auto broker_series = [&](const char* name, const char* help, bool counter, stats_of field) {
        auto read = [&server, field] { return field(server.stats()); };
        series_.push_back(counter ? metrics_.add_callback_counter(name, help, read)
                                  : metrics_.add_callback_gauge(name, help, read));
    };
    broker_series("pulsegate_mqtt_clients_connected", "MQTT clients connected now", false,
                  [](const auto& s) { return double(s.clients_connected); });
    for (const std::string_view what : {"connection", "publish"}) {
        series_.push_back(metrics_.add_callback_counter(
            "pulsegate_tenant_quota_refused_total", "CONNECTs and PUBLISHes refused by a tenant quota ([quotas])",
            [&server, connection = what == "connection"] {
                const auto st = server.stats();
                return double(connection ? st.tenant_connections_refused : st.tenant_publishes_refused);
            },
            {{"what", std::string(what)}}));
    }
    broker_series("pulsegate_mqtt_rate_limited_total",
                  "MQTT clients disconnected for publishing past [mqtt] max_publish_rate / max_publish_byte_rate", true,
                  [](const auto& s) { return double(s.rate_limited); });
    broker_series("pulsegate_mqtt_sessions_offline", "Persistent sessions without a connection", false,
                  [](const auto& s) { return double(s.clients_disconnected); });
    broker_series("pulsegate_mqtt_subscriptions", "Subscriptions (session, filter)", false,
                  [](const auto& s) { return double(s.subscriptions); });
    broker_series("pulsegate_mqtt_retained_messages", "Retained messages", false,
                  [](const auto& s) { return double(s.retained_messages); });
    broker_series("pulsegate_mqtt_connections_total", "Network connections accepted", true,
                  [](const auto& s) { return double(s.sockets); });
    broker_series("pulsegate_mqtt_packets_received_total", "MQTT packets received", true,
                  [](const auto& s) { return double(s.messages_received); });
    broker_series("pulsegate_mqtt_packets_sent_total", "MQTT packets sent", true,
                  [](const auto& s) { return double(s.messages_sent); });
    broker_series("pulsegate_mqtt_publish_received_total", "PUBLISH packets received", true,
                  [](const auto& s) { return double(s.publish_messages_received); });
    broker_series("pulsegate_mqtt_publish_sent_total", "PUBLISH packets sent", true,
                  [](const auto& s) { return double(s.publish_messages_sent); });
    broker_series("pulsegate_mqtt_publish_dropped_total", "Messages not delivered (queue full, expired, too large)",
                  true, [](const auto& s) { return double(s.publish_messages_dropped); });
    broker_series("pulsegate_mqtt_bytes_received_total", "Bytes received from MQTT clients", true,
                  [](const auto& s) { return double(s.bytes_received); });
    broker_series("pulsegate_mqtt_bytes_sent_total", "Bytes sent to MQTT clients", true,
                  [](const auto& s) { return double(s.bytes_sent); });

    using store_field = std::function<double(const storage::lmdb_stats&)>;
    auto storage_series = [&](const char* name, const char* help, bool counter, store_field field) {
        auto read = [&store, field] { return field(store.stats()); };
        series_.push_back(counter ? metrics_.add_callback_counter(name, help, read)
                                  : metrics_.add_callback_gauge(name, help, read));
    };
    storage_series("pulsegate_storage_points_written_total", "Telemetry points stored", true,
                   [](const auto& s) { return double(s.points_written); });
    storage_series("pulsegate_storage_points_out_of_order_total", "Points older than their series' newest, dropped",
                   true, [](const auto& s) { return double(s.points_out_of_order); });
    storage_series("pulsegate_storage_points_duplicate_total", "Points with their series' newest timestamp, ignored",
                   true, [](const auto& s) { return double(s.points_duplicate); });
    storage_series("pulsegate_storage_commits_total", "LMDB write transactions committed", true,
                   [](const auto& s) { return double(s.commits); });
    storage_series("pulsegate_storage_checkpoints_total", "Journal checkpoints into the rings", true,
                   [](const auto& s) { return double(s.checkpoints); });
    storage_series("pulsegate_storage_full_errors_total", "Batches refused because the map or disk was full", true,
                   [](const auto& s) { return double(s.storage_full_errors); });
    storage_series("pulsegate_storage_series", "Telemetry series", false,
                   [](const auto& s) { return double(s.series); });
    storage_series("pulsegate_storage_map_size_bytes", "LMDB map size", false,
                   [](const auto& s) { return double(s.map_size); });
    storage_series("pulsegate_storage_queued_operations", "Operations waiting for the writer", false,
                   [](const auto& s) { return double(s.queued_operations); });

    auto ingest_series = [&](const char* name, const char* help, std::function<double(const ingest_stats&)> field) {
        series_.push_back(
            metrics_.add_callback_counter(name, help, [&telemetry, field] { return field(telemetry.stats()); }));
    };
    ingest_series("pulsegate_ingest_readings_total", "Telemetry readings accepted",
                  [](const auto& s) { return double(s.readings); });
    ingest_series("pulsegate_ingest_rejected_total", "Telemetry readings refused as invalid (v5 0x99)",
                  [](const auto& s) { return double(s.rejected); });
    ingest_series("pulsegate_ingest_overloaded_total", "Telemetry readings refused: storage writer behind (0x97)",
                  [](const auto& s) { return double(s.overloaded); });

    using identity_field = std::function<double(const mqtt_identity_stats&)>;
    auto identity_series = [&](const char* name, const char* help, bool counter, identity_field field) {
        auto read = [&identity, field] { return field(identity.stats()); };
        series_.push_back(counter ? metrics_.add_callback_counter(name, help, read)
                                  : metrics_.add_callback_gauge(name, help, read));
    };
    identity_series("pulsegate_mqtt_connects_allowed_total", "CONNECTs authenticated", true,
                    [](const auto& s) { return double(s.connects_allowed); });
    identity_series("pulsegate_mqtt_connects_refused_total", "CONNECTs refused: bad or disabled credentials", true,
                    [](const auto& s) { return double(s.connects_refused); });
    identity_series("pulsegate_mqtt_connects_busy_total", "CONNECTs refused: too many credential checks waiting",
                    true, [](const auto& s) { return double(s.connects_busy); });
    identity_series("pulsegate_mqtt_publishes_denied_total", "Publishes and wills refused by the ACL (0x87)", true,
                    [](const auto& s) { return double(s.publishes_denied); });
    identity_series("pulsegate_mqtt_subscribes_denied_total", "Subscriptions refused by the ACL (0x87)", true,
                    [](const auto& s) { return double(s.subscribes_denied); });
    identity_series("pulsegate_mqtt_rejections_unrecorded_total",
                    "Rejections counted but not written to the rejected-events table", true,
                    [](const auto& s) { return double(s.rejections_dropped); });
    identity_series("pulsegate_auth_cache_hits_total", "Credential checks answered from the cache", true,
                    [](const auto& s) { return double(s.cache.hits + s.cache.negative_hits); });
    identity_series("pulsegate_auth_cache_misses_total", "Credential checks that went to the database", true,
                    [](const auto& s) { return double(s.cache.misses); });

    using rules_field = std::function<double(const engine::rules_engine_stats&)>;
    auto rules_series = [&](const char* name, const char* help, bool counter, rules_field field) {
        auto read = [&rules, field] { return field(rules.stats()); };
        series_.push_back(counter ? metrics_.add_callback_counter(name, help, read)
                                  : metrics_.add_callback_gauge(name, help, read));
    };
    rules_series("pulsegate_rules_messages_total", "Messages handed to the rules engine", true,
                 [](const auto& s) { return double(s.queued); });
    rules_series("pulsegate_rules_dropped_total", "Messages not evaluated: the rules engine queue was full", true,
                 [](const auto& s) { return double(s.dropped); });
    rules_series("pulsegate_rules_evaluations_total", "Rule evaluations (rule x reading)", true,
                 [](const auto& s) { return double(s.eval.evaluations); });
    rules_series("pulsegate_rules_timers", "Armed timers (for_s, heartbeat deadlines, escalation)", false,
                 [](const auto& s) { return double(s.eval.timers); });
    rules_series("pulsegate_alerts_open", "Alerts not closed (open or acknowledged)", false,
                 [](const auto& s) { return double(s.eval.open_alerts); });
    rules_series("pulsegate_alerts_opened_total", "Alerts opened", true,
                 [](const auto& s) { return double(s.eval.opened); });
    rules_series("pulsegate_alerts_closed_total", "Alerts closed (automatically or by hand)", true,
                 [](const auto& s) { return double(s.eval.closed); });
    rules_series("pulsegate_alerts_escalated_total", "Alert escalations", true,
                 [](const auto& s) { return double(s.eval.escalated); });
    rules_series("pulsegate_alerts_write_errors_total", "Alert batches the state database refused", true,
                 [](const auto& s) { return double(s.write_errors); });

    using outbox_field = std::function<double(const engine::outbox_stats&)>;
    auto& out = alerts_out.outbox();
    auto delivery_series = [&](const char* name, const char* help, outbox_field field) {
        series_.push_back(metrics_.add_callback_counter(name, help, [&out, field] { return field(out.stats()); }));
    };
    delivery_series("pulsegate_delivery_attempts_total", "Delivery attempts (one send of one alert event)",
                    [](const auto& s) { return double(s.attempts); });
    delivery_series("pulsegate_delivery_delivered_total", "Deliveries the receiver acknowledged",
                    [](const auto& s) { return double(s.delivered); });
    delivery_series("pulsegate_delivery_retries_total", "Attempts that failed and will be tried again",
                    [](const auto& s) { return double(s.retried); });
    delivery_series("pulsegate_delivery_dead_total", "Deliveries given up (refused, or out of attempts)",
                    [](const auto& s) { return double(s.dead); });
    delivery_series("pulsegate_delivery_circuits_opened_total",
                    "Times an integration's receiver failed often enough to be left alone for a while",
                    [](const auto& s) { return double(s.circuits_opened); });
    // Jobs not yet delivered or given up (waiting, backing off, or being
    // sent): what a receiver that is down lets pile up.
    series_.push_back(metrics_.add_callback_gauge(
        "pulsegate_delivery_outbox_depth", "Delivery jobs pending or in flight", [&db] {
            auto c = storage::state::delivery_repository(db).count();
            return c ? double(c->pending + c->in_flight) : 0.0;
        }));

    if (opts.uplinks != nullptr) bridge_metrics(*opts.uplinks);

    auto& commit_seconds = metrics_.add_histogram(
        "pulsegate_storage_commit_duration_seconds", "Time of one storage write transaction, fsync included",
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
    store.set_commit_duration_handler(
        [h = &commit_seconds.with(std::span<const std::string_view>{})](std::chrono::duration<double> d) { h->observe(d.count()); });

    readiness_.add("storage", [&storage_ok] {
        return storage_ok.load(std::memory_order_relaxed)
                   ? webui::check_result::ok()
                   : webui::check_result::failing("the last commit failed: storage full ([storage] max_size_mb or "
                                                  "the disk)");
    });
    readiness_.add("mqtt", [&server] {
        return server.local_endpoints().empty() ? webui::check_result::failing("no MQTT listener")
                                                : webui::check_result::ok();
    });
    webui::register_builtin_routes(router_, metrics_, readiness_);
    webui::register_static_routes(router_, opts.ui_dir);
    auth_ = std::make_unique<webui::auth>(db, key, opts.auth);
    auth_->add_routes(router_);
    const webui::api_services services{.db = &db,
                                       .telemetry = &store,
                                       .key = &key,
                                       .hooks = hooks_.get(),
                                       .alerts = &rules,
                                       .secrets = &alerts_out.secrets(),
                                       .guard = &alerts_out.guard(),
                                       .outbox = &alerts_out.outbox(),
                                       .router = &alerts_out.router(),
                                       .digest = &alerts_out.digest(),
                                       .device_quota = opts.device_quota};
    webui::add_device_routes(router_, *auth_, services);
    webui::add_token_routes(router_, *auth_, services);
    webui::add_operator_routes(router_, *auth_, services);
    webui::add_rule_routes(router_, *auth_, services);
    webui::add_alert_routes(router_, *auth_, services);
    webui::add_silence_routes(router_, *auth_, services);
    webui::add_integration_routes(router_, *auth_, services);
    webui::add_digest_routes(router_, *auth_, services);
    webui::add_live_feed_route(router_);
    webui::add_info_route(router_, *auth_, [&server, https = opts.tls != nullptr] {
        const auto text = [](const std::vector<boost::asio::ip::tcp::endpoint>& eps) {
            std::vector<std::string> out;
            for (const auto& ep : eps) out.push_back(endpoint_text(ep));
            return out;
        };
        return webui::server_info{.version = PULSEGATE_VERSION,
                                  .mqtt = text(server.local_endpoints()),
                                  .mqtts = text(server.tls_endpoints()),
                                  .https = https};
    });
    webui::http_server_options o;
    o.listen = std::move(opts.listen);
    o.threads = opts.threads;
    o.tls = opts.tls;
    o.websockets.emplace_back("/mqtt", mqtt_websocket_acceptor(server, opts.mqtt_max_packet_size));
    if (opts.live_feed != nullptr) {
        auto* live = opts.live_feed;
        o.websockets.emplace_back("/api/v1/ws", live->acceptor(*auth_));
        series_.push_back(metrics_.add_callback_gauge("pulsegate_live_feed_clients", "Open live feeds (/api/v1/ws)",
                                                      [live] { return double(live->counts().clients); }));
        series_.push_back(metrics_.add_callback_counter(
            "pulsegate_live_feed_resyncs_total", "Live feed clients that fell behind and lost their backlog",
            [live] { return double(live->counts().resyncs); }));
    }
    http_ = std::make_unique<webui::http_server>(router_, metrics_, std::move(o));
}

observability::~observability() { stop(); }

// One series per bridge, labelled bridge="{name}".
void observability::bridge_metrics(const bridges& uplinks) {
    using field = double (*)(const adapters::bridge_stats&);
    struct series {
        const char* name;
        const char* help;
        bool counter;
        field read;
    };
    static constexpr series all[] = {
        {"pulsegate_bridge_connected", "1 while the bridge's uplink is connected", false,
         [](const adapters::bridge_stats& s) { return s.connected ? 1.0 : 0.0; }},
        {"pulsegate_bridge_queued_messages", "Messages in the store-and-forward queue (sent or not yet acknowledged)",
         false, [](const adapters::bridge_stats& s) { return double(s.queued); }},
        {"pulsegate_bridge_oldest_queued_age_seconds", "Age of the oldest queued message (0: empty)", false,
         [](const adapters::bridge_stats& s) { return double(s.oldest_age_ms) / 1000.0; }},
        {"pulsegate_bridge_in_flight_messages", "Messages sent and not yet acknowledged by the remote", false,
         [](const adapters::bridge_stats& s) { return double(s.in_flight); }},
        {"pulsegate_bridge_sent_total", "Messages the remote broker acknowledged", true,
         [](const adapters::bridge_stats& s) { return double(s.sent); }},
        {"pulsegate_bridge_imported_total", "Messages imported from the remote broker", true,
         [](const adapters::bridge_stats& s) { return double(s.imported); }},
        {"pulsegate_bridge_connects_total", "Successful connections to the remote broker", true,
         [](const adapters::bridge_stats& s) { return double(s.connects); }},
    };
    for (const auto& [bridge_name, unused] : uplinks.stats()) {
        (void)unused;
        const auto one = [&uplinks, bridge_name](field read) {
            return [&uplinks, bridge_name, read] {
                for (const auto& [n, s] : uplinks.stats())
                    if (n == bridge_name) return read(s);
                return 0.0;
            };
        };
        const std::vector<std::pair<std::string, std::string>> labels{{"bridge", bridge_name}};
        for (const auto& s : all)
            series_.push_back(s.counter ? metrics_.add_callback_counter(s.name, s.help, one(s.read), labels)
                                        : metrics_.add_callback_gauge(s.name, s.help, one(s.read), labels));
        const std::pair<const char*, field> reasons[] = {
            {"max_messages", [](const adapters::bridge_stats& s) { return double(s.dropped_max_messages); }},
            {"max_age", [](const adapters::bridge_stats& s) { return double(s.dropped_max_age); }},
            {"full", [](const adapters::bridge_stats& s) { return double(s.dropped_full); }},
            {"overflow", [](const adapters::bridge_stats& s) { return double(s.dropped_overflow); }},
        };
        for (const auto& [reason, read] : reasons)
            series_.push_back(metrics_.add_callback_counter(
                "pulsegate_bridge_dropped_total", "Messages the store-and-forward bounds dropped, by reason",
                one(read), {{"bridge", bridge_name}, {"reason", reason}}));
    }
}

void observability::start() { http_->start(); }

void observability::stop() {
    if (http_) http_->stop();
}

std::string observability::address() const { return endpoint_text(http_->local_endpoint()); }

} // namespace pulsegate::daemon
