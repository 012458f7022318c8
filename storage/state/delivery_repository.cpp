#include "storage/state/delivery_repository.hpp"

#include "storage/state/connection.hpp"
#include "storage/state/rows.hpp"

#include <algorithm>
#include <map>

namespace pulsegate::storage::state {

std::string_view to_string(job_state s) noexcept {
    switch (s) {
    case job_state::pending: return "pending";
    case job_state::in_flight: return "in_flight";
    case job_state::delivered: return "delivered";
    case job_state::dead: return "dead";
    }
    return "pending";
}

std::optional<job_state> parse_job_state(std::string_view s) noexcept {
    for (auto v : {job_state::pending, job_state::in_flight, job_state::delivered, job_state::dead})
        if (to_string(v) == s)
            return v;
    return std::nullopt;
}

std::string_view to_string(attempt_outcome o) noexcept {
    switch (o) {
    case attempt_outcome::delivered: return "delivered";
    case attempt_outcome::retry: return "retry";
    case attempt_outcome::failed: return "failed";
    }
    return "retry";
}

namespace {

#define PULSEGATE_JOB_COLUMNS                                                                                      \
    "id, tenant, alert, integration, event, event_key, payload, state, attempts, max_attempts, next_attempt_at, "   \
    "last_error, created_at, updated_at"

state_result<delivery_job> job_from(const detail::statement& s) {
    delivery_job j;
    j.id = s.int64(0);
    j.tenant = s.text(1);
    j.alert = s.optional_int64(2);
    j.integration = s.int64(3);
    j.event = s.text(4);
    j.event_key = s.text(5);
    j.payload = s.text(6);
    const auto st = parse_job_state(s.text(7));
    if (!st)
        return make_state_error(state_errc::corrupt, "read delivery job " + std::to_string(j.id) +
                                                         ": its state is not one pulsegate writes");
    j.state = *st;
    j.attempts = s.int64(8);
    j.max_attempts = s.int64(9);
    j.next_attempt_at_ms = s.int64(10);
    j.last_error = s.optional_text(11);
    j.created_at_ms = s.int64(12);
    j.updated_at_ms = s.int64(13);
    return j;
}

state_result<delivery_attempt> attempt_from(const detail::statement& s) {
    delivery_attempt a;
    a.job = s.int64(0);
    a.attempt = s.int64(1);
    a.started_at_ms = s.int64(2);
    a.latency_ms = s.int64(3);
    const auto o = s.text(4);
    a.outcome = o == "delivered" ? attempt_outcome::delivered
                : o == "failed"  ? attempt_outcome::failed
                                 : attempt_outcome::retry;
    a.status = s.text(5);
    a.error = s.optional_text(6);
    return a;
}

state_result<void> read_attempts(detail::connection& c, std::vector<delivery_entry>& entries) {
    for (auto& e : entries) {
        // Borrowed per job: each() leaves the statement done, and only a
        // reset (on return to the cache) lets it be bound again.
        auto s = c.prepare("SELECT job, attempt, started_at, latency_ms, outcome, status, error FROM "
                           "delivery_attempts WHERE job = ? ORDER BY attempt",
                           "read delivery attempts");
        if (!s)
            return s.error();
        s->bind(1, e.job.id);
        if (auto r = detail::collect(*s, e.attempts, attempt_from); !r)
            return r;
    }
    return {};
}

} // namespace

namespace detail {

state_result<std::int64_t> insert_delivery_jobs(connection& c, std::span<const new_delivery_job> jobs) {
    if (jobs.empty())
        return std::int64_t{0};
    auto j = c.prepare("INSERT INTO delivery_jobs (tenant, alert, integration, event, event_key, payload, state, "
                       "attempts, max_attempts, next_attempt_at, created_at, updated_at) SELECT ?1, "
                       "(SELECT id FROM alerts WHERE id = ?2), ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?8, ?8, ?8 "
                       "WHERE EXISTS (SELECT 1 FROM integrations WHERE id = ?3 AND tenant = ?1) "
                       "ON CONFLICT (event_key, integration) DO NOTHING",
                       "store delivery jobs");
    if (!j)
        return j.error();
    std::int64_t inserted = 0;
    for (const auto& job : jobs) {
        j->bind(1, job.tenant).bind(2, job.alert).bind(3, job.integration).bind(4, job.event);
        j->bind(5, job.event_key).bind(6, job.payload).bind(7, job.max_attempts).bind(8, job.created_at_ms);
        if (auto r = j->run(); !r)
            return r.error();
        inserted += c.changes();
    }
    return inserted;
}

} // namespace detail

state_result<std::int64_t> delivery_repository::enqueue(std::span<const new_delivery_job> jobs) {
    std::int64_t inserted = 0;
    auto r = db_->write("enqueue delivery jobs", [&](detail::connection& c) -> state_result<void> {
        auto n = detail::insert_delivery_jobs(c, jobs);
        if (!n)
            return n.error();
        inserted = *n;
        return {};
    });
    if (!r)
        return r.error();
    return inserted;
}

state_result<std::int64_t> delivery_repository::requeue_in_flight(std::int64_t now_ms) {
    std::int64_t n = 0;
    auto r = db_->write("requeue delivery jobs", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("UPDATE delivery_jobs SET state = 'pending', next_attempt_at = min(next_attempt_at, ?1), "
                           "updated_at = ?1 WHERE state = 'in_flight'",
                           "requeue delivery jobs");
        if (!s)
            return s.error();
        s->bind(1, now_ms);
        if (auto ran = s->run(); !ran)
            return ran;
        n = c.changes();
        return {};
    });
    if (!r)
        return r.error();
    return n;
}

namespace {

// Due pending jobs, oldest due first, at most `per_integration` of each
// integration, offered to `admit`, up to `max`: marked in_flight.
// The candidates come from the due index with a LIMIT, so a claim costs the
// same whatever the backlog; an integration whose circuit opened has its
// jobs deferred (defer_in), so they do not fill the window.
state_result<void> claim_in(detail::connection& c, std::int64_t now_ms, std::size_t max, std::size_t per_integration,
                            const std::function<bool(const delivery_job&)>& admit, std::vector<delivery_job>& out) {
    out.clear();
    if (max == 0)
        return {};
    std::vector<delivery_job> candidates;
    auto s = c.prepare("SELECT " PULSEGATE_JOB_COLUMNS " FROM delivery_jobs WHERE state IN ('pending', 'in_flight') "
                       "AND next_attempt_at <= ?1 AND state = 'pending' ORDER BY next_attempt_at, id LIMIT ?2",
                       "claim delivery jobs: select");
    if (!s)
        return s.error();
    s->bind(1, now_ms).bind(2, static_cast<std::int64_t>(std::max<std::size_t>(max * 8, 256)));
    if (auto got = detail::collect(*s, candidates, job_from); !got)
        return got;
    auto u = c.prepare("UPDATE delivery_jobs SET state = 'in_flight', updated_at = ? WHERE id = ?",
                       "claim delivery jobs: mark");
    if (!u)
        return u.error();
    std::map<std::int64_t, std::size_t> taken;
    for (auto& j : candidates) {
        if (out.size() >= max)
            break;
        // At most per_integration of each integration are offered.
        if (taken[j.integration]++ >= per_integration || !admit(j))
            continue;
        u->bind(1, now_ms).bind(2, j.id);
        if (auto ran = u->run(); !ran)
            return ran;
        j.state = job_state::in_flight;
        out.push_back(std::move(j));
    }
    return {};
}

state_result<std::int64_t> defer_in(detail::connection& c, std::int64_t integration, std::int64_t until_ms) {
    auto s = c.prepare("UPDATE delivery_jobs SET next_attempt_at = ?2 WHERE integration = ?1 AND state IN "
                       "('pending', 'in_flight') AND state = 'pending' AND next_attempt_at < ?2",
                       "defer delivery jobs");
    if (!s)
        return s.error();
    s->bind(1, integration).bind(2, until_ms);
    if (auto ran = s->run(); !ran)
        return ran.error();
    return c.changes();
}

state_result<void> finish_in(detail::connection& c, std::span<const job_completion> done) {
    if (done.empty())
        return {};
    auto ins = c.prepare("INSERT OR REPLACE INTO delivery_attempts (job, attempt, started_at, latency_ms, outcome, "
                         "status, error) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM "
                         "delivery_jobs WHERE id = ?1)",
                         "record delivery attempt");
    if (!ins)
        return ins.error();
    auto upd = c.prepare("UPDATE delivery_jobs SET state = ?2, attempts = attempts + ?3, next_attempt_at = ?4, "
                         "last_error = ?5, updated_at = ?6 WHERE id = ?1",
                         "update delivery job");
    if (!upd)
        return upd.error();
    for (const auto& d : done) {
        const auto& a = d.attempt;
        if (d.counts) {
            ins->bind(1, a.job).bind(2, a.attempt).bind(3, a.started_at_ms).bind(4, a.latency_ms);
            ins->bind(5, to_string(a.outcome)).bind(6, a.status).bind(7, a.error);
            if (auto ran = ins->run(); !ran)
                return ran;
        }
        upd->bind(1, a.job).bind(2, to_string(d.state)).bind(3, d.counts ? 1 : 0);
        upd->bind(4, d.next_attempt_at_ms).bind(5, a.error).bind(6, a.started_at_ms + a.latency_ms);
        if (auto ran = upd->run(); !ran)
            return ran;
    }
    return {};
}

} // namespace

state_result<std::vector<delivery_job>> delivery_repository::claim_due(
    std::int64_t now_ms, std::size_t max, std::size_t per_integration,
    const std::function<bool(const delivery_job&)>& admit) {
    std::vector<delivery_job> out;
    auto r = db_->write("claim delivery jobs", [&](detail::connection& c) {
        return claim_in(c, now_ms, max, per_integration, admit, out);
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::int64_t> delivery_repository::defer(std::int64_t integration, std::int64_t until_ms) {
    std::int64_t n = 0;
    auto r = db_->write("defer delivery jobs", [&](detail::connection& c) -> state_result<void> {
        auto d = defer_in(c, integration, until_ms);
        if (!d)
            return d.error();
        n = *d;
        return {};
    });
    if (!r)
        return r.error();
    return n;
}

state_result<void> delivery_repository::finish(std::span<const job_completion> done) {
    if (done.empty())
        return {};
    return db_->write("record delivery attempts", [&](detail::connection& c) { return finish_in(c, done); });
}

state_result<std::vector<delivery_job>> delivery_repository::cycle(
    std::span<const job_completion> done, std::span<const std::pair<std::int64_t, std::int64_t>> defers,
    std::int64_t now_ms, std::size_t max, std::size_t per_integration,
    const std::function<bool(const delivery_job&)>& admit) {
    std::vector<delivery_job> out;
    auto r = db_->write("record and claim delivery jobs", [&](detail::connection& c) -> state_result<void> {
        if (auto f = finish_in(c, done); !f)
            return f;
        for (const auto& [integration, until] : defers)
            if (auto d = defer_in(c, integration, until); !d)
                return d.error();
        return claim_in(c, now_ms, max, per_integration, admit, out);
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::optional<std::int64_t>> delivery_repository::next_due() const {
    std::optional<std::int64_t> due;
    auto r = db_->read("next delivery job", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT min(next_attempt_at) FROM delivery_jobs WHERE state IN ('pending', 'in_flight') "
                           "AND state = 'pending'",
                           "next delivery job");
        if (!s)
            return s.error();
        return s->each([&](const detail::statement& row) { due = row.optional_int64(0); });
    });
    if (!r)
        return r.error();
    return due;
}

state_result<delivery_page> delivery_repository::list(std::string_view tenant, const delivery_filter& f,
                                                      std::size_t limit, std::optional<std::string_view> cursor) const {
    constexpr std::string_view operation = "list deliveries";
    const auto before = detail::id_cursor(cursor, operation);
    if (!before)
        return before.error();
    const auto n = detail::page_limit(limit);
    delivery_page page;
    auto r = db_->read(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_JOB_COLUMNS " FROM delivery_jobs WHERE tenant = ?1 AND "
                           "(?2 IS NULL OR alert = ?2) AND (?3 IS NULL OR integration = ?3) AND "
                           "(?4 IS NULL OR state = ?4) AND id < ?5 ORDER BY id DESC LIMIT ?6",
                           operation);
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, f.alert).bind(3, f.integration);
        if (f.state)
            s->bind(4, to_string(*f.state));
        else
            s->bind(4, std::nullopt);
        s->bind(5, before->value_or(std::numeric_limits<std::int64_t>::max())).bind(6, n + 1);
        std::vector<delivery_job> jobs;
        if (auto got = detail::collect(*s, jobs, job_from); !got)
            return got;
        page.items.clear();
        for (auto& j : jobs)
            page.items.push_back({std::move(j), {}});
        return read_attempts(c, page.items);
    });
    if (!r)
        return r.error();
    if (static_cast<std::int64_t>(page.items.size()) > n) {
        page.items.pop_back();
        page.next_cursor = std::to_string(page.items.back().job.id);
    }
    return page;
}

state_result<std::optional<delivery_entry>> delivery_repository::get(std::string_view tenant, std::int64_t id) const {
    std::vector<delivery_entry> found;
    auto r = db_->read("get delivery", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_JOB_COLUMNS " FROM delivery_jobs WHERE tenant = ? AND id = ?",
                           "get delivery");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        std::vector<delivery_job> jobs;
        if (auto got = detail::collect(*s, jobs, job_from); !got)
            return got;
        for (auto& j : jobs)
            found.push_back({std::move(j), {}});
        return read_attempts(c, found);
    });
    if (!r)
        return r.error();
    if (found.empty())
        return std::optional<delivery_entry>();
    return std::optional(std::move(found.front()));
}

state_result<delivery_repository::counts> delivery_repository::count() const {
    counts out;
    auto r = db_->read("count deliveries", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT state, count(*) FROM delivery_jobs GROUP BY state", "count deliveries");
        if (!s)
            return s.error();
        return s->each([&](const detail::statement& row) {
            const auto st = row.text(0);
            const auto n = row.int64(1);
            if (st == "pending") out.pending = n;
            else if (st == "in_flight") out.in_flight = n;
            else if (st == "delivered") out.delivered = n;
            else if (st == "dead") out.dead = n;
        });
    });
    if (!r)
        return r.error();
    return out;
}

} // namespace pulsegate::storage::state
