#include "engine/rules_engine.hpp"

#include "engine/router.hpp"

#include "common/thread.hpp"

#include "storage/state/alert_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rule_repository.hpp"
#include "storage/state/silence_repository.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cassert>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace pulsegate::engine {

namespace {

namespace st = storage::state;

// Longer tenant or device names (possible only for anonymous clients; ids
// of registered ones are at most 63 bytes) are not evaluated.
constexpr std::size_t max_name = 63;
constexpr std::size_t max_hits = 8; // more: the message takes several records

struct input_record {
    std::array<char, max_name> tenant;
    std::array<char, max_name> device;
    std::uint8_t tenant_len = 0;
    std::uint8_t device_len = 0;
    std::uint8_t hits = 0;
    bool liveness = false;
    std::array<std::pair<std::uint32_t, double>, max_hits> values;

    std::string_view tenant_name() const noexcept { return {tenant.data(), tenant_len}; }
    std::string_view device_name() const noexcept { return {device.data(), device_len}; }
};

// One producer's staged records (see rules_engine::stage).
struct alignas(64) staging {
    static constexpr std::size_t capacity = 64;
    std::array<input_record, capacity> records;
    std::size_t size = 0;
};

std::int64_t system_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

[[noreturn]] void startup_failure(std::string_view what, const st::state_error& e) {
    throw std::runtime_error("rules engine: cannot load " + std::string(what) + " from the state database: " +
                             e.message + "; check the data directory and its disk");
}

template <class T>
T loaded(st::state_result<T> r, std::string_view what) {
    if (!r) startup_failure(what, r.error());
    return std::move(*r);
}

struct write_batch {
    std::vector<alert_event> events;
    std::vector<st::alert_record> dirty;
    std::vector<st::liveness_record> liveness;
    bool empty() const noexcept { return events.empty() && dirty.empty() && liveness.empty(); }
};

bool retryable(const st::state_error& e) {
    using st::state_errc;
    const auto c = static_cast<state_errc>(e.code.value());
    return c == state_errc::busy || c == state_errc::io_error || c == state_errc::storage_full;
}

} // namespace

struct rules_engine::impl {
    st::database& db;
    rules_engine_options opts;
    clock_fn clock;
    std::vector<alert_event_sink*> live_sinks, durable_sinks;
    const job_router* router = nullptr;

    std::atomic<std::shared_ptr<const interest>> snapshot;
    // Bumped with every new snapshot: a shard thread keeps its own copy of
    // the pointer and reloads it only when this moved, so that the shards
    // do not all take the shared_ptr's lock and count on every message.
    std::atomic<std::uint64_t> snapshot_gen{next_generation()};

    // Unique across engines: a thread's copy is never mistaken for the
    // snapshot of another engine that took the same address.
    static std::uint64_t next_generation() noexcept {
        static std::atomic<std::uint64_t> n{1};
        return n.fetch_add(1, std::memory_order_relaxed);
    }
    std::atomic<std::uint64_t> queued{0}, dropped{0}, events_total{0}, write_errors{0}, purged{0};

    // ---- engine thread input ----
    std::mutex mu;
    std::condition_variable cv;
    std::vector<input_record> ring;
    std::size_t head = 0, count = 0;
    std::deque<std::function<void()>> commands;
    bool stopping = false;
    bool engine_waiting = false; // producers wake the engine thread only then
    std::vector<std::unique_ptr<staging>> stages; // by producer

    // ---- evaluator ----
    // Held by whoever runs the evaluator: the engine thread (commands, the
    // ring, ticks, flushes) or a producer evaluating its own batch inline.
    // Lock order: eval_mu, then mu or wmu.
    std::mutex eval_mu;
    std::unique_ptr<evaluator> eval;
    std::thread engine_thread;
    mutable std::mutex stats_mu;
    evaluator_stats eval_stats;

    // ---- writer ----
    std::mutex wmu;
    std::condition_variable wcv;
    std::atomic<bool> writer_wake_due{false}; // events handed over, writer not woken yet
    write_batch pending;
    bool writer_stopping = false;
    std::thread writer_thread;

    impl(st::database& d, rules_engine_options o, clock_fn c)
        : db(d), opts(o), clock(c ? std::move(c) : clock_fn(system_now_ms)) {
        ring.resize(std::max<std::size_t>(opts.queue_capacity, 16));
    }

    // Runs `f` on the engine thread and waits for it.
    template <class F>
    auto on_engine(F&& f) -> decltype(f()) {
        using R = decltype(f());
        std::packaged_task<R()> task(std::forward<F>(f));
        auto done = task.get_future();
        {
            std::lock_guard lock(mu);
            if (stopping || !engine_thread.joinable()) throw std::runtime_error("rules engine is not running");
            commands.emplace_back([&task] { task(); });
        }
        cv.notify_one();
        return done.get();
    }

    void publish_interest() {
        snapshot.store(eval->make_interest(), std::memory_order_release);
        snapshot_gen.store(next_generation(), std::memory_order_release);
    }

    // This thread's copy of the current snapshot (null when stopped).
    const interest* current_interest() noexcept {
        struct cached {
            const impl* owner = nullptr;
            std::uint64_t gen = 0;
            std::shared_ptr<const interest> ptr;
        };
        thread_local cached c;
        const auto gen = snapshot_gen.load(std::memory_order_acquire);
        if (c.owner != this || c.gen != gen) {
            c.ptr = snapshot.load(std::memory_order_acquire);
            c.owner = this;
            c.gen = gen;
        }
        return c.ptr.get();
    }

    // ---- loading --------------------------------------------------------------

    // Registered devices by tenant (every tenant's, or only `tenant`'s).
    std::map<std::string, std::vector<evaluator::registered_device>, std::less<>>
    load_devices(std::optional<std::string_view> tenant) {
        std::map<std::string, std::vector<evaluator::registered_device>, std::less<>> out;
        st::device_repository repo(db);
        std::optional<std::string> cursor;
        do {
            auto page = repo.list_all(1000, cursor, tenant);
            if (!page) {
                spdlog::error("rules engine: cannot read devices: {}", page.error().message);
                break;
            }
            for (auto& d : page->items)
                out[d.tenant].push_back({std::move(d.id), std::move(d.labels), d.created_at_ms});
            cursor = page->next_cursor;
        } while (cursor);
        return out;
    }

    void load(std::int64_t now) {
        st::alert_repository alerts(db);
        const auto max_id = loaded(alerts.max_id(), "alerts");
        const auto open = loaded(alerts.non_closed(), "open alerts");
        const auto seen = loaded(st::liveness_repository(db).load_all(), "device liveness");
        const auto rules = loaded(st::rule_repository(db).list_all(), "rules");
        const auto silences = loaded(st::silence_repository(db).not_ended(now), "silences");
        auto devices = load_devices(std::nullopt);

        eval = std::make_unique<evaluator>(evaluator_options{opts.heartbeat_grace_s * 1000, opts.tick_ms}, now,
                                           max_id + 1);
        eval->restore(open, seen);
        std::map<std::string, std::vector<st::rule_record>> rules_of;
        std::map<std::string, std::vector<st::silence_record>> silences_of;
        std::set<std::string> tenants;
        for (const auto& r : rules) rules_of[r.tenant].push_back(r), tenants.insert(r.tenant);
        for (const auto& s : silences) silences_of[s.tenant].push_back(s), tenants.insert(s.tenant);
        for (const auto& a : open) tenants.insert(a.tenant);
        for (const auto& [t, d] : devices) tenants.insert(t);
        for (const auto& t : tenants) {
            eval->load_tenant(t, devices[t], rules_of[t], silences_of[t], now);
        }
        publish_interest();
        spdlog::info("rules engine: {} rules, {} open alerts, {} devices with liveness, {} tenants", rules.size(),
                     open.size(), seen.size(), tenants.size());
    }

    // ---- engine thread --------------------------------------------------------

    // Puts records in the ring, for whoever holds the evaluator next (and,
    // with `wake_engine`, wakes the engine thread for them); what the ring
    // has no room for is dropped (and counted).
    void push(std::span<const input_record> records, bool wake_engine) noexcept {
        std::size_t accepted = 0;
        bool wake = false;
        {
            std::lock_guard lock(mu);
            if (!stopping) {
                accepted = std::min(records.size(), ring.size() - count);
                for (std::size_t i = 0; i < accepted; ++i) ring[(head + count + i) % ring.size()] = records[i];
                count += accepted;
                wake = wake_engine && accepted > 0 && engine_waiting;
            }
        }
        if (accepted < records.size()) dropped.fetch_add(records.size() - accepted, std::memory_order_relaxed);
        if (accepted > 0) queued.fetch_add(accepted, std::memory_order_relaxed);
        if (wake) cv.notify_one();
    }

    // The records of one message for the rules that watch it, given to
    // `out` one by one (none when no rule of the tenant can use it).
    template <class Out>
    void encode(std::string_view tenant, std::string_view device, std::span<const storage::metric_value> metrics,
                Out&& out) noexcept {
        const auto* snap = current_interest();
        if (snap == nullptr) return;
        const auto t = snap->tenants.find(tenant);
        if (t == snap->tenants.end()) return;
        if (tenant.size() > max_name || device.size() > max_name) return;
        input_record r;
        std::memcpy(r.tenant.data(), tenant.data(), tenant.size());
        r.tenant_len = static_cast<std::uint8_t>(tenant.size());
        std::memcpy(r.device.data(), device.data(), device.size());
        r.device_len = static_cast<std::uint8_t>(device.size());
        r.liveness = t->second.heartbeat;
        for (const auto& v : metrics) {
            const auto it = t->second.metrics.find(v.name);
            if (it == t->second.metrics.end()) continue;
            if (r.hits == max_hits) {
                out(r);
                r.hits = 0;
                r.liveness = false;
            }
            r.values[r.hits++] = {it->second, v.value};
        }
        if (r.hits > 0 || r.liveness) out(r);
    }

    // A producer's batch is evaluated right there, on its thread, when the
    // evaluator is free (no wake-up, no second copy: the detection latency
    // of the common case). When another thread holds it (the other shard
    // evaluating its batch, the engine thread ticking), the batch goes to
    // the ring and that holder evaluates it before letting go
    // (release_evaluator): no thread is woken for it, and no thread that
    // needs a CPU stands between a reading and its alert. Either way a
    // producer's messages are evaluated in order: what waits in the ring
    // goes first.
    void flush(staging& s) noexcept {
        if (s.size == 0) return;
        if (std::unique_lock lock(eval_mu, std::try_to_lock); lock && !stopped()) {
            drain_ring();
            evaluate({s.records.data(), s.size});
            queued.fetch_add(s.size, std::memory_order_relaxed);
            s.size = 0;
            dispatch_events();
            release_evaluator(lock);
            return;
        }
        push({s.records.data(), s.size}, false);
        s.size = 0;
        // The holder may have let go before the push, without seeing it.
        if (std::unique_lock lock(eval_mu, std::try_to_lock); lock && !stopped()) {
            drain_ring();
            dispatch_events();
            release_evaluator(lock);
        }
    }

    // Lets go of the evaluator. What producers put in the ring while it was
    // held is evaluated first: a producer that found the evaluator busy
    // pushed, then tried the lock again, so either it took the lock after
    // this unlock or this check sees its records. (Should a try_lock fail
    // spuriously, the engine thread drains the ring at its next tick.)
    void release_evaluator(std::unique_lock<std::mutex>& lock) noexcept {
        for (;;) {
            lock.unlock();
            {
                std::lock_guard l(mu);
                if (count == 0 || stopping) return;
            }
            if (!lock.try_lock()) return; // the new holder drains it
            drain_ring();
            dispatch_events();
        }
    }

    bool stopped() {
        std::lock_guard lock(mu);
        return stopping;
    }

    // With eval_mu held.
    void evaluate(std::span<const input_record> records) {
        const auto now_ms = clock();
        for (const auto& r : records)
            eval->on_readings(r.tenant_name(), r.device_name(), r.liveness, {r.values.data(), r.hits}, now_ms);
    }

    // With eval_mu held: evaluates every record in the ring. They are read
    // in place: producers only write past head + count, and count still
    // covers them until they are released.
    void drain_ring() {
        std::size_t first = 0, taken = 0;
        {
            std::lock_guard lock(mu);
            first = head;
            taken = count;
        }
        if (taken == 0) return;
        const auto until_wrap = std::min(taken, ring.size() - first);
        evaluate({ring.data() + first, until_wrap});
        evaluate({ring.data(), taken - until_wrap});
        std::lock_guard lock(mu);
        head = (head + taken) % ring.size();
        count -= taken;
    }

    void dispatch_events() {
        auto& ev = eval->events();
        if (ev.empty()) return;
        for (const auto& e : ev)
            for (auto* s : live_sinks) s->on_alert_event(e);
        events_total.fetch_add(ev.size(), std::memory_order_relaxed);
        {
            std::lock_guard lock(wmu);
            for (auto& e : ev) pending.events.push_back(std::move(e));
        }
        ev.clear();
        writer_wake_due.store(true, std::memory_order_release);
    }

    // Wakes the writer for what dispatch_events() gave it. A shard calls
    // this (flush_done) only once it has sent the events out: a wake-up is a
    // futex call that costs tens of microseconds on a VM, and before the
    // send it would stand between an alert and its event on the wire. The
    // engine thread calls it at the end of every round, so a producer that
    // never calls flush_done delays the write by one tick at most.
    void wake_writer() noexcept {
        if (writer_wake_due.exchange(false, std::memory_order_acq_rel)) wcv.notify_one();
    }

    void flush_dirty() {
        std::lock_guard lock(wmu);
        eval->take_dirty(pending.dirty);
        eval->take_liveness(pending.liveness);
        if (!pending.empty()) wcv.notify_one();
    }

    // The cadence of ticks and flushes follows the steady clock; the times
    // the evaluator sees come from `clock` (the wall clock, or a test's).
    void engine_loop() {
        using steady = std::chrono::steady_clock;
        const auto tick = std::chrono::milliseconds(opts.tick_ms);
        const auto flush_every = std::chrono::milliseconds(opts.flush_interval_ms);
        auto next_tick = steady::now() + tick;
        auto next_flush = steady::now() + flush_every;
        std::deque<std::function<void()>> todo;
        for (;;) {
            bool stop_now = false;
            {
                std::unique_lock lock(mu);
                engine_waiting = true;
                cv.wait_for(lock, std::chrono::milliseconds(opts.tick_ms),
                            [&] { return stopping || count > 0 || !commands.empty(); });
                engine_waiting = false;
                todo.swap(commands);
                stop_now = stopping;
            }
            std::unique_lock eval_lock(eval_mu);
            for (auto& f : todo) f();
            todo.clear();
            drain_ring();
            const auto now = steady::now();
            if (now >= next_tick) {
                eval->tick(clock());
                next_tick = now + tick;
            }
            dispatch_events();
            if (now >= next_flush || stop_now) {
                flush_dirty();
                next_flush = now + flush_every;
                std::lock_guard lock(stats_mu);
                eval_stats = eval->stats();
            }
            if (stop_now) return;
            release_evaluator(eval_lock);
            wake_writer();
        }
    }

    // ---- writer thread --------------------------------------------------------

    bool write(const write_batch& b) {
        std::vector<st::alert_record> records;
        records.reserve(b.events.size() + b.dirty.size());
        for (const auto& e : b.events) records.push_back(e.alert);
        records.insert(records.end(), b.dirty.begin(), b.dirty.end());
        std::vector<st::new_delivery_job> jobs;
        if (router != nullptr)
            for (const auto& e : b.events) {
                auto made = router->jobs_for(e, event_json(e));
                std::move(made.begin(), made.end(), std::back_inserter(jobs));
            }
        if (!records.empty()) {
            st::alert_repository repo(db);
            if (auto r = repo.upsert(records, jobs); !r) {
                if (retryable(r.error())) {
                    write_errors.fetch_add(1, std::memory_order_relaxed);
                    spdlog::error("rules engine: alerts not written: {} (will retry)", r.error().message);
                    return false;
                }
                // One bad record (e.g. the alert of a tenant removed
                // meanwhile) must not take the others with it.
                for (const auto& a : records) {
                    std::vector<st::new_delivery_job> own;
                    for (const auto& j : jobs)
                        if (j.alert == a.id)
                            own.push_back(j);
                    if (auto one = repo.upsert({&a, 1}, own); !one) {
                        write_errors.fetch_add(1, std::memory_order_relaxed);
                        spdlog::warn("rules engine: alert {} of tenant {} not written: {}", a.id, a.tenant,
                                     one.error().message);
                    }
                }
            }
        }
        if (!b.liveness.empty()) {
            if (auto r = st::liveness_repository(db).save(b.liveness); !r) {
                write_errors.fetch_add(1, std::memory_order_relaxed);
                spdlog::warn("rules engine: device liveness not written: {}", r.error().message);
            }
        }
        return true;
    }

    void purge(std::int64_t now) {
        const auto before = now - opts.alert_retention_days * 86'400'000;
        if (auto n = st::alert_repository(db).purge_closed_before(before); n && *n > 0) {
            purged.fetch_add(static_cast<std::uint64_t>(*n), std::memory_order_relaxed);
            spdlog::info("rules engine: purged {} closed alerts older than {} days", *n, opts.alert_retention_days);
        } else if (!n) {
            spdlog::warn("rules engine: alert retention purge failed: {}", n.error().message);
        }
        // Silences that ended a day ago no longer explain anything in the UI.
        (void)st::silence_repository(db).purge_ended_before(now - 86'400'000);
    }

    // Reminders of still-open alerts for routes with a repeat interval
    // (job_router::repeats_for), written like any other job.
    void sweep_repeats(std::int64_t now) {
        auto open = st::alert_repository(db).non_closed();
        if (!open) {
            spdlog::warn("rules engine: reminders not made: {}", open.error().message);
            return;
        }
        std::map<std::pair<std::string, std::string>, st::label_map> labels;
        std::vector<st::new_delivery_job> jobs;
        for (auto& a : *open) {
            auto key = std::make_pair(a.tenant, a.device);
            auto it = labels.find(key);
            if (it == labels.end()) {
                auto d = st::device_repository(db).get(a.tenant, a.device);
                it = labels.emplace(key, d && *d ? (*d)->labels : st::label_map{}).first;
            }
            alert_event e{alert_event_type::opened, now, std::move(a), it->second};
            auto made = router->repeats_for(e, now);
            std::move(made.begin(), made.end(), std::back_inserter(jobs));
        }
        if (!jobs.empty())
            if (auto r = st::alert_repository(db).upsert({}, jobs); !r)
                spdlog::warn("rules engine: reminders not written: {}", r.error().message);
    }

    void writer_loop() {
        auto next_purge = clock();
        auto next_repeat = clock();
        write_batch b;
        for (;;) {
            bool stop_now = false;
            {
                std::unique_lock lock(wmu);
                wcv.wait_for(lock, std::chrono::seconds(1), [&] { return writer_stopping || !pending.empty(); });
                // Keep what a failed write left in `b` first: order matters.
                for (auto& e : pending.events) b.events.push_back(std::move(e));
                b.dirty.insert(b.dirty.end(), pending.dirty.begin(), pending.dirty.end());
                b.liveness.insert(b.liveness.end(), pending.liveness.begin(), pending.liveness.end());
                pending = {};
                stop_now = writer_stopping;
            }
            if (!b.empty()) {
                if (write(b)) {
                    for (const auto& e : b.events)
                        for (auto* s : durable_sinks) s->on_alert_event(e);
                    b = {};
                } else if (!stop_now) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(500));
                    continue;
                }
            }
            if (const auto now = clock(); now >= next_purge) {
                purge(now);
                next_purge = now + opts.purge_interval_ms;
            }
            if (const auto now = clock(); router != nullptr && now >= next_repeat && router->has_repeats()) {
                sweep_repeats(now);
                next_repeat = now + opts.repeat_sweep_ms;
            }
            if (stop_now) return;
        }
    }
};

rules_engine::rules_engine(st::database& db, rules_engine_options o, clock_fn clock)
    : impl_(std::make_unique<impl>(db, o, std::move(clock))) {}

rules_engine::~rules_engine() { stop(); }

void rules_engine::add_live_sink(alert_event_sink& s) { impl_->live_sinks.push_back(&s); }
void rules_engine::add_durable_sink(alert_event_sink& s) { impl_->durable_sinks.push_back(&s); }

void rules_engine::set_router(const job_router& r) { impl_->router = &r; }

void rules_engine::start() {
    auto& m = *impl_;
    m.load(m.clock());
    m.writer_thread = std::thread([&m] {
        common::name_this_thread("pg-rules-write");
        common::mark_background_thread();
        m.writer_loop();
    });
    m.engine_thread = std::thread([&m] {
        common::name_this_thread("pg-rules");
        m.engine_loop();
    });
}

void rules_engine::stop() {
    auto& m = *impl_;
    if (!m.engine_thread.joinable()) return;
    {
        std::lock_guard lock(m.mu);
        m.stopping = true;
    }
    m.cv.notify_one();
    m.engine_thread.join();
    {
        std::lock_guard lock(m.wmu);
        m.writer_stopping = true;
    }
    m.wcv.notify_one();
    m.writer_thread.join();
    m.snapshot.store(nullptr);
    m.snapshot_gen.store(impl::next_generation(), std::memory_order_release);
}

void rules_engine::on_message(std::string_view tenant, std::string_view device,
                              std::span<const storage::metric_value> metrics) noexcept {
    auto& m = *impl_;
    m.encode(tenant, device, metrics, [&m](const input_record& r) { m.push({&r, 1}, true); });
}

void rules_engine::set_producers(unsigned n) {
    auto& m = *impl_;
    while (m.stages.size() < n) m.stages.push_back(std::make_unique<staging>());
}

void rules_engine::stage(unsigned producer, std::string_view tenant, std::string_view device,
                         std::span<const storage::metric_value> metrics) noexcept {
    auto& m = *impl_;
    assert(producer < m.stages.size());
    auto& s = *m.stages[producer];
    m.encode(tenant, device, metrics, [&m, &s](const input_record& r) {
        if (s.size == staging::capacity) m.flush(s);
        s.records[s.size++] = r;
    });
}

void rules_engine::flush(unsigned producer) noexcept {
    auto& m = *impl_;
    assert(producer < m.stages.size());
    m.flush(*m.stages[producer]);
}

void rules_engine::flush_done(unsigned producer) noexcept {
    assert(producer < impl_->stages.size());
    (void)producer;
    impl_->wake_writer();
}

rules_engine_stats rules_engine::stats() const {
    auto& m = *impl_;
    rules_engine_stats s;
    {
        std::lock_guard lock(m.stats_mu);
        s.eval = m.eval_stats;
    }
    s.queued = m.queued.load(std::memory_order_relaxed);
    s.dropped = m.dropped.load(std::memory_order_relaxed);
    s.events = m.events_total.load(std::memory_order_relaxed);
    s.write_errors = m.write_errors.load(std::memory_order_relaxed);
    s.purged = m.purged.load(std::memory_order_relaxed);
    return s;
}

namespace {
// not_found from the engine: closed (409) or unknown (404)?
boost::system::result<st::alert_record> refine(boost::system::result<st::alert_record> r, st::database& db,
                                               std::string_view tenant, std::int64_t id) {
    if (r || r.error() != make_error_code(alert_errc::not_found)) return r;
    auto stored = st::alert_repository(db).get(tenant, id);
    if (stored && *stored && (*stored)->status == st::alert_status::closed)
        return make_error_code(alert_errc::already_closed);
    return r;
}
} // namespace

boost::system::result<st::alert_record> rules_engine::acknowledge(std::string_view tenant, std::int64_t id,
                                                                  std::string_view user) {
    auto& m = *impl_;
    try {
        auto r = m.on_engine([&] { return m.eval->acknowledge(tenant, id, user, m.clock()); });
        return refine(std::move(r), m.db, tenant, id);
    } catch (const std::runtime_error&) {
        return make_error_code(alert_errc::unavailable);
    }
}

boost::system::result<st::alert_record> rules_engine::close(std::string_view tenant, std::int64_t id,
                                                            std::string_view user) {
    auto& m = *impl_;
    try {
        auto r = m.on_engine([&] { return m.eval->close(tenant, id, user, m.clock()); });
        return refine(std::move(r), m.db, tenant, id);
    } catch (const std::runtime_error&) {
        return make_error_code(alert_errc::unavailable);
    }
}

boost::system::result<st::alert_record> rules_engine::live(std::string_view tenant, std::int64_t id) {
    auto& m = *impl_;
    try {
        return m.on_engine([&] { return m.eval->live(tenant, id); });
    } catch (const std::runtime_error&) {
        return make_error_code(alert_errc::unavailable);
    }
}

void rules_engine::rules_changed(std::string_view tenant) {
    auto& m = *impl_;
    auto rules = st::rule_repository(m.db).list_tenant(tenant);
    if (!rules) {
        spdlog::error("rules engine: cannot reload the rules of tenant {}: {}", tenant, rules.error().message);
        return;
    }
    try {
        m.on_engine([&] {
            m.eval->set_rules(tenant, *rules, m.clock());
            m.publish_interest();
        });
    } catch (const std::runtime_error&) {
    }
}

void rules_engine::silences_changed(std::string_view tenant) {
    auto& m = *impl_;
    auto all = st::silence_repository(m.db).not_ended(m.clock());
    if (!all) {
        spdlog::error("rules engine: cannot reload the silences of tenant {}: {}", tenant, all.error().message);
        return;
    }
    std::vector<st::silence_record> mine;
    for (auto& s : *all)
        if (s.tenant == tenant) mine.push_back(std::move(s));
    try {
        m.on_engine([&] { m.eval->set_silences(tenant, mine); });
    } catch (const std::runtime_error&) {
    }
}

void rules_engine::devices_changed(std::string_view tenant) {
    auto& m = *impl_;
    auto devices = m.load_devices(tenant);
    const auto mine = devices.find(tenant);
    const std::vector<evaluator::registered_device> none;
    try {
        m.on_engine([&] {
            m.eval->set_devices(tenant, mine == devices.end() ? none : mine->second, m.clock());
            m.publish_interest();
        });
    } catch (const std::runtime_error&) {
    }
}

} // namespace pulsegate::engine
