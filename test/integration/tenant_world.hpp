#pragma once
// What the REST-driven integration tests share (17 rules, 18 delivery): a
// daemon with an operator session, tenants made over REST (a tenant_admin
// web session, an API token, devices with their secrets), JSON answers, and
// MQTT clients with device or integrator credentials.
#include <doctest/doctest.h>

#include "harness.hpp"

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pulsegate::itest {

inline constexpr std::string_view admin_password = "operator-secret-17";
inline constexpr std::string_view user_password = "tenant-user-secret-17";

// Waits for what the daemon does on a timer (for_s, heartbeat, grace,
// escalation, delivery retries): the timer's own length plus the generous
// event_timeout.
inline constexpr ms long_wait{15000};

// ------------------------------------------------------------------ REST --

inline json_value json_of(http_response const& res) {
    auto v = parse_json(res.body);
    REQUIRE_MESSAGE(v, "not a JSON body: " << res.describe());
    return *v;
}

inline std::string error_code(http_response const& res) {
    auto v = parse_json(res.body);
    return v ? (*v)["error"]["code"].str() : std::string{};
}

inline json_value created(http_response const& res, std::string_view what) {
    CHECK_MESSAGE(res.status == 201, what << ": " << res.describe());
    REQUIRE_MESSAGE(res.status / 100 == 2, what << ": " << res.describe());
    return json_of(res);
}

inline json_value ok(http_response const& res, std::string_view what) {
    REQUIRE_MESSAGE(res.status == 200, what << ": " << res.describe());
    return json_of(res);
}

inline std::int64_t id_of(json_value const& v) {
    REQUIRE_MESSAGE(v.is_number(), "not a numeric id: " << v.dump());
    return static_cast<std::int64_t>(v.num());
}

// Ids of a list answer, in its order.
inline std::vector<std::int64_t> ids_of(json_value const& list) {
    std::vector<std::int64_t> out;
    for (auto const& item : list["items"].items()) out.push_back(id_of(item["id"]));
    return out;
}

// Polls GET `target` until `pred` holds for its JSON, and returns that JSON;
// after 15 s CHECK-fails naming the last answer and returns it. For what the
// daemon writes to the database in batches (alert lists, counts).
template <class Pred>
inline json_value poll_get(rest_session const& s, std::string const& target, Pred pred, std::string_view what) {
    const auto deadline = steady::now() + long_wait;
    for (;;) {
        auto res = s.get(target);
        REQUIRE_MESSAGE(res.status == 200, "GET " << target << ": " << res.describe());
        auto v = json_of(res);
        if (pred(v)) return v;
        if (steady::now() >= deadline) {
            FAIL_CHECK(what << ": GET " << target << " still answers " << res.body);
            return v;
        }
        // Nothing to wait on over HTTP: poll (the engine writes once a second).
        std::this_thread::sleep_for(100ms);
    }
}

struct tenant_setup {
    std::string id;
    rest_session admin;  // a tenant_admin's web session
    rest_session api;    // the tenant's API token as Bearer
    std::string token;   // also the MQTT password of {id}/api
    std::map<std::string, std::string> secret;  // device id -> secret
};

struct device_spec {
    std::string id;
    std::string labels = "{}";  // JSON object
};

inline broker_options rules_options(std::string rules_toml = {}) {
    broker_options o;
    o.allow_anonymous = false;
    o.admin_password = std::string{admin_password};
    o.rules_toml = std::move(rules_toml);
    return o;
}

// A daemon with an operator session; tenants are added by the test.
struct world {
    broker_process b;
    std::uint16_t http;
    rest_session op;

    explicit world(broker_options o)
        : b(std::move(o)), http(b.wait_http_port()), op(rest_login(http, "admin", admin_password)) {}

    void add_user(std::string const& name, std::string_view role, std::string_view tenant) {
        created(op.post("/api/v1/operator/users",
                        "{\"username\":" + json_quote(name) + ",\"password\":" + json_quote(user_password) +
                            ",\"role\":" + json_quote(role) + ",\"tenant\":" + json_quote(tenant) + "}"),
                "create user " + name);
    }

    rest_session login(std::string const& user) { return rest_login(http, user, user_password); }

    tenant_setup make_tenant(std::string const& id, std::vector<device_spec> const& devices) {
        tenant_setup t;
        t.id = id;
        created(op.post("/api/v1/operator/tenants",
                        "{\"id\":" + json_quote(id) + ",\"name\":" + json_quote(id + " corp") + "}"),
                "create tenant " + id);
        add_user(id + "-admin", "tenant_admin", id);
        t.admin = login(id + "-admin");
        for (auto const& d : devices) {
            auto dev = created(t.admin.post("/api/v1/devices", "{\"id\":" + json_quote(d.id) +
                                                                   ",\"labels\":" + d.labels + "}"),
                               "create device " + d.id);
            t.secret[d.id] = dev["secret"].str();
            REQUIRE_MESSAGE(!t.secret[d.id].empty(), "no secret in " << dev.dump());
        }
        auto tok = created(t.admin.post("/api/v1/tokens", R"({"name":"integrator"})"), "create token");
        t.token = tok["token"].str();
        REQUIRE_MESSAGE(!t.token.empty(), "no token in " << tok.dump());
        t.api.port = http;
        t.api.bearer = t.token;
        return t;
    }

    // After b.restart(): the HTTP port is a new one (the config asks for port 0).
    void follow_restart(std::vector<rest_session*> const& sessions) {
        http = b.wait_http_port();
        op.port = http;
        for (auto* s : sessions) s->port = http;
    }
};

// A rule of the tenant; returns its id.
inline std::int64_t create_rule(tenant_setup const& t, std::string const& body) {
    auto rule = created(t.admin.post("/api/v1/rules", body), "create rule " + body);
    return id_of(rule["id"]);
}

// ------------------------------------------------------------------ MQTT --

// MQTT clients are libmosquitto's: here a Paho client's connect took about
// 2 s whenever another Paho client was connected, which adds up over the
// dozens of clients of this file.
inline std::unique_ptr<mosq_client> mqtt_as(broker_process const& b, std::string const& client_id,
                                     std::string const& user, std::string const& password) {
    auto c = std::make_unique<mosq_client>(client_id, 5);
    c->credentials(user, password);
    const int reason = c->connect(b.port());
    REQUIRE_MESSAGE(reason == 0, user << " (" << client_id << "): CONNACK " << reason);
    return c;
}

inline std::unique_ptr<mosq_client> device_client(broker_process const& b, tenant_setup const& t, std::string const& dev) {
    return mqtt_as(b, t.id + "-" + dev, t.id + "/" + dev, t.secret.at(dev));
}


} // namespace pulsegate::itest
