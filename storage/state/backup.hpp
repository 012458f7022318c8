#pragma once
// Online backup of the state database and checks of a backup's copy.

#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <filesystem>

namespace pulsegate::storage::state {

// Copies the live database `db` (read_write or read_only, in this or
// another process; writers keep going) into the new file `dest` with the
// SQLite online backup API, as one consistent snapshot. The copy is a
// self-contained file in rollback-journal mode (no -wal/-shm to carry along);
// it is written under a temporary name, synced and then renamed, so `dest`
// either is a complete copy or does not exist. Errors: already_exists (dest
// exists), io_error, storage_full.
state_result<void> sqlite_backup(const database& db, const std::filesystem::path& dest);

struct database_file_info {
    int schema_version = 0;
};

// Checks a database file at rest (a backup's state.db) without changing it:
// it must be a SQLite database, pass PRAGMA integrity_check and
// foreign_key_check, and have a schema this binary knows. Errors:
// not_found, not_a_database, corrupt (the first problems reported),
// schema_too_new.
state_result<database_file_info> inspect_database_file(const std::filesystem::path& file);

} // namespace pulsegate::storage::state
