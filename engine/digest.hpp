#pragma once
// The daily digest (DESIGN.md, Delivery): once a day, at a configured hour
// of a tenant's time zone, a summary of its alerts over the 24 hours that
// ended then — opened, closed, still open by severity, the noisiest devices
// and rules — goes to the email integrations the tenant chose, as an outbox
// job like any alert event (retries, the delivery log, exactly once).
//
// Settings, per tenant, in the settings table under "digest.<tenant>":
//   {"enabled": true, "hour": 8, "time_zone": "Europe/Berlin",
//    "integrations": [3, 5]}
// plus "last_sent" (the local date of the last scheduled digest), kept by
// the scheduler.
//
// Schedule: run_due() (the daemon calls it every minute) makes the jobs of
// each enabled tenant whose latest digest hour has passed and whose
// "last_sent" is an earlier day. A gateway that was off at the hour sends
// the latest digest when it is back (never the missed ones before it).
// Saving settings marks the current period as sent, so enabling at 15:00
// with hour 8 sends the first digest at 8:00 the next day, not at once.
// Job keys ("digest:<local date>", unique per integration) make a second
// run for the same day add nothing, even after a crash between the jobs and
// "last_sent".
//
// The job's payload is the event JSON
//   {"event": "digest", "tenant", "at", "digest": {"day", "time_zone",
//    "from", "to", "opened", "closed", "still_open", "open_by_severity",
//    "noisiest_devices": [{"device", "alerts", "repeats"}],
//    "noisiest_rules": [{"rule", "name", "alerts", "repeats"}]}}
// which the email adapter renders (adapters/digest_text.hpp).
//
// Thread safety: every member may be called from any thread (the database
// serialises writes).

#include "storage/state/database.hpp"
#include "storage/state/secret_box.hpp"

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::engine {

struct digest_settings {
    bool enabled = false;
    int hour = 8;                       // 0..23, local time
    std::string time_zone = "UTC";      // an IANA name from the system's zoneinfo
    std::vector<std::int64_t> integrations; // email integrations of the tenant, ascending
    std::string last_sent;              // YYYY-MM-DD (local) of the last scheduled digest; "" none
};

// Reads {"enabled", "hour", "time_zone", "integrations"} (all optional;
// absent ones keep their value in `base`). Error (invalid_argument) with
// `why` naming the field when one is malformed or the zone is unknown.
boost::system::result<digest_settings> parse_digest_settings(const boost::json::object& o,
                                                              digest_settings base, std::string* why);
boost::json::object to_json(const digest_settings& s);

// The 24 hours that end at the latest `hour`:00 in `time_zone` at or before
// `now_ms` (23 or 25 hours across a daylight-saving change), and the local
// date of its end.
struct digest_period {
    std::int64_t from_ms = 0;
    std::int64_t to_ms = 0;
    std::string day;
};
boost::system::result<digest_period> latest_period(int hour, std::string_view time_zone, std::int64_t now_ms);

// Whether `name` is a time zone this system knows.
bool known_time_zone(std::string_view name);

class digest_service {
public:
    // `box` only opens the integration table (types are not secret).
    digest_service(storage::state::database& db, const storage::state::secret_box& box,
                   std::int64_t max_attempts = 10);

    storage::state::state_result<digest_settings> get(std::string_view tenant) const;
    // Stores `s` for `tenant` after checking that every integration is one of
    // the tenant's email integrations (invalid_argument naming the id
    // otherwise); marks the current period as sent (see above).
    storage::state::state_result<digest_settings> put(std::string_view tenant, digest_settings s,
                                                      std::int64_t now_ms);

    // The event JSON of `tenant`'s digest over [from_ms, to_ms).
    storage::state::state_result<std::string> payload(std::string_view tenant, const digest_period& p,
                                                      std::string_view time_zone, std::int64_t now_ms) const;
    // The digest of the 24 hours before `now_ms`, queued now for the
    // tenant's digest integrations (POST /api/v1/digest/send). Returns how
    // many jobs; 0 when the tenant chose none.
    storage::state::state_result<std::int64_t> send_now(std::string_view tenant, std::int64_t now_ms);
    // Every due digest, queued. Returns how many jobs.
    storage::state::state_result<std::int64_t> run_due(std::int64_t now_ms);

private:
    storage::state::state_result<std::int64_t> enqueue(std::string_view tenant, const digest_settings& s,
                                                       const digest_period& p, std::string event_key,
                                                       std::int64_t now_ms);

    storage::state::database* db_;
    const storage::state::secret_box* box_;
    std::int64_t max_attempts_;
};

} // namespace pulsegate::engine
