#pragma once
// Telemetry of one simulated device (`pulsegate simulate`, `serve --demo`):
// realistic-looking readings and the two incidents the demo is there to
// show, as a pure function of time and a seed. No I/O, no clock: the fleet
// (daemon/simulate.hpp) passes the time in, so tests replay a schedule
// exactly.
//
// What a device reports, by kind (metric names are the keys of the JSON
// object published on d/{device}/telemetry):
//   boiler   temperature (°C, 60..72 normal), pressure_bar, power_w
//   room     temperature (°C, 18..25), humidity (%), co2_ppm
//   freezer  temperature (°C, -21..-15, compressor cycles), power_w, door_open
//   meter    power_w (daily cycle), voltage
// Normal values of every kind stay below breach_clear, so a rule
// "temperature > breach_threshold" fires for the breacher only.
//
// Incidents (incident_schedule):
//   - the breacher's temperature ramps from its normal band over
//     breach_threshold to about breach_peak and back, for breach_length,
//     starting at first_breach and then every breach_every;
//   - the silent device publishes nothing (and the fleet disconnects it)
//     from silent_after for silent_for, then reports again, and so on with
//     period silent_after + silent_for.
//
// Randomness: noise comes from a std::mt19937_64 seeded with the seed and
// the device's index, drawn once per sample(): the same seed, index and
// sequence of calls give the same readings (with the same standard
// library; the distributions' algorithms are the library's).
//
// Thread safety: none; one generator per device, used by one thread.

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pulsegate::daemon {

enum class device_kind { boiler, room, freezer, meter };
// "boiler", "room", "freezer", "meter" (the demo devices' `kind` label).
std::string_view to_string(device_kind k) noexcept;

enum class device_role {
    steady,      // normal readings only
    breacher,    // breaches the temperature threshold on schedule
    goes_silent, // stops publishing on schedule
};

// The demo's threshold rule: temperature > breach_threshold for for_s,
// clearing at or below breach_clear (hysteresis).
inline constexpr double breach_threshold = 80.0;
inline constexpr double breach_clear = 75.0;
inline constexpr double breach_peak = 88.0;

struct incident_schedule {
    std::chrono::milliseconds first_breach{std::chrono::seconds(20)};
    std::chrono::milliseconds breach_every{std::chrono::seconds(180)};
    std::chrono::milliseconds breach_length{std::chrono::seconds(60)};
    std::chrono::milliseconds silent_after{std::chrono::seconds(60)};
    std::chrono::milliseconds silent_for{std::chrono::seconds(240)};
};

// Shortest breach period accepted: a breach lasts 2/3 of it, ramps take
// 15% of that at each end, and the middle must stay over the threshold
// longer than the demo rule's for_s (10 s).
inline constexpr std::chrono::seconds min_breach_every{30};

// The schedule for a breach every `breach_every` (>= min_breach_every):
// length min(60 s, 2/3 of the period), first breach at min(20 s, 1/4 of the
// period), and the silent device quiet from `silent_after` for 240 s at a
// time. The defaults (180 s, 60 s) show a first alert within a minute of
// the start.
incident_schedule make_schedule(std::chrono::seconds breach_every = std::chrono::seconds(180),
                                std::chrono::seconds silent_after = std::chrono::seconds(60));

// One metric of a reading: a number or a boolean.
struct metric {
    std::string name;
    std::variant<double, bool> value;
};

struct reading {
    std::vector<metric> metrics;

    // The number called `name`; NaN when absent or boolean.
    double number(std::string_view name) const;
    // The flat JSON object DESIGN.md's MQTT contract takes:
    // {"temperature":64.21,"pressure_bar":1.62,...}; numbers with 2 decimals.
    std::string to_json() const;
};

class telemetry_generator {
public:
    // `index` tells devices of one fleet apart (their noise and phase).
    telemetry_generator(device_kind kind, device_role role, incident_schedule schedule, std::uint64_t seed,
                        std::uint32_t index = 0);

    // The reading at `elapsed` since the fleet started; `wall_ms` (epoch ms)
    // places it in the day for the daily cycles (warmest at 15:00 UTC).
    // Draws noise: call it once per published reading, in time order.
    reading sample(std::chrono::milliseconds elapsed, std::int64_t wall_ms);

    // Where the breacher is in its incident: 0 outside a breach, rising to 1
    // at the plateau and back to 0. Always 0 for other roles.
    double breach_level(std::chrono::milliseconds elapsed) const;
    // True while the breacher is inside a breach window.
    bool breaching(std::chrono::milliseconds elapsed) const { return breach_level(elapsed) > 0; }
    // True while the silent device must publish nothing. Always false for
    // other roles.
    bool silent(std::chrono::milliseconds elapsed) const;

    device_kind kind() const noexcept { return kind_; }
    device_role role() const noexcept { return role_; }
    const incident_schedule& schedule() const noexcept { return schedule_; }

private:
    double noise(double sigma);

    device_kind kind_;
    device_role role_;
    incident_schedule schedule_;
    double phase_; // seconds: devices of a kind do not move in lockstep
    std::mt19937_64 rng_;
};

} // namespace pulsegate::daemon
