#pragma once
// Tenants: the root of every tenant-scoped row and of the MQTT topic tree
// (t/{tenant}/...). Ids follow DESIGN.md: [a-z0-9][a-z0-9_-]{0,62}.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

struct tenant {
    std::string id;
    std::string name;
    std::int64_t created_at_ms = 0; // epoch ms
    bool disabled = false;

    friend bool operator==(const tenant&, const tenant&) = default;
};

// PATCH semantics: fields left empty keep their value.
struct tenant_update {
    std::optional<std::string> name{}; // non-empty when set
    std::optional<bool> disabled{};
};

// What still lives in a tenant (rows that its removal would cascade to).
struct tenant_contents {
    std::int64_t devices = 0;
    std::int64_t users = 0;
    std::int64_t api_tokens = 0;
};

enum class tenant_removal {
    // Refused (constraint_violation, the message counts them) while the
    // tenant still has devices or users: nothing disappears by surprise.
    refuse_if_in_use,
    // Everything scoped to the tenant goes with it in one transaction
    // (devices, users and their sessions, tokens, rules, alerts, ...: the
    // schema's ON DELETE CASCADE). The audit log keeps its entries.
    cascade,
};

// True when `id` is a valid tenant or device id.
bool valid_resource_id(std::string_view id) noexcept;

class tenant_repository {
public:
    explicit tenant_repository(database& db) noexcept : db_(&db) {}

    // Errors: invalid_argument (bad id, empty name), already_exists.
    state_result<void> create(const tenant& t);
    state_result<std::optional<tenant>> get(std::string_view id) const;
    // Every tenant, by id.
    state_result<std::vector<tenant>> list() const;
    // Both fields in one transaction. Errors: invalid_argument (an empty
    // name), not_found.
    state_result<void> update(std::string_view id, const tenant_update& u);
    state_result<void> set_disabled(std::string_view id, bool disabled) { return update(id, {.disabled = disabled}); }
    state_result<tenant_contents> contents(std::string_view id) const;
    // Errors: not_found, constraint_violation (refuse_if_in_use and the
    // tenant is not empty; the check and the delete share one transaction).
    state_result<void> remove(std::string_view id, tenant_removal how = tenant_removal::refuse_if_in_use);

private:
    database* db_;
};

} // namespace pulsegate::storage::state
