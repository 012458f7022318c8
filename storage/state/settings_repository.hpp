#pragma once
// Instance-wide settings changed at run time (from the UI or the CLI), as
// key/value text. Static configuration lives in pulsegate.toml, not here.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pulsegate::storage::state {

class settings_repository {
public:
    explicit settings_repository(database& db) noexcept : db_(&db) {}

    state_result<std::optional<std::string>> get(std::string_view key) const;
    // Inserts or replaces. invalid_argument for an empty key.
    state_result<void> set(std::string_view key, std::string_view value, std::int64_t at_ms);
    // Every (key, value), by key.
    state_result<std::vector<std::pair<std::string, std::string>>> list() const;

private:
    database* db_;
};

} // namespace pulsegate::storage::state
