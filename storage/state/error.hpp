#pragma once
// Errors of the SQLite state store. SQLite result codes are converted here,
// at the storage boundary, into a few conditions callers branch on
// (state_errc, e.g. already_exists -> HTTP 409) plus a message for people
// that names the operation ("create tenant: UNIQUE constraint failed:
// tenants.id"). Messages never contain SQL text.

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <ostream>
#include <string>
#include <type_traits>

namespace pulsegate::storage::state {

enum class state_errc {
    already_exists = 1,   // a unique key (primary key, unique name) is taken
    constraint_violation, // foreign key (unknown tenant...), CHECK or NOT NULL
    busy,                 // another process holds the database lock past busy_timeout
    read_only,            // a write on a database opened read-only, or a read-only file
    storage_full,         // the disk is full
    io_error,             // cannot open, read or write the file
    corrupt,              // the file is damaged (integrity check, SQLITE_CORRUPT)
    not_a_database,       // the file is not a SQLite database
    not_found,            // a file that must exist does not
    schema_too_new,       // written by a newer pulsegate: refused, file untouched
    data_dir_in_use,      // another process holds the data dir lock
    invalid_argument,     // bad input to a repository (caller error the user can fix)
    internal,             // any other SQLite error (a bug: misuse, schema mismatch)
};

const boost::system::error_category& state_category() noexcept;

inline boost::system::error_code make_error_code(state_errc e) noexcept {
    return {static_cast<int>(e), state_category()};
}

struct state_error {
    boost::system::error_code code; // of state_category
    std::string message;            // complete, for logs and users: "<operation>: <what>"
};

// The message (tests and logs print results with it).
inline std::ostream& operator<<(std::ostream& os, const state_error& e) { return os << e.message; }

// Lets boost::system::result<T, state_error>::value() throw a
// boost::system::system_error carrying the code and the message.
[[noreturn]] void throw_exception_from_error(const state_error& e, const boost::source_location& loc);

template <class T>
using state_result = boost::system::result<T, state_error>;

inline state_error make_state_error(state_errc e, std::string message) {
    return {make_error_code(e), std::move(message)};
}
inline state_error make_state_error(boost::system::error_code ec, std::string message) {
    return {ec, std::move(message)};
}

} // namespace pulsegate::storage::state

template <>
struct boost::system::is_error_code_enum<pulsegate::storage::state::state_errc> : std::true_type {};
