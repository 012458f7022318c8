#pragma once
// Silences (alert_model.hpp): matchers and a time window. Silences whose
// window has ended stop applying by themselves (the engine compares times);
// purge_ended_before removes them from the table later.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/alert_model.hpp"
#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

struct silence_page {
    std::vector<silence_record> items;
    std::optional<std::string> next_cursor;
};

class silence_repository {
public:
    explicit silence_repository(database& db) noexcept : db_(&db) {}

    // Inserts `s` (id ignored), returns the id. invalid_argument: ends_at <=
    // starts_at. constraint_violation: unknown tenant.
    state_result<std::int64_t> create(const silence_record& s);
    state_result<std::optional<silence_record>> get(std::string_view tenant, std::int64_t id) const;
    // By id; `active_at`: only those whose window contains it.
    state_result<silence_page> list(std::string_view tenant, std::optional<std::int64_t> active_at = std::nullopt,
                                    std::size_t limit = 100,
                                    std::optional<std::string_view> cursor = std::nullopt) const;
    // Every tenant's silences not ended at `now_ms` (the engine).
    state_result<std::vector<silence_record>> not_ended(std::int64_t now_ms) const;
    state_result<void> remove(std::string_view tenant, std::int64_t id);
    state_result<std::int64_t> purge_ended_before(std::int64_t before_ms);

private:
    database* db_;
};

// When each device last sent anything (telemetry or heartbeat), kept so
// heartbeat deadlines survive a restart. Not tied to the devices table:
// anonymous clients' devices have no row there.
// (liveness_record: alert_model.hpp)

class liveness_repository {
public:
    explicit liveness_repository(database& db) noexcept : db_(&db) {}
    // Upserts in one transaction; a time never moves backwards.
    state_result<void> save(std::span<const liveness_record> seen);
    state_result<std::vector<liveness_record>> load_all() const;
    // Forget a device (deleted) or a tenant's devices (device empty).
    state_result<void> forget(std::string_view tenant, std::string_view device = {});

private:
    database* db_;
};

} // namespace pulsegate::storage::state
