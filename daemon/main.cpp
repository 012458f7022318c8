// pulsegate: the command line. `serve` wires configuration, logging and the
// broker together and turns signals into stop / reload.
//
// Exit codes: 0 success, 1 startup or runtime error (bad config, cannot
// listen), 2 command-line usage error.

#include "broker/server.hpp"
#include "daemon/config.hpp"
#include "daemon/log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

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

int check_config(const config_path& path) {
    config cfg;
    try {
        cfg = load_config(path, process_env);
    } catch (const config_error& e) {
        std::cerr << "pulsegate: " << e.what() << '\n';
        return 1;
    }
    for (const auto& name : unknown_env_overrides(environment_names()))
        std::cerr << "pulsegate: warning: " << name << " is not a configuration key; ignored\n";
    std::cout << "# pulsegate effective configuration (defaults, "
              << (path ? "file " + path->string() + ", " : std::string("no file, "))
              << "environment)\n"
              << to_toml(cfg);
    return 0;
}

// SIGHUP: re-read the same file and apply what can change at run time; on
// any error keep running with the old configuration.
void reload(config& running, const config_path& path, broker::server& server) {
    spdlog::info("reloading config={}", describe_path(path));
    try {
        auto next = load_config(path, process_env);
        server.reload(to_broker_options(next));
        apply_log_config(next.log);
        for (const auto& key : restart_only_changes(running, next))
            spdlog::warn("changed setting takes effect only after a restart key={}", logfmt_value(key));
        // What is running keeps the values that need a restart, so a later
        // reload warns again rather than comparing against unapplied values.
        next.mqtt.listen = running.mqtt.listen;
        next.mqtt.shards = running.mqtt.shards;
        next.http = running.http;
        next.storage = running.storage;
        running = std::move(next);
        spdlog::info("reloaded config={}", describe_path(path));
    } catch (const std::exception& e) {
        spdlog::error("reload failed, keeping the previous config error={}", logfmt_value(e.what()));
    }
}

int serve(const config_path& path, bool demo) {
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
    if (demo)
        spdlog::warn("--demo is not implemented yet: the demo tenant, devices, rules and simulated "
                     "fleet arrive with a later issue; serving the plain broker");

    // Signals are caught from here on, before any broker thread exists, so
    // an early SIGTERM is a clean stop rather than the default action.
    asio::io_context signal_io;
    asio::signal_set signals(signal_io, SIGINT, SIGTERM, SIGHUP);

    std::unique_ptr<broker::server> server;
    try {
        server = std::make_unique<broker::server>(to_broker_options(cfg));
        server->start();
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
            else
                reload(cfg, path, *server);
        } else if (!stopping) {
            stopping = true;
            spdlog::info("stopping signal={}", signal_name(sig));
            stopper = std::thread([&] {
                server->stop();
                server->join();
                asio::post(signal_io, [&] { signals.cancel(); });
            });
        } else {
            spdlog::warn("second stop signal, exiting without waiting signal={}", signal_name(sig));
            spdlog::default_logger()->flush();
            std::_Exit(1);
        }
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);
    signal_io.run();
    if (stopper.joinable())
        stopper.join();
    server.reset();
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
    bool demo = false;
    auto* serve_cmd = app.add_subcommand("serve", "Run the broker in the foreground");
    serve_cmd->add_option("-c,--config", serve_config,
                          "Configuration file (TOML); without it: built-in defaults + PULSEGATE_* "
                          "environment");
    serve_cmd->add_flag("--demo", demo,
                        "Demo tenant, devices, rules and simulated fleet: NOT IMPLEMENTED YET "
                        "(arrives with a later issue); for now it only logs a notice");

    auto* version_cmd = app.add_subcommand("version", "Print the version");

    std::string check_config_path;
    auto* check_cmd = app.add_subcommand(
        "check-config", "Load the configuration, print the effective configuration as TOML");
    check_cmd->add_option("-c,--config", check_config_path,
                          "Configuration file (TOML); without it: built-in defaults + PULSEGATE_* "
                          "environment");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // CLI11's message and the usage of the (sub)command that failed.
        const CLI::App* where = &app;
        for (const auto* sub : {serve_cmd, version_cmd, check_cmd})
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
        return check_config(path_of(check_config_path));
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
