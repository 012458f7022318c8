#pragma once
// Rules of a tenant (threshold and heartbeat; see alert_model.hpp). Tenant
// scoping as device_repository: another tenant's rule behaves exactly like
// one that does not exist. Records are validated, with reasons for users,
// before they get here (webui); this checks only what the schema needs.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/alert_model.hpp"
#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

struct rule_page {
    std::vector<rule_record> items;
    std::optional<std::string> next_cursor;
};

class rule_repository {
public:
    explicit rule_repository(database& db) noexcept : db_(&db) {}

    // Inserts `r` (its id is ignored) and returns the new id.
    // constraint_violation: unknown tenant.
    state_result<std::int64_t> create(const rule_record& r);
    state_result<std::optional<rule_record>> get(std::string_view tenant, std::int64_t id) const;
    // By id, `limit` clamped to 1..1000.
    state_result<rule_page> list(std::string_view tenant, std::size_t limit = 100,
                                 std::optional<std::string_view> cursor = std::nullopt) const;
    // Every rule of every tenant (the engine, at start).
    state_result<std::vector<rule_record>> list_all() const;
    // Every rule of one tenant (the engine, after a change).
    state_result<std::vector<rule_record>> list_tenant(std::string_view tenant) const;
    // Replaces every field but id, tenant and created_at. not_found.
    state_result<void> replace(const rule_record& r);
    state_result<void> remove(std::string_view tenant, std::int64_t id);

private:
    database* db_;
};

} // namespace pulsegate::storage::state
