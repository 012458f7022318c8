#pragma once
// PRIVATE to storage/state/*_repository.cpp: what the repositories that
// page by id share — the page size bound, id cursors, and reading every row
// of a statement into records — and the outbox insert that alerts and the
// digest share.

#include "storage/state/connection.hpp"
#include "storage/state/delivery_model.hpp"
#include "storage/state/error.hpp"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state::detail {

// Inserts `jobs` as pending, inside the caller's transaction. A job whose
// (event_key, integration) exists already, or whose integration is gone or
// another tenant's, is skipped; its alert is kept only if it exists.
// Returns how many were inserted. (delivery_repository.cpp)
state_result<std::int64_t> insert_delivery_jobs(connection& c, std::span<const new_delivery_job> jobs);

// A list's `limit`, clamped to 1..1000.
inline std::int64_t page_limit(std::size_t limit) {
    return static_cast<std::int64_t>(std::clamp<std::size_t>(limit, 1, 1000));
}

// A cursor that is the decimal id (> 0) of the last record of the previous
// page (URL-safe). None: the first page. invalid_argument for anything else.
inline state_result<std::optional<std::int64_t>> id_cursor(std::optional<std::string_view> cursor,
                                                           std::string_view operation) {
    if (!cursor) return std::optional<std::int64_t>();
    std::int64_t id = 0;
    const auto* end = cursor->data() + cursor->size();
    auto [p, ec] = std::from_chars(cursor->data(), end, id);
    if (ec != std::errc() || p != end || id <= 0)
        return make_state_error(state_errc::invalid_argument,
                                std::string(operation) + ": the cursor is invalid; pass the next_cursor of the "
                                                         "previous page, or none for the first page");
    return std::optional(id);
}

// Every row of `s` into `out` through `from(row) -> state_result<T>`; stops
// at the first row that does not parse.
template <class T, class From>
state_result<void> collect(statement& s, std::vector<T>& out, From from) {
    std::optional<state_error> bad;
    auto done = s.each([&](const statement& row) {
        if (bad) return;
        if (auto r = from(row)) out.push_back(std::move(*r));
        else bad = r.error();
    });
    if (bad) return *bad;
    return done;
}

} // namespace pulsegate::storage::state::detail
