#pragma once
// PRIVATE to storage/state: the numbered schema migrations.
//
// Invariants: versions are 1, 2, 3... in order, without gaps; a migration,
// once released, never changes (databases in the field have run it); each
// one runs in its own transaction together with `PRAGMA user_version = N`,
// so a crash leaves the file at N-1 or N, never in between. Migrations run
// with foreign_keys=ON, which SQLite cannot switch inside a transaction: a
// future migration that rebuilds a table must not rely on turning it off.

#include <span>
#include <string_view>

namespace pulsegate::storage::state::detail {

struct migration {
    int version;
    std::string_view description;
    const char* sql; // one or more statements
};

std::span<const migration> migrations() noexcept;

} // namespace pulsegate::storage::state::detail
