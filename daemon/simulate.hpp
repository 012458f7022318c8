#pragma once
// A fleet of simulated devices publishing telemetry over real MQTT (Paho
// C++): the live part of `serve --demo`, and `pulsegate simulate`, a
// standalone demo and load tool.
//
// Each device is one MQTT 3.1.1 connection (clean session, keep alive 30 s,
// client id = device id) with its own credentials: per DESIGN.md's MQTT
// contract user name `{tenant}/{device}` and the device secret as password,
// or no user name at all (anonymous: a broker with allow_anonymous, or
// Mosquitto). It publishes its readings (telemetry_generator) as a flat JSON
// object on `{topic_prefix}d/{device}/telemetry`, `rate` times a second,
// spread evenly over the fleet so that the broker sees a steady stream, not
// bursts. The silent device disconnects while its schedule says silent and
// connects again afterwards.
//
// Connections: a device that is not connected is (re)connected by the
// fleet, with a back-off from 1 s doubling to 30 s; readings due meanwhile
// are skipped and counted, never queued (a simulator that replays a backlog
// would lie about time). A refusal for bad credentials is logged once per
// device (no secret in the log) and retried like any other failure.
//
// Threads: Paho's own threads run the network and call back into atomics
// of the device's state; one fleet thread ("pg-simulate") does everything
// else: connects, publishes, disconnects and reports. stop() may be called
// from any thread.

#include "daemon/telemetry_generator.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pulsegate::daemon {

struct sim_device {
    std::string id;         // device id: client id and {device} of the topic
    device_kind kind = device_kind::room;
    device_role role = device_role::steady;
    std::string username;   // empty: connect without credentials (anonymous)
    std::string password;   // the device secret; never logged
};

struct fleet_options {
    std::string server_uri;  // Paho form: "tcp://127.0.0.1:1883"
    std::vector<sim_device> devices;
    double rate = 1.0;       // readings per second per device, > 0
    int qos = 1;             // 0 or 1
    std::string topic_prefix; // before "d/{device}/telemetry"; "" in a tenant's own tree
    incident_schedule schedule;
    std::uint64_t seed = 1;
    // How often a line "simulate: ..." reports the rates; 0: never.
    std::chrono::seconds report_every{10};
};

struct fleet_stats {
    std::uint64_t published = 0;     // readings handed to the client library
    std::uint64_t acknowledged = 0;  // QoS 1: PUBACKs received (Paho reports nothing for QoS 0)
    std::uint64_t failed = 0;        // refused by the client library (connection gone, window full)
    std::uint64_t skipped = 0;       // due while the device was not connected
    std::uint64_t connects = 0;      // successful connects, reconnects included
    std::uint64_t refused = 0;       // connects refused for bad credentials or authorisation
    std::size_t refused_devices = 0; // devices refused at least once that never connected
    std::size_t connected = 0;       // devices connected now
    std::size_t devices = 0;
};

class fleet {
public:
    explicit fleet(fleet_options opts);
    // stop() and join().
    ~fleet();
    fleet(const fleet&) = delete;
    fleet& operator=(const fleet&) = delete;

    // Creates the clients and starts the fleet thread; the devices connect
    // asynchronously. Throws mqtt::exception for a server URI Paho refuses
    // (startup only).
    void start();
    // Asks the fleet thread to disconnect every device and end. Idempotent.
    void stop();
    // Waits for the fleet thread (at most about 3 s after stop()).
    void join();

    fleet_stats stats() const;

    struct device_state; // detail: one device's client and counters

private:
    void run();
    void report(std::chrono::steady_clock::time_point now);

    fleet_options opts_;
    std::vector<std::unique_ptr<device_state>> devices_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_requested_ = false; // guarded by mutex_
    std::atomic<std::uint64_t> published_{0}, failed_{0}, skipped_{0};
    // For the rate in report(): counters at the previous report.
    std::uint64_t reported_published_ = 0, reported_acked_ = 0;
    std::chrono::steady_clock::time_point reported_at_{};
};

// ---- `pulsegate simulate` ---------------------------------------------------

struct simulate_options {
    std::string url = "mqtt://127.0.0.1:1883"; // mqtt://host[:port] or tcp://host[:port]
    std::string tenant = "demo";
    std::size_t devices = 10;
    double rate = 1.0;
    int qos = 1;
    // Lines "device,secret" (blank lines and lines starting with '#'
    // ignored): the fleet is these devices (the first `devices` of them),
    // connecting as username_format with the secret.
    std::optional<std::filesystem::path> credentials;
    std::string username_format = "{tenant}/{device}";
    std::string device_prefix = "sim-"; // ids without a credentials file: sim-001, sim-002, ...
    std::string topic_prefix;
    bool incidents = true;              // first device breaches, last goes silent (3 devices or more)
    std::chrono::seconds breach_every{180};
    std::chrono::seconds silent_after{60};
    std::chrono::seconds duration{0};   // 0: until SIGINT/SIGTERM
    std::chrono::seconds report_every{10};
    std::uint64_t seed = 0;             // 0: from the clock
};

// A bad option or file, said for the person who typed it.
struct simulate_error {
    std::string message;
};
inline std::ostream& operator<<(std::ostream& os, const simulate_error& e) { return os << e.message; }
[[noreturn]] void throw_exception_from_error(const simulate_error& e, const boost::source_location& loc);
template <class T>
using simulate_result = boost::system::result<T, simulate_error>;

// "tcp://host:port" for Paho from mqtt://host[:port] or tcp://host[:port]
// (port 1883 when absent; IPv6 hosts in brackets).
simulate_result<std::string> paho_uri(std::string_view url);

// The credentials file: (device, secret) pairs in file order. Errors name
// the file and the line, never a secret.
simulate_result<std::vector<std::pair<std::string, std::string>>> read_credentials(const std::filesystem::path& file);

// The fleet `opts` describe (ids, kinds, roles, credentials); what
// run_simulate starts. Errors: an unreadable or empty credentials file,
// fewer devices than asked for and the like.
simulate_result<fleet_options> make_fleet_options(const simulate_options& opts);

// Installs the log, runs the fleet until SIGINT/SIGTERM or `duration`,
// logging a report every report_every. Exit code: 0 after a clean stop; 1
// for bad options, or as soon as every device has been refused by the
// broker (bad user name, password or authorisation) without ever
// connecting.
int run_simulate(const simulate_options& opts);

} // namespace pulsegate::daemon
