// The email sender against a real SMTP server: Debian's aiosmtpd
// (test/adapters/smtp_receiver.py, run by /usr/bin/python3) on 127.0.0.1,
// with a self-signed certificate for "localhost" made by the openssl CLI.
// The receiver appends every accepted message, decoded, to a JSON-lines file
// that the checks read.

#include "adapters/email_sender.hpp"

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

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
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

fs::path receiver_script() { return pulsegate::test::adapters_script("smtp_receiver.py"); }

// aiosmtpd on 127.0.0.1, an ephemeral port; mode starttls | tls | none;
// AUTH (only over TLS) when `user` is given.
struct smtp_receiver {
    pulsegate::test::temp_dir dir{"pulsegate-smtp"}; // declared first: outlives the child
    std::unique_ptr<child_process> child;
    unsigned port = 0;

    explicit smtp_receiver(const std::string& mode = "starttls", const std::string& user = "",
                           const std::string& password = "") {
        std::vector<std::string> argv = {"/usr/bin/python3", receiver_script().string(), "--dir", dir.path.string(),
                                         "--mode", mode};
        if (!user.empty())
            argv.insert(argv.end(), {"--user", user, "--password", password});
        child = std::make_unique<child_process>(argv, dir.sub("log"));
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (port == 0) {
            if (fs::exists(dir.sub("port")))
                port = static_cast<unsigned>(std::stoul(slurp(dir.sub("port"))));
            else if (child->exited())
                throw std::runtime_error("smtp_receiver.py exited: " + log());
            else if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("smtp_receiver.py not ready within 30 s: " + log());
            else
                std::this_thread::sleep_for(5ms); // polling the port file, not waiting a fixed time
        }
    }

    fs::path cert() const { return dir.sub("cert.pem"); }
    std::string log() const { return slurp(dir.sub("log")); }

    std::vector<json::object> messages() const {
        std::vector<json::object> out;
        std::istringstream lines(slurp(dir.sub("messages.jsonl")));
        for (std::string line; std::getline(lines, line);)
            if (!line.empty())
                out.push_back(json::parse(line).as_object());
        return out;
    }
};

target_guard loopback_guard() {
    return target_guard({*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")});
}

alert_message sample_alert() {
    auto m = parse_alert_message(R"({"event":"alert.opened","tenant":"acme","at":"2026-11-24T10:00:00Z",
        "alert":{"id":7,"device":"pump-3","rule":2,"rule_name":"hot pump","kind":"THRESHOLD",
        "severity":"critical","status":"open","metric":"temperature","value":92.5,"threshold":80,
        "message":"temperature 92.5 °C > 80 <b>, the north pump has been running hot since the morning shift",
        "opened_at":"2026-11-24T10:00:00Z"}})");
    REQUIRE(m.has_value());
    m->job_id = 42;
    return *m;
}

integration_target email_target(unsigned port) {
    integration_target t;
    t.id = 1;
    t.tenant = "acme";
    t.name = "ops mail";
    t.type = "email";
    t.config = {{"host", "localhost"},
                {"port", port},
                {"security", "starttls"},
                {"from", "alerts@pulsegate.test"},
                {"to", json::array{"ops@example.com", "oncall@example.com"}},
                {"cc", json::array{"boss@example.com"}},
                {"bcc", json::array{"audit@example.com"}}};
    return t;
}

std::string text_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

bool contains(const std::string& s, std::string_view part) {
    return s.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("aiosmtpd receives the message, with STARTTLS and AUTH in one test") {
    smtp_receiver server("starttls", "alerts", "s3cret-pw");
    const auto guard = loopback_guard();
    email_sender sender(guard);
    auto target = email_target(server.port);
    target.config["username"] = "alerts";
    target.config["ca_file"] = server.cert().string();
    target.secrets["password"] = "s3cret-pw";

    const auto r = sender.send(target, sample_alert());
    INFO("error: ", r.error, "\nreceiver log:\n", server.log());
    CHECK(r.result == outcome::delivered);
    CHECK(r.status == "250");
    CHECK(r.error.empty());

    auto messages = server.messages();
    REQUIRE(messages.size() == 1);
    const auto& got = messages[0];
    CHECK(got.at("tls").as_bool());
    CHECK(got.at("authenticated").as_bool());
    CHECK(text_of(got, "mail_from") == "alerts@pulsegate.test");
    std::set<std::string> rcpts;
    for (const auto& a : got.at("rcpt_tos").as_array())
        rcpts.emplace(a.as_string());
    CHECK(rcpts ==
          std::set<std::string>{"ops@example.com", "oncall@example.com", "boss@example.com", "audit@example.com"});

    const auto raw = text_of(got, "raw");
    CHECK(!contains(lower(raw), "bcc:"));
    CHECK(!contains(raw, "audit@example.com"));
    CHECK(!contains(raw, "s3cret-pw"));
    CHECK(contains(raw, "=?UTF-8?B?")); // the subject is not ASCII
    const auto& headers = got.at("headers").as_object();
    CHECK(contains(text_of(headers, "to"), "ops@example.com"));
    CHECK(contains(text_of(headers, "to"), "oncall@example.com"));
    CHECK(text_of(headers, "cc") == "boss@example.com");
    CHECK(text_of(headers, "from") == "alerts@pulsegate.test");
    CHECK(text_of(headers, "x-pulsegate-event") == "alert.opened");
    CHECK(text_of(headers, "x-pulsegate-job") == "42");
    CHECK(contains(text_of(headers, "message-id"), "@pulsegate.test>"));
    CHECK(!text_of(headers, "date").empty());
    CHECK(text_of(got, "subject") == "[critical] THRESHOLD on pump-3: temperature 92.5 °C > 80 <b>, the north "
                                     "pump has been running hot since the morning shift");
    CHECK(text_of(got, "content_type") == "multipart/alternative");

    const auto text = text_of(got, "text");
    for (const char* v : {"alert.opened", "critical", "THRESHOLD", "pump-3", "temperature", "92.5", "80",
                          "2026-11-24T10:00:00Z", "since the morning shift"})
        CHECK_MESSAGE(contains(text, v), v);
    CHECK(contains(text, "temperature 92.5 °C > 80 <b>, the north pump")); // long line survives soft breaks
    const auto html = text_of(got, "html");
    for (const char* v : {"<td>pump-3</td>", "<td>92.5</td>", "<td>80</td>", "<td>temperature</td>",
                          "&lt;b&gt;", "<td>2026-11-24T10:00:00Z</td>"})
        CHECK_MESSAGE(contains(html, v), v);

    // A test send says so in the subject; a custom template is used as given.
    auto test = sample_alert();
    test.test = true;
    test.job_id = 0;
    target.config["subject_template"] = "{severity}/{device_id}";
    const auto r2 = sender.send(target, test);
    CHECK(r2.result == outcome::delivered);
    messages = server.messages();
    REQUIRE(messages.size() == 2);
    CHECK(text_of(messages[1], "subject") == "[test] critical/pump-3");
    CHECK(text_of(messages[1].at("headers").as_object(), "x-pulsegate-job") == "0");
}

TEST_CASE("a wrong password is refused for good, and the error does not show it") {
    smtp_receiver server("starttls", "alerts", "s3cret-pw");
    const auto guard = loopback_guard();
    email_sender sender(guard);
    auto target = email_target(server.port);
    target.config["username"] = "alerts";
    target.config["ca_file"] = server.cert().string();
    target.secrets["password"] = "not-the-password";

    const auto r = sender.send(target, sample_alert());
    INFO("error: ", r.error);
    CHECK(r.result == outcome::failed);
    CHECK(r.status == "535");
    CHECK(contains(r.error, "authentication refused"));
    CHECK(!contains(r.error, "not-the-password"));
    CHECK(server.messages().empty());
}

TEST_CASE("nothing listening on the port is worth a retry") {
    // A port that was free a moment ago: bound, read, closed.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);

    const auto guard = loopback_guard();
    email_sender sender(guard);
    auto target = email_target(ntohs(a.sin_port));
    target.config["host"] = "127.0.0.1";
    const auto r = sender.send(target, sample_alert());
    INFO("error: ", r.error);
    CHECK(r.result == outcome::retry);
    CHECK(r.status.empty());
    CHECK(contains(r.error, "cannot connect"));
}

TEST_CASE("a server that never answers times out, worth a retry") {
    // Listening but never accepting: the kernel completes the handshake, no greeting comes.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_later{fd};

    const auto guard = loopback_guard();
    email_sender sender(guard);
    auto target = email_target(ntohs(a.sin_port));
    target.config["host"] = "127.0.0.1";
    target.config["timeout_ms"] = 300;
    const auto started = std::chrono::steady_clock::now();
    const auto r = sender.send(target, sample_alert());
    INFO("error: ", r.error);
    CHECK(r.result == outcome::retry);
    CHECK(contains(r.error, "did not finish within 300 ms"));
    CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("several threads send at once") {
    smtp_receiver server("starttls");
    const auto guard = loopback_guard();
    email_sender sender(guard);
    auto target = email_target(server.port);
    target.config["ca_file"] = server.cert().string();
    const auto alert = sample_alert();
    std::vector<send_result> results(8);
    {
        std::vector<std::jthread> threads;
        for (auto& r : results)
            threads.emplace_back([&, out = &r] { *out = sender.send(target, alert); });
    }
    for (const auto& r : results) {
        INFO("error: ", r.error);
        CHECK(r.result == outcome::delivered);
    }
    CHECK(server.messages().size() == results.size());
}

TEST_CASE("the default guard refuses a private destination") {
    const target_guard strict;
    email_sender sender(strict);
    auto target = email_target(2525);
    target.config["host"] = "127.0.0.1";
    const auto r = sender.send(target, sample_alert());
    CHECK(r.result == outcome::failed);
    CHECK(r.status.empty());
    CHECK(contains(r.error, "allow_private_targets"));
}

TEST_CASE("a certificate that does not verify fails for good; insecure skips the check") {
    smtp_receiver server("starttls");
    const auto guard = loopback_guard();
    email_sender sender(guard);
    auto target = email_target(server.port); // no ca_file: the system store does not know the cert

    const auto r = sender.send(target, sample_alert());
    INFO("error: ", r.error);
    CHECK(r.result == outcome::failed);
    CHECK(contains(r.error, "does not verify"));
    CHECK(contains(r.error, "config.ca_file"));
    CHECK(server.messages().empty());

    target.config["insecure"] = true;
    const auto r2 = sender.send(target, sample_alert());
    INFO("error: ", r2.error);
    CHECK(r2.result == outcome::delivered);
    CHECK(server.messages().size() == 1);
}

TEST_CASE("implicit TLS (smtps) delivers") {
    smtp_receiver server("tls");
    const auto guard = loopback_guard();
    email_sender sender(guard);
    auto target = email_target(server.port);
    target.config["security"] = "tls";
    target.config["ca_file"] = server.cert().string();
    const auto r = sender.send(target, sample_alert());
    INFO("error: ", r.error, "\nreceiver log:\n", server.log());
    CHECK(r.result == outcome::delivered);
    CHECK(r.status == "250");
    REQUIRE(server.messages().size() == 1);
    CHECK(server.messages()[0].at("rcpt_tos").as_array().size() == 4);
}

TEST_CASE("refused recipients: the others still get it; all refused fails for good") {
    smtp_receiver server("starttls");
    const auto guard = loopback_guard();
    email_sender sender(guard);
    auto target = email_target(server.port);
    target.config["ca_file"] = server.cert().string();
    target.config["to"] = json::array{"refuse-me@example.com", "ops@example.com"};
    target.config.erase("cc");
    target.config.erase("bcc");
    const auto r = sender.send(target, sample_alert());
    INFO("error: ", r.error);
    CHECK(r.result == outcome::delivered);
    REQUIRE(server.messages().size() == 1);
    CHECK(server.messages()[0].at("rcpt_tos").as_array() == json::array{"ops@example.com"});

    target.config["to"] = json::array{"refuse-1@example.com"};
    target.config["bcc"] = json::array{"refuse-2@example.com"};
    const auto r2 = sender.send(target, sample_alert());
    INFO("error: ", r2.error);
    CHECK(r2.result == outcome::failed);
    CHECK(r2.status == "550");
    CHECK(server.messages().size() == 1);
}

TEST_CASE("validate_email names the field that is wrong") {
    const json::object good = {{"host", "smtp.example.com"},
                               {"from", "alerts@example.com"},
                               {"to", json::array{"ops@example.com"}}};
    std::string why;
    CHECK(validate_email(good, {}, &why));
    CHECK(validate_email(good, {}, nullptr));

    const auto rejects = [&](json::object config, const json::object& secrets, std::string_view expected) {
        why.clear();
        CHECK_MESSAGE(!validate_email(config, secrets, &why), expected);
        CHECK_MESSAGE(contains(why, expected), why);
    };
    auto c = good;
    c.erase("host");
    rejects(c, {}, "config.host is required");
    c = good;
    c["host"] = "smtp.example.com:25";
    rejects(c, {}, "config.host");
    c = good;
    c.erase("from");
    rejects(c, {}, "config.from is required");
    c = good;
    c["from"] = "Alerts <alerts@example.com>";
    rejects(c, {}, "config.from");
    c = good;
    c.erase("to");
    rejects(c, {}, "no recipient");
    c = good;
    c["to"] = "ops@example.com";
    rejects(c, {}, "config.to must be an array");
    c = good;
    c["cc"] = json::array{"not an address"};
    rejects(c, {}, "config.cc");
    for (const json::value& port : {json::value(0), json::value(65536), json::value("25"), json::value(-1)}) {
        c = good;
        c["port"] = port;
        rejects(c, {}, "config.port must be an integer 1..65535");
    }
    c = good;
    c["security"] = "ssl";
    rejects(c, {}, "config.security must be");
    c = good;
    c["timeout_ms"] = 50;
    rejects(c, {}, "config.timeout_ms");
    c = good;
    c["insecure"] = "yes";
    rejects(c, {}, "config.insecure");
    c = good;
    c["username"] = "alerts";
    rejects(c, {}, "secrets.password is required");
    CHECK(validate_email(c, {{"password", "hunter2"}}, &why));
    rejects(c, {{"password", 12345}}, "secrets.password must be a string");
    CHECK(!contains(why, "12345"));

    // send() applies the same checks and does not try what cannot work.
    const target_guard strict;
    email_sender sender(strict);
    integration_target t;
    t.config = good;
    t.config["security"] = "ssl";
    const auto r = sender.send(t, sample_alert());
    CHECK(r.result == outcome::failed);
    CHECK(contains(r.error, "config.security"));
}
