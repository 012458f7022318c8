#include "storage/state/alert_repository.hpp"

#include "storage/state/connection.hpp"
#include "storage/state/rows.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace pulsegate::storage::state {

namespace {

// alert_record.status is the column `state`, last_seen_at_ms is `last_at`.
#define PULSEGATE_ALERT_COLUMNS                                                                                    \
    "id, tenant, device, rule, rule_name, kind, severity, state, metric, value, threshold, last_value, message, "  \
    "count, opened_at, last_at, acknowledged_at, acknowledged_by, closed_at, closed_by, escalation_level, "        \
    "escalated_at, silenced"

// The filters of alert_filter (a NULL parameter disables its filter) and the
// cursor; ?1 is the tenant, ?10 the limit. The cursor is always bound (no
// cursor: the largest id) so that it bounds the index range, and a deep page
// does not scan every newer alert.
#define PULSEGATE_ALERT_FILTERS                                                                                    \
    " AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR severity = ?3) AND (?4 IS NULL OR device = ?4)"            \
    " AND (?5 IS NULL OR kind = ?5) AND (?6 IS NULL OR rule = ?6) AND (?7 IS NULL OR opened_at >= ?7)"             \
    " AND (?8 IS NULL OR opened_at < ?8) AND id < ?9 ORDER BY id DESC LIMIT ?10"

constexpr std::int64_t ms_per_day = 86'400'000;

state_result<alert_record> alert_from(const detail::statement& s) {
    alert_record a;
    a.id = s.int64(0);
    a.tenant = s.text(1);
    const auto kind = parse_alert_kind(s.text(5));
    const auto sev = parse_severity(s.text(6));
    const auto status = parse_alert_status(s.text(7));
    if (!kind || !sev || !status) // CHECK constraints keep these valid
        return make_state_error(state_errc::corrupt, "read alert " + std::to_string(a.id) + " of tenant " + a.tenant +
                                                         ": its kind, severity or state is not one pulsegate writes; "
                                                         "restore a backup");
    a.device = s.text(2);
    a.rule = s.int64(3);
    a.rule_name = s.text(4);
    a.kind = *kind;
    a.sev = *sev;
    a.status = *status;
    a.metric = s.text(8); // NULL (NO_HEARTBEAT) reads as ""
    a.value = s.optional_real(9);
    a.threshold = s.optional_real(10);
    a.last_value = s.optional_real(11);
    a.message = s.text(12);
    a.count = s.int64(13);
    a.opened_at_ms = s.int64(14);
    a.last_seen_at_ms = s.int64(15);
    a.acknowledged_at_ms = s.optional_int64(16);
    a.acknowledged_by = s.optional_text(17);
    a.closed_at_ms = s.optional_int64(18);
    a.closed_by = s.optional_text(19);
    a.escalation_level = s.int64(20);
    a.escalated_at_ms = s.optional_int64(21);
    a.silenced = s.int64(22) != 0;
    return a;
}

template <class E>
std::optional<std::string_view> name_or_null(const std::optional<E>& e) {
    if (!e)
        return std::nullopt;
    return to_string(*e);
}

state_result<alert_page> read_page(const database& db, const char* sql, std::string_view operation,
                                   std::optional<std::string_view> tenant, const alert_filter& f, std::size_t limit,
                                   std::optional<std::string_view> cursor) {
    auto before = detail::id_cursor(cursor, operation);
    if (!before)
        return before.error();
    const auto n = detail::page_limit(limit);
    alert_page page;
    auto r = db.read(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare(sql, operation);
        if (!s)
            return s.error();
        // One row more than the page tells whether another page follows.
        s->bind(1, tenant)
            .bind(2, name_or_null(f.status))
            .bind(3, name_or_null(f.sev))
            .bind(4, f.device)
            .bind(5, name_or_null(f.kind))
            .bind(6, f.rule)
            .bind(7, f.from_ms)
            .bind(8, f.to_ms)
            .bind(9, before->value_or(std::numeric_limits<std::int64_t>::max()))
            .bind(10, n + 1);
        return detail::collect(*s, page.items, alert_from);
    });
    if (!r)
        return r.error();
    if (static_cast<std::int64_t>(page.items.size()) > n) {
        page.items.pop_back();
        page.next_cursor = std::to_string(page.items.back().id);
    }
    return page;
}

// The UTC midnight at or before `ms` (floor, also before 1970).
std::int64_t day_start(std::int64_t ms) {
    auto d = ms / ms_per_day;
    if (ms % ms_per_day < 0)
        --d;
    return d * ms_per_day;
}

} // namespace

state_result<void> alert_repository::upsert(std::span<const alert_record> alerts,
                                            std::span<const new_delivery_job> jobs) {
    constexpr std::string_view operation = "store alerts";
    if (alerts.empty() && jobs.empty())
        return {};
    for (const auto& a : alerts)
        if (a.id <= 0)
            return make_state_error(state_errc::invalid_argument,
                                    std::string(operation) + ": alert ids start at 1 (got " + std::to_string(a.id) + ")");
    return db_->write(operation, [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("INSERT INTO alerts (" PULSEGATE_ALERT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                           "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23) "
                           "ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, device = excluded.device, "
                           "rule = excluded.rule, rule_name = excluded.rule_name, kind = excluded.kind, "
                           "severity = excluded.severity, state = excluded.state, metric = excluded.metric, "
                           "value = excluded.value, threshold = excluded.threshold, last_value = excluded.last_value, "
                           "message = excluded.message, count = excluded.count, opened_at = excluded.opened_at, "
                           "last_at = excluded.last_at, acknowledged_at = excluded.acknowledged_at, "
                           "acknowledged_by = excluded.acknowledged_by, closed_at = excluded.closed_at, "
                           "closed_by = excluded.closed_by, escalation_level = excluded.escalation_level, "
                           "escalated_at = excluded.escalated_at, silenced = excluded.silenced",
                           operation);
        if (!s)
            return s.error();
        // In batch order: a batch that closes an alert and opens the next one
        // for the same (tenant, device, rule) must hold the close first.
        for (const auto& a : alerts) {
            s->bind(1, a.id)
                .bind(2, a.tenant)
                .bind(3, a.device)
                .bind(4, a.rule)
                .bind(5, a.rule_name)
                .bind(6, to_string(a.kind))
                .bind(7, to_string(a.sev))
                .bind(8, to_string(a.status))
                .bind(9, a.metric.empty() ? std::nullopt : std::optional<std::string_view>(a.metric))
                .bind(10, a.value)
                .bind(11, a.threshold)
                .bind(12, a.last_value)
                .bind(13, a.message)
                .bind(14, a.count)
                .bind(15, a.opened_at_ms)
                .bind(16, a.last_seen_at_ms)
                .bind(17, a.acknowledged_at_ms)
                .bind(18, a.acknowledged_by)
                .bind(19, a.closed_at_ms)
                .bind(20, a.closed_by)
                .bind(21, a.escalation_level)
                .bind(22, a.escalated_at_ms)
                .bind(23, a.silenced);
            auto r = s->run();
            if (r)
                continue;
            // The id is the conflict target, so the one unique key left is
            // alerts_one_open.
            if (r.error().code == state_errc::already_exists)
                return make_state_error(state_errc::already_exists,
                                        std::string(operation) + ": alert " + std::to_string(a.id) +
                                            " would be a second open or acknowledged alert of rule " +
                                            std::to_string(a.rule) + " for device " + a.tenant + "/" + a.device +
                                            "; close the other one first");
            return r;
        }
        if (jobs.empty())
            return {};
        if (auto n = detail::insert_delivery_jobs(c, jobs); !n)
            return n.error();
        return {};
    });
}

state_result<std::optional<alert_record>> alert_repository::get(std::string_view tenant, std::int64_t id) const {
    std::vector<alert_record> found;
    auto r = db_->read("get alert", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_ALERT_COLUMNS " FROM alerts WHERE tenant = ? AND id = ?", "get alert");
        if (!s)
            return s.error();
        s->bind(1, tenant).bind(2, id);
        return detail::collect(*s, found, alert_from);
    });
    if (!r)
        return r.error();
    if (found.empty())
        return std::optional<alert_record>();
    return std::optional(std::move(found.front()));
}

state_result<alert_page> alert_repository::list(std::string_view tenant, const alert_filter& f, std::size_t limit,
                                                std::optional<std::string_view> cursor) const {
    return read_page(*db_, "SELECT " PULSEGATE_ALERT_COLUMNS " FROM alerts WHERE tenant = ?1" PULSEGATE_ALERT_FILTERS,
                     "list alerts", tenant, f, limit, cursor);
}

state_result<alert_page> alert_repository::list_all(const alert_filter& f, std::size_t limit,
                                                    std::optional<std::string_view> cursor,
                                                    std::optional<std::string_view> tenant) const {
    // With a tenant, list()'s statement, which the (tenant, id) index serves.
    if (tenant)
        return read_page(*db_,
                         "SELECT " PULSEGATE_ALERT_COLUMNS " FROM alerts WHERE tenant = ?1" PULSEGATE_ALERT_FILTERS,
                         "list alerts of every tenant", tenant, f, limit, cursor);
    // ?1 is bound NULL, only to keep the parameter numbers of the filters.
    return read_page(*db_,
                     "SELECT " PULSEGATE_ALERT_COLUMNS " FROM alerts WHERE ?1 IS NULL" PULSEGATE_ALERT_FILTERS,
                     "list alerts of every tenant", std::nullopt, f, limit, cursor);
}

state_result<std::vector<alert_record>> alert_repository::non_closed() const {
    std::vector<alert_record> out;
    auto r = db_->read("list non-closed alerts", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT " PULSEGATE_ALERT_COLUMNS " FROM alerts WHERE state <> 'closed' ORDER BY id",
                           "list non-closed alerts");
        if (!s)
            return s.error();
        return detail::collect(*s, out, alert_from);
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::int64_t> alert_repository::max_id() const {
    std::int64_t out = 0;
    auto r = db_->read("read the largest alert id", [&](detail::connection& c) -> state_result<void> {
        // Deleted alerts count too (alert_id_high_water, see migrations.cpp).
        auto s = c.prepare("SELECT max((SELECT coalesce(max(id), 0) FROM alerts), "
                           "(SELECT coalesce(max(max_id), 0) FROM alert_id_high_water))",
                           "read the largest alert id");
        if (!s)
            return s.error();
        return s->each([&](const detail::statement& row) { out = row.int64(0); });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<std::int64_t> alert_repository::purge_closed_before(std::int64_t before_ms) {
    std::int64_t removed = 0;
    auto r = db_->write("purge closed alerts", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("DELETE FROM alerts WHERE state = 'closed' AND closed_at < ?", "purge closed alerts");
        if (!s)
            return s.error();
        s->bind(1, before_ms);
        if (auto ran = s->run(); !ran)
            return ran;
        removed = c.changes();
        return {};
    });
    if (!r)
        return r.error();
    return removed;
}

namespace {

// The tenant's alerts that are not closed, per severity (zeros included).
state_result<void> count_open_by_severity(detail::connection& c, std::string_view tenant, std::string_view operation,
                                          std::map<severity, std::int64_t>& out) {
    for (auto sev : {severity::critical, severity::major, severity::minor, severity::warning, severity::info})
        out[sev] = 0;
    auto s = c.prepare("SELECT severity, count(*) FROM alerts WHERE tenant = ? AND state <> 'closed' "
                       "GROUP BY severity",
                       operation);
    if (!s)
        return s.error();
    s->bind(1, tenant);
    std::optional<state_error> bad;
    auto done = s->each([&](const detail::statement& row) {
        if (auto sev = parse_severity(row.text(0)))
            out[*sev] = row.int64(1);
        else if (!bad)
            bad = make_state_error(state_errc::corrupt, std::string(operation) + ": an alert of tenant " +
                                                            std::string(tenant) +
                                                            " has an unknown severity; restore a backup");
    });
    if (!done)
        return done;
    if (bad)
        return *bad;
    return {};
}

} // namespace

state_result<alert_stats> alert_repository::stats(std::string_view tenant, std::int64_t now_ms, int days) const {
    constexpr std::string_view operation = "alert statistics";
    if (days < 1 || days > 366)
        return make_state_error(state_errc::invalid_argument,
                                std::string(operation) + ": the window must be 1 to 366 days (got " +
                                    std::to_string(days) + ")");
    const std::int64_t window_end = day_start(now_ms) + ms_per_day;
    const std::int64_t window_start = window_end - days * ms_per_day;

    alert_stats out;
    out.per_day.resize(static_cast<std::size_t>(days));
    for (int i = 0; i < days; ++i)
        out.per_day[static_cast<std::size_t>(i)].day_start_ms = window_start + i * ms_per_day;

    auto r = db_->read(operation, [&](detail::connection& c) -> state_result<void> {
        if (auto d = count_open_by_severity(c, tenant, operation, out.open_by_severity); !d)
            return d;

        // Per day: alerts opened that day, and alerts closed that day. The
        // window start is a midnight, so the quotient is the day's index.
        auto count_per_day = [&](const char* sql, std::int64_t alert_day::*field) -> state_result<void> {
            auto s = c.prepare(sql, operation);
            if (!s)
                return s.error();
            s->bind(1, tenant).bind(2, window_start).bind(3, window_end).bind(4, ms_per_day);
            return s->each([&](const detail::statement& row) {
                const auto day = row.int64(0);
                if (day >= 0 && day < days)
                    out.per_day[static_cast<std::size_t>(day)].*field = row.int64(1);
            });
        };
        if (auto d = count_per_day("SELECT (opened_at - ?2) / ?4 AS day, count(*) FROM alerts "
                                   "WHERE tenant = ?1 AND opened_at >= ?2 AND opened_at < ?3 GROUP BY day",
                                   &alert_day::opened);
            !d)
            return d;
        if (auto d = count_per_day("SELECT (closed_at - ?2) / ?4 AS day, count(*) FROM alerts "
                                   "WHERE tenant = ?1 AND closed_at >= ?2 AND closed_at < ?3 GROUP BY day",
                                   &alert_day::closed);
            !d)
            return d;

        // avg() of no rows is NULL: no mean.
        auto means = c.prepare("SELECT avg((acknowledged_at - opened_at) / 1000.0), avg((closed_at - opened_at) / 1000.0) "
                               "FROM alerts WHERE tenant = ?1 AND opened_at >= ?2 AND opened_at < ?3",
                               operation);
        if (!means)
            return means.error();
        means->bind(1, tenant).bind(2, window_start).bind(3, window_end);
        return means->each([&](const detail::statement& row) {
            out.mean_time_to_ack_s = row.optional_real(0);
            out.mean_time_to_close_s = row.optional_real(1);
        });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<alert_summary> alert_repository::summary(std::string_view tenant, std::int64_t from_ms,
                                                      std::int64_t to_ms, std::size_t top) const {
    constexpr std::string_view operation = "alert summary";
    if (from_ms >= to_ms)
        return make_state_error(state_errc::invalid_argument,
                                std::string(operation) + ": the period must end after it starts");
    alert_summary out;
    const auto limit = static_cast<std::int64_t>(std::min<std::size_t>(top, 100));
    auto r = db_->read(operation, [&](detail::connection& c) -> state_result<void> {
        auto counts = c.prepare("SELECT (SELECT count(*) FROM alerts WHERE tenant = ?1 AND opened_at >= ?2 AND "
                                "opened_at < ?3), (SELECT count(*) FROM alerts WHERE tenant = ?1 AND "
                                "closed_at >= ?2 AND closed_at < ?3)",
                                operation);
        if (!counts)
            return counts.error();
        counts->bind(1, tenant).bind(2, from_ms).bind(3, to_ms);
        if (auto d = counts->each([&](const detail::statement& row) {
                out.opened = row.int64(0);
                out.closed = row.int64(1);
            });
            !d)
            return d;

        if (auto d = count_open_by_severity(c, tenant, operation, out.open_by_severity); !d)
            return d;

        auto devices = c.prepare("SELECT device, count(*) AS n, sum(count) AS repeats FROM alerts "
                                 "WHERE tenant = ?1 AND opened_at >= ?2 AND opened_at < ?3 "
                                 "GROUP BY device ORDER BY n DESC, repeats DESC, device LIMIT ?4",
                                 operation);
        if (!devices)
            return devices.error();
        devices->bind(1, tenant).bind(2, from_ms).bind(3, to_ms).bind(4, limit);
        if (auto d = devices->each([&](const detail::statement& row) {
                out.noisiest_devices.push_back({std::string(row.text(0)), row.int64(1), row.int64(2)});
            });
            !d)
            return d;

        // The rule's current name, or the one its alerts recorded when the
        // rule is gone.
        auto rules = c.prepare("SELECT a.rule, coalesce((SELECT name FROM rules WHERE id = a.rule), "
                               "max(a.rule_name)), count(*) AS n, sum(a.count) AS repeats FROM alerts a "
                               "WHERE a.tenant = ?1 AND a.opened_at >= ?2 AND a.opened_at < ?3 "
                               "GROUP BY a.rule ORDER BY n DESC, repeats DESC, a.rule LIMIT ?4",
                               operation);
        if (!rules)
            return rules.error();
        rules->bind(1, tenant).bind(2, from_ms).bind(3, to_ms).bind(4, limit);
        return rules->each([&](const detail::statement& row) {
            out.noisiest_rules.push_back({row.int64(0), std::string(row.text(1)), row.int64(2), row.int64(3)});
        });
    });
    if (!r)
        return r.error();
    return out;
}

} // namespace pulsegate::storage::state
