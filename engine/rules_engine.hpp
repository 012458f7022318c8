#pragma once
// The rules engine (DESIGN.md, Rules and alerts): the evaluator, run by
// whichever thread holds it (a shard evaluating its own batch, or the
// engine thread), fed by ingest, with alerts written to the state database
// by a writer thread.
//
//   shard thread: stage() per message, flush() per batch
//     -> evaluator free: the shard evaluates the batch itself
//     -> evaluator busy: bounded ring (never blocks), evaluated by the
//        holder (the other shard, the engine thread) before it lets go
//   engine thread: timers (ticks), API changes (alert_control), and the
//        ring at each tick (a fallback: holders drain it)
//   evaluator (rules, timers, alerts in memory), under one lock
//       -> live sinks (MQTT events, UI feed): called by the thread that
//          holds the evaluator, right after the change, before the
//          database has it
//       -> writer thread: alerts upserted in batches, liveness saved,
//          then durable sinks (the router) called after the commit
//
// Only readings that some rule can use are staged: ingest looks its tenant
// and metrics up in an immutable snapshot of the rules (no lock). Whatever
// waits in the ring is evaluated before a later inline batch, so a device's
// readings are evaluated in order. A full ring drops the reading for the
// rules (storage still has it) and counts it. Repeats (count, last value)
// and device liveness are written once per flush interval, not per reading.
//
// Lifetime: construct, add sinks, start() (loads rules, devices, silences,
// open alerts and liveness; throws std::runtime_error naming the failure),
// ..., stop() (drains the ring, writes everything, joins). The alert_control
// methods may be called from any thread between start() and stop().

#include "engine/alert_control.hpp"
#include "engine/alert_event.hpp"
#include "engine/evaluator.hpp"
#include "storage/lmdb_store.hpp"
#include "storage/state/database.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

namespace pulsegate::engine {

struct rules_engine_options {
    std::int64_t heartbeat_grace_s = 120;      // after start, before any device is declared silent
    std::int64_t alert_retention_days = 90;    // closed alerts older than this are purged
    std::size_t queue_capacity = 32768;        // messages waiting for the engine thread
    std::int64_t tick_ms = 100;                // timer resolution
    std::int64_t flush_interval_ms = 1000;     // repeats and liveness to the database
    std::int64_t purge_interval_ms = 3'600'000;
    std::int64_t repeat_sweep_ms = 5'000;          // reminders of open alerts (routes' repeat_s)
};

struct rules_engine_stats {
    evaluator_stats eval;
    std::uint64_t queued = 0;       // messages handed over by ingest
    std::uint64_t dropped = 0;      // ring full: not evaluated
    std::uint64_t events = 0;       // alert events emitted
    std::uint64_t write_errors = 0; // alert/liveness batches the database refused
    std::uint64_t purged = 0;       // closed alerts removed by retention
};

class rules_engine final : public alert_control {
public:
    using clock_fn = std::function<std::int64_t()>; // epoch ms

    rules_engine(storage::state::database& db, rules_engine_options o, clock_fn clock = {});
    ~rules_engine() override;
    rules_engine(const rules_engine&) = delete;
    rules_engine& operator=(const rules_engine&) = delete;

    // Called for every event, in order, before the alert is written, by the
    // thread holding the evaluator (the engine thread or a shard); must not
    // block (post elsewhere).
    void add_live_sink(alert_event_sink& s);
    // Called on the writer thread for every event once its alert is
    // committed, in order; may take a little time (it holds up writing).
    void add_durable_sink(alert_event_sink& s);
    // The router whose jobs are written with each event, in the same
    // transaction (engine/router.hpp). Optional; set before start().
    void set_router(const class job_router& r);

    void start();
    void stop();

    // Ingest, any thread, never blocks: a message of `device` (telemetry
    // with its metrics, or a heartbeat with none), handed over at once.
    void on_message(std::string_view tenant, std::string_view device,
                    std::span<const storage::metric_value> metrics) noexcept;

    // The same, batched: producer thread `producer` (a shard) stages its
    // messages and hands them all over at flush(producer), evaluated there
    // or by whoever holds the evaluator, waking no thread; a full staging area
    // flushes by itself. set_producers(n) comes first, before any stage().
    // A producer must flush at the end of every batch it handles, or its
    // messages wait for the next one.
    void set_producers(unsigned n);
    void stage(unsigned producer, std::string_view tenant, std::string_view device,
               std::span<const storage::metric_value> metrics) noexcept;
    void flush(unsigned producer) noexcept;
    // After the producer has sent what flush() published (the alert events):
    // wakes the alert writer if flush() gave it events. Without it the
    // engine thread wakes the writer at its next tick.
    void flush_done(unsigned producer) noexcept;

    rules_engine_stats stats() const;

    // alert_control
    boost::system::result<storage::state::alert_record> acknowledge(std::string_view tenant, std::int64_t id,
                                                                    std::string_view user) override;
    boost::system::result<storage::state::alert_record> close(std::string_view tenant, std::int64_t id,
                                                              std::string_view user) override;
    boost::system::result<storage::state::alert_record> live(std::string_view tenant, std::int64_t id) override;
    void rules_changed(std::string_view tenant) override;
    void silences_changed(std::string_view tenant) override;
    void devices_changed(std::string_view tenant) override;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace pulsegate::engine
