#pragma once
// The router (DESIGN.md, Delivery): turns an alert event into delivery jobs,
// one per integration that a matching route names. Routes are tried in id
// order; every route that matches adds its integrations, unless a matching
// route says "continue": false, which ends the search after it (first match
// wins from there, as in Alertmanager). An integration named by several
// matching routes gets one job. Silenced alerts and disabled routes or
// integrations make no jobs.
//
// A route's match (all given criteria must hold; an absent one matches all):
//   {"events": ["alert.opened", ...], "min_severity": "major",
//    "kinds": ["THRESHOLD"], "devices": ["dev-1"], "labels": {"site": "a"},
//    "rules": [12]}
//
// jobs_for() is called by the rules engine's writer inside the transaction
// that records the event (rules_engine::set_router), so an event is never
// stored without its jobs. reload() rereads routes and integrations after a
// change through the API; jobs_for() sees the new table from its next call.
//
// Thread safety: every member may be called from any thread.

#include "engine/alert_event.hpp"
#include "storage/state/database.hpp"
#include "storage/state/delivery_model.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::engine {

// A route's match, parsed. parse_route_match refuses what it cannot use,
// naming the field ("match.min_severity must be ...").
struct route_match {
    std::set<std::string> events;    // empty: all
    std::optional<storage::state::severity> min_severity;
    std::set<std::string> kinds;     // THRESHOLD | NO_HEARTBEAT
    std::set<std::string> devices;
    std::map<std::string, std::string> labels;
    std::set<std::int64_t> rules;

    bool matches(const alert_event& e) const;
};
boost::system::result<route_match> parse_route_match(const boost::json::object& o, std::string* why);
boost::json::object to_json(const route_match& m);

// "alert:42:opened", "alert:42:escalated:2": with the integration, what
// makes a job unique.
std::string event_key(const alert_event& e);

struct router_options {
    std::int64_t max_attempts = 10;
};

class job_router {
public:
    job_router(storage::state::database& db, router_options o);

    // Reads every route and integration. Blocking (the database).
    storage::state::state_result<void> reload();
    std::vector<storage::state::new_delivery_job> jobs_for(const alert_event& e, const std::string& payload) const;

    // Whether some enabled route has a repeat interval (repeat_s > 0).
    bool has_repeats() const;
    // Reminders for a still-open alert `e` (an alert.opened as of `now_ms`):
    // for every matching route with repeat_s > 0 whose n-th interval since
    // the alert opened has begun (n >= 1), one job per integration, keyed
    // "alert:42:repeat:<route>:<n>" so that a second sweep in the same
    // interval adds nothing. The payload is the alert.opened event with
    // "repeat": n. Routes that do not take alert.opened send no reminders.
    std::vector<storage::state::new_delivery_job> repeats_for(const alert_event& e, std::int64_t now_ms) const;

private:
    struct route_entry {
        std::int64_t id = 0;
        route_match match;
        std::vector<std::int64_t> integrations;
        bool continue_matching = true;
        std::int64_t repeat_s = 0;
    };
    struct table {
        std::map<std::string, std::vector<route_entry>, std::less<>> by_tenant; // enabled routes, by id
        std::set<std::int64_t> enabled_integrations;
        bool repeats = false;
    };
    std::shared_ptr<const table> snapshot() const;

    storage::state::database* db_;
    router_options opts_;
    mutable std::mutex mu_;
    std::shared_ptr<const table> table_;
};

} // namespace pulsegate::engine
