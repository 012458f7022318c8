#pragma once
// PRIVATE to storage/state: one SQLite connection with its cache of prepared
// statements, and the statement wrapper the repositories use. This is the one
// header that names SQLite types; nothing outside storage/state includes it.
//
// Thread safety: none. A connection is used by one thread at a time (the
// writer under database's mutex, a reader while leased from the pool); it is
// opened with SQLITE_OPEN_NOMUTEX accordingly.

#include "storage/state/error.hpp"

#include <chrono>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace pulsegate::storage::state::detail {

class connection;

// A cached prepared statement, borrowed from its connection. Binding is
// 1-based, columns 0-based (as in SQLite). On destruction it is reset and its
// bindings cleared, so the cache always holds idle statements. A bind error
// is remembered and returned by the next step().
class statement {
public:
    statement(connection& c, sqlite3_stmt* s, std::string_view operation) noexcept
        : conn_(&c), stmt_(s), operation_(operation) {}
    statement(statement&& o) noexcept;
    statement& operator=(statement&&) = delete;
    statement(const statement&) = delete;
    ~statement();

    statement& bind(int i, std::string_view v);
    statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
    statement& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
    statement& bind(int i, double v);
    statement& bind(int i, std::nullopt_t);
    statement& bind_blob(int i, std::string_view bytes);
    template <std::integral I>
    statement& bind(int i, I v) { return bind_int64(i, static_cast<std::int64_t>(v)); }
    template <class T>
    statement& bind(int i, const std::optional<T>& v) { return v ? bind(i, *v) : bind(i, std::nullopt); }

    // true: a row is available; false: done.
    state_result<bool> step();
    // Steps to completion (INSERT / UPDATE / DELETE, or a query whose rows
    // are not wanted), then resets the statement so that it can be bound and
    // run again (bindings are kept until rebound).
    state_result<void> run();
    // Calls f(*this) for every row.
    template <class F>
    state_result<void> each(F&& f) {
        for (;;) {
            auto row = step();
            if (!row)
                return row.error();
            if (!*row)
                return {};
            f(static_cast<const statement&>(*this));
        }
    }

    bool is_null(int col) const;
    std::int64_t int64(int col) const;
    double real(int col) const;
    std::string text(int col) const;
    std::string blob(int col) const;
    std::optional<std::int64_t> optional_int64(int col) const;
    std::optional<double> optional_real(int col) const;
    std::optional<std::string> optional_text(int col) const;

private:
    statement& bind_int64(int i, std::int64_t v);
    void note_bind(int rc);

    connection* conn_;
    sqlite3_stmt* stmt_;
    std::string_view operation_;
    int bind_rc_ = 0; // first failing bind's result code, 0 if none
};

class connection {
public:
    // `flags` are sqlite3_open_v2 flags; SQLITE_OPEN_NOMUTEX is added.
    static state_result<std::unique_ptr<connection>> open(const std::filesystem::path& file, int flags,
                                                          std::chrono::milliseconds busy_timeout);
    ~connection(); // finalizes the cache, closes
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // A statement from the cache, prepared on first use. `sql` must be one
    // statement; `operation` names it in errors ("list tenants") and must
    // outlive the returned statement. At most one statement object per SQL
    // text may be alive at a time (they share the prepared statement).
    state_result<statement> prepare(std::string_view sql, std::string_view operation);
    // Runs one or more statements without caching them (schema, pragmas).
    state_result<void> exec(const char* sql, std::string_view operation);
    // The first column of the first row of a one-off query as text (pragmas).
    state_result<std::string> query_text(const char* sql, std::string_view operation);
    state_result<std::int64_t> query_int64(const char* sql, std::string_view operation);

    state_result<void> begin(bool immediate);
    state_result<void> commit();
    // Rolls back if a transaction is open (SQLite may already have done so
    // after an I/O or full error); never fails in a way callers could act on.
    void rollback() noexcept;
    bool in_transaction() const noexcept;

    std::int64_t last_insert_rowid() const noexcept;
    std::int64_t changes() const noexcept;

    // The error for result code `rc` of the last call on this connection.
    state_error error(std::string_view operation, int rc) const;

    sqlite3* handle() const noexcept { return db_; }
    const std::filesystem::path& file() const noexcept { return file_; }

private:
    connection(sqlite3* db, std::filesystem::path file) : db_(db), file_(std::move(file)) {}

    sqlite3* db_;
    std::filesystem::path file_;
    struct sql_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, sqlite3_stmt*, sql_hash, std::equal_to<>> cache_;
};

// Maps a SQLite result code (primary or extended) to our condition.
state_errc to_state_errc(int sqlite_rc) noexcept;

} // namespace pulsegate::storage::state::detail
