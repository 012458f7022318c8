#pragma once
// Devices of a tenant: id (the {device} of the MQTT user name
// {tenant}/{device} and of the topic tree), name, labels (matched by rule
// scopes and routes), the digest of the device secret, disabled, last seen.
//
// Tenant scoping: every call names the tenant, and a device of another
// tenant behaves exactly like one that does not exist (get: nullopt; update,
// remove...: not_found). Only list_all, for operators, crosses tenants.
//
// Input is checked only as far as the schema needs it (ids, a non-empty
// secret digest); names, labels and ids are validated, with reasons for the
// user, by engine/identity.hpp before they get here.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

using device_labels = std::map<std::string, std::string>;

struct new_device {
    std::string tenant;
    std::string id;
    std::string name;
    device_labels labels;
    std::string secret_hash; // credential_digest of the device secret (engine/identity.hpp)
    std::int64_t created_at_ms = 0;
};

struct device {
    std::string tenant;
    std::string id;
    std::string name;
    device_labels labels;
    std::string secret_hash; // for the CONNECT check only: never shown
    std::int64_t created_at_ms = 0;
    bool disabled = false;
    std::optional<std::int64_t> last_seen_ms; // none: never connected or published

    friend bool operator==(const device&, const device&) = default;
};

// A page of a list. next_cursor is set when more may follow: pass it back
// as `cursor` for the next page. Cursors are opaque to callers (they are
// safe to put in a URL) and stay valid while devices come and go.
struct device_page {
    std::vector<device> items;
    std::optional<std::string> next_cursor;
};

// PATCH semantics: fields left empty keep their value.
struct device_update {
    std::optional<std::string> name{};
    std::optional<device_labels> labels{}; // replaces the whole map
};

struct device_seen {
    std::string tenant;
    std::string id;
    std::int64_t at_ms = 0;
};

class device_repository {
public:
    explicit device_repository(database& db) noexcept : db_(&db) {}

    // Errors: invalid_argument (bad tenant or device id, empty secret hash),
    // constraint_violation (the tenant does not exist), already_exists (the
    // tenant has a device with this id).
    state_result<void> create(const new_device& d);
    state_result<std::optional<device>> get(std::string_view tenant, std::string_view id) const;
    // One tenant's devices by id, `limit` (clamped to 1..1000) at a time.
    // invalid_argument for a cursor this function did not make.
    state_result<device_page> list(std::string_view tenant, std::size_t limit = 100,
                                   std::optional<std::string_view> cursor = std::nullopt) const;
    // Every tenant's devices (or only `tenant`'s) by tenant then id, for
    // operator views. Its cursors are not list()'s.
    state_result<device_page> list_all(std::size_t limit = 100, std::optional<std::string_view> cursor = std::nullopt,
                                       std::optional<std::string_view> tenant = std::nullopt) const;
    // not_found if the tenant has no such device.
    state_result<void> update(std::string_view tenant, std::string_view id, const device_update& u);
    state_result<void> set_secret_hash(std::string_view tenant, std::string_view id, std::string_view secret_hash);
    state_result<void> set_disabled(std::string_view tenant, std::string_view id, bool disabled);
    state_result<void> remove(std::string_view tenant, std::string_view id);
    // Records when devices were last seen, all in one transaction (the
    // daemon batches them, e.g. once a few seconds). A time never moves
    // backwards; unknown devices (removed meanwhile) are skipped. Returns how
    // many rows changed.
    state_result<std::int64_t> touch_last_seen(std::span<const device_seen> seen);

private:
    database* db_;
};

} // namespace pulsegate::storage::state
