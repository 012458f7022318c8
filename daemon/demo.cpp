#include "daemon/demo.hpp"

#include "storage/state/audit_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rule_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace pulsegate::daemon {

namespace {

namespace st = storage::state;
namespace json = boost::json;

// 20 characters of the credential alphabet: about 100 bits.
constexpr std::size_t demo_password_length = 20;

std::vector<st::rule_record> demo_rules(std::int64_t now_ms) {
    st::rule_record hot;
    hot.tenant = std::string(demo_tenant);
    hot.name = "High temperature";
    hot.description = "Demo: temperature above 80 for 10 s; clears at 75. demo-boiler crosses it every few minutes.";
    hot.kind = st::rule_kind::threshold;
    hot.sev = st::severity::major;
    hot.scope.labels = {{"site", std::string(demo_site)}};
    hot.metric = "temperature";
    hot.op = st::compare_op::gt;
    hot.value = breach_threshold;
    hot.for_s = 10;
    hot.clear_value = breach_clear;

    st::rule_record silent;
    silent.tenant = std::string(demo_tenant);
    silent.name = "Device silent";
    silent.description = "Demo: no message for 30 s (3 missed 10 s intervals). dock-sensor goes quiet now and then.";
    silent.kind = st::rule_kind::heartbeat;
    silent.sev = st::severity::minor;
    silent.scope.labels = {{"site", std::string(demo_site)}};
    silent.interval_s = 10;
    silent.missed = 3;

    std::vector<st::rule_record> out{hot, silent};
    for (auto& r : out) r.created_at_ms = r.updated_at_ms = now_ms;
    return out;
}

st::state_result<bool> ensure_tenant(st::database& db, std::int64_t now_ms) {
    st::tenant_repository tenants(db);
    auto t = tenants.get(demo_tenant);
    if (!t) return t.error();
    if (!*t) {
        if (auto r = tenants.create({std::string(demo_tenant), "Demo", now_ms, false}); !r) return r.error();
        return true;
    }
    if ((*t)->disabled)
        if (auto r = tenants.set_disabled(demo_tenant, false); !r) return r.error();
    return false;
}

st::state_result<bool> ensure_user(st::database& db, const std::string& password, std::int64_t now_ms) {
    st::user_repository users(db);
    auto u = users.get_by_name(demo_user);
    if (!u) return u.error();
    const auto hash = engine::hash_password(password);
    if (!*u) {
        auto id = users.create({std::string(demo_tenant), std::string(demo_user), st::user_role::tenant_admin, hash,
                                now_ms});
        if (!id) return id.error();
        return true;
    }
    const auto& existing = **u;
    if (existing.role != st::user_role::tenant_admin || existing.tenant != std::string(demo_tenant))
        return st::make_state_error(
            st::state_errc::already_exists,
            "demo: a user called demo exists and is not the tenant_admin of tenant demo; --demo will not reset "
            "its password — rename or remove that user (operator API), or run without --demo");
    if (auto r = users.update(existing.id, {.password_hash = hash, .disabled = false}); !r) return r.error();
    return false;
}

} // namespace

std::vector<demo_device> demo_devices() {
    const std::string site(demo_site);
    auto labels = [&](std::string floor, device_kind k) {
        return std::map<std::string, std::string>{
            {"site", site}, {"floor", std::move(floor)}, {"kind", std::string(to_string(k))}};
    };
    return {
        {"demo-boiler", "Boiler, plant room", device_kind::boiler, device_role::breacher,
         labels("basement", device_kind::boiler)},
        {"demo-freezer", "Kitchen freezer", device_kind::freezer, device_role::steady,
         labels("ground", device_kind::freezer)},
        {"office-1", "Office 1.01", device_kind::room, device_role::steady, labels("1", device_kind::room)},
        {"office-2", "Office 2.04", device_kind::room, device_role::steady, labels("2", device_kind::room)},
        {"main-meter", "Main power meter", device_kind::meter, device_role::steady,
         labels("basement", device_kind::meter)},
        {"dock-sensor", "Loading dock sensor", device_kind::room, device_role::goes_silent,
         labels("ground", device_kind::room)},
    };
}

st::state_result<demo_seed> seed_demo(st::database& db, const engine::server_key& key, std::int64_t now_ms) {
    demo_seed seed;
    auto tenant = ensure_tenant(db, now_ms);
    if (!tenant) return tenant.error();
    seed.tenant_created = *tenant;

    seed.password = engine::random_token(demo_password_length);
    auto user = ensure_user(db, seed.password, now_ms);
    if (!user) {
        sodium_memzero(seed.password.data(), seed.password.size());
        return user.error();
    }
    seed.user_created = *user;

    // Devices: created with a secret, or given a new one. Only the digest is
    // stored (as POST /api/v1/devices and its secret rotation do).
    st::device_repository devices(db);
    for (const auto& d : demo_devices()) {
        auto secret = engine::generate_device_secret();
        const auto digest = engine::credential_digest(key, secret);
        auto existing = devices.get(demo_tenant, d.id);
        if (!existing) return existing.error();
        if (!*existing) {
            if (auto r = devices.create({std::string(demo_tenant), d.id, d.name, d.labels, digest, now_ms}); !r)
                return r.error();
            ++seed.devices_created;
        } else {
            if (auto r = devices.set_secret_hash(demo_tenant, d.id, digest); !r) return r.error();
            if ((*existing)->disabled)
                if (auto r = devices.set_disabled(demo_tenant, d.id, false); !r) return r.error();
        }
        seed.devices.push_back(
            {d.id, d.kind, d.role, std::string(demo_tenant) + "/" + d.id, std::move(secret)});
    }

    st::rule_repository rules(db);
    auto have = rules.list_tenant(demo_tenant);
    if (!have) return have.error();
    for (const auto& r : demo_rules(now_ms)) {
        const bool exists = std::any_of(have->begin(), have->end(), [&](const auto& h) { return h.name == r.name; });
        if (exists) continue;
        if (auto id = rules.create(r); !id) return id.error();
        ++seed.rules_created;
    }

    json::object details;
    details["tenant_created"] = seed.tenant_created;
    details["user_created"] = seed.user_created;
    details["devices_created"] = seed.devices_created;
    details["rules_created"] = seed.rules_created;
    details["password_reset"] = !seed.user_created;
    details["device_secrets_rotated"] = static_cast<std::int64_t>(seed.devices.size());
    if (auto a = st::audit_repository(db).append({0, now_ms, "cli:demo", std::string(demo_tenant), "demo.seed",
                                                  "tenant:" + std::string(demo_tenant), json::serialize(details)});
        !a)
        // What was seeded is in place; a missing audit line is worth a
        // warning, not a failed start.
        spdlog::warn("demo: cannot write the audit log entry error=\"{}\"", a.error().message);
    return seed;
}

} // namespace pulsegate::daemon
