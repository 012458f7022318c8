#include "storage/state/database.hpp"

#include "storage/state/connection.hpp"
#include "storage/state/migrations.hpp"

#include <sqlite3.h>

#include <string>
#include <system_error>

#ifndef PULSEGATE_VERSION
#define PULSEGATE_VERSION "unknown"
#endif

namespace pulsegate::storage::state {

namespace {

// Why synchronous=FULL rather than NORMAL: in WAL mode NORMAL already
// survives a process crash, but a power cut (a gateway unplugged, an SD card
// losing power) can roll back the last commits. What this database holds was
// acknowledged to someone: an alert acknowledged in the UI, a delivery job
// marked delivered (it must never be sent twice), a created user. Writes are
// rare (config, alert transitions, outbox steps), so one more fsync per
// commit costs little.
constexpr const char* connection_pragmas = "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

std::string too_new_message(const std::filesystem::path& file, std::int64_t found) {
    return "state database " + file.string() + " has schema version " + std::to_string(found) +
           ", newer than this pulsegate (" PULSEGATE_VERSION ") knows (up to " +
           std::to_string(database::latest_schema_version()) +
           "); it was left untouched: run a newer pulsegate, or restore a backup made by this version";
}

state_result<std::int64_t> read_user_version(detail::connection& c) {
    auto v = c.query_int64("PRAGMA user_version", "read schema version");
    if (!v && v.error().code == state_errc::not_a_database)
        return make_state_error(state_errc::not_a_database,
                                c.file().string() + " is not a SQLite database (" + v.error().message +
                                    "): move it away, or restore a backup");
    return v;
}

} // namespace

int database::latest_schema_version() noexcept { return detail::migrations().back().version; }

database::database(database_options opts) : opts_(std::move(opts)) {}

database::~database() {
    // Readers first: the writer, closing last, checkpoints the WAL and
    // removes it.
    idle_readers_.clear();
    writer_.reset();
}

state_result<std::unique_ptr<database>> database::open(const database_options& opts) {
    return open_impl(opts, latest_schema_version());
}

state_result<std::unique_ptr<database>> database::open_at_version(const database_options& opts, int target_version) {
    if (target_version < 0 || target_version > latest_schema_version() || opts.mode != open_mode::read_write)
        return make_state_error(state_errc::invalid_argument,
                                "open at schema version " + std::to_string(target_version) +
                                    ": needs read_write and a version in 0.." +
                                    std::to_string(latest_schema_version()));
    return open_impl(opts, target_version);
}

state_result<std::unique_ptr<database>> database::open_impl(const database_options& opts, int target_version) {
    std::unique_ptr<database> db(new database(opts));
    if (db->opts_.max_readers == 0)
        db->opts_.max_readers = 1;
    std::error_code ec;
    const bool existed = std::filesystem::exists(opts.file, ec);

    if (opts.mode == open_mode::read_only) {
        if (!existed)
            return make_state_error(state_errc::not_found, "state database " + opts.file.string() +
                                                               " does not exist: run `pulsegate init` first");
        auto reader = db->open_reader();
        if (!reader)
            return reader.error();
        auto v = read_user_version(**reader);
        if (!v)
            return v.error();
        if (*v > latest_schema_version())
            return make_state_error(state_errc::schema_too_new, too_new_message(opts.file, *v));
        db->schema_version_ = static_cast<int>(*v);
        db->idle_readers_.push_back(std::move(*reader));
        db->open_readers_ = 1;
        return db;
    }

    auto writer = detail::connection::open(opts.file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, opts.busy_timeout);
    if (!writer)
        return writer.error();
    db->writer_ = std::move(*writer);
    auto& w = *db->writer_;

    // Only read until the version is known to be ours: a newer file must
    // come out of this byte for byte as it went in.
    auto v = read_user_version(w);
    if (!v)
        return v.error();
    if (*v > latest_schema_version())
        return make_state_error(state_errc::schema_too_new, too_new_message(opts.file, *v));
    db->schema_version_ = static_cast<int>(*v);

    auto mode = w.query_text("PRAGMA journal_mode = WAL", "set journal mode");
    if (!mode)
        return mode.error();
    if (*mode != "wal")
        return make_state_error(state_errc::io_error, "set journal mode of " + opts.file.string() +
                                                          ": the file system refused WAL (got \"" + *mode +
                                                          "\"); put the data dir on a local file system");
    if (auto r = w.exec(connection_pragmas, "configure connection"); !r)
        return r.error();
    if (auto r = db->migrate(target_version); !r)
        return r.error();
    if (!existed)
        // It holds password hashes: owner only, whatever the umask.
        std::filesystem::permissions(opts.file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                     std::filesystem::perm_options::replace, ec);
    return db;
}

state_result<void> database::migrate(int target_version) {
    auto& w = *writer_;
    for (const auto& m : detail::migrations()) {
        if (m.version <= schema_version_)
            continue;
        if (m.version > target_version)
            break;
        const std::string what = "migrate " + opts_.file.string() + " to schema version " +
                                 std::to_string(m.version) + " (" + std::string(m.description) + ")";
        auto step = [&]() -> state_result<void> {
            if (auto r = w.begin(true); !r)
                return r;
            if (auto r = w.exec(m.sql, what); !r)
                return r;
            const std::string set_version = "PRAGMA user_version = " + std::to_string(m.version);
            if (auto r = w.exec(set_version.c_str(), what); !r)
                return r;
            return w.commit();
        };
        if (auto r = step(); !r) {
            w.rollback();
            return r;
        }
        schema_version_ = m.version;
    }
    return {};
}

state_result<std::unique_ptr<detail::connection>> database::open_reader() const {
    if (opts_.mode == open_mode::read_only) {
        // A read-write handle made query-only, when the file allows: it can
        // recover a WAL left by a crash, and, as the last connection to
        // close, it removes the -wal/-shm files a read-only handle would
        // leave behind. SQLite itself refuses every write on it.
        auto rw = detail::connection::open(opts_.file, SQLITE_OPEN_READWRITE, opts_.busy_timeout);
        if (rw && (*rw)->exec("PRAGMA query_only = ON", "open read-only"))
            return std::move(*rw);
    }
    auto c = detail::connection::open(opts_.file, SQLITE_OPEN_READONLY, opts_.busy_timeout);
    if (!c)
        return c.error();
    return std::move(*c);
}

state_result<std::string> database::journal_mode() const {
    state_result<std::string> out = std::string();
    auto r = with_reader("read journal mode", [&](detail::connection& c) -> state_result<void> {
        out = c.query_text("PRAGMA journal_mode", "read journal mode");
        return {};
    });
    if (!r)
        return r.error();
    return out;
}

state_result<void> database::write(std::string_view operation, const body& f) {
    if (!writer_)
        return make_state_error(state_errc::read_only,
                                std::string(operation) + ": the database was opened read-only");
    std::lock_guard lock(write_mu_);
    auto& w = *writer_;
    if (auto r = w.begin(true); !r)
        return make_state_error(r.error().code, std::string(operation) + ": " + r.error().message);
    auto r = f(w);
    if (r)
        r = w.commit();
    if (!r)
        w.rollback();
    return r;
}

state_result<void> database::read(std::string_view operation, const body& f) const {
    return with_reader(operation, [&](detail::connection& c) -> state_result<void> {
        if (auto r = c.begin(false); !r)
            return r;
        auto r = f(c);
        // Ending a read transaction releases the snapshot; it cannot lose data.
        c.rollback();
        return r;
    });
}

state_result<void> database::with_reader(std::string_view operation, const body& f) const {
    std::unique_ptr<detail::connection> c;
    {
        std::unique_lock lock(pool_mu_);
        pool_cv_.wait(lock, [&] { return !idle_readers_.empty() || open_readers_ < opts_.max_readers; });
        if (!idle_readers_.empty()) {
            c = std::move(idle_readers_.back());
            idle_readers_.pop_back();
        } else {
            ++open_readers_;
        }
    }
    if (!c) {
        auto opened = open_reader();
        if (!opened) {
            {
                std::lock_guard lock(pool_mu_);
                --open_readers_;
            }
            pool_cv_.notify_one();
            return make_state_error(opened.error().code, std::string(operation) + ": " + opened.error().message);
        }
        c = std::move(*opened);
    }
    // Returned to the pool even if `f` throws (allocation failure).
    struct give_back {
        const database& db;
        std::unique_ptr<detail::connection>& c;
        ~give_back() {
            {
                std::lock_guard lock(db.pool_mu_);
                db.idle_readers_.push_back(std::move(c));
            }
            db.pool_cv_.notify_one();
        }
    } guard{*this, c};
    return f(*c);
}

} // namespace pulsegate::storage::state
