#pragma once
// The administrative commands: `pulsegate init`, `backup DIR`, `restore DIR`.
//
// Each returns the process exit code (0 success, 1 failure) and writes what
// it did to `out` and every problem, with what to do about it, to `err`.
// None throws for expected failures (bad input, a busy data dir, a damaged
// backup).
//
// Data dir layout (DESIGN.md, Storage):
//   <data_dir>/state.db        SQLite (+ -wal, -shm while open)
//   <data_dir>/telemetry/      the LMDB environment
//   <data_dir>/pulsegate.lock  flock held by `serve` (and by restore/init)
// A backup directory holds state.db (a self-contained SQLite file),
// telemetry/ (a compacted LMDB copy, empty if there was none) and
// manifest.json, written last: a backup without it is incomplete.

#include <filesystem>
#include <optional>
#include <ostream>

namespace pulsegate::daemon {

struct init_options {
    std::filesystem::path data_dir;
    // First line (trailing newline stripped) is the admin password, at least
    // 8 characters. Without it a password is generated and printed once.
    std::optional<std::filesystem::path> admin_password_file;
};

// state.db exists, is readable by this binary and has an enabled
// operator_admin. Never changes anything.
bool data_dir_initialised(const std::filesystem::path& data_dir);

// Creates the data dir (0700) with telemetry/, the schema and the first
// operator_admin, user name `admin`. Already initialised: says so, changes
// nothing, returns 0. Refuses while another process holds the data dir.
int run_init(const init_options& opts, std::ostream& out, std::ostream& err);

// Online backup of `data_dir` into `dest`, which must not exist or be an
// empty directory; the daemon may keep running. On failure nothing is left
// in `dest`.
int run_backup(const std::filesystem::path& data_dir, const std::filesystem::path& dest, std::ostream& out,
               std::ostream& err);

// Replaces the state of `data_dir` with the backup in `src`. Refuses while a
// daemon runs on the data dir and when `src` is not a complete, intact
// backup this binary can read. The previous files are kept in
// <data_dir>/pre-restore-<UTC time>/, never deleted.
int run_restore(const std::filesystem::path& data_dir, const std::filesystem::path& src, std::ostream& out,
                std::ostream& err);

} // namespace pulsegate::daemon
