// TLS at the edge ([tls], common/tls.hpp): the MQTT TLS listener with
// mosquitto_sub/pub and Paho, client certificates naming "tenant/device",
// refusals (a client that does not trust our CA, a certificate from another
// CA, a certificate for no device, a user name that is not the
// certificate's), HTTPS with curl and the Secure session cookie, and a
// certificate reload on SIGHUP that keeps open connections.
// Certificates come from the openssl command, made per run.

#include "harness.hpp"
#include "tenant_world.hpp"
#include "test_pki.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

using namespace pulsegate::itest;
namespace fs = std::filesystem;

namespace {

std::string tls_toml(const pki& p, bool client_ca) {
    std::string t = "cert = \"" + p("server.pem") + "\"\nkey = \"" + p("server.key") + "\"\nlisten = \"127.0.0.1:0\"\n";
    if (client_ca) t += "client_ca = \"" + p("ca.pem") + "\"\n";
    return t;
}

// mosquitto_pub over TLS; returns (exit code, output).
process_result tls_pub(std::uint16_t port, const pki& p, const std::string& ca, std::vector<std::string> more) {
    std::vector<std::string> argv{"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(port), "--cafile",
                                  p(ca), "-t", "d/s1/telemetry", "-m", R"({"temp":21.5})", "-q", "1"};
    argv.insert(argv.end(), more.begin(), more.end());
    return run_process(std::move(argv), 15s);
}

bool ok(const process_result& r) { return r.exit_code && *r.exit_code == 0; }

// The subject of the certificate the server at `port` presents.
std::string served_subject(std::uint16_t port, const pki& p) {
    auto r = run_process({"sh", "-c",
                          "openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -CAfile '" +
                              p("ca.pem") + "' </dev/null 2>/dev/null | openssl x509 -noout -subject"},
                         15s);
    return r.output;
}

} // namespace

TEST_CASE("MQTT over TLS: server certificate, client certificates, refusals" * doctest::skip(is_mosquitto())) {
    pki p;
    auto o = rules_options();
    o.tls_toml = tls_toml(p, true);
    o.http_toml = "https = false\n"; // REST set-up over plain HTTP
    world w(o);
    auto t = w.make_tenant("acme", {{"s1"}, {"s2"}});
    const auto port = w.b.wait_port("mqtts");
    // GET /api/v1/info shows the listeners a device can use.
    auto info = ok(t.admin.get("/api/v1/info"), "info");
    CHECK(info["mqtt"]["tls"][0].str() == "127.0.0.1:" + std::to_string(port));
    CHECK(info["mqtt"]["tcp"][0].str() == "127.0.0.1:" + std::to_string(w.b.port()));
    CHECK(info["mqtt"]["websocket"].str() == "/mqtt");
    CHECK_FALSE(info["https"].boolean());
    CHECK(ok(w.op.get("/api/v1/info"), "info for an operator")["version"].str() != "");

    // The tenant's integrator sees what the devices publish.
    auto watcher = mqtt_as(w.b, "watcher", "acme/api", t.token);
    REQUIRE(watcher->subscribe("d/+/telemetry", 1) == 1);

    SUBCASE("a device with its password over TLS (mosquitto_pub), and Paho's ssl://") {
        auto r = tls_pub(port, p, "ca.pem", {"-u", "acme/s1", "-P", t.secret["s1"], "-i", "tls-pw"});
        CHECK_MESSAGE(ok(r), r.output);
        auto m = watcher->messages().pop();
        REQUIRE(m);
        CHECK(m->topic == "d/s1/telemetry");

        paho_client paho("ssl://127.0.0.1:" + std::to_string(port), "tls-paho", 5);
        auto opts = mqtt::connect_options_builder()
                        .mqtt_version(MQTTVERSION_5)
                        .user_name("acme/s2")
                        .password(t.secret["s2"])
                        .ssl(mqtt::ssl_options_builder().trust_store(p("ca.pem")).finalize())
                        .finalize();
        paho.connect(opts);
        paho.publish("d/s2/telemetry", R"({"temp":22})", 1);
        auto m2 = watcher->messages().pop();
        REQUIRE(m2);
        CHECK(m2->topic == "d/s2/telemetry");
        CHECK(m2->payload == R"({"temp":22})");
    }
    SUBCASE("a client certificate naming acme/s1 is that device, with no password") {
        auto r = tls_pub(port, p, "ca.pem", {"--cert", p("device.pem"), "--key", p("device.key"), "-i", "tls-cert"});
        CHECK_MESSAGE(ok(r), r.output);
        auto m = watcher->messages().pop();
        REQUIRE(m);
        CHECK(m->topic == "d/s1/telemetry");
        CHECK(m->payload == R"({"temp":21.5})");
        // The same user name as the certificate is fine too.
        auto same = tls_pub(port, p, "ca.pem",
                            {"--cert", p("device.pem"), "--key", p("device.key"), "-u", "acme/s1", "-i", "tls-same"});
        CHECK_MESSAGE(ok(same), same.output);
    }
    SUBCASE("refused: a certificate for no device, another user name, another CA's certificate, our CA untrusted") {
        auto ghost = tls_pub(port, p, "ca.pem", {"--cert", p("ghost.pem"), "--key", p("ghost.key")});
        CHECK_FALSE(ghost.exit_code == 0);
        CHECK_MESSAGE(ghost.output.find("not authorised") != std::string::npos, ghost.output);

        auto other_user = tls_pub(port, p, "ca.pem",
                                  {"--cert", p("device.pem"), "--key", p("device.key"), "-u", "acme/s2", "-P",
                                   t.secret["s2"]});
        CHECK_FALSE(other_user.exit_code == 0);
        CHECK_MESSAGE(other_user.output.find("not authorised") != std::string::npos, other_user.output);

        auto stranger = tls_pub(port, p, "ca.pem", {"--cert", p("stranger.pem"), "--key", p("stranger.key")});
        CHECK_FALSE(stranger.exit_code == 0);

        auto untrusted = tls_pub(port, p, "other-ca.pem", {"-u", "acme/s1", "-P", t.secret["s1"]});
        CHECK_FALSE(untrusted.exit_code == 0);

        // Nothing of that reached the tenant; the rejected events say why
        // (written once a second).
        CHECK_FALSE(watcher->messages().pop(quiet_window));
        bool named = false;
        std::string seen;
        for (const auto deadline = steady::now() + event_timeout; !named && steady::now() < deadline;) {
            auto rejected = ok(w.op.get("/api/v1/operator/rejected?tenant=acme"), "rejected events");
            for (const auto& e : rejected["items"].items())
                named = named || e["reason"].str().find("no device \"acme/nobody\"") != std::string::npos;
            seen = rejected.dump();
            if (!named) std::this_thread::sleep_for(100ms);
        }
        CHECK_MESSAGE(named, seen);
    }
}

TEST_CASE("HTTPS with the same certificate; SIGHUP loads a renewed one and keeps open connections" *
          doctest::skip(is_mosquitto())) {
    pki p;
    broker_options o;
    o.admin_password = "admin-pass-23";
    o.tls_toml = tls_toml(p, false);
    broker_process b(o);
    const auto https = b.wait_port("https");
    const auto mqtts = b.wait_port("mqtts");
    const std::string base = "https://127.0.0.1:" + std::to_string(https);

    auto health = run_process({"curl", "-sS", "-i", "--cacert", p("ca.pem"), base + "/healthz"}, 15s);
    REQUIRE_MESSAGE(ok(health), health.output);
    CHECK(health.output.find("\"ok\"") != std::string::npos);
    // Browsers that reached it over HTTPS keep to HTTPS (HSTS).
    CHECK_MESSAGE(health.output.find("Strict-Transport-Security: max-age=31536000") != std::string::npos,
                  health.output);
    // Plain HTTP to the HTTPS port: a 400 that says which URL to use.
    auto plain = http_request(https, "GET", "/healthz", {}, "");
    CHECK_MESSAGE(plain.status == 400, plain.describe());
    CHECK_MESSAGE(plain.body.find("use https://HOST:" + std::to_string(https) + "/") != std::string::npos,
                  plain.describe());
    // TLS 1.1 is refused. The client is made able to speak it (Debian's
    // OpenSSL refuses it by default), as a TLS 1.1 server shows.
    const auto handshake = [](std::uint16_t port, std::string_view version) {
        return run_process({"sh", "-c",
                            "echo | openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -" +
                                std::string(version) + " -cipher 'DEFAULT:@SECLEVEL=0' 2>&1"},
                           15s)
            .output;
    };
    const auto negotiated = [](const std::string& out) {
        return out.find("Cipher is ") != std::string::npos && out.find("Cipher is (NONE)") == std::string::npos;
    };
    {
        const auto legacy_port = free_tcp_port();
        child_process legacy({"openssl", "s_server", "-accept", std::to_string(legacy_port), "-cert", p("server.pem"),
                              "-key", p("server.key"), "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-www"});
        REQUIRE_MESSAGE(legacy.read_until("ACCEPT", 10s), legacy.output());
        const auto control = handshake(legacy_port, "tls1_1");
        REQUIRE_MESSAGE(negotiated(control), "this openssl cannot speak TLS 1.1 at all: " << control);
    }
    const auto refused = handshake(https, "tls1_1");
    CHECK_MESSAGE(!negotiated(refused), refused);
    const auto modern = handshake(https, "tls1_2");
    CHECK_MESSAGE(negotiated(modern), modern);
    // The session cookie is Secure under HTTPS.
    auto login = run_process({"curl", "-sS", "-i", "--cacert", p("ca.pem"), "-H", "Content-Type: application/json",
                              "-d", R"({"username":"admin","password":"admin-pass-23"})", base + "/api/v1/auth/login"},
                             15s);
    REQUIRE_MESSAGE(ok(login), login.output);
    CHECK_MESSAGE(login.output.find("HTTP/1.1 200") != std::string::npos, login.output);
    CHECK_MESSAGE(login.output.find("; Secure") != std::string::npos, login.output);

    CHECK(served_subject(https, p).find("CN = localhost") != std::string::npos);
    // A subscriber over TLS stays connected through the reload.
    paho_client sub("ssl://127.0.0.1:" + std::to_string(mqtts), "tls-sub", 4);
    sub.connect(mqtt::connect_options_builder()
                    .mqtt_version(MQTTVERSION_3_1_1)
                    .user_name("admin")
                    .password("admin-pass-23")
                    .ssl(mqtt::ssl_options_builder().trust_store(p("ca.pem")).finalize())
                    .finalize());
    sub.subscribe("renewal/#", 1);

    p.issue("server", "ca", "/CN=renewed", "subjectAltName=IP:127.0.0.1");
    REQUIRE(::kill(b.pid(), SIGHUP) == 0);
    const auto deadline = steady::now() + event_timeout;
    while (b.log_text().find("TLS certificate reloaded") == std::string::npos && steady::now() < deadline)
        std::this_thread::sleep_for(20ms);
    REQUIRE_MESSAGE(b.log_text().find("TLS certificate reloaded") != std::string::npos, b.log_text());
    CHECK(served_subject(https, p).find("CN = renewed") != std::string::npos);
    CHECK(served_subject(mqtts, p).find("CN = renewed") != std::string::npos);

    mosq_client pub("after-reload");
    pub.credentials("admin", "admin-pass-23");
    REQUIRE(pub.connect(b.port()) == 0);
    pub.publish("renewal/x", "still here", 1);
    auto m = sub.messages().pop();
    REQUIRE(m);
    CHECK(m->payload == "still here");
    CHECK(sub.connected());

    // A client that opened the HTTPS port and sent nothing (no TLS
    // handshake yet) does not hold up a stop.
    raw_client silent(https);
    std::this_thread::sleep_for(300ms); // accepted
    sub.disconnect();
    CHECK(b.stop() == 0);
    CHECK_MESSAGE(b.log_text().find("still busy") == std::string::npos, b.log_text());
}
