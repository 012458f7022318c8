// snmp_sender against the real Net-SNMP trap receiver (/usr/sbin/snmptrapd),
// started in the foreground on 127.0.0.1 with its own config, log, pid file
// and persistent dir in a temp dir, and told to decode the traps with
// etc/PULSEGATE-MIB.txt: a varbind shows up by its MIB name only when the
// C++ OIDs and the MIB agree.
#include "adapters/snmp_sender.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace pulsegate::adapters;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Debian main ships no IETF MIB modules (snmp-mibs-downloader is non-free
// and downloads them), so the modules PULSEGATE-MIB imports from are written
// here, reduced to what it uses: the OID registrations of RFC 2578 and the
// two textual conventions of RFC 2579. net-snmp's parser knows the SMIv2
// macros itself.
constexpr const char* snmpv2_smi = R"(SNMPv2-SMI DEFINITIONS ::= BEGIN
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
constexpr const char* snmpv2_tc = R"(SNMPv2-TC DEFINITIONS ::= BEGIN
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
constexpr const char* snmpv2_conf = R"(SNMPv2-CONF DEFINITIONS ::= BEGIN
END
)";

fs::path source_root() {
    const char* r = std::getenv("PULSEGATE_SOURCE_ROOT");
    return r != nullptr ? fs::path(r) : fs::current_path();
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "pg-snmp-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
        std::ofstream(path / "SNMPv2-SMI.txt") << snmpv2_smi;
        std::ofstream(path / "SNMPv2-TC.txt") << snmpv2_tc;
        std::ofstream(path / "SNMPv2-CONF.txt") << snmpv2_conf;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

// A port nobody listens on right now: bound, read, released.
unsigned free_udp_port() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
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

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred())
            return true;
        std::this_thread::sleep_for(20ms);
    }
    return pred();
}

// snmptrapd in the foreground; killed (TERM, then KILL) when this goes out
// of scope, whatever the checks said.
class trapd {
public:
    explicit trapd(const std::string& config_lines) {
        port_ = free_udp_port();
        std::ofstream(dir_.path / "snmptrapd.conf") << config_lines;
        const std::string conf = (dir_.path / "snmptrapd.conf").string();
        const std::string log = log_path().string();
        const std::string pid = (dir_.path / "snmptrapd.pid").string();
        const std::string mibdirs = dir_.path.string() + ":" + (source_root() / "etc").string();
        const std::string listen = "udp:127.0.0.1:" + std::to_string(port_);
        const std::string out = (dir_.path / "stdout").string();
        std::vector<std::string> args = {"/usr/sbin/snmptrapd", "-f", "-n", "-C", "-c", conf, "-Lf", log, "-p", pid,
                                         "-M", mibdirs, "-m", "PULSEGATE-MIB", "-F", "TRAP %P|%v\n", listen};
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::setenv("SNMP_PERSISTENT_DIR", dir_.path.c_str(), 1);
            ::setenv("SNMPCONFPATH", dir_.path.c_str(), 1);
            if (std::freopen(out.c_str(), "w", stdout) == nullptr || std::freopen(out.c_str(), "a", stderr) == nullptr)
                ::_exit(126);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        const bool ready = wait_until([&] { return log_text().find("NET-SNMP version") != std::string::npos; });
        REQUIRE_MESSAGE(ready, "snmptrapd did not start: " << read_file(dir_.path / "stdout") << log_text());
    }
    ~trapd() {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        const bool gone = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 5s);
        if (!gone) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
        }
    }
    trapd(const trapd&) = delete;
    trapd& operator=(const trapd&) = delete;

    unsigned port() const { return port_; }
    fs::path log_path() const { return dir_.path / "snmptrapd.log"; }
    std::string log_text() const { return read_file(log_path()); }

    // The logged trap line that contains `needle`, waiting for it; "" if none came.
    std::string trap_with(const std::string& needle) const {
        std::string found;
        wait_until([&] {
            std::istringstream in(log_text());
            for (std::string line; std::getline(in, line);)
                if (line.starts_with("TRAP ") && line.find(needle) != std::string::npos) {
                    found = line;
                    return true;
                }
            return false;
        });
        return found;
    }

private:
    temp_dir dir_;
    unsigned port_ = 0;
    pid_t pid_ = -1;
};

alert_message make_message(const std::string& event, const std::string& device, bool test = false) {
    const std::string json = R"({"event":")" + event + R"(","tenant":"acme","at":"2026-11-23T10:00:00.000Z",
      "alert":{"id":42,"tenant":"acme","device":")" + device + R"(","rule":7,"rule_name":"hot","kind":"THRESHOLD",
      "severity":"critical","status":"open","metric":"temp","value":91.5,"threshold":90,"message":"temp 91.5 > 90",
      "opened_at":"2026-11-23T10:00:00.000Z","closed_at":null,"escalation_level":2,"labels":{}}})";
    auto m = parse_alert_message(json);
    REQUIRE(m.has_value());
    m->test = test;
    return *m;
}

integration_target make_target(const std::string& config, const std::string& secrets, std::int64_t id = 5) {
    integration_target t;
    t.id = id;
    t.tenant = "acme";
    t.name = "noc";
    t.type = "snmp";
    t.config = boost::json::parse(config).as_object();
    t.secrets = boost::json::parse(secrets).as_object();
    return t;
}

target_guard loopback_guard() { return target_guard({*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")}); }

} // namespace

TEST_CASE("v2c: snmptrapd logs the notification with the alert's objects") {
    trapd receiver("authCommunity log public\n");
    const auto guard = loopback_guard();
    snmp_sender sender(guard);
    const auto target = make_target(R"({"host":"127.0.0.1","port":)" + std::to_string(receiver.port()) + "}",
                                    R"({"community":"public"})");
    const auto r = sender.send(target, make_message("alert.opened", "pump-1"));
    CHECK(r.result == outcome::delivered);
    CHECK(r.status == "sent");
    CHECK(r.error.empty());

    const auto line = receiver.trap_with("pgAlertDevice.0 = STRING: pump-1");
    REQUIRE_MESSAGE(!line.empty(), receiver.log_text());
    CHECK(line.find("SNMP v2c, community public") != std::string::npos);
    CHECK(line.find("OID: PULSEGATE-MIB::pgAlertOpened") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertId.0 = Gauge32: 42") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertTenant.0 = STRING: acme") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertRuleName.0 = STRING: hot") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertRuleId.0 = Gauge32: 7") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertKind.0 = STRING: THRESHOLD") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertSeverity.0 = STRING: critical") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertStatus.0 = STRING: open") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertMetric.0 = STRING: temp") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertValue.0 = STRING: 91.5") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertThreshold.0 = STRING: 90") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertMessage.0 = STRING: temp 91.5 > 90") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertEventTime.0 = STRING: 2026-11-23T10:00:00.000Z") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertEscalationLevel.0 = Gauge32: 2") != std::string::npos);
    CHECK(line.find("PULSEGATE-MIB::pgAlertTest.0 = INTEGER: false(2)") != std::string::npos);
    CHECK(line.find("Timeticks:") != std::string::npos);
}

TEST_CASE("v3 authPriv with SHA and with SHA-256: snmptrapd decrypts and logs the traps") {
    const std::string engine = "0x8000e58d0401020304";
    const std::string default_engine = snmp_default_engine_id(77);
    CHECK(default_engine == "80001f880470756c7365676174653737"); // 80001f8804 "pulsegate" "77"
    trapd receiver("createUser -e " + engine + " ops SHA authpass1 AES privpass1\n"
                   "createUser -e 0x" + default_engine + " ops256 SHA-256 authpass2 AES privpass2\n"
                   "authUser log ops\nauthUser log ops256\n");
    const auto guard = loopback_guard();
    snmp_sender sender(guard);
    const std::string host = R"("host":"127.0.0.1","port":)" + std::to_string(receiver.port());

    const auto sha = make_target("{" + host + R"(,"version":"v3","user":"ops","engine_id":")" + engine + R"("})",
                                 R"({"auth_password":"authpass1","priv_password":"privpass1"})");
    auto r = sender.send(sha, make_message("alert.escalated", "pump-v3"));
    CHECK(r.result == outcome::delivered);
    auto line = receiver.trap_with("pgAlertDevice.0 = STRING: pump-v3");
    REQUIRE_MESSAGE(!line.empty(), receiver.log_text());
    CHECK(line.find("SNMP v3, user ops,") != std::string::npos);
    CHECK(line.find("OID: PULSEGATE-MIB::pgAlertEscalated") != std::string::npos);
    CHECK(line.find("pgAlertSeverity.0 = STRING: critical") != std::string::npos);
    CHECK(line.find("pgAlertValue.0 = STRING: 91.5") != std::string::npos);
    CHECK(line.find("pgAlertMessage.0 = STRING: temp 91.5 > 90") != std::string::npos);

    // SHA-256 with the default engine ID (integration 77), and a test send.
    const auto sha256 = make_target("{" + host + R"(,"version":"v3","user":"ops256","auth_protocol":"SHA-256",
                                    "priv_protocol":"AES"})",
                                    R"({"auth_password":"authpass2","priv_password":"privpass2"})", 77);
    r = sender.send(sha256, make_message("alert.closed", "pump-256", true));
    CHECK(r.result == outcome::delivered);
    line = receiver.trap_with("pgAlertDevice.0 = STRING: pump-256");
    REQUIRE_MESSAGE(!line.empty(), receiver.log_text());
    CHECK(line.find("SNMP v3, user ops256,") != std::string::npos);
    CHECK(line.find("OID: PULSEGATE-MIB::pgAlertClosed") != std::string::npos);
    CHECK(line.find("pgAlertTest.0 = INTEGER: true(1)") != std::string::npos);
}

TEST_CASE("v3: changed passwords take effect for the same user and engine ID") {
    const std::string engine = "0x8000e58d04aabbccdd";
    trapd receiver("createUser -e " + engine + " rot SHA authpass1 AES privpass1\nauthUser log rot\n");
    const auto guard = loopback_guard();
    snmp_sender sender(guard);
    const std::string config = R"({"host":"127.0.0.1","port":)" + std::to_string(receiver.port()) +
                               R"(,"version":"v3","user":"rot","engine_id":")" + engine + R"("})";
    // Wrong keys first: the receiver cannot decrypt, the sender cannot know.
    auto r = sender.send(make_target(config, R"({"auth_password":"oldpass1","priv_password":"oldpass2"})"),
                         make_message("alert.opened", "stale-keys"));
    CHECK(r.result == outcome::delivered);
    r = sender.send(make_target(config, R"({"auth_password":"authpass1","priv_password":"privpass1"})"),
                    make_message("alert.opened", "fresh-keys"));
    CHECK(r.result == outcome::delivered);
    CHECK(!receiver.trap_with("pgAlertDevice.0 = STRING: fresh-keys").empty());
    CHECK(receiver.log_text().find("stale-keys") == std::string::npos);
}

TEST_CASE("traps are fire and forget: a wrong community is delivered for the sender, dropped by the receiver") {
    trapd receiver("authCommunity log public\n");
    const auto guard = loopback_guard();
    snmp_sender sender(guard);
    const std::string config = R"({"host":"127.0.0.1","port":)" + std::to_string(receiver.port()) + "}";
    auto r = sender.send(make_target(config, R"({"community":"wrong"})"), make_message("alert.opened", "bad-community"));
    CHECK(r.result == outcome::delivered);
    CHECK(r.status == "sent");
    // A good trap sent after it arrives; by then the bad one was handled.
    r = sender.send(make_target(config, R"({"community":"public"})"), make_message("alert.opened", "good-community"));
    CHECK(r.result == outcome::delivered);
    CHECK(!receiver.trap_with("pgAlertDevice.0 = STRING: good-community").empty());
    CHECK(receiver.log_text().find("bad-community") == std::string::npos);
}

TEST_CASE("the SSRF guard, settings that cannot work and unknown events fail without sending") {
    const target_guard strict;
    snmp_sender sender(strict);
    auto r = sender.send(make_target(R"({"host":"127.0.0.1"})", R"({"community":"s3cret-community"})"),
                         make_message("alert.opened", "pump-1"));
    CHECK(r.result == outcome::failed);
    CHECK(r.error.find("allow_private_targets") != std::string::npos);
    CHECK(r.error.find("s3cret-community") == std::string::npos);

    const auto guard = loopback_guard();
    snmp_sender open_sender(guard);
    r = open_sender.send(make_target(R"({"host":"127.0.0.1","version":"v3","user":"u"})",
                                     R"({"auth_password":"short","priv_password":"privpass1"})"),
                         make_message("alert.opened", "pump-1"));
    CHECK(r.result == outcome::failed);
    CHECK(r.error.find("auth_password") != std::string::npos);
    CHECK(r.error.find("short") == std::string::npos);

    r = open_sender.send(make_target(R"({"host":"127.0.0.1","port":1162})", R"({"community":"public"})"),
                         make_message("alert.exploded", "pump-1"));
    CHECK(r.result == outcome::failed);
    CHECK(r.error.find("alert.exploded") != std::string::npos);
}

TEST_CASE("validate_snmp names the field that is wrong") {
    std::string why;
    auto ok = [&](const char* config, const char* secrets) {
        return validate_snmp(boost::json::parse(config).as_object(), boost::json::parse(secrets).as_object(), &why);
    };
    CHECK(ok(R"({"host":"traps.example.com"})", R"({"community":"public"})"));
    CHECK(ok(R"({"host":"h","port":1162,"version":"v2c","timeout_ms":100})", R"({"community":"c"})"));
    CHECK(ok(R"({"host":"h","version":"v3","user":"u","auth_protocol":"SHA-256","priv_protocol":"AES",
                 "engine_id":"0x80001f8804616263"})",
             R"({"auth_password":"12345678","priv_password":"abcdefgh"})"));

    CHECK(!ok(R"({})", R"({"community":"public"})"));
    CHECK(why.find("config.host") != std::string::npos);
    CHECK(!ok(R"({"host":"h"})", R"({})"));
    CHECK(why.find("secrets.community") != std::string::npos);
    CHECK(!ok(R"({"host":"h","version":"v1"})", R"({"community":"public"})"));
    CHECK(why.find("config.version") != std::string::npos);
    CHECK(!ok(R"({"host":"h","port":70000})", R"({"community":"public"})"));
    CHECK(why.find("config.port") != std::string::npos);
    CHECK(!ok(R"({"host":"h","timeout_ms":0})", R"({"community":"public"})"));
    CHECK(why.find("config.timeout_ms") != std::string::npos);

    const char* v3_secrets = R"({"auth_password":"12345678","priv_password":"abcdefgh"})";
    CHECK(!ok(R"({"host":"h","version":"v3"})", v3_secrets));
    CHECK(why.find("config.user") != std::string::npos);
    CHECK(!ok(R"({"host":"h","version":"v3","user":"u"})", R"({"auth_password":"1234567","priv_password":"abcdefgh"})"));
    CHECK(why.find("secrets.auth_password") != std::string::npos);
    CHECK(why.find("1234567") == std::string::npos);
    CHECK(!ok(R"({"host":"h","version":"v3","user":"u"})", R"({"auth_password":"12345678","priv_password":"abc"})"));
    CHECK(why.find("secrets.priv_password") != std::string::npos);
    CHECK(!ok(R"({"host":"h","version":"v3","user":"u","auth_protocol":"MD5"})", v3_secrets));
    CHECK(why.find("config.auth_protocol") != std::string::npos);
    CHECK(!ok(R"({"host":"h","version":"v3","user":"u","priv_protocol":"DES"})", v3_secrets));
    CHECK(why.find("config.priv_protocol") != std::string::npos);
    for (const char* bad : {"0x8000", "80001f88zz", "0x80001f880", "0000000000", "ffffffffff",
                            "0x010203040506070809101112131415161718192021222324252627282930313233"}) {
        const std::string config = std::string(R"({"host":"h","version":"v3","user":"u","engine_id":")") + bad + "\"}";
        CHECK_MESSAGE(!ok(config.c_str(), v3_secrets), std::string(bad));
        CHECK(why.find("config.engine_id") != std::string::npos);
    }
}

TEST_CASE("snmptranslate reads etc/PULSEGATE-MIB.txt without a warning") {
    temp_dir dir;
    const fs::path out = dir.path / "out.txt";
    const std::string cmd = "SNMP_PERSISTENT_DIR='" + dir.path.string() + "' SNMPCONFPATH='" + dir.path.string() +
                            "' snmptranslate -M '" + dir.path.string() + ":" + (source_root() / "etc").string() +
                            "' -m PULSEGATE-MIB -Tp -IR pulsegate > '" + out.string() + "' 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::string text = read_file(out);
    // net-snmp announces the persistent dir it creates on first use; not about the MIB.
    if (text.starts_with("Created directory:"))
        text.erase(0, text.find('\n') + 1);
    CHECK_MESSAGE(text.starts_with("+--pulsegate(58765)"), text);
    for (const char* name : {"pgAlertOpened(1)", "pgAlertAcknowledged(2)", "pgAlertEscalated(3)", "pgAlertClosed(4)",
                             "pgAlertId(1)", "pgAlertValue(10)", "pgAlertTest(15)", "pgCompliance(1)",
                             "pgAlertObjectGroup(1)", "pgAlertNotificationGroup(2)"})
        CHECK_MESSAGE(text.find(name) != std::string::npos, name);
    for (const char* problem : {"Cannot", "Did not find", "Unlinked", "Undefined", "Warning", "rror"})
        CHECK_MESSAGE(text.find(problem) == std::string::npos, text);
}
