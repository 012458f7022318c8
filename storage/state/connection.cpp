#include "storage/state/connection.hpp"

#include <sqlite3.h>

#include <limits>
#include <utility>

namespace pulsegate::storage::state::detail {

state_errc to_state_errc(int rc) noexcept {
    switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        return state_errc::already_exists;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT: return state_errc::constraint_violation;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return state_errc::busy;
    case SQLITE_READONLY: return state_errc::read_only;
    case SQLITE_FULL: return state_errc::storage_full;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM: return state_errc::io_error;
    case SQLITE_CORRUPT: return state_errc::corrupt;
    case SQLITE_NOTADB: return state_errc::not_a_database;
    case SQLITE_TOOBIG: return state_errc::invalid_argument;
    default: return state_errc::internal;
    }
}

// ------------------------------------------------------------- statement ---

statement::statement(statement&& o) noexcept
    : conn_(o.conn_), stmt_(std::exchange(o.stmt_, nullptr)), operation_(o.operation_), bind_rc_(o.bind_rc_) {}

statement::~statement() {
    if (stmt_ != nullptr) {
        // reset() repeats the last step's error, already reported.
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
}

void statement::note_bind(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == 0)
        bind_rc_ = rc;
}

statement& statement::bind(int i, std::string_view v) {
    // Never more than INT_MAX bytes: SQLITE_TOOBIG before that (1e9 limit).
    const auto n = v.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())
                       ? std::numeric_limits<int>::max()
                       : static_cast<int>(v.size());
    // A default-constructed view has a null data(): SQLite would bind NULL,
    // not the empty string.
    note_bind(sqlite3_bind_text(stmt_, i, v.data() != nullptr ? v.data() : "", n, SQLITE_TRANSIENT));
    return *this;
}

statement& statement::bind(int i, double v) {
    note_bind(sqlite3_bind_double(stmt_, i, v));
    return *this;
}

statement& statement::bind(int i, std::nullopt_t) {
    note_bind(sqlite3_bind_null(stmt_, i));
    return *this;
}

statement& statement::bind_int64(int i, std::int64_t v) {
    note_bind(sqlite3_bind_int64(stmt_, i, v));
    return *this;
}

state_result<bool> statement::step() {
    if (bind_rc_ != 0)
        return conn_->error(operation_, bind_rc_);
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
        return true;
    if (rc == SQLITE_DONE)
        return false;
    return conn_->error(operation_, rc);
}

state_result<void> statement::run() {
    state_result<void> out;
    for (;;) {
        auto r = step();
        if (!r) {
            out = r.error();
            break;
        }
        if (!*r)
            break;
    }
    sqlite3_reset(stmt_); // repeats a step error, already in `out`
    return out;
}

bool statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
std::int64_t statement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
double statement::real(int col) const { return sqlite3_column_double(stmt_, col); }

statement& statement::bind_blob(int i, std::string_view bytes) {
    const auto n = bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())
                       ? std::numeric_limits<int>::max()
                       : static_cast<int>(bytes.size());
    note_bind(sqlite3_bind_blob(stmt_, i, bytes.data() != nullptr ? bytes.data() : "", n, SQLITE_TRANSIENT));
    return *this;
}

std::string statement::blob(int col) const {
    const auto* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}

std::string statement::text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}

std::optional<std::int64_t> statement::optional_int64(int col) const {
    if (is_null(col))
        return std::nullopt;
    return int64(col);
}

std::optional<double> statement::optional_real(int col) const {
    if (is_null(col))
        return std::nullopt;
    return real(col);
}

std::optional<std::string> statement::optional_text(int col) const {
    if (is_null(col))
        return std::nullopt;
    return text(col);
}

// ------------------------------------------------------------ connection ---

state_result<std::unique_ptr<connection>> connection::open(const std::filesystem::path& file, int flags,
                                                           std::chrono::milliseconds busy_timeout) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(file.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = "open " + file.string() + ": " +
                          (db ? std::string(sqlite3_errmsg(db)) : std::string(sqlite3_errstr(rc)));
        sqlite3_close(db); // accepts null
        return make_state_error(to_state_errc(rc), std::move(msg));
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
    return std::unique_ptr<connection>(new connection(db, file));
}

connection::~connection() {
    for (auto& [sql, s] : cache_)
        sqlite3_finalize(s);
    // With every statement finalized, close cannot be refused (SQLITE_BUSY).
    sqlite3_close(db_);
}

state_result<statement> connection::prepare(std::string_view sql, std::string_view operation) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
        sqlite3_stmt* s = nullptr;
        const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                          &s, nullptr);
        if (rc != SQLITE_OK)
            return error(operation, rc);
        it = cache_.emplace(std::string(sql), s).first;
    }
    return statement(*this, it->second, operation);
}

state_result<void> connection::exec(const char* sql, std::string_view operation) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
        return error(operation, rc);
    return {};
}

state_result<std::string> connection::query_text(const char* sql, std::string_view operation) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &s, nullptr);
    if (rc != SQLITE_OK)
        return error(operation, rc);
    rc = sqlite3_step(s);
    state_result<std::string> out = std::string();
    if (rc == SQLITE_ROW) {
        const auto* p = sqlite3_column_text(s, 0);
        if (p)
            out = std::string(reinterpret_cast<const char*>(p));
    } else if (rc != SQLITE_DONE) {
        out = error(operation, rc);
    }
    sqlite3_finalize(s);
    return out;
}

state_result<std::int64_t> connection::query_int64(const char* sql, std::string_view operation) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &s, nullptr);
    if (rc != SQLITE_OK)
        return error(operation, rc);
    rc = sqlite3_step(s);
    state_result<std::int64_t> out = std::int64_t{0};
    if (rc == SQLITE_ROW)
        out = sqlite3_column_int64(s, 0);
    else if (rc != SQLITE_DONE)
        out = error(operation, rc);
    sqlite3_finalize(s);
    return out;
}

state_result<void> connection::begin(bool immediate) {
    return exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN", "begin transaction");
}

state_result<void> connection::commit() { return exec("COMMIT", "commit"); }

void connection::rollback() noexcept {
    if (in_transaction())
        // A failing ROLLBACK leaves SQLite to roll back on the next use or at
        // close; there is nothing better to do here.
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

bool connection::in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }

std::int64_t connection::last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(db_); }

std::int64_t connection::changes() const noexcept { return sqlite3_changes64(db_); }

state_error connection::error(std::string_view operation, int rc) const {
    // sqlite3_errmsg describes the last failing call on this connection; a
    // bind error or a result code handed in later may not be it.
    const bool current = sqlite3_extended_errcode(db_) == rc;
    std::string what = current ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    // An unnamed CHECK constraint is reported with its SQL expression; keep
    // SQL out of messages (named constraints keep their name).
    constexpr std::string_view check_prefix = "CHECK constraint failed: ";
    if (rc == SQLITE_CONSTRAINT_CHECK && what.starts_with(check_prefix) &&
        what.find_first_of(" ()'", check_prefix.size()) != std::string::npos)
        what = "CHECK constraint failed";
    std::string msg(operation);
    msg += ": ";
    msg += what;
    return make_state_error(to_state_errc(rc), std::move(msg));
}

} // namespace pulsegate::storage::state::detail
