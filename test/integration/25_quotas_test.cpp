// Per-tenant quotas ([quotas]): devices a tenant may create, MQTT
// connections at once, PUBLISH packets per second over all its clients.
// Each is refused with its code (REST 403 quota_exceeded, CONNACK 0x97 /
// 3.1.1 0x03, PUBACK 0x97) and counted, and another tenant is not affected.
//
// pulsegate only: Mosquitto has no tenants.

#include "harness.hpp"
#include "tenant_world.hpp"

#include <doctest/doctest.h>

#include <thread>

using namespace pulsegate::itest;

namespace {

double metric(std::uint16_t http, std::string const& series) {
    const auto text = http_get(http, "/metrics").body;
    const auto at = text.find("\n" + series + " ");
    REQUIRE_MESSAGE(at != std::string::npos, "no " << series << " in /metrics");
    return std::stod(text.substr(at + series.size() + 2));
}

int connack(broker_process const& b, tenant_setup const& t, std::string const& dev, int version) {
    mosq_client c(t.id + "-" + dev, version);
    c.credentials(t.id + "/" + dev, t.secret.at(dev));
    return c.connect(b.port());
}

} // namespace

TEST_CASE("tenant quotas: devices, connections and messages per second are refused with their codes and counted" *
          doctest::skip(is_mosquitto())) {
    auto o = rules_options();
    o.extra_toml = "\n[quotas]\ndevices = 3\nconnections = 2\nmessages_per_s = 5\n";
    o.mqtt_toml = "publish_burst_s = 1\n";
    world w(o);
    auto acme = w.make_tenant("acme", {{"s1"}, {"s2"}, {"s3"}});
    auto beta = w.make_tenant("beta", {{"b1"}, {"b2"}});

    // Devices: the fourth is refused, naming the quota; beta still has room.
    auto fourth = acme.admin.post("/api/v1/devices", R"({"id":"s4"})");
    CHECK(fourth.status == 403);
    CHECK(error_code(fourth) == "quota_exceeded");
    CHECK_MESSAGE(fourth.body.find("at most 3") != std::string::npos, fourth.body);
    CHECK(beta.admin.post("/api/v1/devices", R"({"id":"b3"})").status == 201);
    CHECK(acme.admin.get("/api/v1/devices/s4").status == 404); // nothing was created

    // Connections: two at once; the third is refused (v5 0x97, 3.1.1 0x03).
    auto s1 = device_client(w.b, acme, "s1");
    auto s2 = device_client(w.b, acme, "s2");
    CHECK(connack(w.b, acme, "s3", 5) == 0x97);
    CHECK(connack(w.b, acme, "s3", 4) == 3);
    auto b1 = device_client(w.b, beta, "b1"); // another tenant's quota
    auto b2 = device_client(w.b, beta, "b2");
    // A client taking over its own connected client id still gets in.
    auto s1_again = device_client(w.b, acme, "s1");
    // Once one leaves, another may come.
    s2->disconnect();
    s2.reset();
    std::unique_ptr<mosq_client> s3;
    for (int i = 0; i < 50 && !s3; ++i) {
        auto c = std::make_unique<mosq_client>("acme-s3", 5);
        c->credentials("acme/s3", acme.secret.at("s3"));
        if (c->connect(w.b.port()) == 0) s3 = std::move(c);
        else std::this_thread::sleep_for(100ms);
    }
    CHECK(s3);
    CHECK(metric(w.http, "pulsegate_tenant_quota_refused_total{what=\"connection\"}") >= 2);

    // Messages: 5 per second (burst 1 s) over the tenant's clients. A burst
    // of 30 QoS 1 readings gets about 5 through; the rest get PUBACK 0x97.
    s3.reset();
    s1_again.reset();
    s1.reset();
    paho_client p(w.b.uri(), "acme-s2", 5);
    p.connect(mqtt::connect_options_builder()
                  .mqtt_version(MQTTVERSION_5)
                  .clean_start(true)
                  .user_name("acme/s2")
                  .password(acme.secret.at("s2"))
                  .finalize());
    int accepted = 0, refused = 0;
    for (int i = 0; i < 30; ++i) {
        try {
            p.publish("d/s2/telemetry", "{\"n\": " + std::to_string(i) + "}", 1);
            ++accepted;
        } catch (const mqtt::exception& e) {
            CHECK_MESSAGE(e.get_reason_code() == 0x97, e.what());
            ++refused;
        }
    }
    CHECK(accepted >= 5);
    CHECK(refused >= 15);
    CHECK(metric(w.http, "pulsegate_tenant_quota_refused_total{what=\"publish\"}") == refused);
    // Beta has its own 5 per second, untouched by acme's burst.
    for (int i = 0; i < 5; ++i) b1->publish("d/b1/telemetry", "{\"n\": " + std::to_string(i) + "}", 1);
    CHECK(metric(w.http, "pulsegate_tenant_quota_refused_total{what=\"publish\"}") == refused);
}
