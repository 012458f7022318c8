// The ACL of DESIGN.md (MQTT contract): what devices, integrators, operators
// and anonymous clients may publish and subscribe to in their own namespace,
// then the static [[acl]] rules.
#include "broker/acl.hpp"

#include <doctest/doctest.h>

using namespace pulsegate::broker;

namespace {

client_identity device(std::string id) {
    return {"acme", "acme/" + id, false, client_kind::device, std::move(id), {}};
}
client_identity integrator() { return {"acme", "acme/api", false, client_kind::integrator, {}, {}}; }
client_identity operator_user() { return {"", "admin", false, client_kind::operator_, {}, {}}; }
client_identity anonymous() { return {"default", "anonymous", true, client_kind::anonymous, {}, {}}; }

} // namespace

TEST_CASE("identity rules for publishing") {
    const acl a;
    struct row {
        client_identity who;
        const char* topic;
        bool allowed;
    };
    const row rows[] = {
        {device("pump-1"), "d/pump-1/telemetry", true},
        {device("pump-1"), "d/pump-1/heartbeat", true},
        {device("pump-1"), "d/pump-1/status", true},
        {device("pump-1"), "d/pump-1", false},            // not under its subtree
        {device("pump-1"), "d/pump-2/telemetry", false},  // another device
        {device("pump-1"), "d/pump-10/telemetry", false}, // a prefix is not a subtree
        {device("pump-1"), "alerts/pump-1/r1", false},
        {device("pump-1"), "other", false},
        {integrator(), "d/pump-1/cmd", true},
        {integrator(), "d/pump-1/cmd/reboot", true},
        {integrator(), "d/pump-1/telemetry", false}, // integrators do not forge readings
        {integrator(), "d/pump-1/command", false},
        {integrator(), "d//cmd", false},
        {integrator(), "alerts/x/y", false},
        {operator_user(), "t/acme/d/pump-1/cmd", true},
        {operator_user(), "anything/at/all", true},
        {anonymous(), "d/lab/telemetry", true},
        {anonymous(), "test/topic", true},
    };
    for (const auto& r : rows) {
        CAPTURE(r.who.principal);
        CAPTURE(r.topic);
        CHECK(a.may_publish(r.who, r.topic) == r.allowed);
    }
}

TEST_CASE("identity rules for subscribing") {
    const acl a;
    struct row {
        client_identity who;
        const char* filter;
        bool allowed;
    };
    const row rows[] = {
        {device("pump-1"), "d/pump-1/cmd/#", true},
        {device("pump-1"), "d/pump-1/cmd", true},
        {device("pump-1"), "d/pump-1/cmd/+", true},
        {device("pump-1"), "d/pump-1/#", false}, // would include its telemetry
        {device("pump-1"), "d/+/cmd/#", false},  // would include other devices
        {device("pump-1"), "#", false},
        {device("pump-1"), "d/pump-2/cmd/#", false},
        {device("pump-1"), "$share/g/d/pump-1/cmd/#", true},
        {device("pump-1"), "$share/g/#", false},
        {integrator(), "#", true},
        {integrator(), "d/+/telemetry", true},
        {integrator(), "$share/g/alerts/#", true},
        {operator_user(), "$SYS/#", true},
        {anonymous(), "#", true},
    };
    for (const auto& r : rows) {
        CAPTURE(r.who.principal);
        CAPTURE(r.filter);
        CHECK(a.may_subscribe(r.who, r.filter) == r.allowed);
    }
}

TEST_CASE("static rules: the first match decides, and they never widen the identity rules") {
    const acl a({
        {"anonymous", false, true, "test/nosubscribe", false},
        {"*", true, false, "readonly/#", false},
        {"acme/pump-1", true, true, "d/pump-1/secret/#", false},
        {"*", true, true, "d/pump-1/secret/open", true}, // shadowed by the rule above for pump-1
    });
    CHECK_FALSE(a.may_subscribe(anonymous(), "test/nosubscribe"));
    CHECK(a.may_publish(anonymous(), "test/nosubscribe")); // the rule is for subscribe only
    CHECK(a.may_subscribe(anonymous(), "test/other"));
    CHECK_FALSE(a.may_publish(anonymous(), "readonly/x"));
    CHECK_FALSE(a.may_publish(operator_user(), "readonly/x/y"));
    CHECK(a.may_subscribe(operator_user(), "readonly/#"));
    CHECK_FALSE(a.may_publish(device("pump-1"), "d/pump-1/secret/open"));
    CHECK(a.may_publish(device("pump-2"), "d/pump-2/secret/open"));
    // An allow rule cannot let a device out of its subtree.
    const acl widening({{"*", true, true, "#", true}});
    CHECK_FALSE(widening.may_publish(device("pump-1"), "d/pump-2/telemetry"));
    CHECK_FALSE(widening.may_subscribe(device("pump-1"), "#"));
}
