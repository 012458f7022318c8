#pragma once
// `serve --demo`: the demo tenant and what a newcomer needs to see the
// product work a minute after the first start.
//
// What seed_demo makes sure exists (creating only what is missing, so any
// number of --demo starts leave one of each):
//   - tenant `demo` ("Demo"), enabled;
//   - user `demo`, tenant_admin of `demo`, enabled, with a password newly
//     generated at every --demo start: only its argon2id hash is stored, and
//     the daemon prints the password once in its start-up line
//     ("demo: open http://ADDR/ and log in as demo / PASSWORD");
//   - six devices with labels site/floor/kind (demo_devices()); every start
//     gives each a new secret, kept in memory only for the in-process fleet
//     (daemon/simulate.hpp) and never printed: the previous secrets stop
//     working;
//   - two rules scoped to the label site=demo-plant: a threshold rule
//     (temperature > 80 for 10 s, clearing at 75, major) and a heartbeat
//     rule (interval 10 s, 3 missed, minor). A rule is recognised by its
//     name: a demo rule that was deleted comes back at the next --demo
//     start; one that was edited is left as it is.
// Labels and names of devices that exist already are left as they are.
//
// Refused, changing nothing: a user called `demo` that is not the demo
// tenant's tenant_admin (someone else's account: --demo will not reset its
// password).
//
// Call it before the rules engine and the MQTT identity start: they read
// rules, devices and secrets at start and so see the seed without being
// told. Blocking (SQLite, one argon2id hash): startup only.

#include "daemon/simulate.hpp"
#include "engine/identity.hpp"
#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::daemon {

inline constexpr std::string_view demo_tenant = "demo";
inline constexpr std::string_view demo_user = "demo";
inline constexpr std::string_view demo_site = "demo-plant";

struct demo_device {
    std::string id;
    std::string name;
    device_kind kind = device_kind::room;
    device_role role = device_role::steady;
    std::map<std::string, std::string> labels; // site, floor, kind
};

// The demo fleet: one breacher (demo-boiler), one that goes silent
// (dock-sensor) and four steady devices.
std::vector<demo_device> demo_devices();

struct demo_seed {
    std::string password;            // the demo user's, for the start-up line only
    std::vector<sim_device> devices; // user names demo/{id} and the new secrets, for the fleet
    // What this start created (all false / 0 on later starts).
    bool tenant_created = false;
    bool user_created = false;
    int devices_created = 0;
    int rules_created = 0;
};

// Makes sure the demo exists (see the top of the file) and returns the new
// credentials. Errors: the database's, and already_exists for a foreign
// user called `demo` (the message says what to do).
storage::state::state_result<demo_seed> seed_demo(storage::state::database& db, const engine::server_key& key,
                                                  std::int64_t now_ms);

} // namespace pulsegate::daemon
