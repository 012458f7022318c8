#pragma once
// Who may publish and subscribe where, inside a client's own namespace
// (DESIGN.md, MQTT contract: identity and ACL). Topics and filters are the
// ones the client wrote, before mounting: a tenant client cannot name
// another tenant's tree at all, so these rules only divide a tenant's tree
// between its clients.
//
//   - device `{tenant}/{device}`: publishes only under `d/{device}/`,
//     subscribes only to `d/{device}/cmd/...` (its downlink);
//   - integrator `{tenant}/api`: reads the whole tenant tree, writes only
//     commands `d/{any}/cmd/...`;
//   - operator (no tenant): everything, internal names included;
//   - anonymous: everything in its tenant's tree (when anonymous access is on).
//
// Then the static `[[acl]]` rules, in order: the first whose `who`, action
// and topic match decides; none: allowed. A static rule never widens what
// the identity rules deny.

#include "broker/auth.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::broker {

struct acl_rule {
    std::string who;    // "anonymous", "*", or "{tenant}/{device}" (principal)
    bool publish = false;
    bool subscribe = false;
    std::string topic;  // filter, in the client's own namespace
    bool allow = false;
};

class acl {
public:
    explicit acl(std::vector<acl_rule> rules = {}) : rules_(std::move(rules)) {}

    bool may_publish(const client_identity& who, std::string_view topic) const;
    bool may_subscribe(const client_identity& who, std::string_view filter) const;

private:
    bool static_rules(const client_identity& who, std::string_view topic_or_filter, bool publish) const;
    std::vector<acl_rule> rules_;
};

} // namespace pulsegate::broker
