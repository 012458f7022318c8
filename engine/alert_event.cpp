#include "engine/alert_event.hpp"

#include "common/json_text.hpp"
#include "common/time.hpp"
#include "engine/alert_control.hpp"
#include "engine/alert_json.hpp"

namespace pulsegate::engine {

std::string event_json(const alert_event& e) {
    boost::json::object o;
    o["event"] = to_string(e.type);
    o["tenant"] = e.alert.tenant;
    o["at"] = common::rfc3339(e.at_ms);
    auto a = alert_json(e.alert);
    boost::json::object labels;
    for (const auto& [k, v] : e.labels) labels[k] = v;
    a["labels"] = std::move(labels);
    o["alert"] = std::move(a);
    return common::to_json_text(o);
}

} // namespace pulsegate::engine

namespace pulsegate::engine {

namespace {
class alert_category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "pulsegate.alert"; }
    std::string message(int ev) const override {
        switch (static_cast<alert_errc>(ev)) {
        case alert_errc::not_found: return "no such alert";
        case alert_errc::already_closed: return "the alert is already closed";
        case alert_errc::already_acknowledged: return "the alert is already acknowledged";
        case alert_errc::unavailable: return "the rules engine is not running";
        }
        return "unknown alert error";
    }
};
} // namespace

const boost::system::error_category& alert_category() noexcept {
    static const alert_category_impl c;
    return c;
}

} // namespace pulsegate::engine
