#pragma once
// The SQLite state database (`<data_dir>/state.db`): tenants, users, tokens,
// devices, rules, integrations, routes, silences, alerts, the delivery
// outbox, the audit log, rejected events and settings. Typed repositories
// (tenant_repository.hpp and siblings) are the only way in; no SQL lives
// outside storage/state.
//
// Concurrency: one writer connection, used under a mutex, carries every
// write (SQLite allows one writer at a time anyway; queueing in-process is
// cheaper than SQLITE_BUSY retries). Reads run on a small pool of read-only
// connections; in WAL mode readers see the last committed state and never
// block the writer nor wait for it. Every member may be called from any
// thread. These calls block on the disk: never call them on a broker shard.
//
// Schema: numbered migrations (migrations.cpp) applied at open, each in its
// own transaction, the version kept in PRAGMA user_version. A file whose
// version is newer than this binary knows is refused untouched.
//
// Settings applied to the writer connection: journal_mode=WAL,
// synchronous=FULL (see database.cpp for why), foreign_keys=ON,
// busy_timeout (other processes: `pulsegate backup`, `init`).

#include "storage/state/error.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

namespace detail {
class connection;
}

enum class open_mode {
    read_write, // creates the file if missing, migrates to the latest schema
    read_only,  // the file must exist; no migration; SQLite refuses writes (query_only)
};

struct database_options {
    std::filesystem::path file;   // typically <data_dir>/state.db
    open_mode mode = open_mode::read_write;
    std::chrono::milliseconds busy_timeout{5000};
    std::size_t max_readers = 4;  // read connections opened on demand up to this
};

class database {
public:
    // Opens (read_write: creates and migrates) the database. Errors:
    // schema_too_new (names both versions), not_a_database, not_found
    // (read_only and no file), io_error, corrupt, busy.
    static state_result<std::unique_ptr<database>> open(const database_options& opts);

    // Test hook: like open(read_write) but migrates only up to
    // `target_version` (<= latest), to build databases as earlier releases
    // left them.
    static state_result<std::unique_ptr<database>> open_at_version(const database_options& opts,
                                                                   int target_version);

    ~database();
    database(const database&) = delete;
    database& operator=(const database&) = delete;

    // The newest schema version this binary knows.
    static int latest_schema_version() noexcept;
    // The version of this file: after migration (read_write) or as found.
    int schema_version() const noexcept { return schema_version_; }
    const std::filesystem::path& file() const noexcept { return opts_.file; }
    bool read_only() const noexcept { return opts_.mode == open_mode::read_only; }

    // "wal" once opened read_write.
    state_result<std::string> journal_mode() const;

    // ---- for repositories in storage/state only ---------------------------
    using body = std::function<state_result<void>(detail::connection&)>;

    // Runs `f` on the writer connection inside BEGIN IMMEDIATE .. COMMIT;
    // an error from `f` (or from COMMIT) rolls everything back. `operation`
    // names the whole step in errors ("create user"). `f` must not call
    // write() or read() itself. read_only error on a read_only database.
    state_result<void> write(std::string_view operation, const body& f);
    // Runs `f` on a leased read connection inside one read transaction, so
    // several statements see the same snapshot.
    state_result<void> read(std::string_view operation, const body& f) const;
    // Like read(), without a transaction (the online backup manages its own).
    state_result<void> with_reader(std::string_view operation, const body& f) const;

private:
    explicit database(database_options opts);
    static state_result<std::unique_ptr<database>> open_impl(const database_options& opts, int target_version);
    state_result<void> migrate(int target_version);
    state_result<std::unique_ptr<detail::connection>> open_reader() const;

    database_options opts_;
    int schema_version_ = 0;

    std::mutex write_mu_;
    std::unique_ptr<detail::connection> writer_; // null when read_only

    mutable std::mutex pool_mu_;
    mutable std::condition_variable pool_cv_;
    mutable std::vector<std::unique_ptr<detail::connection>> idle_readers_;
    mutable std::size_t open_readers_ = 0;
};

} // namespace pulsegate::storage::state
