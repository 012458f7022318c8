#include "engine/evaluator.hpp"

#include "engine/alert_control.hpp"

#include <boost/container/flat_map.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <cassert>

namespace pulsegate::engine {

namespace {

using st::alert_kind;
using st::alert_status;
using st::rule_kind;

struct compiled_rule {
    st::rule_record rec;
    threshold_params params;
    std::uint32_t metric = 0;     // threshold: interned metric id
    std::int64_t timeout_ms = 0;  // heartbeat: interval_s * missed
    bool changed = false;         // new or different in the last set_rules
};

struct tenant_state;

// What evaluating one reading needs of a threshold rule, packed so that the
// rules of a metric are read from one contiguous array.
struct metric_watch {
    threshold_params params;
    std::int64_t id = 0;
    const compiled_rule* rule = nullptr;
    bool all_devices = false; // no device and no label in the scope
};

struct rule_slot {
    threshold_state th;
    std::int64_t alert_id = 0;     // the non-closed alert of this (rule, device), 0: none
    std::int64_t hb_from_ms = 0;   // heartbeat: counting starts no earlier (manual close)
    std::uint32_t hb_gen = 0;      // heartbeat: the armed timer's generation
    bool hb_armed = false;
};

struct device_state {
    tenant_state* tenant = nullptr;
    std::string id;
    st::label_map labels;
    std::int64_t since_ms = 0;        // registered or first seen
    std::int64_t last_message_ms = 0; // 0: never heard from
    bool liveness_dirty = false;
    bool registered = false;          // listed by the last set_devices
    bool removed = false;             // was registered, no longer is: in no rule's scope
    int silent = 0;                   // open NO_HEARTBEAT alerts
    // By rule id; a sorted vector: a device has few slots, and a hash
    // map's minimum bucket array would cost ~1.7 KB per device.
    boost::container::flat_map<std::int64_t, rule_slot> slots;
};

struct tenant_state {
    std::string id;
    std::unordered_map<std::int64_t, std::unique_ptr<compiled_rule>> rules;
    boost::unordered_flat_map<std::uint32_t, std::vector<metric_watch>> by_metric; // enabled only, by id
    std::vector<const compiled_rule*> heartbeat;                                          // enabled only
    string_flat_map<std::unique_ptr<device_state>> devices;
    std::vector<st::silence_record> silences;
};

enum class timer_kind : std::uint8_t { pending, heartbeat, escalate };

struct timer_ref {
    device_state* dev = nullptr;
    std::int64_t id = 0; // rule (pending, heartbeat) or alert (escalate)
    std::uint32_t gen = 0;
    timer_kind kind = timer_kind::pending;
};

struct alert_entry {
    st::alert_record rec;
    device_state* dev = nullptr;
    bool dirty = false;
    std::uint32_t escalation_gen = 0;
};

// Whether `labels` carries every pair of `wanted`.
bool carries(const st::label_map& labels, const st::label_map& wanted) {
    for (const auto& [k, v] : wanted) {
        const auto it = labels.find(k);
        if (it == labels.end() || it->second != v) return false;
    }
    return true;
}

bool in_scope(const st::rule_record& r, const device_state& d) {
    if (d.removed) return false;
    if (r.scope.device) return *r.scope.device == d.id;
    return carries(d.labels, r.scope.labels);
}

bool matches(const st::silence_record& s, const st::alert_record& a, const st::label_map& labels,
             std::int64_t now_ms) {
    if (now_ms < s.starts_at_ms || now_ms >= s.ends_at_ms) return false;
    const auto& m = s.matchers;
    if (m.device && *m.device != a.device) return false;
    if (m.rule && *m.rule != a.rule) return false;
    if (m.kind && *m.kind != a.kind) return false;
    if (m.sev && *m.sev != a.sev) return false;
    return carries(labels, m.labels);
}

std::string format_value(double v) { return fmt::format("{:g}", v); }

} // namespace

std::string_view to_string(alert_event_type t) noexcept {
    switch (t) {
    case alert_event_type::opened: return "alert.opened";
    case alert_event_type::acknowledged: return "alert.acknowledged";
    case alert_event_type::escalated: return "alert.escalated";
    case alert_event_type::closed: return "alert.closed";
    }
    return "alert.unknown";
}

struct evaluator::impl {
    // not_found, or already_closed for an alert closed lately in `tenant`.
    boost::system::error_code missing(std::string_view tenant, std::int64_t id) const {
        const auto it = recently_closed.find(id);
        return make_error_code(it != recently_closed.end() && it->second == tenant ? alert_errc::already_closed
                                                                                    : alert_errc::not_found);
    }

    evaluator_options opts;
    std::int64_t started_ms;
    std::int64_t next_id;
    std::vector<alert_event>& events;
    timer_wheel<timer_ref> wheel;
    string_flat_map<std::unique_ptr<tenant_state>> tenants;
    string_map<std::uint32_t> metric_ids;
    std::vector<std::string> metric_names;
    std::unordered_map<std::int64_t, alert_entry> alerts; // non-closed
    // The last alerts closed (id -> tenant), so that an ack or close of one
    // answers already_closed before the database has the close.
    static constexpr std::size_t recently_closed_max = 4096;
    std::unordered_map<std::int64_t, std::string> recently_closed;
    std::deque<std::int64_t> recently_closed_order;
    std::vector<std::int64_t> dirty_alerts;
    std::vector<device_state*> dirty_devices;
    evaluator_stats counters;

    impl(evaluator_options o, std::int64_t now_ms, std::int64_t first_id, std::vector<alert_event>& ev)
        : opts(o), started_ms(now_ms), next_id(first_id), events(ev), wheel(now_ms, o.tick_ms) {}

    tenant_state& tenant(std::string_view id) {
        auto it = tenants.find(id);
        if (it == tenants.end()) {
            auto t = std::make_unique<tenant_state>();
            t->id = std::string(id);
            it = tenants.emplace(t->id, std::move(t)).first;
        }
        return *it->second;
    }
    tenant_state* find_tenant(std::string_view id) const {
        const auto it = tenants.find(id);
        return it == tenants.end() ? nullptr : it->second.get();
    }

    std::uint32_t intern(const std::string& metric) {
        auto [it, inserted] = metric_ids.try_emplace(metric, static_cast<std::uint32_t>(metric_names.size()));
        if (inserted) metric_names.push_back(metric);
        return it->second;
    }

    // The device, created (first seen or registered at `since_ms`) when new.
    device_state& device(tenant_state& t, std::string_view id, std::int64_t since_ms, std::int64_t now_ms) {
        if (auto it = t.devices.find(id); it != t.devices.end()) return *it->second;
        auto d = std::make_unique<device_state>();
        d->tenant = &t;
        d->id = std::string(id);
        d->since_ms = since_ms;
        auto& dev = *t.devices.emplace(d->id, std::move(d)).first->second;
        for (const auto* r : t.heartbeat)
            if (in_scope(r->rec, dev)) arm_heartbeat(dev, *r, dev.slots[r->rec.id], now_ms);
        return dev;
    }

    // ---- events ---------------------------------------------------------------

    void emit(alert_event_type type, alert_entry& e, std::int64_t now_ms) {
        const auto& t = *e.dev->tenant;
        e.rec.silenced = std::any_of(t.silences.begin(), t.silences.end(), [&](const st::silence_record& s) {
            return matches(s, e.rec, e.dev->labels, now_ms);
        });
        events.push_back({type, now_ms, e.rec, e.dev->labels});
    }

    void mark_dirty(alert_entry& e) {
        if (e.dirty) return;
        e.dirty = true;
        dirty_alerts.push_back(e.rec.id);
    }

    // ---- alerts ---------------------------------------------------------------

    // `value`: the reading that triggered it; `last`: the latest one.
    void open_alert(device_state& dev, const compiled_rule& r, rule_slot& slot, std::optional<double> value,
                    std::optional<double> last, std::int64_t now_ms) {
        assert(slot.alert_id == 0);
        st::alert_record a;
        a.id = next_id++;
        a.tenant = dev.tenant->id;
        a.device = dev.id;
        a.rule = r.rec.id;
        a.rule_name = r.rec.name;
        a.sev = r.rec.sev;
        a.status = alert_status::open;
        a.opened_at_ms = now_ms;
        a.last_seen_at_ms = now_ms;
        if (r.rec.kind == rule_kind::threshold) {
            a.kind = alert_kind::threshold;
            a.metric = r.rec.metric;
            a.value = value;
            a.last_value = last;
            a.threshold = r.rec.value;
            a.message = fmt::format("{} {} {} {} on {}", r.rec.metric, value ? format_value(*value) : "?",
                                    st::to_string(r.rec.op), format_value(r.rec.value), dev.id) +
                        (r.rec.for_s > 0 ? fmt::format(" for {} s", r.rec.for_s) : "") +
                        fmt::format(" (rule {})", r.rec.name);
        } else {
            a.kind = alert_kind::no_heartbeat;
            a.message = fmt::format("no message from {} for {} s ({} missed x {} s, rule {})", dev.id,
                                    r.timeout_ms / 1000, r.rec.missed, r.rec.interval_s, r.rec.name);
            ++dev.silent;
        }
        slot.alert_id = a.id;
        auto& e = alerts.emplace(a.id, alert_entry{std::move(a), &dev, false, 0}).first->second;
        ++counters.opened;
        schedule_escalation(e, r, now_ms);
        emit(alert_event_type::opened, e, now_ms);
    }

    // (Re)arms the escalation of `e` under rule `r`; a timer armed before
    // is void from now on, even when `r` no longer escalates.
    void schedule_escalation(alert_entry& e, const compiled_rule& r, std::int64_t now_ms) {
        ++e.escalation_gen;
        if (!r.rec.escalate_after_s || e.rec.status != alert_status::open) return;
        const auto from = e.rec.escalated_at_ms.value_or(e.rec.opened_at_ms);
        wheel.schedule(std::max(now_ms, from + *r.rec.escalate_after_s * 1000),
                       {e.dev, e.rec.id, e.escalation_gen, timer_kind::escalate});
    }

    // Closes `id` (automatically when `by` is empty) and forgets it.
    void close_alert(std::int64_t id, std::optional<std::string> by, std::int64_t now_ms,
                     std::optional<double> value = std::nullopt) {
        const auto it = alerts.find(id);
        if (it == alerts.end()) return;
        auto& e = it->second;
        auto& dev = *e.dev;
        if (auto s = dev.slots.find(e.rec.rule); s != dev.slots.end() && s->second.alert_id == id) {
            s->second.alert_id = 0;
            s->second.th.phase = threshold_phase::normal;
        }
        if (e.rec.kind == alert_kind::no_heartbeat) --dev.silent;
        e.rec.status = alert_status::closed;
        e.rec.closed_at_ms = now_ms;
        e.rec.closed_by = std::move(by);
        if (value) {
            e.rec.last_value = value;
            e.rec.last_seen_at_ms = now_ms;
        }
        ++counters.closed;
        emit(alert_event_type::closed, e, now_ms);
        if (recently_closed_order.size() == recently_closed_max) {
            recently_closed.erase(recently_closed_order.front());
            recently_closed_order.pop_front();
        }
        recently_closed.emplace(id, e.rec.tenant);
        recently_closed_order.push_back(id);
        alerts.erase(it);
    }

    // ---- heartbeat ------------------------------------------------------------

    std::int64_t heartbeat_deadline(const device_state& dev, const compiled_rule& r, const rule_slot& slot) const {
        auto from = dev.last_message_ms != 0 ? dev.last_message_ms : dev.since_ms;
        from = std::max({from, r.rec.updated_at_ms, slot.hb_from_ms});
        return std::max(from + r.timeout_ms, started_ms + opts.heartbeat_grace_ms);
    }

    void arm_heartbeat(device_state& dev, const compiled_rule& r, rule_slot& slot, std::int64_t now_ms) {
        if (slot.alert_id != 0) return; // silent already: the next message re-arms
        slot.hb_armed = true;
        wheel.schedule(std::max(now_ms, heartbeat_deadline(dev, r, slot)),
                       {&dev, r.rec.id, ++slot.hb_gen, timer_kind::heartbeat});
    }

    // ---- timers ---------------------------------------------------------------

    const compiled_rule* enabled_rule(const tenant_state& t, std::int64_t id, rule_kind kind) const {
        const auto it = t.rules.find(id);
        if (it == t.rules.end() || !it->second->rec.enabled || it->second->rec.kind != kind) return nullptr;
        return it->second.get();
    }

    void fire(std::int64_t deadline_ms, const timer_ref& ref, std::int64_t now_ms) {
        ++counters.timers_fired;
        auto& dev = *ref.dev;
        switch (ref.kind) {
        case timer_kind::pending: {
            const auto* r = enabled_rule(*dev.tenant, ref.id, rule_kind::threshold);
            const auto s = dev.slots.find(ref.id);
            if (r == nullptr || s == dev.slots.end() || !in_scope(r->rec, dev)) return;
            auto& slot = s->second;
            if (slot.th.phase != threshold_phase::pending || slot.th.due_ms(r->params) != deadline_ms) return;
            if (slot.th.on_time(r->params, now_ms) == threshold_action::open && slot.alert_id == 0)
                open_alert(dev, *r, slot, slot.th.first_value, slot.th.first_value, now_ms);
            return;
        }
        case timer_kind::heartbeat: {
            const auto s = dev.slots.find(ref.id);
            if (s == dev.slots.end() || s->second.hb_gen != ref.gen) return;
            auto& slot = s->second;
            slot.hb_armed = false;
            const auto* r = enabled_rule(*dev.tenant, ref.id, rule_kind::heartbeat);
            if (r == nullptr || !in_scope(r->rec, dev) || slot.alert_id != 0) return;
            const auto due = heartbeat_deadline(dev, *r, slot);
            if (due > now_ms) {
                slot.hb_armed = true;
                wheel.schedule(due, ref);
                return;
            }
            open_alert(dev, *r, slot, std::nullopt, std::nullopt, now_ms);
            return;
        }
        case timer_kind::escalate: {
            const auto it = alerts.find(ref.id);
            if (it == alerts.end() || it->second.escalation_gen != ref.gen) return;
            auto& e = it->second;
            const auto rit = dev.tenant->rules.find(e.rec.rule);
            if (e.rec.status != alert_status::open || rit == dev.tenant->rules.end() ||
                !rit->second->rec.escalate_after_s)
                return;
            ++e.rec.escalation_level;
            e.rec.escalated_at_ms = now_ms;
            ++counters.escalated;
            emit(alert_event_type::escalated, e, now_ms);
            schedule_escalation(e, *rit->second, now_ms);
            return;
        }
        }
    }

    // Closes the tenant's alerts whose rule is gone, disabled or no longer
    // covers the device; arms heartbeats of devices that came into scope.
    // An alert whose rule no longer watches what it was opened for (rule
    // gone, disabled, another kind or metric, device out of scope) would
    // never close by itself: it closes now.
    static bool still_watched(const alert_entry& e, const compiled_rule* r) {
        if (r == nullptr || !r->rec.enabled || !in_scope(r->rec, *e.dev)) return false;
        if (e.rec.kind == alert_kind::threshold)
            return r->rec.kind == rule_kind::threshold && r->rec.metric == e.rec.metric;
        return r->rec.kind == rule_kind::heartbeat && r->timeout_ms > 0;
    }

    void rescope(tenant_state& t, std::int64_t now_ms) {
        std::vector<std::int64_t> to_close;
        for (const auto& [id, e] : alerts) {
            if (e.dev->tenant != &t) continue;
            const auto it = t.rules.find(e.rec.rule);
            if (!still_watched(e, it == t.rules.end() ? nullptr : it->second.get())) to_close.push_back(id);
        }
        std::sort(to_close.begin(), to_close.end());
        for (const auto id : to_close) close_alert(id, std::nullopt, now_ms);
        for (const auto& [name, dev] : t.devices) {
            for (const auto* r : t.heartbeat) {
                if (!in_scope(r->rec, *dev)) continue;
                auto& slot = dev->slots[r->rec.id];
                if (r->changed || !slot.hb_armed) arm_heartbeat(*dev, *r, slot, now_ms);
            }
        }
    }

    // A device that was registered and is no longer listed was deleted:
    // its alerts close (settle) and no rule watches it any more.
    void apply_devices(tenant_state& t, std::span<const registered_device> devices, std::int64_t now_ms) {
        for (auto& [id, dev] : t.devices) {
            dev->labels.clear();
            if (dev->registered) dev->removed = true;
        }
        for (const auto& d : devices) {
            auto& dev = device(t, d.id, d.created_at_ms, now_ms);
            dev.labels = d.labels;
            dev.registered = true;
            dev.removed = false;
        }
    }

    void apply_rules(tenant_state& t, std::span<const st::rule_record> rules, std::int64_t) {
        std::unordered_map<std::int64_t, std::unique_ptr<compiled_rule>> next;
        for (const auto& rec : rules) {
            auto c = std::make_unique<compiled_rule>();
            c->rec = rec;
            c->params = threshold_params::of(rec);
            c->timeout_ms = rec.interval_s * rec.missed * 1000;
            if (rec.kind == rule_kind::threshold) c->metric = intern(rec.metric);
            const auto old = t.rules.find(rec.id);
            c->changed = old == t.rules.end() || !(old->second->rec == rec);
            next.emplace(rec.id, std::move(c));
        }
        // Pending episodes of changed or removed threshold rules start over.
        for (auto& [name, dev] : t.devices) {
            for (auto& [rule_id, slot] : dev->slots) {
                const auto it = next.find(rule_id);
                if ((it == next.end() || it->second->changed) && slot.th.phase == threshold_phase::pending)
                    slot.th.phase = threshold_phase::normal;
            }
        }
        t.rules = std::move(next);
        t.by_metric.clear();
        t.heartbeat.clear();
        for (const auto& [id, c] : t.rules) {
            if (!c->rec.enabled) continue;
            if (c->rec.kind == rule_kind::threshold)
                t.by_metric[c->metric].push_back({c->params, id, c.get(),
                                                  !c->rec.scope.device && c->rec.scope.labels.empty()});
            else if (c->timeout_ms > 0) t.heartbeat.push_back(c.get());
        }
        // Deterministic order (by id) for evaluation and events.
        auto by_id = [](const compiled_rule* a, const compiled_rule* b) { return a->rec.id < b->rec.id; };
        for (auto& [metric, list] : t.by_metric)
            std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
        std::sort(t.heartbeat.begin(), t.heartbeat.end(), by_id);
    }

    // After devices or rules changed: alerts no longer watched close,
    // heartbeats come and go with the scopes, escalation timers follow
    // changed rules.
    void settle(tenant_state& t, std::int64_t now_ms) {
        rescope(t, now_ms);
        for (auto& [id, e] : alerts) {
            if (e.dev->tenant != &t) continue;
            const auto it = t.rules.find(e.rec.rule);
            if (it != t.rules.end() && it->second->changed) schedule_escalation(e, *it->second, now_ms);
        }
        for (auto& [id, c] : t.rules) c->changed = false;
    }

    // Any message of `dev`: liveness, and the end of its NO_HEARTBEAT alerts.
    void alive(tenant_state& t, device_state& dev, std::int64_t now_ms) {
        ++counters.messages;
        dev.removed = false; // heard from again (anonymous clients can)
        dev.last_message_ms = std::max(dev.last_message_ms, now_ms);
        if (!dev.liveness_dirty) {
            dev.liveness_dirty = true;
            dirty_devices.push_back(&dev);
        }
        if (dev.silent == 0) return;
        for (const auto* r : t.heartbeat) {
            const auto s = dev.slots.find(r->rec.id);
            if (s == dev.slots.end() || s->second.alert_id == 0) continue;
            close_alert(s->second.alert_id, std::nullopt, now_ms);
            arm_heartbeat(dev, *r, s->second, now_ms);
        }
    }

    // One value of a metric of `dev` against the rules watching that metric.
    // A (rule, device) pair gets its slot at its first breach: while none
    // exists the pair is normal, and a value that does not breach is one
    // comparison.
    void evaluate(device_state& dev, const std::vector<metric_watch>& rules, double value, std::int64_t now_ms) {
        // `rules` and the device's slots are both sorted by rule id: one
        // forward walk finds every slot (a new one is inserted in place).
        auto pos = dev.slots.begin();
        for (const auto& w : rules) {
            if (w.all_devices ? dev.removed : !in_scope(w.rule->rec, dev)) continue;
            ++counters.evaluations;
            while (pos != dev.slots.end() && pos->first < w.id) ++pos;
            const bool known = pos != dev.slots.end() && pos->first == w.id;
            if (!known && !w.params.breaches(value)) continue;
            if (!known) pos = dev.slots.emplace_hint(pos, w.id, rule_slot{});
            const auto* r = w.rule;
            auto& slot = pos->second;
            ++pos;
            switch (slot.th.on_reading(r->params, value, now_ms)) {
            case threshold_action::none: break;
            case threshold_action::arm:
                wheel.schedule(slot.th.due_ms(r->params), {&dev, r->rec.id, 0, timer_kind::pending});
                break;
            case threshold_action::open:
                if (slot.alert_id == 0) {
                    open_alert(dev, *r, slot, slot.th.first_value, value, now_ms);
                    break;
                }
                [[fallthrough]];
            case threshold_action::repeat:
                if (auto it = alerts.find(slot.alert_id); it != alerts.end()) {
                    auto& a = it->second.rec;
                    ++a.count;
                    a.last_value = value;
                    a.last_seen_at_ms = now_ms;
                    mark_dirty(it->second);
                }
                break;
            case threshold_action::close: close_alert(slot.alert_id, std::nullopt, now_ms, value); break;
            }
        }
    }
};

evaluator::evaluator(evaluator_options o, std::int64_t now_ms, std::int64_t next_alert_id)
    : impl_(std::make_unique<impl>(o, now_ms, next_alert_id, events_)) {}

evaluator::~evaluator() = default;

void evaluator::restore(std::span<const st::alert_record> non_closed, std::span<const st::liveness_record> seen) {
    auto& m = *impl_;
    for (const auto& l : seen) {
        auto& dev = m.device(m.tenant(l.tenant), l.device, l.last_message_ms, m.started_ms);
        dev.last_message_ms = std::max(dev.last_message_ms, l.last_message_ms);
    }
    for (const auto& a : non_closed) {
        auto& dev = m.device(m.tenant(a.tenant), a.device, a.opened_at_ms, m.started_ms);
        auto& slot = dev.slots[a.rule];
        if (slot.alert_id != 0) continue; // the schema allows one; keep the first
        slot.alert_id = a.id;
        if (a.kind == alert_kind::threshold) {
            slot.th.phase = threshold_phase::firing;
            slot.th.first_value = a.value.value_or(0);
        } else {
            ++dev.silent;
        }
        m.alerts.emplace(a.id, alert_entry{a, &dev, false, 0});
        m.next_id = std::max(m.next_id, a.id + 1);
    }
}

void evaluator::set_devices(std::string_view tenant, std::span<const registered_device> devices,
                            std::int64_t now_ms) {
    auto& t = impl_->tenant(tenant);
    impl_->apply_devices(t, devices, now_ms);
    impl_->settle(t, now_ms);
}

void evaluator::set_rules(std::string_view tenant, std::span<const st::rule_record> rules, std::int64_t now_ms) {
    auto& t = impl_->tenant(tenant);
    impl_->apply_rules(t, rules, now_ms);
    impl_->settle(t, now_ms);
}

void evaluator::load_tenant(std::string_view tenant, std::span<const registered_device> devices,
                            std::span<const st::rule_record> rules, std::span<const st::silence_record> silences,
                            std::int64_t now_ms) {
    auto& t = impl_->tenant(tenant);
    t.silences.assign(silences.begin(), silences.end());
    impl_->apply_devices(t, devices, now_ms);
    impl_->apply_rules(t, rules, now_ms);
    impl_->settle(t, now_ms);
}

void evaluator::set_silences(std::string_view tenant, std::span<const st::silence_record> silences) {
    impl_->tenant(tenant).silences.assign(silences.begin(), silences.end());
}

std::shared_ptr<const interest> evaluator::make_interest() const {
    auto out = std::make_shared<interest>();
    for (const auto& [name, t] : impl_->tenants) {
        interest::tenant ti;
        for (const auto& [metric, list] : t->by_metric)
            if (!list.empty()) ti.metrics.emplace(impl_->metric_names[metric], metric);
        ti.heartbeat = !t->heartbeat.empty();
        if (ti.heartbeat || !ti.metrics.empty()) out->tenants.emplace(name, std::move(ti));
    }
    return out;
}

std::optional<std::uint32_t> evaluator::metric_id(std::string_view metric) const {
    const auto it = impl_->metric_ids.find(metric);
    if (it == impl_->metric_ids.end()) return std::nullopt;
    return it->second;
}

void evaluator::on_message(std::string_view tenant, std::string_view device, std::int64_t now_ms) {
    auto& m = *impl_;
    auto& t = m.tenant(tenant);
    m.alive(t, m.device(t, device, now_ms, now_ms), now_ms);
}

void evaluator::on_reading(std::string_view tenant, std::string_view device, std::uint32_t metric, double value,
                           std::int64_t now_ms) {
    auto& m = *impl_;
    ++m.counters.readings;
    auto* t = m.find_tenant(tenant);
    if (t == nullptr) return;
    const auto rules = t->by_metric.find(metric);
    if (rules == t->by_metric.end()) return;
    m.evaluate(m.device(*t, device, now_ms, now_ms), rules->second, value, now_ms);
}

void evaluator::on_readings(std::string_view tenant, std::string_view device, bool liveness,
                            std::span<const std::pair<std::uint32_t, double>> values, std::int64_t now_ms) {
    auto& m = *impl_;
    auto& t = m.tenant(tenant);
    auto& dev = m.device(t, device, now_ms, now_ms);
    if (liveness) m.alive(t, dev, now_ms);
    for (const auto& [metric, value] : values) {
        ++m.counters.readings;
        const auto rules = t.by_metric.find(metric);
        if (rules != t.by_metric.end()) m.evaluate(dev, rules->second, value, now_ms);
    }
}

void evaluator::tick(std::int64_t now_ms) {
    auto& m = *impl_;
    m.wheel.advance(now_ms, [&](std::int64_t deadline, const timer_ref& ref) { m.fire(deadline, ref, now_ms); });
}

boost::system::result<st::alert_record> evaluator::acknowledge(std::string_view tenant, std::int64_t id,
                                                               std::string_view user, std::int64_t now_ms) {
    auto& m = *impl_;
    const auto it = m.alerts.find(id);
    if (it == m.alerts.end() || it->second.rec.tenant != tenant) return m.missing(tenant, id);
    auto& e = it->second;
    if (e.rec.status == alert_status::acknowledged) return make_error_code(alert_errc::already_acknowledged);
    e.rec.status = alert_status::acknowledged;
    e.rec.acknowledged_at_ms = now_ms;
    e.rec.acknowledged_by = std::string(user);
    ++m.counters.acknowledged;
    m.emit(alert_event_type::acknowledged, e, now_ms);
    return e.rec;
}

boost::system::result<st::alert_record> evaluator::close(std::string_view tenant, std::int64_t id,
                                                         std::string_view user, std::int64_t now_ms) {
    auto& m = *impl_;
    const auto it = m.alerts.find(id);
    if (it == m.alerts.end() || it->second.rec.tenant != tenant) return m.missing(tenant, id);
    auto& dev = *it->second.dev;
    const auto rule = it->second.rec.rule;
    const bool heartbeat = it->second.rec.kind == alert_kind::no_heartbeat;
    m.close_alert(id, std::string(user), now_ms);
    auto closed = m.events.back().alert;
    // A silent device closed by hand gets a full timeout before the next one.
    if (heartbeat) {
        auto& slot = dev.slots[rule];
        slot.hb_from_ms = now_ms;
        if (const auto* r = m.enabled_rule(*dev.tenant, rule, rule_kind::heartbeat)) m.arm_heartbeat(dev, *r, slot, now_ms);
    }
    return closed;
}

boost::system::result<st::alert_record> evaluator::live(std::string_view tenant, std::int64_t id) const {
    const auto it = impl_->alerts.find(id);
    if (it == impl_->alerts.end() || it->second.rec.tenant != tenant) return make_error_code(alert_errc::not_found);
    return it->second.rec;
}

std::vector<st::alert_record> evaluator::active_alerts() const {
    std::vector<st::alert_record> out;
    out.reserve(impl_->alerts.size());
    for (const auto& [id, e] : impl_->alerts) out.push_back(e.rec);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

void evaluator::take_dirty(std::vector<st::alert_record>& out) {
    auto& m = *impl_;
    for (const auto id : m.dirty_alerts) {
        const auto it = m.alerts.find(id);
        if (it == m.alerts.end() || !it->second.dirty) continue;
        it->second.dirty = false;
        out.push_back(it->second.rec);
    }
    m.dirty_alerts.clear();
}

void evaluator::take_liveness(std::vector<st::liveness_record>& out) {
    auto& m = *impl_;
    for (auto* dev : m.dirty_devices) {
        dev->liveness_dirty = false;
        out.push_back({dev->tenant->id, dev->id, dev->last_message_ms});
    }
    m.dirty_devices.clear();
}

evaluator_stats evaluator::stats() const noexcept {
    auto s = impl_->counters;
    s.timers = impl_->wheel.size();
    s.open_alerts = impl_->alerts.size();
    std::size_t devices = 0;
    for (const auto& [name, t] : impl_->tenants) devices += t->devices.size();
    s.devices = devices;
    return s;
}

} // namespace pulsegate::engine
