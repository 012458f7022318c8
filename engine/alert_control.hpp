#pragma once
// What the web layer asks of the rules engine (DESIGN.md: "the web layer
// only reads the stores and calls the same services the engine uses for
// writes"). The engine owns every non-closed alert in memory; acknowledging
// and closing go through it so that a REST call and a reading never race.
// Rules and silences are written to the state database by the caller, who
// then tells the engine to reload that tenant's set: the change applies to
// the next reading.
//
// Thread safety: any thread. acknowledge/close wait for the engine thread
// (microseconds; the alert is written to the database afterwards, in order).

#include "storage/state/alert_model.hpp"

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <string_view>

namespace pulsegate::engine {

enum class alert_errc {
    not_found = 1,        // no such non-closed or closed alert in the tenant
    already_closed,       // ack/close of a closed alert
    already_acknowledged, // ack of an acknowledged alert
    unavailable,          // the engine is stopping or not started
};
const boost::system::error_category& alert_category() noexcept;
inline boost::system::error_code make_error_code(alert_errc e) noexcept {
    return {static_cast<int>(e), alert_category()};
}

class alert_control {
public:
    virtual ~alert_control() = default;

    // open -> acknowledged (by `user`); emits alert.acknowledged.
    virtual boost::system::result<storage::state::alert_record> acknowledge(std::string_view tenant, std::int64_t id,
                                                                            std::string_view user) = 0;
    // open|acknowledged -> closed (manual, by `user`); emits alert.closed.
    virtual boost::system::result<storage::state::alert_record> close(std::string_view tenant, std::int64_t id,
                                                                      std::string_view user) = 0;
    // A non-closed alert as the engine holds it now (count and last value
    // are written to the database lazily); not_found when not in memory.
    virtual boost::system::result<storage::state::alert_record> live(std::string_view tenant, std::int64_t id) = 0;

    // Reload the tenant's rules / silences / device labels from the state
    // database. Returns once the engine has them.
    virtual void rules_changed(std::string_view tenant) = 0;
    virtual void silences_changed(std::string_view tenant) = 0;
    virtual void devices_changed(std::string_view tenant) = 0;
};

} // namespace pulsegate::engine

namespace boost::system {
template <>
struct is_error_code_enum<pulsegate::engine::alert_errc> : std::true_type {};
} // namespace boost::system
