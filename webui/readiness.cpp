#include "webui/readiness.hpp"

#include <stdexcept>

namespace pulsegate::webui {

void readiness::add(std::string name, std::function<check_result()> check) {
    if (!check) throw std::invalid_argument("readiness check \"" + name + "\" is empty");
    std::lock_guard lock(mutex_);
    for (const auto& e : checks_)
        if (e.name == name) throw std::invalid_argument("readiness check \"" + name + "\" is registered twice");
    checks_.push_back({std::move(name), std::move(check)});
}

std::vector<readiness::outcome> readiness::run() const {
    std::vector<entry> checks;
    {
        std::lock_guard lock(mutex_);
        checks = checks_;
    }
    std::vector<outcome> out;
    out.reserve(checks.size());
    for (auto& e : checks) {
        check_result r;
        try {
            r = e.check();
        } catch (const std::exception& ex) {
            r = check_result::failing(std::string("the check failed: ") + ex.what());
        } catch (...) {
            r = check_result::failing("the check failed with an unknown exception");
        }
        out.push_back({std::move(e.name), std::move(r)});
    }
    return out;
}

} // namespace pulsegate::webui
