// The mqtt sender against a real Mosquitto (/usr/sbin/mosquitto) the test
// starts on 127.0.0.1 with its own config in a temp dir, and a libmosquitto
// subscriber that checks what arrived.

#include "adapters/mqtt_sender.hpp"

#include "test/temp_dir.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>
#include <mosquitto.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

extern char** environ;

using namespace pulsegate::adapters;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr const char* event = R"({"event":"alert.opened","tenant":"acme","at":"2026-11-23T10:00:00.000Z",)"
                              R"("alert":{"id":42,"tenant":"acme","device":"pump-1","rule":7,"rule_name":"hot",)"
                              R"("kind":"THRESHOLD","severity":"critical","status":"open","metric":"temp",)"
                              R"("value":91.5,"threshold":90,"message":"temp 91.5 > 90",)"
                              R"("opened_at":"2026-11-23T10:00:00.000Z","closed_at":null,"escalation_level":0,"labels":{}}})";

alert_message sample_message() {
    auto m = parse_alert_message(event);
    REQUIRE(m.has_value());
    return *m;
}

// Polls `done` until it holds or `timeout` passes; nothing to block on.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = steady::now() + timeout;
    while (!done()) {
        if (steady::now() >= deadline)
            return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

std::uint16_t pick_free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    ::close(fd);
    REQUIRE(ok);
    return ntohs(a.sin_port);
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++n;
    return n;
}

// Runs a program to completion; its output goes to /dev/null.
void run(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE_MESSAGE(rc == 0, "cannot run " << args[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    REQUIRE_MESSAGE((WIFEXITED(st) && WEXITSTATUS(st) == 0), args[0] << " " << args[1] << " failed");
}

struct broker_options {
    std::string user;     // with `password`: anonymous clients are refused
    std::string password;
    bool tls = false;     // a TLS listener with a certificate for localhost from ca_file()
};

// A Mosquitto process on 127.0.0.1:<free port>, logging everything to a
// file; killed (and reaped) when the object goes, whatever the test did.
class mosquitto_broker {
public:
    explicit mosquitto_broker(const broker_options& o = {}) : port_(pick_free_port()) {
        // Mosquitto started as root reads its files as user mosquitto.
        ::chmod(dir_.path.c_str(), 0755);
        std::ofstream f(dir_.sub("mosquitto.conf"));
        f << "listener " << port_ << " 127.0.0.1\n";
        f << "persistence false\n";
        f << "log_dest stderr\nlog_type all\nconnection_messages true\n";
        if (o.tls) {
            make_certificates();
            f << "cafile " << ca_file() << "\ncertfile " << dir_.sub("server.crt").string() << "\nkeyfile "
              << dir_.sub("server.key").string() << "\n";
        }
        if (o.user.empty()) {
            f << "allow_anonymous true\n";
        } else {
            const auto file = dir_.sub("passwd").string();
            std::ofstream(file).close();
            run({"/usr/bin/mosquitto_passwd", "-b", file, o.user, o.password});
            ::chmod(file.c_str(), 0644);
            f << "allow_anonymous false\npassword_file " << file << "\n";
        }
        f.close();
        start();
    }
    ~mosquitto_broker() { stop(); }
    mosquitto_broker(const mosquitto_broker&) = delete;
    mosquitto_broker& operator=(const mosquitto_broker&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url() const { return "mqtt://127.0.0.1:" + std::to_string(port_); }
    std::string log() const { return read_file(dir_.sub("mosquitto.log")); }

    void start() {
        REQUIRE(pid_ < 0);
        const auto log_path = dir_.sub("mosquitto.log").string();
        const auto offset = log().size();
        std::string exe = "/usr/sbin/mosquitto", c = "-c", conf = dir_.sub("mosquitto.conf").string();
        char* argv[] = {exe.data(), c.data(), conf.data(), nullptr};
        // fork + exec rather than posix_spawn for PR_SET_PDEATHSIG: the broker
        // dies with the test even when a crash skips the destructor. Only
        // async-signal-safe calls in the child.
        const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        REQUIRE(log_fd >= 0);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            const int null_fd = ::open("/dev/null", O_RDONLY);
            ::dup2(null_fd, 0);
            ::dup2(log_fd, 1);
            ::dup2(log_fd, 2);
            ::execv(argv[0], argv);
            ::_exit(127);
        }
        ::close(log_fd);
        REQUIRE_MESSAGE(pid_ > 0, "cannot start /usr/sbin/mosquitto");
        // "... running" is logged once the listener is open.
        const bool up = wait_until([&] { return log().find(" running", offset) != std::string::npos; });
        REQUIRE_MESSAGE(up, "mosquitto did not start; log:\n" << log());
    }

    void stop() {
        if (pid_ < 0)
            return;
        ::kill(pid_, SIGTERM);
        int st = 0;
        if (!wait_until([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, 10s)) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &st, 0);
        }
        pid_ = -1;
    }

    std::string ca_file() const { return dir_.sub("ca.crt").string(); }

private:
    void make_certificates() {
        const auto p = [&](const char* name) { return dir_.sub(name).string(); };
        std::ofstream(p("ext.cnf")) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
        run({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out",
             p("ca.crt"), "-days", "2", "-subj", "/CN=pulsegate test CA"});
        run({"/usr/bin/openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"), "-out",
             p("server.csr"), "-subj", "/CN=localhost"});
        run({"/usr/bin/openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
             "-CAcreateserial", "-out", p("server.crt"), "-days", "2", "-extfile", p("ext.cnf")});
        ::chmod(p("server.key").c_str(), 0644);
    }

    pulsegate::test::temp_dir dir_{"pulsegate-mqtt-sender"};
    std::uint16_t port_;
    pid_t pid_ = -1;
};

struct received {
    std::string topic;
    std::string payload;
    int qos = -1;
    bool retain = false;
};

// A libmosquitto subscriber on one topic filter, with its own network thread.
class subscriber {
public:
    subscriber(std::uint16_t port, const std::string& filter, const char* user = nullptr, const char* pass = nullptr,
               const std::string& ca_file = {}) {
        static const int init = mosquitto_lib_init();
        (void)init;
        m_ = mosquitto_new(nullptr, true, this);
        REQUIRE(m_ != nullptr);
        if (user)
            mosquitto_username_pw_set(m_, user, pass);
        if (!ca_file.empty()) {
            REQUIRE(mosquitto_tls_set(m_, ca_file.c_str(), nullptr, nullptr, nullptr, nullptr) == MOSQ_ERR_SUCCESS);
        }
        mosquitto_connect_callback_set(m_, [](mosquitto*, void* self, int rc) {
            auto* s = static_cast<subscriber*>(self);
            std::lock_guard l(s->mutex_);
            s->connack_ = rc;
        });
        mosquitto_subscribe_callback_set(m_, [](mosquitto*, void* self, int, int, const int*) {
            auto* s = static_cast<subscriber*>(self);
            std::lock_guard l(s->mutex_);
            s->subscribed_ = true;
        });
        mosquitto_message_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg) {
            auto* s = static_cast<subscriber*>(self);
            std::lock_guard l(s->mutex_);
            s->messages_.push_back({msg->topic, std::string(static_cast<const char*>(msg->payload),
                                                            static_cast<std::size_t>(msg->payloadlen)),
                                    msg->qos, msg->retain});
        });
        REQUIRE(mosquitto_connect(m_, "127.0.0.1", port, 30) == MOSQ_ERR_SUCCESS);
        REQUIRE(mosquitto_loop_start(m_) == MOSQ_ERR_SUCCESS);
        REQUIRE(wait_until([&] { std::lock_guard l(mutex_); return connack_ == 0; }));
        REQUIRE(mosquitto_subscribe(m_, nullptr, filter.c_str(), 2) == MOSQ_ERR_SUCCESS);
        REQUIRE(wait_until([&] { std::lock_guard l(mutex_); return subscribed_; }));
    }
    ~subscriber() {
        mosquitto_disconnect(m_);
        mosquitto_loop_stop(m_, false);
        mosquitto_destroy(m_);
    }
    subscriber(const subscriber&) = delete;
    subscriber& operator=(const subscriber&) = delete;

    std::vector<received> messages() {
        std::lock_guard l(mutex_);
        return messages_;
    }
    bool wait_for_messages(std::size_t n, std::chrono::milliseconds timeout = 10s) {
        return wait_until([&] { std::lock_guard l(mutex_); return messages_.size() >= n; }, timeout);
    }

private:
    mosquitto* m_ = nullptr;
    std::mutex mutex_;
    int connack_ = -1;
    bool subscribed_ = false;
    std::vector<received> messages_;
};

target_guard loopback_guard() {
    return target_guard({*parse_cidr("127.0.0.0/8")});
}

integration_target mqtt_target(std::int64_t id, const std::string& url) {
    integration_target t;
    t.id = id;
    t.tenant = "acme";
    t.name = "ops broker";
    t.type = "mqtt";
    t.config["url"] = url; // timeout_ms: the default 5000 (see the header on Paho's connect latency)
    return t;
}

const std::string expected_topic = "pulsegate/acme/alerts/pump-1/alert.opened";

} // namespace

TEST_CASE("an event is published on the expanded topic with QoS 1 and arrives exactly as sent") {
    mosquitto_broker broker;
    subscriber sub(broker.port(), "pulsegate/#");
    const auto guard = loopback_guard();
    mqtt_sender sender(guard);
    const auto m = sample_message();

    const auto r = sender.send(mqtt_target(7, broker.url()), m);
    REQUIRE_MESSAGE(r.result == outcome::delivered, r.error);
    CHECK(r.status == "puback");
    CHECK(r.error.empty());
    REQUIRE(sub.wait_for_messages(1));
    const auto got = sub.messages();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == expected_topic);
    CHECK(got[0].payload == m.payload);
    CHECK(got[0].qos == 1);

    SUBCASE("a second send reuses the connection") {
        const auto r2 = sender.send(mqtt_target(7, broker.url()), m);
        REQUIRE_MESSAGE(r2.result == outcome::delivered, r2.error);
        REQUIRE(sub.wait_for_messages(2));
        // Mosquitto logs every CONNECT: "New client connected from ... as <client id> (...)".
        CHECK(count_of(broker.log(), "New client connected from") == 2); // the subscriber and us
        CHECK(count_of(broker.log(), " as pulsegate-alerts-7 ") == 1);
    }
    SUBCASE("qos 0 and 2, a custom topic template") {
        auto t = mqtt_target(8, broker.url());
        t.config["topic_template"] = "pulsegate/{tenant}/{severity}/{alert_id}";
        t.config["qos"] = 2;
        const auto r2 = sender.send(t, m);
        REQUIRE_MESSAGE(r2.result == outcome::delivered, r2.error);
        CHECK(r2.status == "pubcomp");
        t.config["qos"] = 0;
        const auto r0 = sender.send(t, m);
        REQUIRE_MESSAGE(r0.result == outcome::delivered, r0.error);
        CHECK(r0.status == "sent");
        REQUIRE(sub.wait_for_messages(3));
        // The QoS 0 message may overtake the QoS 2 one on its way to the subscriber.
        auto all = sub.messages();
        REQUIRE(all.size() == 3);
        std::sort(all.begin() + 1, all.end(), [](const received& a, const received& b) { return a.qos < b.qos; });
        CHECK(all[1].topic == "pulsegate/acme/critical/42");
        CHECK(all[1].qos == 0);
        CHECK(all[2].topic == "pulsegate/acme/critical/42");
        CHECK(all[2].qos == 2);
        CHECK(all[2].payload == m.payload);
        // A QoS or topic change is no reason for a new connection.
        CHECK(count_of(broker.log(), " as pulsegate-alerts-8 ") == 1);
    }
}

TEST_CASE("the retain flag is set as configured") {
    mosquitto_broker broker;
    const auto guard = loopback_guard();
    mqtt_sender sender(guard);
    const auto m = sample_message();

    auto plain = mqtt_target(1, broker.url());
    plain.config["topic_template"] = "plain/{device_id}";
    REQUIRE(sender.send(plain, m).result == outcome::delivered);
    auto kept = mqtt_target(1, broker.url());
    kept.config["topic_template"] = "kept/{device_id}";
    kept.config["retain"] = true;
    REQUIRE(sender.send(kept, m).result == outcome::delivered);

    // A subscriber arriving later gets only the retained one, flagged so.
    subscriber late(broker.port(), "+/pump-1");
    REQUIRE(late.wait_for_messages(1));
    CHECK_FALSE(late.wait_for_messages(2, 300ms)); // nothing else is retained
    const auto got = late.messages();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "kept/pump-1");
    CHECK(got[0].retain);
    CHECK(got[0].payload == m.payload);
}

TEST_CASE("a stopped broker means retry with backoff; once it is back a later send is delivered") {
    mosquitto_broker broker;
    const auto guard = loopback_guard();
    mqtt_sender sender(guard, mqtt_sender_options{.initial_backoff = 200ms, .max_backoff = 2s});
    const auto m = sample_message();
    const auto t = mqtt_target(3, broker.url());
    REQUIRE(sender.send(t, m).result == outcome::delivered);

    broker.stop();
    const auto t0 = steady::now();
    const auto r = sender.send(t, m);
    CHECK(steady::now() - t0 < 5500ms); // at most the timeout, usually immediate
    CHECK(r.result == outcome::retry);
    CHECK_FALSE(r.error.empty());
    // Connection loss noticed, the reconnect refused: from now on within the
    // backoff window no connect is attempted.
    const auto failed_connect = [&] {
        const auto x = sender.send(t, m);
        REQUIRE(x.result == outcome::retry);
        return x.error.find("next connect attempt in") != std::string::npos;
    };
    REQUIRE(wait_until(failed_connect, 5s));
    const auto t1 = steady::now();
    const auto in_window = sender.send(t, m);
    CHECK(steady::now() - t1 < 100ms);
    CHECK(in_window.result == outcome::retry);
    CHECK(in_window.error.find("unreachable") != std::string::npos);
    CHECK(in_window.error.find("next connect attempt in") != std::string::npos);

    broker.start(); // same port
    subscriber sub(broker.port(), "pulsegate/#");
    outcome last = outcome::retry;
    REQUIRE(wait_until([&] { return (last = sender.send(t, m).result) != outcome::retry; }, 10s));
    CHECK(last == outcome::delivered);
    REQUIRE(sub.wait_for_messages(1));
    CHECK(sub.messages()[0].payload == m.payload);
}

TEST_CASE("credentials: right password delivers, wrong password is failed") {
    broker_options users;
    users.user = "alerts";
    users.password = "s3cret";
    mosquitto_broker broker(users);
    const auto guard = loopback_guard();
    mqtt_sender sender(guard);
    const auto m = sample_message();

    auto good = mqtt_target(4, broker.url());
    good.config["username"] = "alerts";
    good.secrets["password"] = "s3cret";
    const auto ok = sender.send(good, m);
    CHECK_MESSAGE(ok.result == outcome::delivered, ok.error);

    auto bad = good;
    bad.id = 5;
    bad.secrets["password"] = "wrong";
    const auto r = sender.send(bad, m);
    CHECK(r.result == outcome::failed);
    CHECK(r.status.starts_with("connack "));
    CHECK(r.error.find("refused the connection") != std::string::npos);
    CHECK(r.error.find("wrong") == std::string::npos); // never a secret

    // The same integration with its password fixed connects at once.
    bad.secrets["password"] = "s3cret";
    const auto fixed = sender.send(bad, m);
    CHECK_MESSAGE(fixed.result == outcome::delivered, fixed.error);
}

TEST_CASE("the SSRF guard and the topic are checked before anything is sent") {
    mosquitto_broker broker;
    const auto m = sample_message();

    const target_guard strict;
    mqtt_sender guarded(strict);
    const auto r = guarded.send(mqtt_target(6, broker.url()), m);
    CHECK(r.result == outcome::failed);
    CHECK(r.error.find("allow_private_targets") != std::string::npos);
    CHECK(count_of(broker.log(), "New client connected") == 0);

    const auto guard = loopback_guard();
    mqtt_sender sender(guard);
    auto t = mqtt_target(6, broker.url());
    t.config["topic_template"] = "alerts/#";
    const auto wild = sender.send(t, m);
    CHECK(wild.result == outcome::failed);
    CHECK(wild.error.find("wildcard") != std::string::npos);

    // A value substituted into the template can make it invalid too.
    t.config["topic_template"] = "alerts/{device_id}";
    auto odd = m;
    odd.device = "pump+1";
    const auto sub = sender.send(t, odd);
    CHECK(sub.result == outcome::failed);
    CHECK(sub.error.find("pump+1") != std::string::npos);
    odd.device.clear();
    t.config["topic_template"] = "{device_id}";
    CHECK(sender.send(t, odd).result == outcome::failed);
}

TEST_CASE("validate_mqtt names the field that is wrong") {
    namespace json = boost::json;
    const auto config = [](const char* text) { return json::parse(text).as_object(); };
    const json::object none;
    std::string why;

    CHECK(validate_mqtt(config(R"({"url":"mqtt://broker.example.com"})"), none, &why));
    CHECK(validate_mqtt(config(R"({"url":"mqtts://[2001:db8::1]:8884","qos":2,"retain":true,"username":"u",)"
                               R"("ca_file":"/etc/ca.pem","topic_template":"a/{tenant}"})"),
                        config(R"({"password":"p"})"), &why));

    CHECK_FALSE(validate_mqtt(config(R"({"url":"http://broker.example.com"})"), none, &why));
    CHECK(why.starts_with("url:"));
    CHECK(why.find("mqtt://") != std::string::npos);
    CHECK_FALSE(validate_mqtt(config(R"({})"), none, &why));
    CHECK(why.starts_with("url:"));
    for (const char* url : {"mqtt://", "mqtt://:1883", "mqtts:///x", "mqtt://[]:1883"}) {
        CHECK_FALSE_MESSAGE(validate_mqtt(json::object{{"url", url}}, none, &why), url);
        CHECK(why.starts_with("url:"));
    }
    CHECK_FALSE(validate_mqtt(config(R"({"url":"mqtt://h:99999"})"), none, &why));
    CHECK(why.find("port") != std::string::npos);

    CHECK_FALSE(validate_mqtt(config(R"({"url":"mqtt://h","qos":3})"), none, &why));
    CHECK(why.starts_with("qos:"));
    CHECK_FALSE(validate_mqtt(config(R"({"url":"mqtt://h","qos":"1"})"), none, &why));
    CHECK(why.starts_with("qos:"));
    CHECK_FALSE(validate_mqtt(config(R"({"url":"mqtt://h","topic_template":"a/+/b"})"), none, &why));
    CHECK(why.starts_with("topic_template:"));
    CHECK_FALSE(validate_mqtt(config(R"({"url":"mqtt://h","retain":"yes"})"), none, &why));
    CHECK(why.starts_with("retain:"));
    CHECK_FALSE(validate_mqtt(config(R"({"url":"mqtt://h","timeout_ms":0})"), none, &why));
    CHECK(why.starts_with("timeout_ms:"));
    CHECK_FALSE(validate_mqtt(config(R"({"url":"mqtt://h","insecure":true})"), none, &why));
    CHECK(why.starts_with("insecure:"));
    CHECK_FALSE(validate_mqtt(config(R"({"url":"mqtt://h"})"), config(R"({"password":"p"})"), &why));
    CHECK(why.starts_with("password:"));
}

TEST_CASE("several workers sending at once share one connection") {
    mosquitto_broker broker;
    subscriber sub(broker.port(), "pulsegate/#");
    const auto guard = loopback_guard();
    mqtt_sender sender(guard);
    const auto m = sample_message();
    const auto t = mqtt_target(9, broker.url());

    constexpr int workers = 4, each = 5;
    std::vector<std::vector<outcome>> results(workers);
    {
        std::vector<std::jthread> threads;
        for (int w = 0; w < workers; ++w)
            threads.emplace_back([&, w] {
                for (int i = 0; i < each; ++i)
                    results[w].push_back(sender.send(t, m).result);
            });
    }
    for (const auto& r : results)
        for (auto o : r)
            CHECK(o == outcome::delivered);
    REQUIRE(sub.wait_for_messages(workers * each));
    CHECK(count_of(broker.log(), " as pulsegate-alerts-9 ") == 1);
}

TEST_CASE("mqtts: verified against ca_file by host name, or insecure by address") {
    broker_options tls;
    tls.tls = true;
    mosquitto_broker broker(tls);
    subscriber sub(broker.port(), "pulsegate/#", nullptr, nullptr, broker.ca_file());
    const auto guard = loopback_guard();
    mqtt_sender sender(guard);
    const auto m = sample_message();
    const auto port = std::to_string(broker.port());

    auto verified = mqtt_target(10, "mqtts://localhost:" + port);
    verified.config["ca_file"] = broker.ca_file();
    const auto ok = sender.send(verified, m);
    CHECK_MESSAGE(ok.result == outcome::delivered, ok.error);

    auto insecure = mqtt_target(11, "mqtts://127.0.0.1:" + port);
    insecure.config["insecure"] = true;
    const auto ok2 = sender.send(insecure, m);
    CHECK_MESSAGE(ok2.result == outcome::delivered, ok2.error);
    REQUIRE(sub.wait_for_messages(2));
    CHECK(sub.messages()[1].payload == m.payload);

    // The system's trust store does not know the test CA.
    const auto untrusted = sender.send(mqtt_target(12, "mqtts://localhost:" + port), m);
    CHECK(untrusted.result == outcome::retry);
    CHECK(untrusted.error.find("cannot connect") != std::string::npos);
}
