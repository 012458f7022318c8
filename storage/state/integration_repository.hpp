#pragma once
// Integrations and routes of a tenant (delivery_model.hpp). An
// integration's secret settings are sealed with the secret_box before they
// reach the table and opened when read; nothing else of this folder sees
// them in clear.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/delivery_model.hpp"
#include "storage/state/error.hpp"
#include "storage/state/secret_box.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

struct integration_page {
    std::vector<integration_record> items;
    std::optional<std::string> next_cursor;
};

struct route_page {
    std::vector<route_record> items;
    std::optional<std::string> next_cursor;
};

class integration_repository {
public:
    integration_repository(database& db, const secret_box& box) noexcept : db_(&db), box_(&box) {}

    // Returns the id. already_exists: the tenant has an integration of that
    // name; constraint_violation: unknown tenant.
    state_result<std::int64_t> create(const integration_record& r);
    // Replaces name, config, secrets and enabled of (tenant, id). not_found, already_exists.
    state_result<void> update(const integration_record& r);
    state_result<void> remove(std::string_view tenant, std::int64_t id);
    state_result<std::optional<integration_record>> get(std::string_view tenant, std::int64_t id) const;
    // By id (the delivery workers; any tenant).
    state_result<std::optional<integration_record>> get_by_id(std::int64_t id) const;
    state_result<integration_page> list(std::string_view tenant, std::size_t limit = 100,
                                        std::optional<std::string_view> cursor = std::nullopt) const;
    // Which of `ids` are integrations of `tenant`.
    state_result<std::vector<std::int64_t>> existing(std::string_view tenant, const std::vector<std::int64_t>& ids) const;

    // Routes. create/update: integrations must be the tenant's (constraint_violation naming the first that is not).
    state_result<std::int64_t> create_route(const route_record& r);
    state_result<void> update_route(const route_record& r);
    state_result<void> remove_route(std::string_view tenant, std::int64_t id);
    state_result<std::optional<route_record>> get_route(std::string_view tenant, std::int64_t id) const;
    state_result<route_page> list_routes(std::string_view tenant, std::size_t limit = 100,
                                         std::optional<std::string_view> cursor = std::nullopt) const;
    // Every route of every tenant, by id (the router's table).
    state_result<std::vector<route_record>> all_routes() const;
    // (id, tenant, type, enabled) of every integration (the router's table).
    struct brief {
        std::int64_t id = 0;
        std::string tenant;
        std::string type;
        bool enabled = true;
    };
    state_result<std::vector<brief>> all_briefs() const;

private:
    database* db_;
    const secret_box* box_;
};

} // namespace pulsegate::storage::state
