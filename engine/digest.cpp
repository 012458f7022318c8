#include "engine/digest.hpp"

#include "common/json_text.hpp"
#include "common/time.hpp"
#include "storage/state/alert_repository.hpp"
#include "storage/state/delivery_repository.hpp"
#include "storage/state/integration_repository.hpp"
#include "storage/state/settings_repository.hpp"

#include <date/tz.h>
#include <spdlog/spdlog.h>

#include <boost/json/array.hpp>

#include <algorithm>
#include <chrono>
#include <set>

namespace pulsegate::engine {

namespace json = boost::json;
namespace state = storage::state;

namespace {

constexpr std::string_view key_prefix = "digest.";
constexpr std::int64_t ms_per_day = 86'400'000;

std::string settings_key(std::string_view tenant) { return std::string(key_prefix) + std::string(tenant); }

const date::time_zone* find_zone(std::string_view name) {
    if (name.empty() || name.size() > 64)
        return nullptr;
    try {
        return date::locate_zone(name);
    } catch (const std::exception&) {
        return nullptr; // unknown: the tz library throws std::runtime_error
    }
}

boost::system::error_code bad() {
    return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
}

} // namespace

bool known_time_zone(std::string_view name) { return find_zone(name) != nullptr; }

boost::system::result<digest_settings> parse_digest_settings(const json::object& o, digest_settings s,
                                                              std::string* why) {
    const auto fail = [&](std::string text) {
        if (why != nullptr)
            *why = std::move(text);
        return bad();
    };
    for (const auto& [k, v] : o)
        if (k != "enabled" && k != "hour" && k != "time_zone" && k != "integrations" && k != "last_sent")
            return fail(std::string(k) + " is not a digest setting (enabled, hour, time_zone, integrations)");
    if (const auto* v = o.if_contains("enabled")) {
        if (!v->is_bool())
            return fail("enabled must be true or false");
        s.enabled = v->get_bool();
    }
    if (const auto* v = o.if_contains("hour")) {
        if (!v->is_int64() || v->get_int64() < 0 || v->get_int64() > 23)
            return fail("hour must be a whole number from 0 to 23 (local time)");
        s.hour = static_cast<int>(v->get_int64());
    }
    if (const auto* v = o.if_contains("time_zone")) {
        if (!v->is_string() || !known_time_zone(v->get_string()))
            return fail("time_zone must be a time zone name such as \"UTC\" or \"Europe/Berlin\"");
        s.time_zone = std::string(v->get_string());
    }
    if (const auto* v = o.if_contains("integrations")) {
        if (!v->is_array() || v->get_array().size() > 100)
            return fail("integrations must be an array of at most 100 integration ids");
        std::set<std::int64_t> ids;
        for (const auto& e : v->get_array()) {
            if (!e.is_int64() || e.get_int64() <= 0)
                return fail("integrations must hold integration ids (positive whole numbers)");
            ids.insert(e.get_int64());
        }
        s.integrations.assign(ids.begin(), ids.end());
    }
    if (const auto* v = o.if_contains("last_sent")) {
        if (!v->is_string() && !v->is_null())
            return fail("last_sent must be a date (YYYY-MM-DD) or null");
        s.last_sent = v->is_string() ? std::string(v->get_string()) : std::string();
    }
    return s;
}

json::object to_json(const digest_settings& s) {
    json::array ids;
    for (auto id : s.integrations)
        ids.push_back(id);
    return json::object{{"enabled", s.enabled},
                        {"hour", s.hour},
                        {"time_zone", s.time_zone},
                        {"integrations", std::move(ids)},
                        {"last_sent", s.last_sent.empty() ? json::value(nullptr) : json::value(s.last_sent)}};
}

boost::system::result<digest_period> latest_period(int hour, std::string_view time_zone, std::int64_t now_ms) {
    const auto* zone = find_zone(time_zone);
    if (zone == nullptr || hour < 0 || hour > 23)
        return bad();
    using ms = std::chrono::milliseconds;
    const auto local = zone->to_local(date::sys_time<ms>(ms(now_ms)));
    auto end_local = date::floor<date::days>(local) + std::chrono::hours(hour);
    if (local < end_local)
        end_local -= date::days(1);
    const auto start_local = end_local - date::days(1);
    // A wall time skipped by a daylight-saving change counts from the
    // change; one that happens twice, from its first occurrence.
    const auto to_utc = [&](date::local_time<std::chrono::seconds> t) -> std::int64_t {
        const auto info = zone->get_info(t);
        date::sys_seconds utc;
        switch (info.result) {
        case date::local_info::unique: utc = date::sys_seconds(t.time_since_epoch()) - info.first.offset; break;
        case date::local_info::nonexistent: utc = info.first.end; break;
        case date::local_info::ambiguous: utc = date::sys_seconds(t.time_since_epoch()) - info.first.offset; break;
        }
        return std::chrono::duration_cast<ms>(utc.time_since_epoch()).count();
    };
    digest_period p;
    p.from_ms = to_utc(start_local);
    p.to_ms = to_utc(end_local);
    p.day = date::format("%F", date::floor<date::days>(end_local));
    return p;
}

digest_service::digest_service(state::database& db, const state::secret_box& box, std::int64_t max_attempts)
    : db_(&db), box_(&box), max_attempts_(max_attempts) {}

state::state_result<digest_settings> digest_service::get(std::string_view tenant) const {
    auto text = state::settings_repository(*db_).get(settings_key(tenant));
    if (!text)
        return text.error();
    if (!*text)
        return digest_settings{};
    std::string why;
    auto s = parse_digest_settings(common::object_or_empty(**text), digest_settings{}, &why);
    if (!s)
        return state::make_state_error(state::state_errc::corrupt,
                                       "the digest settings of tenant " + std::string(tenant) + " are unreadable (" +
                                           why + "); save them again");
    return *s;
}

state::state_result<digest_settings> digest_service::put(std::string_view tenant, digest_settings s,
                                                         std::int64_t now_ms) {
    auto briefs = state::integration_repository(*db_, *box_).all_briefs();
    if (!briefs)
        return briefs.error();
    for (auto id : s.integrations) {
        const auto it = std::find_if(briefs->begin(), briefs->end(), [&](const auto& b) {
            return b.id == id && b.tenant == tenant;
        });
        if (it == briefs->end())
            return state::make_state_error(state::state_errc::invalid_argument,
                                           "integrations: there is no integration " + std::to_string(id));
        if (it->type != "email")
            return state::make_state_error(state::state_errc::invalid_argument,
                                           "integrations: integration " + std::to_string(id) + " is a " + it->type +
                                               " integration; the digest goes to email integrations only");
    }
    auto period = latest_period(s.hour, s.time_zone, now_ms);
    if (!period)
        return state::make_state_error(state::state_errc::invalid_argument,
                                       "time_zone: unknown time zone " + s.time_zone);
    s.last_sent = period->day;
    if (auto r = state::settings_repository(*db_).set(settings_key(tenant), common::to_json_text(to_json(s)), now_ms);
        !r)
        return r.error();
    return s;
}

state::state_result<std::string> digest_service::payload(std::string_view tenant, const digest_period& p,
                                                         std::string_view time_zone, std::int64_t now_ms) const {
    auto sum = state::alert_repository(*db_).summary(tenant, p.from_ms, p.to_ms);
    if (!sum)
        return sum.error();
    json::object by_sev;
    std::int64_t still_open = 0;
    for (const auto& [sev, n] : sum->open_by_severity) {
        by_sev[state::to_string(sev)] = n;
        still_open += n;
    }
    json::array devices, rules;
    for (const auto& d : sum->noisiest_devices)
        devices.push_back(json::object{{"device", d.device}, {"alerts", d.alerts}, {"repeats", d.repeats}});
    for (const auto& r : sum->noisiest_rules)
        rules.push_back(json::object{{"rule", r.rule}, {"name", r.name}, {"alerts", r.alerts}, {"repeats", r.repeats}});
    json::object digest{{"day", p.day},
                        {"time_zone", time_zone},
                        {"from", common::rfc3339(p.from_ms)},
                        {"to", common::rfc3339(p.to_ms)},
                        {"opened", sum->opened},
                        {"closed", sum->closed},
                        {"still_open", still_open},
                        {"open_by_severity", std::move(by_sev)},
                        {"noisiest_devices", std::move(devices)},
                        {"noisiest_rules", std::move(rules)}};
    return common::to_json_text(json::object{{"event", "digest"},
                                             {"tenant", tenant},
                                             {"at", common::rfc3339(now_ms)},
                                             {"digest", std::move(digest)}});
}

state::state_result<std::int64_t> digest_service::enqueue(std::string_view tenant, const digest_settings& s,
                                                          const digest_period& p, std::string event_key,
                                                          std::int64_t now_ms) {
    if (s.integrations.empty())
        return std::int64_t{0};
    auto body = payload(tenant, p, s.time_zone, now_ms);
    if (!body)
        return body.error();
    std::vector<state::new_delivery_job> jobs;
    for (auto id : s.integrations)
        jobs.push_back(state::new_delivery_job{.tenant = std::string(tenant),
                                               .alert = 0,
                                               .integration = id,
                                               .event = "digest",
                                               .event_key = event_key,
                                               .payload = *body,
                                               .max_attempts = max_attempts_,
                                               .created_at_ms = now_ms});
    return state::delivery_repository(*db_).enqueue(jobs);
}

state::state_result<std::int64_t> digest_service::send_now(std::string_view tenant, std::int64_t now_ms) {
    auto s = get(tenant);
    if (!s)
        return s.error();
    const digest_period p{.from_ms = now_ms - ms_per_day, .to_ms = now_ms, .day = common::utc_date(now_ms)};
    return enqueue(tenant, *s, p, "digest:now:" + std::to_string(now_ms), now_ms);
}

state::state_result<std::int64_t> digest_service::run_due(std::int64_t now_ms) {
    auto all = state::settings_repository(*db_).list();
    if (!all)
        return all.error();
    std::int64_t queued = 0;
    for (const auto& [key, text] : *all) {
        if (!key.starts_with(key_prefix))
            continue;
        const auto tenant = std::string_view(key).substr(key_prefix.size());
        auto s = get(tenant);
        if (!s) {
            spdlog::warn("digest: skipped tenant={} error={}", tenant, s.error().message);
            continue;
        }
        if (!s->enabled || s->integrations.empty())
            continue;
        auto p = latest_period(s->hour, s->time_zone, now_ms);
        if (!p || p->day <= s->last_sent)
            continue; // YYYY-MM-DD compares as text
        auto n = enqueue(tenant, *s, *p, "digest:" + p->day, now_ms);
        if (!n)
            return n.error();
        queued += *n;
        s->last_sent = p->day;
        if (auto r = state::settings_repository(*db_).set(key, common::to_json_text(to_json(*s)), now_ms); !r)
            return r.error();
    }
    return queued;
}

} // namespace pulsegate::engine
