#include "daemon/telemetry_generator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace pulsegate::daemon {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr double day_s = 24.0 * 3600;
// The slow wander of every signal: long enough to look like weather on a
// 15-minute chart, short enough to move while someone watches.
constexpr double wander_period_s = 420;
constexpr double freezer_cycle_s = 1200;
constexpr double freezer_on_share = 0.4;

// -1..1 over the UTC day, 1 at 15:00.
double daily(std::int64_t wall_ms) {
    const double tod = std::fmod(static_cast<double>(wall_ms) / 1000.0, day_s);
    return std::sin(2 * std::numbers::pi * (tod - 9 * 3600) / day_s);
}

double seconds_of(milliseconds d) { return static_cast<double>(d.count()) / 1000.0; }

} // namespace

std::string_view to_string(device_kind k) noexcept {
    switch (k) {
    case device_kind::boiler: return "boiler";
    case device_kind::room: return "room";
    case device_kind::freezer: return "freezer";
    case device_kind::meter: return "meter";
    }
    return "room";
}

incident_schedule make_schedule(seconds breach_every, seconds silent_after) {
    incident_schedule s;
    const milliseconds every = std::max<milliseconds>(breach_every, min_breach_every);
    s.breach_every = every;
    s.breach_length = std::min<milliseconds>(seconds(60), every * 2 / 3);
    s.first_breach = std::min<milliseconds>(seconds(20), every / 4);
    s.silent_after = silent_after;
    s.silent_for = seconds(240);
    return s;
}

double reading::number(std::string_view name) const {
    for (const auto& m : metrics)
        if (m.name == name)
            if (const auto* d = std::get_if<double>(&m.value)) return *d;
    return std::numeric_limits<double>::quiet_NaN();
}

std::string reading::to_json() const {
    std::string out = "{";
    for (const auto& m : metrics) {
        if (out.size() > 1) out += ',';
        out += '"';
        out += m.name; // our own names: nothing to escape
        out += "\":";
        if (const auto* d = std::get_if<double>(&m.value))
            out += fmt::format("{:.2f}", *d);
        else
            out += std::get<bool>(m.value) ? "true" : "false";
    }
    out += '}';
    return out;
}

telemetry_generator::telemetry_generator(device_kind kind, device_role role, incident_schedule schedule,
                                         std::uint64_t seed, std::uint32_t index)
    : kind_(kind), role_(role), schedule_(schedule), phase_(97.0 * index),
      rng_(seed ^ (0x9E3779B97F4A7C15ULL * (static_cast<std::uint64_t>(index) + 1))) {}

double telemetry_generator::noise(double sigma) { return std::normal_distribution<double>(0.0, sigma)(rng_); }

double telemetry_generator::breach_level(milliseconds elapsed) const {
    if (role_ != device_role::breacher || elapsed < schedule_.first_breach) return 0;
    const auto len = schedule_.breach_length;
    const auto at = (elapsed - schedule_.first_breach) % schedule_.breach_every;
    if (at >= len) return 0;
    const double p = seconds_of(at);
    const double length = seconds_of(len);
    const double ramp = 0.15 * length;
    if (p < ramp) return p / ramp;
    if (p > length - ramp) return (length - p) / ramp;
    return 1;
}

bool telemetry_generator::silent(milliseconds elapsed) const {
    if (role_ != device_role::goes_silent) return false;
    const auto period = schedule_.silent_after + schedule_.silent_for;
    if (period.count() <= 0) return false;
    return elapsed % period >= schedule_.silent_after;
}

reading telemetry_generator::sample(milliseconds elapsed, std::int64_t wall_ms) {
    const double t = seconds_of(elapsed) + phase_;
    const double d = daily(wall_ms);
    const double w = std::sin(2 * std::numbers::pi * t / wander_period_s);
    reading r;
    auto add = [&r](std::string name, double v) { r.metrics.push_back({std::move(name), v}); };
    switch (kind_) {
    case device_kind::boiler: {
        const double level = breach_level(elapsed);
        const double normal = std::clamp(65 + 2 * d + 1.5 * w + noise(0.6), 60.0, 72.0);
        const double peak = breach_peak + noise(0.5);
        add("temperature", normal + (peak - normal) * level);
        add("pressure_bar", std::clamp(1.6 + 0.05 * w + noise(0.02), 1.4, 1.8) + 0.7 * level);
        add("power_w", std::max(0.0, 2400 + 300 * w + noise(60) + 800 * level));
        break;
    }
    case device_kind::room:
        add("temperature", std::clamp(21.5 + 2 * d + 0.5 * w + noise(0.15), 18.0, 25.0));
        add("humidity", std::clamp(45 - 6 * d + 2 * w + noise(0.8), 25.0, 70.0));
        add("co2_ppm", std::clamp(600 + 200 * d + 80 * w + noise(20), 400.0, 1000.0));
        break;
    case device_kind::freezer: {
        const double c = std::fmod(t, freezer_cycle_s) / freezer_cycle_s;
        const bool on = c < freezer_on_share;
        const double base = on ? -16 - 4 * (c / freezer_on_share)
                               : -20 + 4 * ((c - freezer_on_share) / (1 - freezer_on_share));
        add("temperature", std::clamp(base + noise(0.1), -21.0, -15.0));
        add("power_w", std::max(0.0, on ? 320 + noise(15) : 12 + noise(2)));
        r.metrics.push_back({"door_open", std::uniform_real_distribution<double>(0, 1)(rng_) < 0.01});
        break;
    }
    case device_kind::meter:
        add("power_w", std::max(500.0, 4200 + 1500 * d + 300 * w + noise(120)));
        add("voltage", std::clamp(230 + noise(0.8), 225.0, 235.0));
        break;
    }
    return r;
}

} // namespace pulsegate::daemon
