#include "storage/state/error.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace pulsegate::storage::state {

namespace {

class state_category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "pulsegate.state"; }

    std::string message(int ev) const override {
        switch (static_cast<state_errc>(ev)) {
        case state_errc::already_exists: return "already exists";
        case state_errc::constraint_violation: return "constraint violation";
        case state_errc::busy: return "database busy";
        case state_errc::read_only: return "read-only";
        case state_errc::storage_full: return "storage full";
        case state_errc::io_error: return "I/O error";
        case state_errc::corrupt: return "database corrupt";
        case state_errc::not_a_database: return "not a database";
        case state_errc::not_found: return "not found";
        case state_errc::schema_too_new: return "schema newer than this pulsegate";
        case state_errc::data_dir_in_use: return "data dir in use";
        case state_errc::invalid_argument: return "invalid argument";
        case state_errc::internal: return "internal database error";
        }
        return "unknown state error";
    }
};

} // namespace

const boost::system::error_category& state_category() noexcept {
    static const state_category_impl instance;
    return instance;
}

void throw_exception_from_error(const state_error& e, const boost::source_location& loc) {
    boost::throw_with_location(boost::system::system_error(e.code, e.message), loc);
}

} // namespace pulsegate::storage::state
