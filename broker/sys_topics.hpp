#pragma once
// $SYS/broker/... statistics with Mosquitto's topic names, payload formats and
// load-average arithmetic, so dashboards and exporters written for Mosquitto
// (mosquitto-exporter, Telegraf, MQTT Explorer) read pulsegate unchanged.
//
// Split of work: the broker keeps the counters in a `sys_stats` (plain
// integers, cumulative since start or current gauges); every sys_interval it
// calls sys_loads::update with the new stats and the seconds elapsed, then
// render_sys_topics, and publishes each (topic, payload) as a retained
// message (Mosquitto uses QoS 2, retained). Nothing here reads a clock,
// touches a socket or a session: time comes in as `elapsed_seconds`.
//
// Differences from Mosquitto: render_sys_topics emits every topic every
// time, while Mosquitto publishes a counter only when it changed and a load
// only when it moved by >= 0.01 (a caller that wants that compares with the
// retained value before publishing). $SYS/broker/version is emitted with the
// rest rather than once at start.
//
// Not thread safe: one owner (the shard that publishes $SYS) holds sys_loads.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

namespace pulsegate::broker {

// An exponentially decayed per-minute rate over three windows, computed as
// Mosquitto computes $SYS/broker/load/.../{1min,5min,15min}: for `delta`
// events counted over the last `dt` seconds,
//     rate  = delta * 60 / dt                      (events per minute)
//     value = rate + exp(-dt / T) * (value - rate)  for T = 60, 300, 900 s
// so a steady rate r converges to r, and after the events stop the value
// decays by exp(-dt/T) per update. Starts at 0.
class load_average {
public:
    // Folds in `delta` events counted over `interval_seconds`. A non-positive
    // interval is ignored (Mosquitto skips an update with no elapsed time).
    void update(std::uint64_t delta, double interval_seconds) noexcept;

    double value_1min() const noexcept { return value_1min_; }
    double value_5min() const noexcept { return value_5min_; }
    double value_15min() const noexcept { return value_15min_; }

private:
    double value_1min_ = 0;
    double value_5min_ = 0;
    double value_15min_ = 0;
};

// What the broker counts. "Cumulative" fields only grow (since the broker
// started); the others are gauges of the current state.
struct sys_stats {
    // Our version, emitted as "pulsegate version {version}". Not owned.
    std::string_view version;
    std::uint64_t uptime_seconds = 0;

    // Sessions with a live connection / persistent sessions without one.
    // clients/total is their sum.
    std::uint64_t clients_connected = 0;
    std::uint64_t clients_disconnected = 0;
    std::uint64_t clients_expired = 0; // cumulative: sessions removed by expiry

    std::uint64_t subscriptions = 0;        // (session, filter) pairs, shared included
    std::uint64_t shared_subscriptions = 0; // of which $share/...
    std::uint64_t retained_messages = 0;
    // Messages held by the broker (retained + queued + inflight) and their
    // payload bytes: Mosquitto's message store.
    std::uint64_t stored_messages = 0;
    std::uint64_t stored_bytes = 0;
    // Heap use in bytes; 0 = not tracked, and the heap topics are omitted
    // (Mosquitto publishes them only when built with memory tracking).
    std::uint64_t heap_current = 0;
    std::uint64_t heap_maximum = 0;

    // Cumulative. messages_* count MQTT packets of every type; publish_*
    // count PUBLISH packets only; bytes_* count bytes on the wire;
    // publish_bytes_* the payload bytes of PUBLISH packets.
    std::uint64_t messages_received = 0;
    std::uint64_t messages_sent = 0;
    std::uint64_t publish_messages_received = 0;
    std::uint64_t publish_messages_sent = 0;
    std::uint64_t publish_messages_dropped = 0; // not delivered: queue full, expired, ...
    std::uint64_t publish_bytes_received = 0;
    std::uint64_t publish_bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t connections = 0; // CONNECT packets received
    std::uint64_t sockets = 0;     // network connections accepted
    std::uint64_t rate_limited = 0; // clients disconnected past a publish rate (not in $SYS)
    std::uint64_t tenant_connections_refused = 0; // CONNECTs past a tenant's quota (not in $SYS)
    std::uint64_t tenant_publishes_refused = 0;   // PUBLISHes past a tenant's rate (not in $SYS)
};

// The load series Mosquitto publishes, one load_average each, under
// "$SYS/broker/load/{name}/{1min,5min,15min}".
enum class load_kind : unsigned char {
    messages_received, // load/messages/received   <- sys_stats::messages_received
    messages_sent,     // load/messages/sent       <- messages_sent
    publish_dropped,   // load/publish/dropped     <- publish_messages_dropped
    publish_received,  // load/publish/received    <- publish_messages_received
    publish_sent,      // load/publish/sent        <- publish_messages_sent
    bytes_received,    // load/bytes/received      <- bytes_received
    bytes_sent,        // load/bytes/sent          <- bytes_sent
    sockets,           // load/sockets             <- sockets
    connections,       // load/connections         <- connections
};
inline constexpr std::size_t load_kind_count = 9;

// State carried between renders: the load averages, the previous cumulative
// counters they are computed from, and the highest clients/total seen
// (clients/maximum).
class sys_loads {
public:
    // Feeds the stats of now, `elapsed_seconds` after the previous call. The
    // first call only records the baseline (loads stay 0, as Mosquitto
    // publishes 0.00 at start). A counter that went backwards counts as 0.
    void update(const sys_stats& now, double elapsed_seconds) noexcept;

    const load_average& load(load_kind kind) const noexcept {
        return loads_[static_cast<std::size_t>(kind)];
    }
    std::uint64_t clients_maximum() const noexcept { return clients_maximum_; }

private:
    std::array<load_average, load_kind_count> loads_{};
    std::array<std::uint64_t, load_kind_count> last_{};
    std::uint64_t clients_maximum_ = 0;
    bool primed_ = false;
};

// Calls emit(topic, payload) for every $SYS topic, with Mosquitto's payload
// formats: counters in decimal ("42"), loads with two decimals ("12.50"),
// "$SYS/broker/uptime" as "{n} seconds", "$SYS/broker/version" as
// "pulsegate version {v}". Also emits Mosquitto's aliases
// (clients/active = clients/connected, clients/inactive =
// clients/disconnected, store/messages/count = messages/stored). The views
// are valid during the call only.
void render_sys_topics(const sys_stats& stats, const sys_loads& loads,
                       const std::function<void(std::string_view topic, std::string_view payload)>& emit);

// Every topic render_sys_topics may emit (heap topics included), in the
// order it emits them.
std::span<const std::string_view> sys_topic_names() noexcept;

} // namespace pulsegate::broker
