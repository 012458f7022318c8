// 19: one alert to every kind of receiver (DESIGN.md, Delivery): MQTT
// telemetry crosses a threshold, the alert is routed to one integration of
// each type, and each real receiver on loopback gets alert.opened:
//   webhook  test/integration/delivery_receiver.py (HMAC signature checked)
//   email    test/adapters/smtp_receiver.py (aiosmtpd, STARTTLS + AUTH)
//   snmp     /usr/sbin/snmptrapd decoding with etc/PULSEGATE-MIB.txt, one
//            integration on v2c and one on v3 authPriv
//   mqtt     an external /usr/sbin/mosquitto with a password, and a subscriber
// Then the delivery log shows one job per integration, each delivered at its
// first attempt.
//
// Every receiver is a child process killed when the test ends, however it
// ends. The receiver helpers here are local: the adapter tests start the same
// programs with their own code (test/adapters/*_test.cpp), not through the
// integration harness this file uses.
//
// pulsegate only: mosquitto has no rules or delivery.
#include <doctest/doctest.h>

#include "../temp_dir.hpp"
#include "harness.hpp"
#include "tenant_world.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

using namespace pulsegate::itest;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view hook_secret = "hook-secret-19";
constexpr std::string_view smtp_user = "alerts";
constexpr std::string_view smtp_password = "smtp-secret-19";
constexpr std::string_view community = "community-19";
constexpr std::string_view v3_user = "noc3";
constexpr std::string_view v3_engine = "0x8000e58d0401020319";
constexpr std::string_view v3_auth = "authpass19";
constexpr std::string_view v3_priv = "privpass19";
constexpr std::string_view mqtt_user = "pgalerts";
constexpr std::string_view mqtt_password = "mqtt-secret-19";

fs::path source_root() {
    const char* root = std::getenv("PULSEGATE_SOURCE_ROOT");
    REQUIRE_MESSAGE(root != nullptr, "PULSEGATE_SOURCE_ROOT is not set (test/integration/meson.build sets it)");
    return root;
}

std::string slurp(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<json_value> json_lines(fs::path const& p) {
    std::vector<json_value> out;
    std::ifstream f(p);
    for (std::string line; std::getline(f, line);)
        if (auto v = parse_json(line)) out.push_back(*v);
    return out;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// Polls `pred` until it holds (true) or long_wait passes (false): what is
// waited for happens in other processes, with nothing to block on.
template <class Pred>
bool wait_for(Pred pred) {
    const auto deadline = steady::now() + long_wait;
    while (!pred()) {
        if (steady::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

// A loopback port free a moment ago (bound, read, released): for receivers
// that cannot report the port they bound.
std::uint16_t free_port(int type) {
    const int fd = ::socket(AF_INET, type, 0);
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

// Waits for `dir/port`, written atomically by the Python receivers.
std::uint16_t port_file(fs::path const& dir, child_process& proc, std::string_view what) {
    const bool up = wait_for([&] { return fs::exists(dir / "port"); });
    REQUIRE_MESSAGE(up, what << " did not start: " << proc.output());
    return static_cast<std::uint16_t>(std::stoul(slurp(dir / "port")));
}

// delivery_receiver.py: every request, with signature_ok, in requests.jsonl.
class webhook_receiver {
public:
    webhook_receiver()
        : proc_({"/usr/bin/python3", (source_root() / "test/integration/delivery_receiver.py").string(),
                 dir_.path.string(), std::string(hook_secret)}),
          port_(port_file(dir_.path, proc_, "delivery_receiver.py")) {}
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/ok"; }
    std::vector<json_value> requests() const { return json_lines(dir_.sub("requests.jsonl")); }

private:
    pulsegate::test::temp_dir dir_{"pg19-hook"};  // first: outlives the child
    child_process proc_;
    std::uint16_t port_;
};

// smtp_receiver.py: STARTTLS required, AUTH with smtp_user; every accepted
// message, decoded, in messages.jsonl.
class smtp_receiver {
public:
    smtp_receiver()
        : proc_({"/usr/bin/python3", (source_root() / "test/adapters/smtp_receiver.py").string(), "--dir",
                 dir_.path.string(), "--mode", "starttls", "--user", std::string(smtp_user), "--password",
                 std::string(smtp_password)}),
          port_(port_file(dir_.path, proc_, "smtp_receiver.py")) {}
    std::uint16_t port() const { return port_; }
    std::string cert() const { return dir_.sub("cert.pem").string(); }
    std::vector<json_value> messages() const { return json_lines(dir_.sub("messages.jsonl")); }

private:
    pulsegate::test::temp_dir dir_{"pg19-smtp"};
    child_process proc_;
    std::uint16_t port_;
};

// Debian main ships no IETF MIB modules; PULSEGATE-MIB imports only these
// few definitions from them (as in test/adapters/snmp_sender_test.cpp).
constexpr std::string_view snmpv2_smi = R"(SNMPv2-SMI DEFINITIONS ::= BEGIN
org ::= { iso 3 }
dod ::= { org 6 }
internet ::= { dod 1 }
directory ::= { internet 1 }
mgmt ::= { internet 2 }
mib-2 ::= { mgmt 1 }
experimental ::= { internet 3 }
private ::= { internet 4 }
enterprises ::= { private 1 }
security ::= { internet 5 }
snmpV2 ::= { internet 6 }
snmpModules ::= { snmpV2 3 }
END
)";
constexpr std::string_view snmpv2_tc = R"(SNMPv2-TC DEFINITIONS ::= BEGIN
DisplayString ::= TEXTUAL-CONVENTION
    DISPLAY-HINT "255a"
    STATUS       current
    DESCRIPTION  "Text, RFC 2579."
    SYNTAX       OCTET STRING (SIZE (0..255))
TruthValue ::= TEXTUAL-CONVENTION
    STATUS       current
    DESCRIPTION  "A boolean, RFC 2579."
    SYNTAX       INTEGER { true(1), false(2) }
END
)";
constexpr std::string_view snmpv2_conf = "SNMPv2-CONF DEFINITIONS ::= BEGIN\nEND\n";

// snmptrapd in the foreground on a UDP loopback port, its config, MIB
// modules, log and persistent state in a temp dir; each trap is one log line
// "TRAP <security>|<varbinds>".
class trap_receiver {
public:
    trap_receiver() : port_(free_port(SOCK_DGRAM)) {
        std::ofstream(dir_.sub("SNMPv2-SMI.txt")) << snmpv2_smi;
        std::ofstream(dir_.sub("SNMPv2-TC.txt")) << snmpv2_tc;
        std::ofstream(dir_.sub("SNMPv2-CONF.txt")) << snmpv2_conf;
        std::ofstream(dir_.sub("snmptrapd.conf"))
            << "authCommunity log " << community << "\ncreateUser -e " << v3_engine << " " << v3_user << " SHA "
            << v3_auth << " AES " << v3_priv << "\nauthUser log " << v3_user << "\n";
        const auto d = dir_.path.string();
        proc_ = std::make_unique<child_process>(std::vector<std::string>{
            "/usr/bin/env", "SNMP_PERSISTENT_DIR=" + d, "SNMPCONFPATH=" + d, "/usr/sbin/snmptrapd", "-f", "-n", "-C",
            "-c", d + "/snmptrapd.conf", "-Lf", log_path().string(), "-p", d + "/snmptrapd.pid", "-M",
            d + ":" + (source_root() / "etc").string(), "-m", "PULSEGATE-MIB", "-F", "TRAP %P|%v\n",
            "udp:127.0.0.1:" + std::to_string(port_)});
        const bool up = wait_for([&] { return contains(log_text(), "NET-SNMP version"); });
        REQUIRE_MESSAGE(up, "snmptrapd did not start: " << proc_->output() << log_text());
    }
    std::uint16_t port() const { return port_; }
    fs::path log_path() const { return dir_.sub("snmptrapd.log"); }
    std::string log_text() const { return slurp(log_path()); }
    // The logged traps that contain `needle`.
    std::vector<std::string> traps_with(std::string_view needle) const {
        std::vector<std::string> out;
        std::istringstream in(log_text());
        for (std::string line; std::getline(in, line);)
            if (line.starts_with("TRAP ") && contains(line, needle)) out.push_back(line);
        return out;
    }

private:
    pulsegate::test::temp_dir dir_{"pg19-snmp"};
    std::uint16_t port_;
    std::unique_ptr<child_process> proc_;
};

// The customer's MQTT broker: Mosquitto on a loopback port, one user.
class external_broker {
public:
    external_broker() : port_(free_port(SOCK_STREAM)) {
        // Started as root, Mosquitto reads its files as user mosquitto.
        ::chmod(dir_.path.c_str(), 0755);
        const auto passwd = dir_.sub("passwd").string();
        std::ofstream(passwd).close();
        auto made = run_process({"/usr/bin/mosquitto_passwd", "-b", passwd, std::string(mqtt_user),
                                 std::string(mqtt_password)});
        REQUIRE_MESSAGE(made.exit_code == 0, "mosquitto_passwd: " << made.output);
        ::chmod(passwd.c_str(), 0644);
        std::ofstream(dir_.sub("mosquitto.conf"))
            << "listener " << port_ << " 127.0.0.1\npersistence false\nallow_anonymous false\npassword_file "
            << passwd << "\nlog_dest stderr\nconnection_messages true\n";
        proc_ = std::make_unique<child_process>(
            std::vector<std::string>{"/usr/sbin/mosquitto", "-c", dir_.sub("mosquitto.conf").string()});
        // "... running" is logged once the listener is open.
        REQUIRE_MESSAGE(proc_->read_until(" running", long_wait), "mosquitto did not start: " << proc_->output());
    }
    std::uint16_t port() const { return port_; }

private:
    pulsegate::test::temp_dir dir_{"pg19-mqtt"};
    std::uint16_t port_;
    std::unique_ptr<child_process> proc_;
};

broker_options delivery_options() {
    auto o = rules_options("heartbeat_grace_s = 0");
    o.delivery_toml = R"(allow_private_targets = ["127.0.0.0/8", "::1/128"])"
                      "\nbackoff_initial_ms = 200\nbackoff_max_ms = 1000\nmax_attempts = 50\n";
    return o;
}

std::int64_t create_integration(tenant_setup const& t, std::string_view name, std::string_view type,
                                std::string const& config, std::string const& secrets) {
    const std::string body = R"({"name":)" + json_quote(name) + R"(,"type":)" + json_quote(type) +
                             R"(,"config":)" + config + R"(,"secrets":)" + secrets + "}";
    return id_of(created(t.admin.post("/api/v1/integrations", body), std::string("create ") + std::string(name))["id"]);
}

} // namespace

TEST_CASE("one breaching reading: webhook, email, SNMP v2c and v3, and MQTT all get alert.opened" *
          doctest::skip(is_mosquitto())) {
    webhook_receiver hook;
    smtp_receiver smtp;
    trap_receiver traps;
    external_broker ext;
    const std::string topic = "site/acme/s1/alert.opened";  // the mqtt integration's topic_template, rendered
    mosq_client sub("pg19-subscriber", 4);
    sub.credentials(std::string(mqtt_user), std::string(mqtt_password));
    REQUIRE(sub.connect(ext.port()) == 0);
    REQUIRE(sub.subscribe(topic, 1) == 1);

    world w(delivery_options());
    auto t = w.make_tenant("acme", {{"s1"}});
    create_rule(t, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");
    const std::map<std::string, std::int64_t> integrations = {
        {"webhook", create_integration(t, "hook", "webhook", R"({"url":)" + json_quote(hook.url()) + "}",
                                       R"({"secret":)" + json_quote(hook_secret) + "}")},
        {"email", create_integration(t, "mail", "email",
                                     R"({"host":"127.0.0.1","port":)" + std::to_string(smtp.port()) +
                                         R"(,"security":"starttls","username":)" + json_quote(smtp_user) +
                                         R"(,"ca_file":)" + json_quote(smtp.cert()) +
                                         R"(,"from":"alerts@pulsegate.test","to":["ops@example.com"]})",
                                     R"({"password":)" + json_quote(smtp_password) + "}")},
        {"snmp v2c", create_integration(t, "noc v2c", "snmp",
                                        R"({"host":"127.0.0.1","port":)" + std::to_string(traps.port()) + "}",
                                        R"({"community":)" + json_quote(community) + "}")},
        {"snmp v3", create_integration(t, "noc v3", "snmp",
                                       R"({"host":"127.0.0.1","port":)" + std::to_string(traps.port()) +
                                           R"(,"version":"v3","user":)" + json_quote(v3_user) +
                                           R"(,"engine_id":)" + json_quote(v3_engine) + "}",
                                       R"({"auth_password":)" + json_quote(v3_auth) + R"(,"priv_password":)" +
                                           json_quote(v3_priv) + "}")},
        {"mqtt", create_integration(t, "customer broker", "mqtt",
                                    R"({"url":"mqtt://127.0.0.1:)" + std::to_string(ext.port()) +
                                        R"(","username":)" + json_quote(mqtt_user) +
                                        R"(,"topic_template":"site/{tenant}/{device_id}/{event}"})",
                                    R"({"password":)" + json_quote(mqtt_password) + "}")},
    };
    std::string ids;
    for (auto const& [_, id] : integrations) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    created(t.admin.post("/api/v1/routes", R"({"name":"everyone","integrations":[)" + ids + "]}"), "create route");

    device_client(w.b, t, "s1")->publish("d/s1/telemetry", R"({"temp":31})", 1);
    const auto list = poll_get(t.admin, "/api/v1/alerts?device=s1&status=open",
                               [](json_value const& v) { return v["items"].size() > 0; }, "the alert of s1");
    REQUIRE(list["items"].size() == 1);
    const auto alert = id_of(list["items"][0]["id"]);

    // The delivery log first: once every job is delivered, every receiver
    // has what it will get (the SNMP traps may still be on their way).
    auto log = poll_get(t.admin, "/api/v1/deliveries?alert=" + std::to_string(alert),
                        [&](json_value const& v) {
                            if (v["items"].size() != integrations.size()) return false;
                            for (auto const& d : v["items"].items())
                                if (d["status"].str() != "delivered") return false;
                            return true;
                        },
                        "one delivered job per integration");
    std::map<std::int64_t, std::string> job_of;  // integration id -> job id
    const std::map<std::string, std::string> status_of_type = {
        {"webhook", "204"}, {"email", "250"}, {"snmp v2c", "sent"}, {"snmp v3", "sent"}, {"mqtt", "puback"}};
    for (auto const& [type, id] : integrations) {
        int jobs = 0;
        for (auto const& d : log["items"].items()) {
            if (d["integration"].num() != static_cast<double>(id)) continue;
            ++jobs;
            job_of[id] = std::to_string(static_cast<std::int64_t>(d["id"].num()));
            INFO(type, ": ", d.dump());
            CHECK(d["status"].str() == "delivered");
            CHECK(d["attempts"].num() == 1);
            REQUIRE(d["attempt_log"].size() == 1);
            CHECK(d["attempt_log"][0]["outcome"].str() == "delivered");
            CHECK(d["attempt_log"][0]["status"].str() == status_of_type.at(type));
        }
        CHECK_MESSAGE(jobs == 1, type << ": " << log.dump());
    }

    // Webhook: the event, signed with the integration's secret.
    auto requests = hook.requests();
    REQUIRE_MESSAGE(requests.size() == 1, requests.size() << " webhook requests");
    CHECK(requests[0]["signature_ok"].boolean());
    CHECK(requests[0]["headers"]["x-pulsegate-event"].str() == "alert.opened");
    CHECK(requests[0]["headers"]["idempotency-key"].str() == job_of[integrations.at("webhook")]);
    auto event = parse_json(requests[0]["body"].str());
    REQUIRE_MESSAGE(event, requests[0]["body"].str());
    auto const& a = (*event)["alert"];
    CHECK((*event)["event"].str() == "alert.opened");
    CHECK((*event)["tenant"].str() == "acme");
    CHECK(a["id"].num() == static_cast<double>(alert));
    CHECK(a["device"].str() == "s1");
    CHECK(a["severity"].str() == "major");
    CHECK(a["value"].num() == 31);

    // Email: over STARTTLS, authenticated; subject and both parts name the alert.
    auto mails = smtp.messages();
    REQUIRE_MESSAGE(mails.size() == 1, mails.size() << " mails");
    auto const& mail = mails[0];
    CHECK(mail["tls"].boolean());
    CHECK(mail["authenticated"].boolean());
    CHECK(mail["mail_from"].str() == "alerts@pulsegate.test");
    CHECK(mail["rcpt_tos"].dump() == R"(["ops@example.com"])");
    CHECK(mail["subject"].str() == "[major] " + a["kind"].str() + " on s1: " + a["message"].str());
    CHECK(mail["headers"]["x-pulsegate-event"].str() == "alert.opened");
    CHECK(mail["headers"]["x-pulsegate-job"].str() == job_of[integrations.at("email")]);
    CHECK(mail["content_type"].str() == "multipart/alternative");
    for (auto part : {"alert.opened", "major", "s1", "temp", "31", "30"})
        CHECK_MESSAGE(contains(mail["text"].str(), part), part << " in " << mail["text"].str());
    for (auto part : {"<td>s1</td>", "<td>major</td>", "<td>31</td>", "<td>30</td>"})
        CHECK_MESSAGE(contains(mail["html"].str(), part), part << " in " << mail["html"].str());

    // SNMP: pgAlertOpened with the alert's objects, decoded by the MIB, once per version.
    const std::string device_varbind = "PULSEGATE-MIB::pgAlertDevice.0 = STRING: s1";
    const bool both = wait_for([&] { return traps.traps_with(device_varbind).size() >= 2; });
    REQUIRE_MESSAGE(both, "snmptrapd log:\n" << traps.log_text());
    const auto lines = traps.traps_with(device_varbind);
    CHECK(lines.size() == 2);
    int v2c = 0, v3 = 0;
    for (auto const& line : lines) {
        INFO(line);
        if (contains(line, "SNMP v2c, community " + std::string(community))) ++v2c;
        if (contains(line, "SNMP v3, user " + std::string(v3_user) + ",")) ++v3;
        CHECK(contains(line, "OID: PULSEGATE-MIB::pgAlertOpened"));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertId.0 = Gauge32: " + std::to_string(alert)));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertTenant.0 = STRING: acme"));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertSeverity.0 = STRING: major"));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertRuleName.0 = STRING: hot"));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertStatus.0 = STRING: open"));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertMetric.0 = STRING: temp"));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertValue.0 = STRING: 31"));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertThreshold.0 = STRING: 30"));
        CHECK(contains(line, "PULSEGATE-MIB::pgAlertTest.0 = INTEGER: false(2)"));
    }
    CHECK(v2c == 1);
    CHECK(v3 == 1);

    // MQTT: the event JSON as the engine made it (the webhook adds sent_at only).
    auto got = sub.messages().pop(long_wait);
    REQUIRE_MESSAGE(got, "nothing on " << topic);
    CHECK(got->topic == topic);
    CHECK(got->qos == 1);
    auto payload = parse_json(got->payload);
    REQUIRE_MESSAGE(payload, got->payload);
    CHECK((*payload)["event"].str() == "alert.opened");
    CHECK((*payload)["tenant"].str() == "acme");
    CHECK((*payload)["at"].str() == (*event)["at"].str());
    CHECK((*payload)["alert"].dump() == a.dump());
    CHECK_FALSE(payload->contains("sent_at"));
    CHECK_FALSE(sub.messages().pop(quiet_window));  // one message only
}

TEST_CASE("the daily digest: settings over REST, a preview, and a digest email sent now" *
          doctest::skip(is_mosquitto())) {
    smtp_receiver smtp;
    world w(delivery_options());
    auto t = w.make_tenant("acme", {{"s1"}, {"s2"}});
    create_rule(t, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"critical"})");
    const auto mail = create_integration(t, "mail", "email",
                                         R"({"host":"127.0.0.1","port":)" + std::to_string(smtp.port()) +
                                             R"(,"security":"starttls","username":)" + json_quote(smtp_user) +
                                             R"(,"ca_file":)" + json_quote(smtp.cert()) +
                                             R"(,"from":"digest@pulsegate.test","to":["boss@example.com"]})",
                                         R"({"password":)" + json_quote(smtp_password) + "}");
    const auto hook = create_integration(t, "hook", "webhook", R"({"url":"http://127.0.0.1:9/"})", "{}");

    auto initial = ok(t.admin.get("/api/v1/digest"), "digest settings");
    CHECK_FALSE(initial["enabled"].boolean());
    CHECK(initial["hour"].num() == 8);
    CHECK(initial["time_zone"].str() == "UTC");

    // Refused, each naming its field, and nothing saved.
    const std::pair<std::string, std::string> refused[] = {
        {R"({"time_zone":"Mars/Olympus_Mons"})", "time_zone"},
        {R"({"hour":25})", "hour"},
        {R"({"integrations":[)" + std::to_string(hook) + "]}", "integrations"},
        {R"({"integrations":[999999]})", "integrations"},
        {R"({"enabled":true})", "integrations"},
        {R"({"last_sent":"2026-01-01"})", "last_sent"},
    };
    for (auto const& [body, field] : refused) {
        auto res = t.admin.put("/api/v1/digest", body);
        INFO(body, " -> ", res.describe());
        CHECK(res.status == 400);
        CHECK(json_of(res)["error"]["field"].str() == field);
    }
    CHECK(ok(t.admin.get("/api/v1/digest"), "digest settings").dump() == initial.dump());
    CHECK(t.admin.post("/api/v1/digest/send").status == 400); // no integrations chosen yet

    auto saved = ok(t.admin.put("/api/v1/digest", R"({"enabled":true,"hour":7,"time_zone":"Europe/Berlin",)"
                                                  R"("integrations":[)" + std::to_string(mail) + "]}"),
                    "save digest settings");
    CHECK(saved["enabled"].boolean());
    CHECK(saved["hour"].num() == 7);
    CHECK(saved["time_zone"].str() == "Europe/Berlin");
    CHECK(saved["integrations"].dump() == "[" + std::to_string(mail) + "]");
    CHECK(saved["last_sent"].is_string()); // the current period counts as sent: the first one comes at 07:00

    device_client(w.b, t, "s1")->publish("d/s1/telemetry", R"({"temp":31})", 1);
    poll_get(t.admin, "/api/v1/alerts?device=s1&status=open",
             [](json_value const& v) { return v["items"].size() > 0; }, "the alert of s1");

    auto preview = ok(t.admin.get("/api/v1/digest/preview"), "digest preview");
    CHECK(preview["opened"].num() == 1);
    CHECK(preview["closed"].num() == 0);
    CHECK(preview["still_open"].num() == 1);
    CHECK(preview["open_by_severity"]["critical"].num() == 1);
    REQUIRE(preview["noisiest_devices"].size() == 1);
    CHECK(preview["noisiest_devices"][0]["device"].str() == "s1");
    REQUIRE(preview["noisiest_rules"].size() == 1);
    CHECK(preview["noisiest_rules"][0]["name"].str() == "hot");

    auto sent = t.admin.post("/api/v1/digest/send");
    REQUIRE_MESSAGE(sent.status == 202, sent.describe());
    CHECK(json_of(sent)["jobs"].num() == 1);
    auto log = poll_get(t.admin, "/api/v1/deliveries?integration=" + std::to_string(mail),
                        [](json_value const& v) {
                            return v["items"].size() == 1 && v["items"][0]["status"].str() == "delivered";
                        },
                        "the digest delivered");
    CHECK(log["items"][0]["event"].str() == "digest");
    CHECK(log["items"][0]["alert"].is_null());

    auto mails = smtp.messages();
    REQUIRE_MESSAGE(mails.size() == 1, mails.size() << " mails");
    auto const& m = mails[0];
    CHECK(m["tls"].boolean());
    CHECK(m["rcpt_tos"].dump() == R"(["boss@example.com"])");
    CHECK(contains(m["subject"].str(), "[pulsegate] acme digest "));
    CHECK(contains(m["subject"].str(), ": 1 opened, 0 closed, 1 still open"));
    CHECK(m["headers"]["x-pulsegate-event"].str() == "digest");
    CHECK_MESSAGE(contains(m["text"].str(), "s1: 1 alerts"), m["text"].str());
    CHECK_MESSAGE(contains(m["text"].str(), "hot (rule "), m["text"].str());
    CHECK_MESSAGE(contains(m["html"].str(), "<li>critical: 1</li>"), m["html"].str());
}
