#include "engine/router.hpp"
#include "common/json_text.hpp"

#include "storage/state/integration_repository.hpp"
#include "storage/state/secret_box.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

namespace pulsegate::engine {

namespace st = storage::state;
namespace json = boost::json;

namespace {

const std::set<std::string_view> known_events = {"alert.opened", "alert.acknowledged", "alert.escalated",
                                                 "alert.closed"};

bool string_list(const json::object& o, std::string_view field, std::set<std::string>& out, std::string* why,
                 const std::set<std::string_view>* allowed, std::string_view allowed_text) {
    const auto* v = o.if_contains(field);
    if (v == nullptr || v->is_null())
        return true;
    const auto fail = [&] {
        if (why)
            *why = "match." + std::string(field) + " must be an array of " + std::string(allowed_text);
        return false;
    };
    if (!v->is_array())
        return fail();
    for (const auto& x : v->get_array()) {
        if (!x.is_string() || x.get_string().empty())
            return fail();
        const std::string s(x.get_string());
        if (allowed != nullptr && !allowed->contains(s))
            return fail();
        out.insert(s);
    }
    return true;
}

} // namespace

bool route_match::matches(const alert_event& e) const {
    if (!events.empty() && !events.contains(std::string(to_string(e.type))))
        return false;
    // severity: critical (0) is the highest.
    if (min_severity && static_cast<int>(e.alert.sev) > static_cast<int>(*min_severity))
        return false;
    if (!kinds.empty() && !kinds.contains(std::string(st::to_string(e.alert.kind))))
        return false;
    if (!devices.empty() && !devices.contains(e.alert.device))
        return false;
    for (const auto& [k, v] : labels) {
        const auto it = e.labels.find(k);
        if (it == e.labels.end() || it->second != v)
            return false;
    }
    if (!rules.empty() && !rules.contains(e.alert.rule))
        return false;
    return true;
}

boost::system::result<route_match> parse_route_match(const json::object& o, std::string* why) {
    const auto bad = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
    route_match m;
    for (const auto& [k, v] : o) {
        static const std::set<std::string_view> fields = {"events", "min_severity", "kinds", "devices", "labels",
                                                          "rules"};
        if (!fields.contains(k)) {
            if (why)
                *why = "match." + std::string(k) +
                       " is not a match criterion; use events, min_severity, kinds, devices, labels or rules";
            return bad;
        }
        (void)v;
    }
    if (!string_list(o, "events", m.events, why, &known_events,
                     "alert.opened, alert.acknowledged, alert.escalated, alert.closed"))
        return bad;
    static const std::set<std::string_view> kinds = {"THRESHOLD", "NO_HEARTBEAT"};
    if (!string_list(o, "kinds", m.kinds, why, &kinds, "THRESHOLD, NO_HEARTBEAT"))
        return bad;
    if (!string_list(o, "devices", m.devices, why, nullptr, "device ids"))
        return bad;
    if (const auto* v = o.if_contains("min_severity"); v != nullptr && !v->is_null()) {
        if (v->is_string())
            m.min_severity = st::parse_severity(v->get_string());
        if (!m.min_severity) {
            if (why)
                *why = "match.min_severity must be critical, major, minor, warning or info";
            return bad;
        }
    }
    if (const auto* v = o.if_contains("labels"); v != nullptr && !v->is_null()) {
        if (!v->is_object()) {
            if (why)
                *why = "match.labels must be an object of strings ({\"site\": \"plant-7\"})";
            return bad;
        }
        for (const auto& [k, x] : v->get_object()) {
            if (!x.is_string()) {
                if (why)
                    *why = "match.labels." + std::string(k) + " must be a string";
                return bad;
            }
            m.labels.emplace(std::string(k), std::string(x.get_string()));
        }
    }
    if (const auto* v = o.if_contains("rules"); v != nullptr && !v->is_null()) {
        const auto fail = [&] {
            if (why)
                *why = "match.rules must be an array of rule ids (positive integers)";
            return bad;
        };
        if (!v->is_array())
            return fail();
        for (const auto& x : v->get_array()) {
            if (!x.is_int64() || x.get_int64() <= 0)
                return fail();
            m.rules.insert(x.get_int64());
        }
    }
    return m;
}

json::object to_json(const route_match& m) {
    json::object o;
    const auto list = [](const std::set<std::string>& s) {
        json::array a;
        for (const auto& x : s)
            a.emplace_back(x);
        return a;
    };
    if (!m.events.empty())
        o["events"] = list(m.events);
    if (m.min_severity)
        o["min_severity"] = st::to_string(*m.min_severity);
    if (!m.kinds.empty())
        o["kinds"] = list(m.kinds);
    if (!m.devices.empty())
        o["devices"] = list(m.devices);
    if (!m.labels.empty()) {
        json::object l;
        for (const auto& [k, v] : m.labels)
            l[k] = v;
        o["labels"] = std::move(l);
    }
    if (!m.rules.empty()) {
        json::array a;
        for (auto r : m.rules)
            a.emplace_back(r);
        o["rules"] = std::move(a);
    }
    return o;
}

std::string event_key(const alert_event& e) {
    std::string k = "alert:" + std::to_string(e.alert.id) + ":";
    switch (e.type) {
    case alert_event_type::opened: k += "opened"; break;
    case alert_event_type::acknowledged: k += "acknowledged"; break;
    case alert_event_type::escalated: k += "escalated:" + std::to_string(e.alert.escalation_level); break;
    case alert_event_type::closed: k += "closed"; break;
    }
    return k;
}

job_router::job_router(st::database& db, router_options o)
    : db_(&db), opts_(o), table_(std::make_shared<const table>()) {}

st::state_result<void> job_router::reload() {
    // Only ids, types and flags are read: no secret is opened here.
    static const st::secret_box unused(st::secret_box::key_type{});
    st::integration_repository repo(*db_, unused);
    auto routes = repo.all_routes();
    if (!routes)
        return routes.error();
    auto briefs = repo.all_briefs();
    if (!briefs)
        return briefs.error();
    auto t = std::make_shared<table>();
    for (const auto& b : *briefs)
        if (b.enabled)
            t->enabled_integrations.insert(b.id);
    for (const auto& r : *routes) {
        if (!r.enabled)
            continue;
        boost::system::error_code ec;
        auto v = json::parse(r.match, ec);
        std::string why;
        auto m = !ec && v.is_object() ? parse_route_match(v.get_object(), &why)
                                      : boost::system::result<route_match>(
                                            boost::system::errc::make_error_code(boost::system::errc::invalid_argument));
        if (!m) {
            spdlog::warn("router: route {} of tenant {} is ignored: its match is not valid ({})", r.id, r.tenant, why);
            continue;
        }
        t->repeats = t->repeats || r.repeat_s > 0;
        t->by_tenant[r.tenant].push_back({r.id, std::move(*m), r.integrations, r.continue_matching, r.repeat_s});
    }
    std::lock_guard l(mu_);
    table_ = std::move(t);
    return {};
}

std::shared_ptr<const job_router::table> job_router::snapshot() const {
    std::lock_guard l(mu_);
    return table_;
}

bool job_router::has_repeats() const { return snapshot()->repeats; }

std::vector<st::new_delivery_job> job_router::repeats_for(const alert_event& e, std::int64_t now_ms) const {
    std::vector<st::new_delivery_job> out;
    if (e.alert.silenced || e.alert.status == st::alert_status::closed)
        return out;
    const auto t = snapshot();
    const auto it = t->by_tenant.find(e.alert.tenant);
    if (it == t->by_tenant.end())
        return out;
    std::string payload;
    for (const auto& r : it->second) {
        if (!r.match.matches(e))
            continue;
        const auto period_ms = r.repeat_s * 1000;
        const auto n = period_ms > 0 ? (now_ms - e.alert.opened_at_ms) / period_ms : 0;
        if (n >= 1) {
            if (payload.empty()) {
                boost::system::error_code ec;
                auto v = json::parse(event_json(e), ec);
                if (!ec && v.is_object())
                    v.get_object()["repeat"] = n;
                payload = common::to_json_text(v);
            }
            for (auto i : r.integrations) {
                if (!t->enabled_integrations.contains(i))
                    continue;
                st::new_delivery_job j;
                j.tenant = e.alert.tenant;
                j.alert = e.alert.id;
                j.integration = i;
                j.event = std::string(to_string(e.type));
                j.event_key = "alert:" + std::to_string(e.alert.id) + ":repeat:" + std::to_string(r.id) + ":" +
                              std::to_string(n);
                j.payload = payload;
                j.max_attempts = opts_.max_attempts;
                j.created_at_ms = now_ms;
                out.push_back(std::move(j));
            }
        }
        if (!r.continue_matching)
            break;
    }
    return out;
}

std::vector<st::new_delivery_job> job_router::jobs_for(const alert_event& e, const std::string& payload) const {
    std::vector<st::new_delivery_job> out;
    if (e.alert.silenced)
        return out;
    const auto t = snapshot();
    const auto it = t->by_tenant.find(e.alert.tenant);
    if (it == t->by_tenant.end())
        return out;
    std::set<std::int64_t> targets;
    for (const auto& r : it->second) {
        if (!r.match.matches(e))
            continue;
        for (auto i : r.integrations)
            if (t->enabled_integrations.contains(i))
                targets.insert(i);
        if (!r.continue_matching)
            break;
    }
    const auto key = event_key(e);
    for (auto i : targets) {
        st::new_delivery_job j;
        j.tenant = e.alert.tenant;
        j.alert = e.alert.id;
        j.integration = i;
        j.event = std::string(to_string(e.type));
        j.event_key = key;
        j.payload = payload;
        j.max_attempts = opts_.max_attempts;
        j.created_at_ms = e.at_ms;
        out.push_back(std::move(j));
    }
    return out;
}

} // namespace pulsegate::engine
