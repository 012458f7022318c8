#include "storage/state/backup.hpp"

#include "storage/state/connection.hpp"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace pulsegate::storage::state {

namespace {

constexpr std::string_view backup_op = "back up the state database";

// fsync of a file or directory; errno-style message on failure.
state_result<void> sync_path(const std::filesystem::path& p, bool directory) {
    const int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return make_state_error(state_errc::io_error, "sync " + p.string() + ": " + std::strerror(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0)
        return make_state_error(state_errc::io_error, "sync " + p.string() + ": " + std::strerror(err));
    return {};
}

void remove_db_files(const std::filesystem::path& p) {
    std::error_code ec;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"})
        std::filesystem::remove(p.string() + suffix, ec);
}

// "file:" URI of a path (RFC 3986 escaping of what SQLite would misread).
std::string file_uri(const std::filesystem::path& p, std::string_view query) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out = "file:";
    for (unsigned char c : std::filesystem::absolute(p).string()) {
        if (c == '%' || c == '?' || c == '#' || c <= 0x20 || c >= 0x7F) {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '?';
    out += query;
    return out;
}

state_result<void> copy_live(const database& db, detail::connection& dst) {
    return db.with_reader(backup_op, [&](detail::connection& src) -> state_result<void> {
        sqlite3_backup* b = sqlite3_backup_init(dst.handle(), "main", src.handle(), "main");
        if (b == nullptr)
            return dst.error(backup_op, sqlite3_extended_errcode(dst.handle()));
        // One step copies everything under a single read transaction: a
        // consistent snapshot that, in WAL mode, never blocks the writer.
        int rc = SQLITE_OK;
        for (int tries = 0; tries < 200; ++tries) {
            rc = sqlite3_backup_step(b, -1);
            if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
                break;
            sqlite3_sleep(25);
        }
        const int finish_rc = sqlite3_backup_finish(b);
        if (rc != SQLITE_DONE)
            return dst.error(backup_op, rc);
        if (finish_rc != SQLITE_OK)
            return dst.error(backup_op, finish_rc);
        return {};
    });
}

} // namespace

state_result<void> sqlite_backup(const database& db, const std::filesystem::path& dest) {
    std::error_code ec;
    if (std::filesystem::exists(dest, ec))
        return make_state_error(state_errc::already_exists,
                                std::string(backup_op) + ": " + dest.string() + " already exists");
    auto tmp = dest;
    tmp += ".partial";
    remove_db_files(tmp);

    auto result = [&]() -> state_result<void> {
        auto dst = detail::connection::open(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, std::chrono::seconds(5));
        if (!dst)
            return dst.error();
        if (auto r = copy_live(db, **dst); !r)
            return r;
        // The pages carry the source's WAL flag; a backup is one file.
        auto mode = (*dst)->query_text("PRAGMA journal_mode = DELETE", backup_op);
        if (!mode)
            return mode.error();
        dst->reset(); // close
        // It holds password hashes: owner only, whatever the umask.
        std::filesystem::permissions(tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                     std::filesystem::perm_options::replace, ec);
        if (auto r = sync_path(tmp, false); !r)
            return r;
        std::filesystem::rename(tmp, dest, ec);
        if (ec)
            return make_state_error(state_errc::io_error, std::string(backup_op) + ": rename " + tmp.string() +
                                                              " to " + dest.string() + ": " + ec.message());
        return sync_path(dest.parent_path().empty() ? std::filesystem::path(".") : dest.parent_path(), true);
    }();
    if (!result)
        remove_db_files(tmp);
    return result;
}

state_result<database_file_info> inspect_database_file(const std::filesystem::path& file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
        return make_state_error(state_errc::not_found, file.string() + " does not exist or is not a file");
    // immutable: no lock, no -wal/-shm created; the file is only read.
    auto c = detail::connection::open(file_uri(file, "immutable=1"), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
                                      std::chrono::seconds(5));
    if (!c)
        return c.error();
    auto& conn = **c;
    auto v = conn.query_int64("PRAGMA user_version", "read schema version");
    if (!v) {
        if (v.error().code == state_errc::not_a_database)
            return make_state_error(state_errc::not_a_database, file.string() + " is not a SQLite database");
        return make_state_error(v.error().code, file.string() + ": " + v.error().message);
    }
    if (*v > database::latest_schema_version())
        return make_state_error(state_errc::schema_too_new,
                                file.string() + " has schema version " + std::to_string(*v) +
                                    ", newer than this pulsegate knows (up to " +
                                    std::to_string(database::latest_schema_version()) + "): use a newer pulsegate");

    std::string problems;
    int shown = 0;
    auto check = conn.prepare("PRAGMA integrity_check(5)", "check integrity");
    if (!check)
        return make_state_error(check.error().code, file.string() + ": " + check.error().message);
    auto r = check->each([&](const detail::statement& row) {
        auto line = row.text(0);
        if (line != "ok" && shown++ < 5)
            problems += (problems.empty() ? "" : "; ") + line;
    });
    if (!r)
        return make_state_error(r.error().code, file.string() + ": " + r.error().message);
    if (!problems.empty())
        return make_state_error(state_errc::corrupt, file.string() + " fails the integrity check: " + problems);

    std::int64_t dangling = 0;
    std::string table;
    auto fk = conn.prepare("PRAGMA foreign_key_check", "check foreign keys");
    if (!fk)
        return make_state_error(fk.error().code, file.string() + ": " + fk.error().message);
    r = fk->each([&](const detail::statement& row) {
        if (dangling++ == 0)
            table = row.text(0);
    });
    if (!r)
        return make_state_error(r.error().code, file.string() + ": " + r.error().message);
    if (dangling > 0)
        return make_state_error(state_errc::corrupt, file.string() + " has " + std::to_string(dangling) +
                                                         " rows whose references point nowhere (first in table " +
                                                         table + ")");
    return database_file_info{static_cast<int>(*v)};
}

} // namespace pulsegate::storage::state
