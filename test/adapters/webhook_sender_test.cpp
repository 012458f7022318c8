// The webhook sender against a real HTTP(S) server: Python's http.server
// (test/adapters/webhook_receiver.py, run by /usr/bin/python3) on 127.0.0.1,
// an ephemeral port, HTTPS with a self-signed certificate for "localhost"
// made by the openssl CLI. The receiver's answer is scripted by path, and it
// appends every request (and whether its signature verified) to a JSON-lines
// file that the checks read.

#include "adapters/webhook_sender.hpp"

#include "common/time.hpp"
#include "test/adapters/child_process.hpp"
#include "test/temp_dir.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace pulsegate::adapters;
namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

using pulsegate::test::child_process;
using pulsegate::test::slurp;

fs::path receiver_script() { return pulsegate::test::adapters_script("webhook_receiver.py"); }

// webhook_receiver.py on 127.0.0.1, an ephemeral port; HTTPS with `tls`;
// checks signatures with `secret` when given.
struct http_receiver {
    pulsegate::test::temp_dir dir{"pulsegate-webhook"}; // declared first: outlives the child
    std::unique_ptr<child_process> child;
    unsigned port = 0;

    explicit http_receiver(bool tls = false, const std::string& secret = "") {
        std::vector<std::string> argv = {"/usr/bin/python3", receiver_script().string(), "--dir", dir.path.string()};
        if (tls)
            argv.emplace_back("--tls");
        if (!secret.empty())
            argv.insert(argv.end(), {"--secret", secret});
        child = std::make_unique<child_process>(argv, dir.sub("log"));
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (port == 0) {
            if (fs::exists(dir.sub("port")))
                port = static_cast<unsigned>(std::stoul(slurp(dir.sub("port"))));
            else if (child->exited())
                throw std::runtime_error("webhook_receiver.py exited: " + log());
            else if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("webhook_receiver.py not ready within 30 s: " + log());
            else
                std::this_thread::sleep_for(5ms); // polling the port file, not waiting a fixed time
        }
    }

    std::string url(std::string_view path, std::string_view scheme = "http", std::string_view host = "127.0.0.1") const {
        return std::string(scheme) + "://" + std::string(host) + ":" + std::to_string(port) + std::string(path);
    }
    fs::path cert() const { return dir.sub("cert.pem"); }
    std::string log() const { return slurp(dir.sub("log")); }

    // Every request so far. The receiver records a request before it
    // answers, so after send() returns its requests are all here.
    std::vector<json::object> requests() const {
        std::vector<json::object> out;
        std::istringstream lines(slurp(dir.sub("requests.jsonl")));
        for (std::string line; std::getline(lines, line);)
            if (!line.empty())
                out.push_back(json::parse(line).as_object());
        return out;
    }
};

target_guard loopback_guard() {
    return target_guard({*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")});
}

constexpr const char* opened_payload = R"({"event":"alert.opened","tenant":"acme","at":"2026-11-24T10:00:00Z",
    "alert":{"id":7,"device":"pump-3","rule":2,"rule_name":"hot pump","kind":"THRESHOLD",
    "severity":"critical","status":"open","metric":"temperature","value":92.5,"threshold":80,
    "message":"temperature 92.5 > 80","opened_at":"2026-11-24T10:00:00Z"}})";

constexpr const char* closed_payload = R"({"event":"alert.closed","tenant":"acme","at":"2026-11-24T10:30:00Z",
    "alert":{"id":7,"device":"pump-3","rule":2,"rule_name":"hot pump","kind":"THRESHOLD",
    "severity":"critical","status":"closed","metric":"temperature","value":71,"threshold":80,
    "message":"temperature 92.5 > 80","opened_at":"2026-11-24T10:00:00Z","closed_at":"2026-11-24T10:30:00Z"}})";

alert_message alert(const char* payload = opened_payload) {
    auto m = parse_alert_message(payload);
    REQUIRE(m.has_value());
    m->job_id = 42;
    return *m;
}

integration_target webhook_target(std::string url) {
    integration_target t;
    t.id = 1;
    t.tenant = "acme";
    t.name = "ops hook";
    t.type = "webhook";
    t.config = {{"url", std::move(url)}};
    return t;
}

std::string text_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string header(const json::object& request, std::string_view lower_name) {
    return text_of(request.at("headers").as_object(), lower_name);
}

bool contains(const std::string& s, std::string_view part) {
    return s.find(part) != std::string::npos;
}

// A loopback port that was free a moment ago: bound, read, closed.
unsigned free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);
    return ntohs(a.sin_port);
}

} // namespace

TEST_CASE("delivered: the event JSON plus sent_at, our headers, the custom ones, a signature that verifies") {
    http_receiver server(false, "s3cret");
    const auto guard = loopback_guard();
    webhook_sender sender(guard);
    auto target = webhook_target(server.url("/ok?team=ops"));
    target.config["headers"] = json::object{{"X-Team", "ops"}, {"Authorization", "Bearer abc"}};
    target.secrets["secret"] = "s3cret";

    const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const auto r = sender.send(target, alert());
    INFO("error: ", r.error, "\nreceiver log:\n", server.log());
    CHECK(r.result == outcome::delivered);
    CHECK(r.status == "204");
    CHECK(r.error.empty());

    auto requests = server.requests();
    REQUIRE(requests.size() == 1);
    const auto& got = requests[0];
    CHECK(text_of(got, "method") == "POST");
    CHECK(text_of(got, "path") == "/ok?team=ops");
    CHECK(header(got, "content-type") == "application/json");
    CHECK(header(got, "x-pulsegate-event") == "alert.opened");
    CHECK(header(got, "idempotency-key") == "42");
    CHECK(header(got, "x-pulsegate-delivery") == "42");
    CHECK(header(got, "x-team") == "ops");
    CHECK(header(got, "authorization") == "Bearer abc");
    CHECK(header(got, "host") == "127.0.0.1:" + std::to_string(server.port));
    CHECK(got.at("signature_ok") == json::value(true));
    const auto body_text = text_of(got, "body");
    CHECK(header(got, "x-pulsegate-signature") == webhook_signature("s3cret", body_text));

    auto body = json::parse(body_text).as_object();
    const auto sent_at = text_of(body, "sent_at");
    const auto sent_ms = pulsegate::common::parse_rfc3339(sent_at);
    REQUIRE_MESSAGE(sent_ms.has_value(), sent_at);
    CHECK(*sent_ms >= before - 1000);
    CHECK(*sent_ms <= before + 60'000);
    body.erase("sent_at");
    CHECK(json::value(body) == json::parse(opened_payload)); // the event exactly as the engine made it

    // Without a secret: no signature header (and nothing to verify).
    target.secrets.clear();
    const auto r2 = sender.send(target, alert());
    CHECK(r2.result == outcome::delivered);
    requests = server.requests();
    REQUIRE(requests.size() == 2);
    CHECK(!requests[1].at("headers").as_object().contains("x-pulsegate-signature"));
    CHECK(requests[1].at("signature_ok") == json::value(false));

    // A test send: its own delivery id, marked as a test.
    auto test = alert();
    test.test = true;
    test.job_id = 0;
    const auto r3 = sender.send(target, test);
    CHECK(r3.result == outcome::delivered);
    requests = server.requests();
    REQUIRE(requests.size() == 3);
    CHECK(header(requests[2], "x-pulsegate-delivery").starts_with("test-"));
    CHECK(header(requests[2], "idempotency-key") == header(requests[2], "x-pulsegate-delivery"));
    CHECK(header(requests[2], "x-pulsegate-test") == "true");
}

TEST_CASE("5xx is retried, with the same idempotency key, until it is delivered") {
    http_receiver server;
    const auto guard = loopback_guard();
    webhook_sender sender(guard);
    const auto target = webhook_target(server.url("/flaky"));
    const auto message = alert();

    const auto r1 = sender.send(target, message);
    CHECK(r1.result == outcome::retry);
    CHECK(r1.status == "500");
    CHECK(contains(r1.error, "500"));
    const auto r2 = sender.send(target, message);
    CHECK(r2.result == outcome::retry);
    CHECK(r2.status == "500");
    const auto r3 = sender.send(target, message);
    INFO("error: ", r3.error);
    CHECK(r3.result == outcome::delivered);
    CHECK(r3.status == "200");

    const auto requests = server.requests();
    REQUIRE(requests.size() == 3);
    for (const auto& got : requests) {
        CHECK(text_of(got, "path") == "/flaky");
        CHECK(header(got, "idempotency-key") == "42");
    }
}

TEST_CASE("4xx fails for good, except 408 and 429 which are retried") {
    http_receiver server;
    const auto guard = loopback_guard();
    webhook_sender sender(guard);

    const auto r = sender.send(webhook_target(server.url("/bad")), alert());
    CHECK(r.result == outcome::failed);
    CHECK(r.status == "400");
    CHECK(contains(r.error, "400"));

    for (const char* code : {"408", "429", "503"}) {
        const auto rc = sender.send(webhook_target(server.url(std::string("/status/") + code)), alert());
        INFO(code, " error: ", rc.error);
        CHECK(rc.result == outcome::retry);
        CHECK(rc.status == code);
    }
    for (const char* code : {"401", "404", "410"}) {
        const auto rc = sender.send(webhook_target(server.url(std::string("/status/") + code)), alert());
        INFO(code, " error: ", rc.error);
        CHECK(rc.result == outcome::failed);
        CHECK(rc.status == code);
    }
    CHECK(server.requests().size() == 7); // one request each: the sender itself never retries
}

TEST_CASE("a receiver slower than timeout_ms: retry, without waiting for it") {
    http_receiver server;
    const auto guard = loopback_guard();
    webhook_sender sender(guard);
    auto target = webhook_target(server.url("/slow"));
    target.config["timeout_ms"] = 300;

    const auto started = std::chrono::steady_clock::now();
    const auto r = sender.send(target, alert());
    const auto took = std::chrono::steady_clock::now() - started;
    INFO("error: ", r.error);
    CHECK(r.result == outcome::retry);
    CHECK(r.status.empty());
    CHECK(contains(r.error, "300 ms"));
    CHECK(took < 1900ms); // the server answers after 2 s
    CHECK(server.requests().size() == 1);
}

TEST_CASE("a redirect fails and is not followed") {
    http_receiver server;
    const auto guard = loopback_guard();
    webhook_sender sender(guard);
    const auto r = sender.send(webhook_target(server.url("/redirect")), alert());
    INFO("error: ", r.error);
    CHECK(r.result == outcome::failed);
    CHECK(r.status == "302");
    CHECK(contains(r.error, "redirect"));
    const auto requests = server.requests();
    REQUIRE(requests.size() == 1);
    CHECK(text_of(requests[0], "path") == "/redirect");
}

TEST_CASE("a 2xx with a body larger than the read limit is delivered") {
    http_receiver server;
    const auto guard = loopback_guard();
    webhook_sender sender(guard);
    const auto r = sender.send(webhook_target(server.url("/big")), alert());
    INFO("error: ", r.error, "\nreceiver log:\n", server.log());
    CHECK(r.result == outcome::delivered);
    CHECK(r.status == "200");
    CHECK(server.requests().size() == 1);
}

TEST_CASE("format alertmanager: a version 4 webhook, firing then resolved") {
    http_receiver server(false, "am-secret");
    const auto guard = loopback_guard();
    webhook_sender sender(guard);
    auto target = webhook_target(server.url("/ok"));
    target.config["format"] = "alertmanager";
    target.secrets["secret"] = "am-secret";

    const auto r = sender.send(target, alert());
    INFO("error: ", r.error);
    CHECK(r.result == outcome::delivered);
    const auto r2 = sender.send(target, alert(closed_payload));
    CHECK(r2.result == outcome::delivered);

    const auto requests = server.requests();
    REQUIRE(requests.size() == 2);
    std::string first_fingerprint;
    for (std::size_t i = 0; i < 2; ++i) {
        const bool resolved = i == 1;
        const auto& got = requests[i];
        CHECK(got.at("signature_ok") == json::value(true));
        CHECK(header(got, "x-pulsegate-event") == (resolved ? "alert.closed" : "alert.opened"));
        const auto body = json::parse(text_of(got, "body")).as_object();
        CHECK(text_of(body, "version") == "4");
        CHECK(text_of(body, "status") == (resolved ? "resolved" : "firing"));
        CHECK(text_of(body, "receiver") == "ops hook");
        const auto& alerts = body.at("alerts").as_array();
        REQUIRE(alerts.size() == 1);
        const auto& a = alerts[0].as_object();
        CHECK(text_of(a, "status") == (resolved ? "resolved" : "firing"));
        const auto& labels = a.at("labels").as_object();
        CHECK(text_of(labels, "alertname") == "hot pump");
        CHECK(text_of(labels, "severity") == "critical");
        CHECK(text_of(labels, "device") == "pump-3");
        CHECK(text_of(a.at("annotations").as_object(), "summary") == "temperature 92.5 > 80");
        CHECK(text_of(a, "startsAt") == "2026-11-24T10:00:00Z");
        CHECK(text_of(a, "endsAt") == (resolved ? "2026-11-24T10:30:00Z" : "0001-01-01T00:00:00Z"));
        const auto fp = text_of(a, "fingerprint");
        CHECK(fp.size() == 16);
        CHECK(fp.find_first_not_of("0123456789abcdef") == std::string::npos);
        if (i == 0)
            first_fingerprint = fp;
        else
            CHECK(fp == first_fingerprint); // the same alert
    }
}

TEST_CASE("HTTPS: ca_file verifies, no ca_file fails for good, insecure skips the check") {
    http_receiver server(true);
    const auto guard = loopback_guard();
    webhook_sender sender(guard);

    auto target = webhook_target(server.url("/ok", "https", "localhost"));
    target.config["ca_file"] = server.cert().string();
    const auto r = sender.send(target, alert());
    INFO("error: ", r.error, "\nreceiver log:\n", server.log());
    CHECK(r.result == outcome::delivered);
    CHECK(r.status == "204");
    CHECK(server.requests().size() == 1);

    // By address: the certificate names 127.0.0.1 too.
    target.config["url"] = server.url("/ok", "https", "127.0.0.1");
    const auto r_ip = sender.send(target, alert());
    INFO("error: ", r_ip.error);
    CHECK(r_ip.result == outcome::delivered);
    CHECK(server.requests().size() == 2);

    // The system store does not know the self-signed certificate.
    auto untrusted = webhook_target(server.url("/ok", "https", "localhost"));
    const auto r2 = sender.send(untrusted, alert());
    INFO("error: ", r2.error);
    CHECK(r2.result == outcome::failed);
    CHECK(r2.status.empty());
    CHECK(contains(r2.error, "certificate"));
    CHECK(contains(r2.error, "config.ca_file"));
    CHECK(server.requests().size() == 2);

    untrusted.config["insecure"] = true;
    const auto r3 = sender.send(untrusted, alert());
    INFO("error: ", r3.error);
    CHECK(r3.result == outcome::delivered);
    CHECK(server.requests().size() == 3);

    // A timeout under TLS is still a timeout (the SSL layer passes it up).
    target.config["url"] = server.url("/slow", "https", "localhost");
    target.config["timeout_ms"] = 300;
    const auto started = std::chrono::steady_clock::now();
    const auto r4 = sender.send(target, alert());
    INFO("error: ", r4.error);
    CHECK(r4.result == outcome::retry);
    CHECK(contains(r4.error, "300 ms"));
    CHECK(std::chrono::steady_clock::now() - started < 1900ms);
}

TEST_CASE("nothing listening on the port is worth a retry") {
    const auto guard = loopback_guard();
    webhook_sender sender(guard);
    const auto r = sender.send(webhook_target("http://127.0.0.1:" + std::to_string(free_port()) + "/ok"), alert());
    INFO("error: ", r.error);
    CHECK(r.result == outcome::retry);
    CHECK(r.status.empty());
    CHECK(!r.error.empty());
}

TEST_CASE("the default guard refuses private destinations before any request") {
    http_receiver server;
    const target_guard strict;
    webhook_sender sender(strict);
    const auto port = std::to_string(server.port);
    for (const auto& url : {"http://127.0.0.1:" + port + "/ok", std::string("http://10.0.0.1/"),
                            std::string("http://169.254.169.254/latest/meta-data/"), "http://[::1]:" + port + "/",
                            "http://localhost:" + port + "/ok"}) {
        const auto r = sender.send(webhook_target(url), alert());
        INFO(url, " error: ", r.error);
        CHECK(r.result == outcome::failed);
        CHECK(r.status.empty());
        CHECK(contains(r.error, "allow_private_targets"));
    }
    CHECK(server.requests().empty());
}

TEST_CASE("several threads send at once") {
    http_receiver server;
    const auto guard = loopback_guard();
    webhook_sender sender(guard);
    const auto target = webhook_target(server.url("/ok"));
    const auto message = alert();
    std::vector<send_result> results(8);
    {
        std::vector<std::jthread> threads;
        for (auto& r : results)
            threads.emplace_back([&, out = &r] { *out = sender.send(target, message); });
    }
    for (const auto& r : results) {
        INFO("error: ", r.error);
        CHECK(r.result == outcome::delivered);
    }
    CHECK(server.requests().size() == results.size());
}

TEST_CASE("validate_webhook names the field that is wrong") {
    const json::object good = {{"url", "https://hooks.example.com/alerts"}};
    std::string why;
    CHECK(validate_webhook(good, {}, &why));
    CHECK(validate_webhook(good, {}, nullptr));
    json::object full = good;
    full["format"] = "alertmanager";
    full["headers"] = json::object{{"X-Team", "ops"}};
    full["timeout_ms"] = 100;
    full["insecure"] = false;
    CHECK_MESSAGE(validate_webhook(full, {{"secret", "s"}}, &why), why);

    const auto rejects = [&](const json::object& config, const json::object& secrets, std::string_view expected) {
        why.clear();
        CHECK_MESSAGE(!validate_webhook(config, secrets, &why), expected);
        CHECK_MESSAGE(contains(why, expected), why);
    };
    auto c = good;
    c.erase("url");
    rejects(c, {}, "config.url");
    c = good;
    c["url"] = "ftp://files.example.com/alerts";
    rejects(c, {}, "config.url");
    c = good;
    c["url"] = "https://user:pass@hooks.example.com/alerts";
    rejects(c, {}, "config.url");
    CHECK(!contains(why, "pass@"));
    c = good;
    c["format"] = "slack";
    rejects(c, {}, "config.format");
    c = good;
    c["headers"] = json::object{{"X-Count", 3}};
    rejects(c, {}, "config.headers.X-Count");
    c = good;
    c["headers"] = json::array{"X-Team: ops"};
    rejects(c, {}, "config.headers");
    for (const char* reserved : {"Content-Length", "X-Pulsegate-Signature", "host", "Idempotency-Key"}) {
        c = good;
        c["headers"] = json::object{{reserved, "x"}};
        rejects(c, {}, std::string("config.headers.") + reserved);
    }
    for (const char* value : {"ops\r\nX-Evil: 1", "ops\nX-Evil: 1", "ops\r"}) {
        c = good;
        c["headers"] = json::object{{"X-Team", value}};
        rejects(c, {}, "config.headers.X-Team");
    }
    c = good;
    c["headers"] = json::object{{"Bad Name", "x"}};
    rejects(c, {}, "config.headers");
    for (const json::value& t : {json::value(50), json::value(60001), json::value("5000")}) {
        c = good;
        c["timeout_ms"] = t;
        rejects(c, {}, "config.timeout_ms");
    }
    c = good;
    c["insecure"] = "yes";
    rejects(c, {}, "config.insecure");
    rejects(good, {{"token", "abc"}}, "secrets.token");
    rejects(good, {{"secret", 12345}}, "secrets.secret");

    // send() applies the same checks and does not try what cannot work.
    const target_guard strict;
    webhook_sender sender(strict);
    auto t = webhook_target("ftp://files.example.com/alerts");
    const auto r = sender.send(t, alert());
    CHECK(r.result == outcome::failed);
    CHECK(contains(r.error, "config.url"));
}

TEST_CASE("webhook_signature: HMAC-SHA256 known vector") {
    CHECK(webhook_signature("key", "The quick brown fox jumps over the lazy dog") ==
          "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    // RFC 4231 test case 2.
    CHECK(webhook_signature("Jefe", "what do ya want for nothing?") ==
          "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
