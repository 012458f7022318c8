#include "storage/state/settings_repository.hpp"

#include "storage/state/connection.hpp"

namespace pulsegate::storage::state {

state_result<std::optional<std::string>> settings_repository::get(std::string_view key) const {
    std::optional<std::string> out;
    auto r = db_->read("get setting", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT value FROM settings WHERE key = ?", "get setting");
        if (!s)
            return s.error();
        s->bind(1, key);
        return s->each([&](const detail::statement& row) { out = row.text(0); });
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> settings_repository::set(std::string_view key, std::string_view value, std::int64_t at_ms) {
    if (key.empty())
        return make_state_error(state_errc::invalid_argument, "set setting: the key is empty");
    return db_->write("set setting", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                           "set setting");
        if (!s)
            return s.error();
        s->bind(1, key).bind(2, value).bind(3, at_ms);
        return s->run();
    });
}

state_result<std::vector<std::pair<std::string, std::string>>> settings_repository::list() const {
    std::vector<std::pair<std::string, std::string>> out;
    auto r = db_->read("list settings", [&](detail::connection& c) -> state_result<void> {
        auto s = c.prepare("SELECT key, value FROM settings ORDER BY key", "list settings");
        if (!s)
            return s.error();
        return s->each([&](const detail::statement& row) { out.emplace_back(row.text(0), row.text(1)); });
    });
    if (!r)
        return r.error();
    return out;
}

} // namespace pulsegate::storage::state
