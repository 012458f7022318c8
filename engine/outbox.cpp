#include "engine/outbox.hpp"
#include "common/json_text.hpp"

#include "common/thread.hpp"
#include "common/time.hpp"
#include "storage/state/delivery_repository.hpp"
#include "storage/state/integration_repository.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

namespace pulsegate::engine {

namespace st = storage::state;
namespace json = boost::json;
using adapters::outcome;

std::string test_event_json(std::string_view tenant, std::int64_t now_ms) {
    json::object a;
    a["id"] = 0;
    a["tenant"] = tenant;
    a["device"] = "pulsegate-test";
    a["rule"] = 0;
    a["rule_name"] = "test";
    a["kind"] = "THRESHOLD";
    a["severity"] = "info";
    a["status"] = "open";
    a["metric"] = "test";
    a["value"] = 1;
    a["threshold"] = 0;
    a["message"] = "Test notification from pulsegate: this integration works";
    a["opened_at"] = common::rfc3339(now_ms);
    a["closed_at"] = nullptr;
    a["escalation_level"] = 0;
    a["labels"] = json::object();
    json::object o;
    o["event"] = "alert.opened";
    o["tenant"] = tenant;
    o["at"] = common::rfc3339(now_ms);
    o["test"] = true;
    o["alert"] = std::move(a);
    return common::to_json_text(o);
}

namespace {

std::int64_t system_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::shared_ptr<const adapters::integration_target> target_of(const st::integration_record& r) {
    auto t = std::make_shared<adapters::integration_target>();
    t->id = r.id;
    t->tenant = r.tenant;
    t->name = r.name;
    t->type = r.type;
    t->config = common::object_or_empty(r.config);
    t->secrets = common::object_or_empty(r.secrets);
    return t;
}

} // namespace

struct outbox::impl {
    st::database& db;
    st::secret_box box;
    outbox_options opts;
    std::map<std::string, adapters::sender*, std::less<>> senders;
    clock_fn clock;

    struct work_item {
        st::delivery_job job;
        std::shared_ptr<const adapters::integration_target> target;
        adapters::sender* sender = nullptr;
    };
    struct done_item {
        st::job_completion completion;
        std::int64_t integration = 0;
        outcome result = outcome::retry;
    };
    struct breaker {
        std::size_t failures = 0;
        std::int64_t open_until = 0;
    };
    struct cached {
        std::shared_ptr<const adapters::integration_target> target;
        bool enabled = true;
    };

    std::mutex mu;
    std::condition_variable dispatch_cv, work_cv;
    std::deque<work_item> queue;
    std::vector<done_item> done;
    std::size_t running = 0;
    bool wake = false;
    bool stopping = false;
    bool started = false;

    // Dispatcher thread only.
    std::map<std::int64_t, std::size_t> in_flight;
    std::map<std::int64_t, breaker> breakers;
    std::map<std::int64_t, cached> cache;
    std::atomic<bool> cache_stale{false};

    std::thread dispatcher;
    std::vector<std::thread> workers;

    std::atomic<std::uint64_t> attempts{0}, delivered{0}, retried{0}, dead{0}, circuits_opened{0}, db_errors{0};

    impl(st::database& d, const st::secret_box& b, outbox_options o,
         std::map<std::string, adapters::sender*, std::less<>> s, clock_fn c)
        : db(d), box(b), opts(o), senders(std::move(s)), clock(c ? std::move(c) : clock_fn(system_now_ms)) {
        opts.workers = std::max<std::size_t>(opts.workers, 1);
        opts.per_integration = std::max<std::size_t>(opts.per_integration, 1);
        opts.breaker_threshold = std::max<std::size_t>(opts.breaker_threshold, 1);
    }

    std::int64_t backoff(std::int64_t attempt) {
        std::int64_t d = opts.backoff_initial_ms;
        for (std::int64_t i = 1; i < attempt && d < opts.backoff_max_ms; ++i)
            d *= 2;
        d = std::min(d, opts.backoff_max_ms);
        thread_local std::mt19937_64 rng{std::random_device{}()};
        const auto half = d / 2;
        return d - half + (half > 0 ? static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(half + 1)) : 0);
    }

    // ---- workers --------------------------------------------------------------

    done_item run(const work_item& w) {
        done_item d;
        d.integration = w.job.integration;
        auto& c = d.completion;
        c.attempt.job = w.job.id;
        c.attempt.attempt = w.job.attempts + 1;
        c.attempt.started_at_ms = clock();
        adapters::send_result r;
        const auto t0 = std::chrono::steady_clock::now();
        if (auto m = adapters::parse_alert_message(w.job.payload); !m) {
            r = {outcome::failed, "", "the job's payload is not an alert event (the database was edited?)"};
        } else if (m->event == "digest" && w.target->type != "email") {
            r = {outcome::failed, "", "the digest goes to email integrations only"};
        } else {
            m->job_id = w.job.id;
            try {
                r = w.sender->send(*w.target, *m);
            } catch (const std::exception& e) {
                r = {outcome::retry, "", std::string("the ") + w.target->type + " sender failed: " + e.what()};
            }
        }
        c.attempt.latency_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        complete(d, w.job, std::move(r));
        return d;
    }

    void complete(done_item& d, const st::delivery_job& job, adapters::send_result r) {
        auto& c = d.completion;
        d.result = r.result;
        c.attempt.status = std::move(r.status);
        if (!r.error.empty())
            c.attempt.error = std::move(r.error);
        switch (r.result) {
        case outcome::delivered:
            c.attempt.outcome = st::attempt_outcome::delivered;
            c.state = st::job_state::delivered;
            break;
        case outcome::failed:
            c.attempt.outcome = st::attempt_outcome::failed;
            c.state = st::job_state::dead;
            break;
        case outcome::retry:
            c.attempt.outcome = st::attempt_outcome::retry;
            if (c.attempt.attempt >= job.max_attempts) {
                c.state = st::job_state::dead;
                c.attempt.error = "gave up after " + std::to_string(c.attempt.attempt) +
                                  " attempts; the last one: " + c.attempt.error.value_or("no answer");
            } else {
                c.state = st::job_state::pending;
                c.next_attempt_at_ms = clock() + backoff(c.attempt.attempt);
            }
            break;
        }
        if (c.state != st::job_state::pending)
            c.next_attempt_at_ms = job.next_attempt_at_ms;
    }

    void worker_main(std::size_t n) {
        common::name_this_thread("pg-deliver-" + std::to_string(n));
        for (;;) {
            work_item w;
            {
                std::unique_lock l(mu);
                work_cv.wait(l, [&] { return stopping || !queue.empty(); });
                if (queue.empty())
                    return; // stopping
                w = std::move(queue.front());
                queue.pop_front();
                ++running;
            }
            auto d = run(w);
            {
                std::lock_guard l(mu);
                --running;
                done.push_back(std::move(d));
            }
            dispatch_cv.notify_one();
        }
    }

    // ---- dispatcher -------------------------------------------------------------

    std::optional<cached> load(std::int64_t id) {
        if (cache_stale.exchange(false))
            cache.clear();
        if (auto it = cache.find(id); it != cache.end())
            return it->second;
        auto r = st::integration_repository(db, box).get_by_id(id);
        if (!r) {
            db_errors.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("outbox: integration {} not read: {}", id, r.error().message);
            return std::nullopt;
        }
        if (!*r)
            return cached{}; // removed: target null
        cached c{target_of(**r), (*r)->enabled};
        cache[id] = c;
        return c;
    }

    // Results not written yet, and integrations whose jobs must wait (circuit
    // open): the next turn's transaction writes them (dispatcher thread).
    std::vector<st::job_completion> unrecorded;
    std::vector<std::pair<std::int64_t, std::int64_t>> deferrals;

    // Counts finished sends and moves the breakers; what the database must
    // learn goes to `unrecorded` and `deferrals`.
    void account(std::vector<done_item>& finished) {
        const auto now = clock();
        for (auto& d : finished) {
            if (auto it = in_flight.find(d.integration); it != in_flight.end() && it->second > 0)
                --it->second;
            if (d.completion.counts) {
                attempts.fetch_add(1, std::memory_order_relaxed);
                switch (d.completion.state) {
                case st::job_state::delivered: delivered.fetch_add(1, std::memory_order_relaxed); break;
                case st::job_state::dead: dead.fetch_add(1, std::memory_order_relaxed); break;
                default: retried.fetch_add(1, std::memory_order_relaxed); break;
                }
                auto& b = breakers[d.integration];
                if (d.result == outcome::delivered) {
                    b.failures = 0;
                } else if (d.result == outcome::retry && ++b.failures >= opts.breaker_threshold &&
                           b.open_until <= now) {
                    b.open_until = now + opts.breaker_cooldown_ms;
                    circuits_opened.fetch_add(1, std::memory_order_relaxed);
                    spdlog::warn("outbox: integration {} failed {} times in a row; its deliveries wait {} s "
                                 "(circuit open)",
                                 d.integration, b.failures, opts.breaker_cooldown_ms / 1000);
                    deferrals.emplace_back(d.integration, b.open_until);
                    if (d.completion.state == st::job_state::pending)
                        d.completion.next_attempt_at_ms = std::max(d.completion.next_attempt_at_ms, b.open_until);
                }
            }
            unrecorded.push_back(d.completion);
        }
        finished.clear();
    }

    // One transaction: what finished is recorded, and due jobs are claimed
    // for the free workers (none while stopping). Returns whether any job
    // was claimed.
    bool turn() {
        std::size_t capacity = 0;
        {
            std::lock_guard l(mu);
            const auto busy = queue.size() + running;
            const auto want = opts.workers * 4; // a turn hands out enough for the next one
            capacity = stopping || busy >= want ? 0 : want - busy;
        }
        if (capacity == 0 && unrecorded.empty() && deferrals.empty())
            return false;
        const auto now = clock();
        // admit() counts jobs in flight as it goes; a turn the database
        // refused claimed nothing.
        auto counted = in_flight;
        auto r = st::delivery_repository(db).cycle(
            unrecorded, deferrals, now, capacity, opts.per_integration, [&](const st::delivery_job& j) {
                if (auto b = breakers.find(j.integration); b != breakers.end() && b->second.open_until > now)
                    return false;
                auto& n = in_flight[j.integration];
                if (n >= opts.per_integration)
                    return false;
                ++n;
                return true;
            });
        if (!r) {
            in_flight = std::move(counted);
            db_errors.fetch_add(1, std::memory_order_relaxed);
            spdlog::error("outbox: delivery results not recorded, or jobs not claimed: {} (will retry)",
                          r.error().message);
            return false;
        }
        unrecorded.clear();
        deferrals.clear();
        std::vector<done_item> immediate;
        std::vector<work_item> ready;
        for (auto& j : *r) {
            auto c = load(j.integration);
            adapters::sender* s = nullptr;
            std::string why;
            if (!c) {
                // The database did not answer: try again shortly, not an attempt.
                done_item d;
                d.integration = j.integration;
                d.completion.attempt.job = j.id;
                d.completion.attempt.started_at_ms = now;
                d.completion.counts = false;
                d.completion.state = st::job_state::pending;
                d.completion.next_attempt_at_ms = now + 1000;
                immediate.push_back(std::move(d));
                continue;
            }
            if (!c->target)
                why = "the integration was removed";
            else if (!c->enabled)
                why = "the integration is disabled";
            else if (auto it = senders.find(c->target->type); it == senders.end() || it->second == nullptr)
                why = "this pulsegate cannot send to " + c->target->type + " integrations";
            else
                s = it->second;
            if (s == nullptr) {
                done_item d;
                d.integration = j.integration;
                d.completion.attempt.job = j.id;
                d.completion.attempt.attempt = j.attempts + 1;
                d.completion.attempt.started_at_ms = now;
                complete(d, j, {outcome::failed, "", why});
                immediate.push_back(std::move(d));
                continue;
            }
            ready.push_back({std::move(j), c->target, s});
        }
        // Jobs that could not be sent are recorded by the next turn, at once.
        account(immediate);
        if (!ready.empty()) {
            std::lock_guard l(mu);
            for (auto& w : ready)
                queue.push_back(std::move(w));
        }
        work_cv.notify_all();
        return !r->empty();
    }

    void dispatcher_main() {
        common::name_this_thread("pg-outbox");
        std::vector<done_item> finished;
        for (;;) {
            const bool claimed = turn();
            std::int64_t wait_ms = 1000;
            if (!unrecorded.empty() || !deferrals.empty()) {
                wait_ms = claimed ? 0 : 500; // results to write: at once, or soon after a refused write
            } else if (!claimed) {
                // Due jobs that were not claimed wait for a free worker or
                // slot (a finished send wakes us), notify(), or their
                // circuit's cooldown (the tick): looking again at once
                // would spin.
                if (auto due = st::delivery_repository(db).next_due(); due && *due)
                    wait_ms = std::clamp<std::int64_t>(**due - clock(), 0, 1000);
                if (wait_ms == 0)
                    wait_ms = 1000;
            }
            bool stop = false;
            {
                std::unique_lock l(mu);
                if (wait_ms > 0)
                    dispatch_cv.wait_for(l, std::chrono::milliseconds(wait_ms),
                                         [&] { return wake || stopping || !done.empty(); });
                wake = false;
                finished.swap(done);
                if (stopping && !queue.empty()) {
                    // Not started: back to pending, not an attempt.
                    for (auto& w : queue) {
                        done_item d;
                        d.integration = w.job.integration;
                        d.completion.attempt.job = w.job.id;
                        d.completion.attempt.started_at_ms = clock();
                        d.completion.counts = false;
                        d.completion.state = st::job_state::pending;
                        d.completion.next_attempt_at_ms = w.job.next_attempt_at_ms;
                        finished.push_back(std::move(d));
                    }
                    queue.clear();
                }
                stop = stopping && queue.empty() && running == 0 && done.empty();
            }
            account(finished);
            if (stop) {
                // The last results; what the database refuses now is sent
                // again after the restart (in flight at start).
                for (int tries = 0; tries < 3 && (!unrecorded.empty() || !deferrals.empty()); ++tries)
                    if (!turn())
                        if (!unrecorded.empty())
                            std::this_thread::sleep_for(std::chrono::milliseconds(100));
                return;
            }
            if (stopping) {
                std::unique_lock l(mu);
                dispatch_cv.wait_for(l, std::chrono::milliseconds(100), [&] { return !done.empty(); });
            }
        }
    }
};

outbox::outbox(st::database& db, const st::secret_box& box, outbox_options o,
               std::map<std::string, adapters::sender*, std::less<>> senders, clock_fn clock)
    : impl_(std::make_unique<impl>(db, box, o, std::move(senders), std::move(clock))) {}

outbox::~outbox() { stop(); }

void outbox::start() {
    auto& s = *impl_;
    if (s.started)
        return;
    auto n = st::delivery_repository(s.db).requeue_in_flight(s.clock());
    if (!n)
        throw std::runtime_error("outbox: requeueing the deliveries a previous run left in flight: " +
                                 n.error().message);
    if (*n > 0)
        spdlog::info("outbox: {} deliveries were in flight when pulsegate stopped; sending them again", *n);
    s.started = true;
    s.dispatcher = std::thread([&s] { s.dispatcher_main(); });
    for (std::size_t i = 0; i < s.opts.workers; ++i)
        s.workers.emplace_back([&s, i] { s.worker_main(i); });
}

void outbox::stop() {
    auto& s = *impl_;
    if (!s.started)
        return;
    {
        std::lock_guard l(s.mu);
        if (s.stopping)
            return;
        s.stopping = true;
    }
    s.dispatch_cv.notify_all();
    s.work_cv.notify_all();
    for (auto& t : s.workers)
        t.join();
    s.dispatch_cv.notify_all();
    s.dispatcher.join();
    s.workers.clear();
}

void outbox::notify() {
    {
        std::lock_guard l(impl_->mu);
        impl_->wake = true;
    }
    impl_->dispatch_cv.notify_one();
}

void outbox::integrations_changed() {
    impl_->cache_stale = true;
    notify();
}

test_outcome outbox::send_test(const st::integration_record& r) {
    auto& s = *impl_;
    test_outcome out;
    const auto it = s.senders.find(r.type);
    if (it == s.senders.end() || it->second == nullptr) {
        out.result = {outcome::failed, "", "this pulsegate cannot send to " + r.type + " integrations"};
        return out;
    }
    auto m = adapters::parse_alert_message(test_event_json(r.tenant, s.clock()));
    if (!m) {
        out.result = {outcome::failed, "", "internal error: the test alert does not parse"};
        return out;
    }
    m->test = true;
    const auto target = target_of(r);
    const auto t0 = std::chrono::steady_clock::now();
    try {
        out.result = it->second->send(*target, *m);
    } catch (const std::exception& e) {
        out.result = {outcome::retry, "", std::string("the ") + r.type + " sender failed: " + e.what()};
    }
    out.latency_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    return out;
}

outbox_stats outbox::stats() const {
    const auto& s = *impl_;
    outbox_stats o;
    o.attempts = s.attempts.load(std::memory_order_relaxed);
    o.delivered = s.delivered.load(std::memory_order_relaxed);
    o.retried = s.retried.load(std::memory_order_relaxed);
    o.dead = s.dead.load(std::memory_order_relaxed);
    o.circuits_opened = s.circuits_opened.load(std::memory_order_relaxed);
    o.db_errors = s.db_errors.load(std::memory_order_relaxed);
    return o;
}

} // namespace pulsegate::engine
