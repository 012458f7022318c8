// pulsegate: the command line. `serve` wires configuration, logging and the
// broker together and turns signals into stop / reload.
//
// Exit codes: 0 success, 1 startup or runtime error (bad config, cannot
// listen), 2 command-line usage error.

#include "broker/server.hpp"
#include "common/time.hpp"
#include "common/tls.hpp"
#include "daemon/admin.hpp"
#include "daemon/alert_publisher.hpp"
#include "daemon/bridges.hpp"
#include "daemon/delivery.hpp"
#include "daemon/config.hpp"
#include "daemon/demo.hpp"
#include "daemon/ingest.hpp"
#include "daemon/mqtt_identity.hpp"
#include "daemon/observability.hpp"
#include "daemon/service_notify.hpp"
#include "daemon/simulate.hpp"
#include "engine/rules_engine.hpp"
#include "daemon/log.hpp"
#include "storage/lmdb_store.hpp"
#include "storage/state/data_dir_lock.hpp"
#include "storage/state/database.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#ifndef PULSEGATE_VERSION
#define PULSEGATE_VERSION "unknown"
#endif

extern char** environ;

namespace pulsegate::daemon {
namespace {

namespace asio = boost::asio;

using config_path = std::optional<std::filesystem::path>;

// `serve --demo` and its knobs (README, Demo).
struct demo_settings {
    bool enabled = false;
    std::chrono::seconds breach_every{180};
    std::chrono::seconds silent_after{60};
    double rate = 1.0;
};

std::vector<std::string> environment_names() {
    std::vector<std::string> names;
    for (char** e = environ; e && *e; ++e) {
        std::string_view entry(*e);
        names.emplace_back(entry.substr(0, entry.find('=')));
    }
    return names;
}

std::string format_endpoint(const asio::ip::tcp::endpoint& ep) {
    auto addr = ep.address();
    return addr.is_v6() ? "[" + addr.to_string() + "]:" + std::to_string(ep.port())
                        : addr.to_string() + ":" + std::to_string(ep.port());
}

std::string_view signal_name(int sig) {
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "other";
    }
}

std::string describe_path(const config_path& path) {
    return path ? logfmt_value(path->string()) : "none";
}

// `quiet`: only errors and warnings (systemd's ExecStartPre).
int check_config(const config_path& path, bool quiet) {
    config cfg;
    try {
        cfg = load_config(path, process_env);
    } catch (const config_error& e) {
        std::cerr << "pulsegate: " << e.what() << '\n';
        return 1;
    }
    try {
        auto probe = cfg.bridges; // read as serve would; the printout names the file
        load_bridge_passwords(probe);
    } catch (const std::exception& e) {
        std::cerr << "pulsegate: " << e.what() << '\n';
        return 1;
    }
    if (cfg.tls.enabled()) {
        // The files, as serve would load them.
        try {
            common::make_server_tls_context(common::tls_files{.cert = cfg.tls.cert,
                                                              .key = cfg.tls.key,
                                                              .client_ca = cfg.tls.client_ca,
                                                              .require_client_cert = cfg.tls.require_client_cert});
        } catch (const std::exception& e) {
            std::cerr << "pulsegate: " << e.what() << '\n';
            return 1;
        }
    }
    for (const auto& name : unknown_env_overrides(environment_names()))
        std::cerr << "pulsegate: warning: " << name << " is not a configuration key; ignored\n";
    if (quiet) return 0;
    std::cout << "# pulsegate effective configuration (defaults, "
              << (path ? "file " + path->string() + ", " : std::string("no file, "))
              << "environment)\n"
              << to_toml(cfg, true);
    return 0;
}

// Tells systemd (Type=notify) what the daemon is doing; see service_notify.hpp.
void tell_service_manager(std::string_view state) {
    if (auto ec = notify_service(state))
        spdlog::warn("cannot notify the service manager (NOTIFY_SOCKET) error={}", logfmt_value(ec.message()));
}

// SIGHUP: re-read the same file and apply what can change at run time; on
// any error keep running with the old configuration.
void reload(config& running, const config_path& path, broker::server& server, mqtt_identity& identity,
            common::tls_source* tls, std::atomic<std::int64_t>& device_quota) {
    spdlog::info("reloading config={}", describe_path(path));
    if (tls != nullptr) {
        // The files named at start, read again: a renewed certificate
        // reaches new connections; open ones keep theirs.
        if (auto failed = tls->reload())
            spdlog::error("TLS certificate reload failed, keeping the previous one error={}", logfmt_value(*failed));
        else
            spdlog::info("TLS certificate reloaded cert={}", logfmt_value(running.tls.cert));
    }
    try {
        auto next = load_config(path, process_env);
        server.reload(to_broker_options(next));
        identity.set_anonymous(next.auth.allow_anonymous, next.auth.anonymous_tenant);
        device_quota.store(next.quotas.devices, std::memory_order_relaxed);
        apply_log_config(next.log);
        for (const auto& key : restart_only_changes(running, next))
            spdlog::warn("changed setting takes effect only after a restart key={}", logfmt_value(key));
        // What is running keeps the values that need a restart, so a later
        // reload warns again rather than comparing against unapplied values.
        next.mqtt.listen = running.mqtt.listen;
        next.mqtt.shards = running.mqtt.shards;
        next.http = running.http;
        next.tls = running.tls;
        next.storage = running.storage;
        running = std::move(next);
        spdlog::info("reloaded config={}", describe_path(path));
    } catch (const std::exception& e) {
        spdlog::error("reload failed, keeping the previous config error={}", logfmt_value(e.what()));
    }
}

storage::lmdb_options lmdb_options_of(const config& cfg) {
    const auto& s = cfg.storage;
    storage::lmdb_options o;
    o.dir = std::filesystem::path(s.data_dir) / "telemetry";
    o.points_per_series = s.points_per_series;
    o.minute_slots = s.minute_rollup_slots;
    o.hour_slots = s.hour_rollup_slots;
    o.sync_on_commit = s.durability_mode == durability::commit;
    o.relaxed_sync_interval = std::chrono::milliseconds(s.relaxed_sync_interval_ms);
    o.relaxed_commit_delay = std::chrono::milliseconds(s.relaxed_commit_delay_ms);
    o.max_map_size = s.max_size_mb << 20;
    if (o.max_map_size != 0) o.initial_map_size = std::min(o.initial_map_size, o.max_map_size);
    o.checkpoint_interval = std::chrono::milliseconds(s.checkpoint_interval_ms);
    o.checkpoint_points = s.checkpoint_points;
    return o;
}

// Called on the storage writer after each commit: acknowledgements waiting
// for it go out; a full store is reported (at most once a minute in the log,
// every time in the counters and to v5 publishers as 0x97).
class commit_reporter {
public:
    commit_reporter(broker::server& server, std::atomic<bool>& storage_ok) : server_(server), ok_(storage_ok) {}
    void operator()(std::shared_ptr<void> token, storage::commit_status status) {
        const bool ok = status == storage::commit_status::committed;
        ok_.store(ok, std::memory_order_relaxed);
        if (!ok) {
            const auto now = std::chrono::steady_clock::now();
            if (now - last_full_log_ >= std::chrono::minutes(1)) {
                last_full_log_ = now;
                spdlog::error("storage full: readings and durable broker state are refused (v5 publishers get "
                              "0x97) — free disk space or raise [storage] max_size_mb");
            }
        }
        if (token) server_.release_hold(std::move(token), ok);
    }

private:
    broker::server& server_;
    std::atomic<bool>& ok_;
    std::chrono::steady_clock::time_point last_full_log_{};
};

// Where a local client reaches `ep`: a wildcard address is reached on the
// loopback of its family.
std::string local_address(const asio::ip::tcp::endpoint& ep) {
    auto addr = ep.address();
    if (addr.is_unspecified())
        addr = addr.is_v6() ? asio::ip::address(asio::ip::address_v6::loopback())
                            : asio::ip::address(asio::ip::address_v4::loopback());
    return format_endpoint({addr, ep.port()});
}

// "127.0.0.1:8080" for the browser when HTTP listens on every address.
std::string browsable(std::string address) {
    if (address.starts_with("0.0.0.0:")) return "127.0.0.1" + address.substr(7);
    if (address.starts_with("[::]:")) return "[::1]" + address.substr(4);
    return address;
}

int serve(const config_path& path, const demo_settings& demo) {
    config cfg;
    try {
        cfg = load_config(path, process_env);
    } catch (const config_error& e) {
        std::cerr << "pulsegate: " << e.what() << '\n';
        return 1;
    }
    init_logging(cfg.log);
    spdlog::info("starting version={} config={}", PULSEGATE_VERSION, describe_path(path));
    for (const auto& name : unknown_env_overrides(environment_names()))
        spdlog::warn("environment variable is not a configuration key, ignored name={}", name);

    // Signals are caught from here on, before any broker thread exists, so
    // an early SIGTERM is a clean stop rather than the default action.
    asio::io_context signal_io;
    asio::signal_set signals(signal_io, SIGINT, SIGTERM, SIGHUP);
    asio::steady_timer stats_timer(signal_io);

    // Storage first: the broker restores its durable state from it at start.
    const std::filesystem::path data_dir = cfg.storage.data_dir;
    if (!data_dir_initialised(data_dir)) {
        spdlog::info("initialising empty data directory dir={}", logfmt_value(data_dir.string()));
        const int rc = run_init(init_options{data_dir, std::nullopt}, std::cout, std::cerr);
        std::cout.flush(); // the generated password, before the log lines that follow
        if (rc != 0) return 1;
    }
    auto lock = storage::state::data_dir_lock::try_acquire(data_dir);
    if (!lock) {
        spdlog::error("{} — stop the other pulsegate or set another [storage] data_dir", lock.error().message);
        return 1;
    }
    std::unique_ptr<storage::lmdb_store> store;
    try {
        store = std::make_unique<storage::lmdb_store>(lmdb_options_of(cfg));
    } catch (const std::exception& e) {
        spdlog::error("cannot open the telemetry store error={} — check [storage] data_dir and its permissions",
                      logfmt_value(e.what()));
        return 1;
    }
    const bool durable = cfg.storage.durability_mode == durability::commit;
    ingest telemetry(*store,
                     engine::telemetry_limits{.max_metrics = cfg.storage.max_metrics_per_reading,
                                              .max_metric_name = cfg.storage.max_metric_name_length,
                                              .max_payload = cfg.mqtt.max_packet_size},
                     durable);
    durable_broker_state broker_state(*store, durable);
    auto db = storage::state::database::open({.file = data_dir / "state.db"});
    if (!db) {
        spdlog::error("{} — check [storage] data_dir and its permissions", db.error().message);
        return 1;
    }
    // Device secrets, API tokens and session ids are stored as digests keyed
    // with it: losing it invalidates every one of them (backup keeps it).
    auto key = engine::load_or_create_server_key(data_dir / "secret.key");
    if (!key) {
        spdlog::error("{}", key.error().message);
        return 1;
    }
    spdlog::info("storage opened dir={} durability={}", logfmt_value(data_dir.string()),
                 to_string(cfg.storage.durability_mode));
    // Before the identity and the engine: they read devices, secrets and
    // rules at start, so they see the demo without being told.
    std::optional<demo_seed> demo_state;
    if (demo.enabled) {
        auto seeded = seed_demo(**db, *key, common::now_ms());
        if (!seeded) {
            spdlog::error("cannot set up the demo: {}", seeded.error().message);
            return 1;
        }
        demo_state = std::move(*seeded);
        spdlog::info("demo: tenant ready tenant={} tenant_created={} user_created={} devices_created={} "
                     "rules_created={} devices={}",
                     demo_tenant, demo_state->tenant_created, demo_state->user_created, demo_state->devices_created,
                     demo_state->rules_created, demo_state->devices.size());
    }
    mqtt_identity_options identity_opts;
    identity_opts.allow_anonymous = cfg.auth.allow_anonymous;
    identity_opts.anonymous_tenant = cfg.auth.anonymous_tenant;
    for (const auto& e : cfg.acl)
        identity_opts.acl.push_back(broker::acl_rule{.who = e.who,
                                                     .publish = e.action != "subscribe",
                                                     .subscribe = e.action != "publish",
                                                     .topic = e.topic,
                                                     .allow = e.permission == "allow"});
    mqtt_identity identity(**db, *key, std::move(identity_opts));
    // Declared before the engine: destroyed after it (the engine's writer
    // uses the router and tells the outbox).
    std::unique_ptr<delivery> alerts_out;
    try {
        alerts_out = std::make_unique<delivery>(**db, *key, cfg.delivery);
    } catch (const std::exception& e) {
        spdlog::error("cannot set up alert delivery: {}", e.what());
        return 1;
    }
    // Declared first: destroyed after the engine, whose sink it is.
    std::unique_ptr<alert_publisher> alert_events;
    webui::live_feed live(**db); // the web UI's: alert events and readings as they happen
    engine::rules_engine rules(**db, engine::rules_engine_options{
                                         .heartbeat_grace_s = cfg.rules.heartbeat_grace_s,
                                         .alert_retention_days = cfg.rules.alert_retention_days,
                                         .queue_capacity = static_cast<std::size_t>(cfg.rules.queue_capacity)});

    // [tls]: one certificate for the MQTT TLS listeners and HTTPS.
    std::unique_ptr<common::tls_source> tls;
    if (cfg.tls.enabled()) {
        try {
            tls = std::make_unique<common::tls_source>(common::tls_files{.cert = cfg.tls.cert,
                                                                         .key = cfg.tls.key,
                                                                         .client_ca = cfg.tls.client_ca,
                                                                         .require_client_cert =
                                                                             cfg.tls.require_client_cert});
        } catch (const std::exception& e) {
            spdlog::error("cannot set up TLS: {} — fix [tls] cert, key and client_ca", e.what());
            return 1;
        }
    }
    const bool https = tls != nullptr && cfg.http.https;
    webui::auth_options web_auth;
    web_auth.secure_cookie = https; // the session cookie only over HTTPS

    std::unique_ptr<broker::server> server;
    // After the server: destroyed before it (the bridges release
    // acknowledgements through it until they stop).
    std::unique_ptr<bridges> uplinks;
    try {
        load_bridge_passwords(cfg.bridges);
    } catch (const std::exception& e) {
        spdlog::error("cannot set up a bridge: {}", e.what());
        return 1;
    }
    try {
        uplinks = std::make_unique<bridges>(cfg.bridges, data_dir, durable);
    } catch (const std::exception& e) {
        spdlog::error("cannot open a bridge queue: {} — check [storage] data_dir", e.what());
        return 1;
    }
    std::unique_ptr<observability> http;
    std::atomic<bool> storage_ok{true};
    std::atomic<std::int64_t> device_quota{cfg.quotas.devices};
    try {
        auto broker_opts = to_broker_options(cfg);
        broker_opts.tls = tls.get();
        server = std::make_unique<broker::server>(std::move(broker_opts), &identity, &telemetry, &broker_state);
        identity.attach(*server);
        uplinks->attach(*server);
        alert_events = std::make_unique<alert_publisher>(*server);
        rules.add_live_sink(*alert_events);
        rules.add_live_sink(live);
        telemetry.set_reading_listener([&live](const storage::reading& r) { live.on_reading(r); });
        rules.set_router(alerts_out->router());
        rules.add_durable_sink(alerts_out->outbox());
        rules.start(); // open alerts, rules, devices; events queue up for the shards
        alerts_out->start(); // what a previous run left in flight goes out again
        telemetry.attach(*server, &rules);
        broker_state.attach(*server);
        store->set_commit_handler(commit_reporter(*server, storage_ok));
        // Before the store starts: it observes the store's commit times.
        http = std::make_unique<observability>(*server, *store, telemetry, storage_ok, **db, *key, identity, rules,
                                               *alerts_out, http_options{.listen = cfg.http.listen,
                                                            .auth = web_auth,
                                                            .live_feed = &live,
                                                            .ui_dir = cfg.http.ui_dir,
                                                            .mqtt_max_packet_size = cfg.mqtt.max_packet_size,
                                                            .tls = https ? tls.get() : nullptr,
                                                            .device_quota = &device_quota,
                                                            .uplinks = uplinks.get()});
        server->start(); // restores sessions and retained messages first
        store->start();
        uplinks->start(std::chrono::seconds(cfg.mqtt.sys_interval_s));
    } catch (const std::system_error& e) {
        const auto& listen = cfg.mqtt.listen;
        if (listen.size() == 1)
            spdlog::error("cannot listen on {}: {} — set [mqtt] listen or PULSEGATE_MQTT_LISTEN",
                          listen.front(), e.code().message());
        else if (std::string_view(e.what()).starts_with("cannot listen on "))
            // server::start names the address itself.
            spdlog::error("{} — set [mqtt] listen or PULSEGATE_MQTT_LISTEN", e.what());
        else
            spdlog::error("cannot listen on one of the [mqtt] listen addresses: {} — set [mqtt] listen "
                          "or PULSEGATE_MQTT_LISTEN",
                          e.what());
        return 1;
    } catch (const std::exception& e) {
        spdlog::error("cannot start the broker error={}", logfmt_value(e.what()));
        return 1;
    }
    for (const auto& ep : server->local_endpoints())
        spdlog::info("listening proto=mqtt addr={}", format_endpoint(ep));
    for (const auto& ep : server->tls_endpoints())
        spdlog::info("listening proto=mqtts addr={}", format_endpoint(ep));

    try {
        http->start();
    } catch (const std::exception& e) {
        spdlog::error("cannot listen for HTTP: {} — set [http] listen or PULSEGATE_HTTP_LISTEN", e.what());
        server->stop();
        server->join();
        store->stop();
        return 1;
    }
    spdlog::info("listening proto={} addr={}", https ? "https" : "http", http->address());

    // The demo fleet connects like any device, over the MQTT listener.
    std::unique_ptr<fleet> demo_fleet;
    if (demo_state) {
        fleet_options f;
        f.server_uri = "tcp://" + local_address(server->local_endpoints().front());
        f.devices = std::move(demo_state->devices);
        f.rate = demo.rate;
        f.qos = 1;
        f.schedule = make_schedule(demo.breach_every, demo.silent_after);
        f.seed = static_cast<std::uint64_t>(common::now_ms());
        f.report_every = std::chrono::minutes(1);
        try {
            demo_fleet = std::make_unique<fleet>(std::move(f));
            demo_fleet->start();
        } catch (const std::exception& e) {
            spdlog::error("demo: cannot start the simulated fleet error={}", logfmt_value(e.what()));
            http->stop();
            server->stop();
            server->join();
            store->stop();
            return 1;
        }
        spdlog::info("demo: open {}://{}/ and log in as {} / {}", https ? "https" : "http", browsable(http->address()),
                     demo_user,
                     demo_state->password);
        spdlog::info("demo: {} simulated devices publish every {:.3g} s; demo-boiler breaches temperature > {} "
                     "every {} s, dock-sensor goes silent after {} s; the password changes at every --demo start",
                     demo_fleet->stats().devices, 1.0 / demo.rate, breach_threshold, demo.breach_every.count(),
                     demo.silent_after.count());
        sodium_memzero(demo_state->password.data(), demo_state->password.size());
    }

    {
        std::string status = "READY=1\nSTATUS=serving";
        for (const auto& ep : server->local_endpoints()) status += " mqtt://" + format_endpoint(ep);
        for (const auto& ep : server->tls_endpoints()) status += " mqtts://" + format_endpoint(ep);
        status += fmt::format(" {}://{}", https ? "https" : "http", http->address());
        tell_service_manager(status);
    }

    // stop() and join() run on their own thread so that a second SIGINT or
    // SIGTERM still gets through while a stop hangs: it exits at once.
    bool stopping = false;
    std::thread stopper;
    std::function<void(const boost::system::error_code&, int)> on_signal;
    on_signal = [&](const boost::system::error_code& ec, int sig) {
        if (ec)
            return;  // cancelled: the stopper has finished
        if (sig == SIGHUP) {
            if (stopping)
                spdlog::info("ignoring SIGHUP while stopping");
            else {
                // MONOTONIC_USEC: what Type=notify-reload (systemd 253) wants.
                const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now().time_since_epoch());
                tell_service_manager(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", now_us.count()));
                reload(cfg, path, *server, identity, tls.get(), device_quota);
                tell_service_manager("READY=1");
            }
        } else if (!stopping) {
            stopping = true;
            spdlog::info("stopping signal={}", signal_name(sig));
            tell_service_manager("STOPPING=1");
            stopper = std::thread([&] {
                if (demo_fleet) {
                    demo_fleet->stop(); // its devices disconnect while the broker still runs
                    demo_fleet->join();
                }
                http->stop();
                server->stop();
                server->join();
                uplinks->stop(); // queues what the broker handed over
                rules.stop(); // writes the alerts and liveness it holds
                identity.stop();
                store->stop(); // commits what is queued; the last acks have nowhere to go

                asio::post(signal_io, [&] {
                    signals.cancel();
                    stats_timer.cancel();
                });
            });
        } else {
            spdlog::warn("second stop signal, exiting without waiting signal={}", signal_name(sig));
            spdlog::default_logger()->flush();
            std::_Exit(1);
        }
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);

    // Storage and ingest counters, logged every minute when they moved.
    std::function<void()> log_stats;
    log_stats = [&, last = std::string()]() mutable {
        stats_timer.expires_after(std::chrono::minutes(1));
        stats_timer.async_wait([&](const boost::system::error_code& ec) {
            if (ec || stopping) return;
            const auto s = store->stats();
            const auto t = telemetry.stats();
            auto line = fmt::format(
                "readings={} points={} rejected_readings={} overloaded={} points_written={} out_of_order={} "
                "duplicates={} series={} commits={} checkpoints={} storage_full_errors={} map_size={}",
                t.readings, t.points, t.rejected, t.overloaded, s.points_written, s.points_out_of_order,
                s.points_duplicate, s.series, s.commits, s.checkpoints, s.storage_full_errors, s.map_size);
            if (line != last) spdlog::info("storage stats {}", line);
            last = std::move(line);
            log_stats();
        });
    };
    log_stats();
    signal_io.run();
    if (stopper.joinable())
        stopper.join();
    store->stop();
    uplinks.reset();
    server.reset();
    store.reset();
    spdlog::info("stopped");
    return 0;
}

int run(int argc, char** argv) {
    CLI::App app{"pulsegate: MQTT broker and rules engine for IoT edge gateways", "pulsegate"};
    // Set before adding subcommands: they inherit it.
    app.failure_message(CLI::FailureMessage::help);
    // At most one; "none" is reported below, so that an unknown word gets
    // CLI11's "not expected" message rather than "subcommand required".
    app.require_subcommand(0, 1);

    std::string serve_config;
    demo_settings demo;
    int demo_breach_every_s = 180;
    int demo_silent_after_s = 60;
    auto* serve_cmd = app.add_subcommand("serve", "Run the broker in the foreground");
    serve_cmd->add_option("-c,--config", serve_config,
                          "Configuration file (TOML); without it: built-in defaults + PULSEGATE_* "
                          "environment");
    auto* demo_flag = serve_cmd->add_flag(
        "--demo", demo.enabled,
        "Create (once) the demo tenant, user, devices and rules and run a simulated fleet in-process; the "
        "start-up log prints the UI address and the demo login (a new password at every --demo start)");
    serve_cmd
        ->add_option("--demo-breach-every-s", demo_breach_every_s,
                     "With --demo: demo-boiler crosses the temperature threshold every this many seconds")
        ->check(CLI::Range(static_cast<int>(min_breach_every.count()), 86400))
        ->default_val(180)
        ->needs(demo_flag);
    serve_cmd
        ->add_option("--demo-silent-after-s", demo_silent_after_s,
                     "With --demo: dock-sensor goes silent this many seconds after the start (for 240 s, then "
                     "again)")
        ->check(CLI::Range(0, 86400))
        ->default_val(60)
        ->needs(demo_flag);
    serve_cmd
        ->add_option("--demo-rate", demo.rate, "With --demo: readings per second of each simulated device")
        ->check(CLI::Range(0.01, 100.0))
        ->default_val(1.0)
        ->needs(demo_flag);

    simulate_options sim;
    std::string sim_credentials;
    int sim_breach_every_s = 180;
    int sim_silent_after_s = 60;
    int sim_duration_s = 0;
    int sim_report_every_s = 10;
    bool sim_steady = false;
    auto* simulate_cmd = app.add_subcommand(
        "simulate", "Run a fleet of simulated devices publishing telemetry over MQTT (demo and load tool)");
    simulate_cmd->add_option("--url", sim.url, "Broker, mqtt://host[:port]")->default_val(sim.url);
    simulate_cmd->add_option("--tenant", sim.tenant, "Tenant of the devices (their user name {tenant}/{device})")
        ->default_val(sim.tenant);
    simulate_cmd->add_option("--devices", sim.devices, "Number of devices")
        ->check(CLI::Range(1, 100000))
        ->default_val(sim.devices);
    simulate_cmd->add_option("--rate", sim.rate, "Readings per second of each device")
        ->check(CLI::Range(0.001, 1000.0))
        ->default_val(sim.rate);
    simulate_cmd->add_option("--qos", sim.qos, "QoS of the telemetry publishes")
        ->check(CLI::IsMember({0, 1}))
        ->default_val(sim.qos);
    simulate_cmd->add_option("--credentials", sim_credentials,
                             "File of lines device,secret: the devices and their MQTT passwords (pulsegate with "
                             "allow_anonymous = false); without it every device connects anonymously")
        ->check(CLI::ExistingFile);
    simulate_cmd->add_option("--username-format", sim.username_format,
                             "MQTT user name of a device with --credentials; {tenant} and {device} are replaced")
        ->default_val(sim.username_format);
    simulate_cmd->add_option("--device-prefix", sim.device_prefix,
                             "Device ids without --credentials: PREFIX001, PREFIX002, ...")
        ->default_val(sim.device_prefix);
    simulate_cmd->add_option("--topic-prefix", sim.topic_prefix,
                             "Put before d/{device}/telemetry (e.g. t/acme/ on a plain broker such as Mosquitto)");
    simulate_cmd->add_flag("--steady", sim_steady,
                           "No incidents: nobody breaches the temperature threshold or goes silent");
    simulate_cmd->add_option("--breach-every-s", sim_breach_every_s,
                             "The first device (a boiler) crosses temperature > 80 every this many seconds")
        ->check(CLI::Range(static_cast<int>(min_breach_every.count()), 86400))
        ->default_val(180);
    simulate_cmd->add_option("--silent-after-s", sim_silent_after_s,
                             "The last device goes silent this many seconds after the start (for 240 s, then again)")
        ->check(CLI::Range(0, 86400))
        ->default_val(60);
    simulate_cmd->add_option("--duration", sim_duration_s, "Stop after this many seconds (0: at SIGINT/SIGTERM)")
        ->check(CLI::Range(0, 31 * 86400))
        ->default_val(0);
    simulate_cmd->add_option("--report-every-s", sim_report_every_s,
                             "Log the published and acknowledged rates every this many seconds (0: never)")
        ->check(CLI::Range(0, 86400))
        ->default_val(10);
    simulate_cmd->add_option("--seed", sim.seed, "Seed of the readings' noise (0: from the clock)")
        ->default_val(0);

    auto* version_cmd = app.add_subcommand("version", "Print the version");

    std::string check_config_path;
    auto* check_cmd = app.add_subcommand(
        "check-config", "Load the configuration, print the effective configuration as TOML");
    bool check_quiet = false;
    check_cmd->add_flag("-q,--quiet", check_quiet, "Print nothing when the configuration is valid");
    check_cmd->add_option("-c,--config", check_config_path,
                          "Configuration file (TOML); without it: built-in defaults + PULSEGATE_* "
                          "environment");

    // init / backup / restore: the data dir is --data-dir, else [storage]
    // data_dir of the configuration (file + environment).
    std::string admin_config;
    std::string admin_data_dir;
    std::string admin_password_file;
    std::string backup_dir;
    auto add_data_dir_options = [&](CLI::App* cmd) {
        cmd->add_option("-c,--config", admin_config,
                        "Configuration file (TOML) whose [storage] data_dir is used");
        cmd->add_option("--data-dir", admin_data_dir, "Data directory (overrides the configuration)");
    };
    auto* init_cmd = app.add_subcommand(
        "init", "Create the data dir, the database schema and the first operator_admin (user admin)");
    add_data_dir_options(init_cmd);
    init_cmd->add_option("--admin-password-file", admin_password_file,
                         "File whose first line is the admin password (at least 8 characters); "
                         "without it a password is generated and printed once");
    auto* backup_cmd = app.add_subcommand(
        "backup", "Online backup of the data dir (database and telemetry) into DIR (new or empty)");
    backup_cmd->add_option("DIR", backup_dir, "Backup directory")->required();
    add_data_dir_options(backup_cmd);
    auto* restore_cmd = app.add_subcommand(
        "restore", "Replace the data dir's state with the backup in DIR (the daemon must be stopped)");
    restore_cmd->add_option("DIR", backup_dir, "Backup directory written by `pulsegate backup`")->required();
    add_data_dir_options(restore_cmd);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // CLI11's message and the usage of the (sub)command that failed.
        const CLI::App* where = &app;
        for (const auto* sub : {serve_cmd, simulate_cmd, version_cmd, check_cmd, init_cmd, backup_cmd, restore_cmd})
            if (sub->parsed())
                where = sub;
        std::cerr << "pulsegate: " << e.what() << "\n\n"
                  << (where == &app ? app.help() : where->help("pulsegate"));
        return 2;
    }
    if (app.get_subcommands().empty()) {
        std::cerr << "pulsegate: a subcommand is required\n\n" << app.help();
        return 2;
    }

    auto path_of = [](const std::string& s) -> config_path {
        if (s.empty())
            return std::nullopt;
        return std::filesystem::path(s);
    };
    if (*version_cmd) {
        std::cout << "pulsegate " << PULSEGATE_VERSION << '\n';
        return 0;
    }
    if (*check_cmd)
        return check_config(path_of(check_config_path), check_quiet);
    if (*init_cmd || *backup_cmd || *restore_cmd) {
        std::filesystem::path data_dir = admin_data_dir;
        if (admin_data_dir.empty()) {
            try {
                data_dir = load_config(path_of(admin_config), process_env).storage.data_dir;
            } catch (const config_error& e) {
                std::cerr << "pulsegate: " << e.what() << '\n';
                return 1;
            }
        }
        if (*init_cmd)
            return run_init({data_dir, path_of(admin_password_file)}, std::cout, std::cerr);
        if (*backup_cmd)
            return run_backup(data_dir, backup_dir, std::cout, std::cerr);
        return run_restore(data_dir, backup_dir, std::cout, std::cerr);
    }
    if (*simulate_cmd) {
        if (!sim_credentials.empty()) sim.credentials = std::filesystem::path(sim_credentials);
        sim.incidents = !sim_steady;
        sim.breach_every = std::chrono::seconds(sim_breach_every_s);
        sim.silent_after = std::chrono::seconds(sim_silent_after_s);
        sim.duration = std::chrono::seconds(sim_duration_s);
        sim.report_every = std::chrono::seconds(sim_report_every_s);
        return run_simulate(sim);
    }
    demo.breach_every = std::chrono::seconds(demo_breach_every_s);
    demo.silent_after = std::chrono::seconds(demo_silent_after_s);
    return serve(path_of(serve_config), demo);
}

} // namespace
} // namespace pulsegate::daemon

int main(int argc, char** argv) {
    try {
        return pulsegate::daemon::run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "pulsegate: fatal: " << e.what() << '\n';
        return 1;
    }
}
