#include "broker/acl.hpp"

#include "broker/topic.hpp"

namespace pulsegate::broker {
namespace {

// `name` (or filter) lies at or below `prefix` + "/": "d/x/cmd" and
// "d/x/cmd/..." for the prefix "d/x/cmd".
bool at_or_below(std::string_view name, std::string_view prefix) {
    if (!name.starts_with(prefix)) return false;
    return name.size() == prefix.size() || name[prefix.size()] == '/';
}

// The device id of "d/{device}/cmd[/...]" (a command topic), or empty.
std::string_view command_target(std::string_view topic) {
    if (!topic.starts_with("d/")) return {};
    const auto rest = topic.substr(2);
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return {};
    return at_or_below(rest.substr(slash + 1), "cmd") ? rest.substr(0, slash) : std::string_view{};
}

} // namespace

bool acl::may_publish(const client_identity& who, std::string_view topic) const {
    switch (who.kind) {
    case client_kind::device:
        // Strictly below "d/{device}" (no string built: this runs per publish).
        if (who.device.empty() || !topic.starts_with("d/") ||
            !at_or_below(topic.substr(2), who.device) || topic.size() == 2 + who.device.size())
            return false;
        break;
    case client_kind::integrator: {
        const auto target = command_target(topic);
        // A command for one device: no wildcard can appear in a topic name.
        if (target.empty()) return false;
        break;
    }
    case client_kind::operator_:
    case client_kind::anonymous:
        break;
    }
    return static_rules(who, topic, true);
}

bool acl::may_subscribe(const client_identity& who, std::string_view filter) const {
    // A shared subscription is judged by the filter it shares.
    if (auto shared = topic::parse_shared(filter)) filter = shared->filter;
    switch (who.kind) {
    case client_kind::device:
        // Only its own downlink: under a literal "d/{device}/cmd" prefix a
        // filter can match nothing else ("d/+/cmd/#" or "d/{device}/#" could).
        if (who.device.empty() || !at_or_below(filter, "d/" + who.device + "/cmd")) return false;
        break;
    case client_kind::integrator:
    case client_kind::operator_:
    case client_kind::anonymous:
        break;
    }
    return static_rules(who, filter, false);
}

bool acl::static_rules(const client_identity& who, std::string_view t, bool publish) const {
    for (const auto& r : rules_) {
        if (publish ? !r.publish : !r.subscribe) continue;
        const bool who_matches = r.who == "*" || (r.who == "anonymous" && who.anonymous) ||
                                 (!who.anonymous && r.who == who.principal);
        if (!who_matches) continue;
        // A subscription is covered when the rule's filter is the same
        // filter or matches it read as a name (its wildcards as literals).
        if (r.topic == t || topic::matches(r.topic, t)) return r.allow;
    }
    return true;
}

} // namespace pulsegate::broker
