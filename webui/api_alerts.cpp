// Alerts of the caller's tenant (DESIGN.md, Rules and alerts):
//
//   GET  /api/v1/alerts?status=&severity=&device=&kind=&rule=&from=&to=&limit=&cursor=
//                                       newest first; from/to: epoch ms on opened_at
//   GET  /api/v1/alerts/stats?days=     1..90, default 7
//   GET  /api/v1/alerts/{id}
//   POST /api/v1/alerts/{id}/ack        -> the alert, acknowledged
//   POST /api/v1/alerts/{id}/close      -> the alert, closed (manually)
//
// The engine owns every non-closed alert and writes it to the database
// lazily: GET /alerts/{id} asks it first (the freshest count and last
// value), then the database; lists and stats read the database. Ack and
// close go through the engine (alert_control), so that a REST call and a
// reading never race: 404 for an unknown alert (another tenant's alike), 409
// for one already closed (or, ack, already acknowledged), 503 without an
// engine. Alerts look as engine/alert_json.hpp shows them.

#include "webui/api.hpp"
#include "webui/api_common.hpp"
#include "webui/pagination.hpp"

#include "common/time.hpp"
#include "engine/alert_control.hpp"
#include "engine/alert_json.hpp"
#include "storage/state/alert_repository.hpp"

#include <boost/json/array.hpp>

namespace pulsegate::webui {

namespace {

namespace state = storage::state;
using namespace detail;

constexpr std::int64_t default_stats_days = 7;
constexpr std::int64_t max_stats_days = 90;

api_error no_alert(std::int64_t id) {
    return api_error::not_found("no alert " + std::to_string(id) +
                                " in your tenant; GET /api/v1/alerts lists the alerts you have");
}

api_error no_engine() {
    return unavailable("the rules engine is not running, so alerts cannot be acknowledged or closed now; retry "
                       "in a moment, and if it persists the operator should check the daemon's log");
}

response list_alerts(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    auto filter = alert_filter_of(ctx);
    if (!filter) return to_response(filter.error());
    const auto cursor = page->cursor.empty() ? std::nullopt : std::optional<std::string_view>(page->cursor);
    auto got = state::alert_repository(*s.db).list(*tenant, *filter, page->limit, cursor);
    if (!got) {
        if (got.error().code == state::state_errc::invalid_argument)
            return to_response(api_error::invalid_argument(
                "cursor", "cursor is not one this list made; pass back next_cursor unchanged, with the same "
                          "filters, or none for the first page"));
        return to_response(from_state(got.error(), "list alerts"));
    }
    json::array items;
    for (const auto& a : got->items) items.push_back(engine::alert_json(a));
    return list_response(std::move(items), std::move(got->next_cursor));
}

response get_alert(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "alert", "GET /api/v1/alerts");
    if (!id) return to_response(id.error());
    // Not found in the engine: closed, or not there (yet); the database says.
    if (s.alerts != nullptr)
        if (auto live = s.alerts->live(*tenant, *id)) return json_response(engine::alert_json(*live));
    auto a = state::alert_repository(*s.db).get(*tenant, *id);
    if (!a) return to_response(from_state(a.error(), "get alert"));
    if (!*a) return to_response(no_alert(*id));
    return json_response(engine::alert_json(**a));
}

// ack or close through the engine.
response change_alert(const api_services& s, const caller& c, const request_context& ctx, bool close) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_number_id(ctx, "alert", "GET /api/v1/alerts");
    if (!id) return to_response(id.error());
    if (s.alerts == nullptr) return to_response(no_engine());
    auto who = signature_of(*s.db, c);
    if (!who) return to_response(who.error());
    auto done = close ? s.alerts->close(*tenant, *id, *who) : s.alerts->acknowledge(*tenant, *id, *who);
    if (done) return json_response(engine::alert_json(*done));
    const auto ec = done.error();
    const auto n = std::to_string(*id);
    if (ec == engine::alert_errc::not_found) return to_response(no_alert(*id));
    if (ec == engine::alert_errc::already_closed)
        return to_response(api_error::conflict("alert " + n + " is closed already; GET /api/v1/alerts/" + n +
                                               " shows when and by whom"));
    if (ec == engine::alert_errc::already_acknowledged)
        return to_response(api_error::conflict("alert " + n + " is acknowledged already; GET /api/v1/alerts/" + n +
                                               " shows when and by whom"));
    if (ec == engine::alert_errc::unavailable) return to_response(no_engine());
    return to_response(unavailable(std::string(close ? "closing" : "acknowledging") + " alert " + n + " failed (" +
                                   ec.message() + "); retry in a moment"));
}

response ack_alert(const api_services& s, const caller& c, const request_context& ctx) {
    return change_alert(s, c, ctx, false);
}

response close_alert(const api_services& s, const caller& c, const request_context& ctx) {
    return change_alert(s, c, ctx, true);
}

response alert_stats(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto days = query_int64(ctx, "days", 1, max_stats_days);
    if (!days) return to_response(days.error());
    auto st = state::alert_repository(*s.db).stats(*tenant, now_ms(),
                                                    static_cast<int>(days->value_or(default_stats_days)));
    if (!st) return to_response(from_state(st.error(), "count alerts"));
    json::object open;
    for (auto sev : {state::severity::critical, state::severity::major, state::severity::minor,
                     state::severity::warning, state::severity::info}) {
        const auto it = st->open_by_severity.find(sev);
        open[state::to_string(sev)] = it == st->open_by_severity.end() ? 0 : it->second;
    }
    json::array per_day;
    for (const auto& d : st->per_day) {
        json::object o;
        o["day"] = common::utc_date(d.day_start_ms);
        o["opened"] = d.opened;
        o["closed"] = d.closed;
        per_day.push_back(std::move(o));
    }
    const auto mean = [](const std::optional<double>& v) { return v ? json::value(*v) : json::value(nullptr); };
    json::object o;
    o["open_by_severity"] = std::move(open);
    o["per_day"] = std::move(per_day);
    o["mean_time_to_ack_s"] = mean(st->mean_time_to_ack_s);
    o["mean_time_to_close_s"] = mean(st->mean_time_to_close_s);
    return json_response(o);
}

} // namespace

void add_alert_routes(router& r, auth& a, const api_services& s) {
    BOOST_ASSERT(s.db != nullptr);
    auto bind = [&](access need, detail::api_handler fn) { return detail::guarded(a, s, need, fn); };
    using v = http::verb;
    r.add(v::get, "/api/v1/alerts", bind(access::tenant_read, list_alerts));
    r.add(v::get, "/api/v1/alerts/stats", bind(access::tenant_read, alert_stats));
    r.add(v::get, "/api/v1/alerts/{id}", bind(access::tenant_read, get_alert));
    r.add(v::post, "/api/v1/alerts/{id}/ack", bind(access::tenant_write, ack_alert));
    r.add(v::post, "/api/v1/alerts/{id}/close", bind(access::tenant_write, close_alert));
}

} // namespace pulsegate::webui
