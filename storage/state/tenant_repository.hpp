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

private:
    database* db_;
};

} // namespace pulsegate::storage::state
