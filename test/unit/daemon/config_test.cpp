// daemon/config: defaults, the file, environment overrides and every error
// message a user can meet.

#include "daemon/config.hpp"

#include <doctest/doctest.h>
#include <toml++/toml.h>

#include <map>
#include <string>

using namespace pulsegate::daemon;

namespace {

// An injected environment.
env_lookup env_of(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end())
            return std::nullopt;
        return it->second;
    };
}

config parse(std::string_view text, std::map<std::string, std::string> env = {}) {
    return parse_config(text, "pulsegate.toml", env_of(std::move(env)));
}

std::string error_of(std::string_view text, std::map<std::string, std::string> env = {}) {
    try {
        parse(text, std::move(env));
    } catch (const config_error& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST_CASE("defaults: every key has one, matching broker::options") {
    config c = load_config(std::nullopt, no_env);
    CHECK(c == config{});
    CHECK(c.mqtt.listen == std::vector<std::string>{"0.0.0.0:1883"});
    CHECK(c.http.listen == "127.0.0.1:8080");
    CHECK(c.storage.data_dir == "./var");
    CHECK(c.storage.durability_mode == durability::commit);
    CHECK_FALSE(c.auth.allow_anonymous);
    CHECK(c.auth.anonymous_tenant == "default");
    CHECK(c.delivery.allow_private_targets.empty());
    CHECK(c.log.level == "info");
    CHECK(c.log.format == log_format::logfmt);

    auto o = to_broker_options(c);
    pulsegate::broker::options d;
    CHECK(o.listen == d.listen);
    CHECK(o.shards == d.shards);
    CHECK(o.max_keepalive == d.max_keepalive);
    CHECK(o.receive_maximum == d.receive_maximum);
    CHECK(o.topic_alias_maximum == d.topic_alias_maximum);
    CHECK(o.max_packet_size == d.max_packet_size);
    CHECK(o.max_inflight == d.max_inflight);
    CHECK(o.max_queued_messages == d.max_queued_messages);
    CHECK(o.max_connections == d.max_connections);
    CHECK(o.max_publish_rate == d.max_publish_rate);
    CHECK(o.max_publish_byte_rate == d.max_publish_byte_rate);
    CHECK(o.publish_burst_s == d.publish_burst_s);
    CHECK(o.max_topic_levels == d.max_topic_levels);
    CHECK(o.connect_timeout == d.connect_timeout);
    CHECK(o.max_session_expiry == d.max_session_expiry);
    CHECK(o.allow_anonymous == d.allow_anonymous);
    CHECK(o.anonymous_tenant == d.anonymous_tenant);
    CHECK(o.sys_interval == d.sys_interval);
}

TEST_CASE("an empty file is the defaults") {
    CHECK(parse("") == config{});
    CHECK(parse("# only a comment\n[mqtt]\n[log]\n") == config{});
}

TEST_CASE("file: every key parsed and mapped") {
    auto c = parse(R"(
[mqtt]
listen = ["127.0.0.1:1884", "[::1]:1884"]
shards = 2
max_keepalive = 60
receive_maximum = 20
topic_alias_maximum = 0
max_packet_size = 4096
max_inflight = 10
max_queued_messages = 50
max_connections = 100
max_topic_levels = 8
connect_timeout_ms = 2500
max_session_expiry_s = 3600
sys_interval_s = 0
[http]
listen = "0.0.0.0:8081"
[storage]
data_dir = "/tmp/pg"
durability = "relaxed"
[auth]
allow_anonymous = true
anonymous_tenant = "lab-1"
[delivery]
allow_private_targets = ["127.0.0.0/8", "::1/128", "10.1.2.3"]
[log]
level = "debug"
format = "json"
)");
    CHECK(c.mqtt.listen == std::vector<std::string>{"127.0.0.1:1884", "[::1]:1884"});
    CHECK(c.http.listen == "0.0.0.0:8081");
    CHECK(c.storage.data_dir == "/tmp/pg");
    CHECK(c.storage.durability_mode == durability::relaxed);
    CHECK(c.delivery.allow_private_targets.size() == 3);
    CHECK(c.log.level == "debug");
    CHECK(c.log.format == log_format::json);

    auto o = to_broker_options(c);
    CHECK(o.listen == c.mqtt.listen);
    CHECK(o.shards == 2);
    CHECK(o.max_keepalive == 60);
    CHECK(o.receive_maximum == 20);
    CHECK(o.topic_alias_maximum == 0);
    CHECK(o.max_packet_size == 4096);
    CHECK(o.max_inflight == 10);
    CHECK(o.max_queued_messages == 50);
    CHECK(o.max_connections == 100);
    CHECK(o.max_topic_levels == 8);
    CHECK(o.connect_timeout == std::chrono::milliseconds(2500));
    CHECK(o.max_session_expiry == 3600);
    CHECK(o.sys_interval == std::chrono::seconds(0));
    CHECK(o.allow_anonymous);
    CHECK(o.anonymous_tenant == "lab-1");
}

TEST_CASE("listen: a single string is a one-element list") {
    CHECK(parse("[mqtt]\nlisten = \"127.0.0.1:0\"\n").mqtt.listen ==
          std::vector<std::string>{"127.0.0.1:0"});
}

TEST_CASE("anonymous_tenant may be empty: the whole untenanted tree") {
    CHECK(parse("[auth]\nanonymous_tenant = \"\"\n").auth.anonymous_tenant.empty());
}

TEST_CASE("bounds are inclusive") {
    CHECK(parse("[mqtt]\nreceive_maximum = 1\n").mqtt.receive_maximum == 1);
    CHECK(parse("[mqtt]\nreceive_maximum = 65535\n").mqtt.receive_maximum == 65535);
    CHECK(parse("[mqtt]\nmax_session_expiry_s = 4294967295\n").mqtt.max_session_expiry_s == 0xFFFFFFFFu);
}

TEST_CASE("environment overrides the file") {
    auto c = parse("[mqtt]\nlisten = \"0.0.0.0:1883\"\nreceive_maximum = 100\n",
                   {{"PULSEGATE_MQTT_LISTEN", "127.0.0.1:1884, [::1]:1885"},
                    {"PULSEGATE_MQTT_RECEIVE_MAXIMUM", "200"},
                    {"PULSEGATE_AUTH_ALLOW_ANONYMOUS", "true"},
                    {"PULSEGATE_AUTH_ANONYMOUS_TENANT", ""},
                    {"PULSEGATE_DELIVERY_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8,192.168.0.0/16,"},
                    {"PULSEGATE_STORAGE_DURABILITY", "relaxed"},
                    {"PULSEGATE_LOG_FORMAT", "json"}});
    CHECK(c.mqtt.listen == std::vector<std::string>{"127.0.0.1:1884", "[::1]:1885"});
    CHECK(c.mqtt.receive_maximum == 200);
    CHECK(c.auth.allow_anonymous);
    CHECK(c.auth.anonymous_tenant.empty());
    CHECK(c.delivery.allow_private_targets ==
          std::vector<std::string>{"127.0.0.0/8", "192.168.0.0/16"});
    CHECK(c.storage.durability_mode == durability::relaxed);
    CHECK(c.log.format == log_format::json);
}

TEST_CASE("environment without a file") {
    auto c = load_config(std::nullopt, env_of({{"PULSEGATE_AUTH_ALLOW_ANONYMOUS", "1"},
                                               {"PULSEGATE_MQTT_SHARDS", "2"}}));
    CHECK(c.auth.allow_anonymous);
    CHECK(c.mqtt.shards == 2);
    CHECK(load_config(std::nullopt, env_of({{"PULSEGATE_AUTH_ALLOW_ANONYMOUS", "FALSE"}}))
              .auth.allow_anonymous == false);
    CHECK(load_config(std::nullopt, env_of({{"PULSEGATE_DELIVERY_ALLOW_PRIVATE_TARGETS", ""}}))
              .delivery.allow_private_targets.empty());
}

TEST_CASE("env_var_name and unknown overrides") {
    CHECK(env_var_name("mqtt", "listen") == "PULSEGATE_MQTT_LISTEN");
    CHECK(env_var_name("auth", "allow_anonymous") == "PULSEGATE_AUTH_ALLOW_ANONYMOUS");
    CHECK(unknown_env_overrides({"PATH", "PULSEGATE_MQTT_LISTEN", "PULSEGATE_MQTT_LISTN", "HOME"}) ==
          std::vector<std::string>{"PULSEGATE_MQTT_LISTN"});
}

TEST_CASE("errors in the file name the file, the key and the expectation") {
    CHECK(error_of("[mqtt]\nreceive_maximum = 0\n") ==
          "pulsegate.toml:2: [mqtt] receive_maximum: expected an integer 1..65535, got 0");
    CHECK(error_of("[mqtt]\nreceive_maximum = 65536\n") ==
          "pulsegate.toml:2: [mqtt] receive_maximum: expected an integer 1..65535, got 65536");
    CHECK(error_of("[mqtt]\nreceive_maximum = \"10\"\n") ==
          "pulsegate.toml:2: [mqtt] receive_maximum: expected an integer 1..65535, got the string \"10\"");
    CHECK(error_of("[mqtt]\nmax_inflight = 1.5\n") ==
          "pulsegate.toml:2: [mqtt] max_inflight: expected an integer 1..65535, got a floating-point number");
    CHECK(error_of("[mqtt]\nshards = -1\n") ==
          "pulsegate.toml:2: [mqtt] shards: expected an integer 0..256, got -1");
    CHECK(error_of("[mqtt]\nmax_session_expiry_s = 4294967296\n") ==
          "pulsegate.toml:2: [mqtt] max_session_expiry_s: expected an integer 0..4294967295, got 4294967296");
    CHECK(error_of("[auth]\nallow_anonymous = \"yes\"\n") ==
          "pulsegate.toml:2: [auth] allow_anonymous: expected true or false, got the string \"yes\"");
    CHECK(error_of("[storage]\ndurability = \"fast\"\n") ==
          "pulsegate.toml:2: [storage] durability: expected \"commit\" or \"relaxed\", got \"fast\"");
    CHECK(error_of("[storage]\ndata_dir = \"\"\n") ==
          "pulsegate.toml:2: [storage] data_dir: expected a non-empty directory path, got \"\"");
    CHECK(error_of("[log]\nlevel = \"verbose\"\n") ==
          "pulsegate.toml:2: [log] level: expected one of \"trace\", \"debug\", \"info\", \"warn\", "
          "\"error\", got \"verbose\"");
    CHECK(error_of("[log]\nformat = \"xml\"\n") ==
          "pulsegate.toml:2: [log] format: expected \"logfmt\" or \"json\", got \"xml\"");
    CHECK(error_of("[auth]\nanonymous_tenant = \"Acme\"\n") ==
          "pulsegate.toml:2: [auth] anonymous_tenant: expected a tenant id ([a-z0-9][a-z0-9_-]{0,62}) or "
          "\"\" (whole untenanted tree), got \"Acme\"");
    CHECK(error_of("[delivery]\nallow_private_targets = [\"10.0.0.0/33\"]\n") ==
          "pulsegate.toml:2: [delivery] allow_private_targets: expected a CIDR range (e.g. \"127.0.0.0/8\", "
          "\"fd00::/8\"), got \"10.0.0.0/33\"");
    CHECK(error_of("[delivery]\nallow_private_targets = \"127.0.0.0/8\"\n") ==
          "pulsegate.toml:2: [delivery] allow_private_targets: expected an array of strings, each a CIDR range "
          "(e.g. \"127.0.0.0/8\", \"fd00::/8\"), got the string \"127.0.0.0/8\"");
    CHECK(error_of("[http]\nlisten = \"localhost:8080\"\n") ==
          "pulsegate.toml:2: [http] listen: expected \"host:port\" with an IP address (e.g. "
          "\"127.0.0.1:8080\"), got \"localhost:8080\"");
}

TEST_CASE("listen addresses are checked one by one") {
    const std::string address = "\"host:port\" with an IP address (e.g. \"0.0.0.0:1883\" or \"[::]:1883\")";
    const std::string expected = "expected " + address;
    for (const char* bad : {"1.2.3.4", "1.2.3.4:70000", "1.2.3.4:", ":1883", "[::1]1883", "::1:1883",
                            "[::1:1883", "1.2.3:1883", "localhost:1883", "1.2.3.4:12a"}) {
        CAPTURE(bad);
        CHECK(error_of(std::string("[mqtt]\nlisten = [\"127.0.0.1:1\", \"") + bad + "\"]\n") ==
              "pulsegate.toml:2: [mqtt] listen: " + expected + ", got \"" + bad + "\"");
    }
    for (const char* good : {"0.0.0.0:0", "127.0.0.1:65535", "[::]:1883", "[fe80::1]:1"}) {
        CAPTURE(good);
        CHECK(parse(std::string("[mqtt]\nlisten = \"") + good + "\"\n").mqtt.listen.front() == good);
    }
    CHECK(error_of("[mqtt]\nlisten = []\n") ==
          "pulsegate.toml:2: [mqtt] listen: expected a non-empty list, each " + address + ", got an empty list");
    CHECK(error_of("[mqtt]\nlisten = [1883]\n") ==
          "pulsegate.toml:2: [mqtt] listen: expected a string or an array of strings, each " + address +
              ", got an array holding the integer 1883");
    CHECK(error_of("[mqtt]\nlisten = 1883\n") ==
          "pulsegate.toml:2: [mqtt] listen: expected a string or an array of strings, each " + address +
              ", got the integer 1883");
}

TEST_CASE("unknown sections and keys are errors") {
    CHECK(error_of("[mqtt]\nrecieve_maximum = 10\n") ==
          "pulsegate.toml:2: [mqtt] recieve_maximum: unknown key (known keys: listen, shards, max_keepalive, "
          "receive_maximum, topic_alias_maximum, max_packet_size, max_inflight, max_queued_messages, "
          "max_connections, max_publish_rate, max_publish_byte_rate, publish_burst_s, max_topic_levels, "
          "connect_timeout_ms, max_session_expiry_s, sys_interval_s)");
    CHECK(error_of("[mqtt.tls]\ncert = \"x\"\n").rfind("pulsegate.toml:1: [mqtt] tls: unknown key", 0) == 0);
    CHECK(error_of("[mqttt]\nlisten = \"0.0.0.0:1\"\n") ==
          "pulsegate.toml:1: unknown section [mqttt] (known sections: [mqtt], [http], [tls], [storage], [auth], "
          "[delivery], [rules], [quotas], [log])");
    CHECK(error_of("listen = \"0.0.0.0:1883\"\n") ==
          "pulsegate.toml:1: listen: unknown top-level key (keys belong in a section: [mqtt], [http], [tls], "
          "[storage], [auth], [delivery], [rules], [quotas], [log])");
    CHECK(error_of("mqtt = 1\n") == "pulsegate.toml:1: [mqtt]: expected a table (section), got the integer 1");
    CHECK(error_of("[[bridge]]\nname = \"cloud\"\n") == "pulsegate.toml:1: [[bridge]] #1 url: required, a non-empty string");
    CHECK(error_of("[[acl]]\nwho = \"*\"\n") ==
          "pulsegate.toml:1: [[acl]] #1 action: required, a non-empty string");
    CHECK(error_of("[[acl]]\nwho = \"*\"\naction = \"read\"\ntopic = \"a\"\npermission = \"deny\"\n") ==
          "pulsegate.toml:1: [[acl]] #1 action: expected one of \"publish\", \"subscribe\", \"both\", got \"read\"");
    CHECK(error_of("[[acl]]\nwho = \"*\"\naction = \"both\"\ntopic = \"a\"\npermission = \"deny\"\nx = 1\n") ==
          "pulsegate.toml:1: [[acl]] #1 x: unknown key (known keys: who, action, topic, permission)");
}

TEST_CASE("syntax errors carry the line and column") {
    auto msg = error_of("[mqtt]\nreceive_maximum = \n");
    CHECK(msg.rfind("pulsegate.toml:2:", 0) == 0);
    msg = error_of("[mqtt\n");
    CHECK(msg.rfind("pulsegate.toml:1:", 0) == 0);
}

TEST_CASE("errors in the environment name the variable") {
    CHECK(error_of("", {{"PULSEGATE_MQTT_RECEIVE_MAXIMUM", "abc"}}) ==
          "environment PULSEGATE_MQTT_RECEIVE_MAXIMUM: expected an integer 1..65535, got \"abc\"");
    CHECK(error_of("", {{"PULSEGATE_MQTT_RECEIVE_MAXIMUM", "0"}}) ==
          "environment PULSEGATE_MQTT_RECEIVE_MAXIMUM: expected an integer 1..65535, got \"0\"");
    CHECK(error_of("", {{"PULSEGATE_MQTT_RECEIVE_MAXIMUM", ""}}) ==
          "environment PULSEGATE_MQTT_RECEIVE_MAXIMUM: expected an integer 1..65535, got \"\"");
    CHECK(error_of("", {{"PULSEGATE_AUTH_ALLOW_ANONYMOUS", "maybe"}}) ==
          "environment PULSEGATE_AUTH_ALLOW_ANONYMOUS: expected true or false (or 1 or 0), got \"maybe\"");
    CHECK(error_of("", {{"PULSEGATE_MQTT_LISTEN", "127.0.0.1:1884,nope"}}) ==
          "environment PULSEGATE_MQTT_LISTEN: expected \"host:port\" with an IP address (e.g. "
          "\"0.0.0.0:1883\" or \"[::]:1883\"), got \"nope\"");
    CHECK(error_of("", {{"PULSEGATE_MQTT_LISTEN", ""}}) ==
          "environment PULSEGATE_MQTT_LISTEN: expected a non-empty list, each \"host:port\" with an IP "
          "address (e.g. \"0.0.0.0:1883\" or \"[::]:1883\"), got an empty list");
    CHECK(error_of("", {{"PULSEGATE_LOG_LEVEL", "loud"}}) ==
          "environment PULSEGATE_LOG_LEVEL: expected one of \"trace\", \"debug\", \"info\", \"warn\", "
          "\"error\", got \"loud\"");
    // The file is checked first: its error wins over a bad environment.
    CHECK(error_of("[mqtt]\nshards = 1000\n", {{"PULSEGATE_LOG_LEVEL", "loud"}}) ==
          "pulsegate.toml:2: [mqtt] shards: expected an integer 0..256, got 1000");
}

TEST_CASE("load_config: a named file must be readable") {
    try {
        load_config(std::filesystem::path("/nonexistent/pulsegate.toml"), no_env);
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(std::string(e.what()) ==
              "cannot read config file /nonexistent/pulsegate.toml: No such file or directory");
    }
}

TEST_CASE("to_toml prints every key and parses back to the same config") {
    config d;
    CHECK(parse(to_toml(d)) == d);

    config c;
    c.mqtt.listen = {"127.0.0.1:1", "[::1]:2"};
    c.mqtt.receive_maximum = 7;
    c.storage.data_dir = "/srv/with \"quotes\" and \\ backslash";
    c.storage.durability_mode = durability::relaxed;
    c.auth.anonymous_tenant = "";
    c.delivery.allow_private_targets = {"10.0.0.0/8"};
    c.log.format = log_format::json;
    CHECK(parse(to_toml(c)) == c);

    auto root = toml::parse(to_toml(d));
    for (const char* key : {"listen", "shards", "max_keepalive", "receive_maximum", "topic_alias_maximum",
                            "max_packet_size", "max_inflight", "max_queued_messages", "max_connections",
                            "max_publish_rate", "max_publish_byte_rate", "publish_burst_s", "max_topic_levels", "connect_timeout_ms", "max_session_expiry_s",
                            "sys_interval_s"}) {
        CAPTURE(key);
        CHECK(root["mqtt"][key]);
    }
    CHECK(root["http"]["listen"]);
    CHECK(root["storage"]["data_dir"]);
    CHECK(root["storage"]["durability"]);
    CHECK(root["auth"]["allow_anonymous"]);
    CHECK(root["auth"]["anonymous_tenant"]);
    CHECK(root["delivery"]["allow_private_targets"]);
    CHECK(root["log"]["level"]);
    CHECK(root["log"]["format"]);
}

TEST_CASE("etc/pulsegate.toml: valid, every key present, every value the default") {
    const std::filesystem::path sample = std::filesystem::path(PULSEGATE_SOURCE_DIR) / "etc/pulsegate.toml";
    CHECK(load_config(sample, no_env) == config{});
    auto sample_root = toml::parse_file(sample.string());
    auto all_keys = toml::parse(to_toml(config{}));
    for (const auto& [section, table] : all_keys) {
        for (const auto& [key, value] : *table.as_table()) {
            CAPTURE(section.str());
            CAPTURE(key.str());
            CHECK(sample_root[section.str()][key.str()]);
        }
    }
}

TEST_CASE("restart_only_changes") {
    config a;
    config b = a;
    b.mqtt.receive_maximum = 5;
    b.log.level = "debug";
    CHECK(restart_only_changes(a, b).empty());
    b.mqtt.listen = {"127.0.0.1:1"};
    b.storage.durability_mode = durability::relaxed;
    CHECK(restart_only_changes(a, b) == std::vector<std::string>{"[mqtt] listen", "[storage] durability"});
}

TEST_CASE("[[acl]] entries are read in order and survive to_toml") {
    const auto cfg = parse_config("[[acl]]\nwho = \"anonymous\"\naction = \"subscribe\"\ntopic = \"test/nosubscribe\"\n"
                                  "permission = \"deny\"\n[[acl]]\nwho = \"*\"\naction = \"both\"\ntopic = \"#\"\n"
                                  "permission = \"allow\"\n",
                                  "pulsegate.toml", no_env);
    REQUIRE(cfg.acl.size() == 2);
    CHECK(cfg.acl[0] == acl_entry{"anonymous", "subscribe", "test/nosubscribe", "deny"});
    CHECK(cfg.acl[1] == acl_entry{"*", "both", "#", "allow"});
    CHECK(parse_config(to_toml(cfg), "again", no_env) == cfg);
}

TEST_CASE("[tls]: keys, environment, and the keys that go together") {
    auto c = parse("[tls]\ncert = \"/etc/pg/cert.pem\"\nkey = \"/etc/pg/key.pem\"\nlisten = \"127.0.0.1:8884\"\n"
                   "client_ca = \"/etc/pg/ca.pem\"\nrequire_client_cert = true\n[http]\nhttps = false\n");
    CHECK(c.tls.enabled());
    CHECK(c.tls.cert == "/etc/pg/cert.pem");
    CHECK(c.tls.listen == std::vector<std::string>{"127.0.0.1:8884"});
    CHECK(c.tls.require_client_cert);
    CHECK_FALSE(c.http.https);
    CHECK(to_broker_options(c).tls_listen == std::vector<std::string>{"127.0.0.1:8884"});
    CHECK_FALSE(config{}.tls.enabled());
    CHECK(config{}.tls.listen == std::vector<std::string>{"0.0.0.0:8883"});

    auto e = parse("", {{"PULSEGATE_TLS_CERT", "/c.pem"}, {"PULSEGATE_TLS_KEY", "/k.pem"}});
    CHECK(e.tls.cert == "/c.pem");
    CHECK(e.tls.key == "/k.pem");

    CHECK(error_of("[tls]\ncert = \"/c.pem\"\n") ==
          "pulsegate.toml: [tls] cert and key go together: set both (TLS) or neither (no TLS)");
    CHECK(error_of("[tls]\nclient_ca = \"/ca.pem\"\n") == "pulsegate.toml: [tls] client_ca needs [tls] cert and key");
    CHECK(error_of("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nrequire_client_cert = true\n") ==
          "pulsegate.toml: [tls] require_client_cert needs [tls] client_ca (the CA that signs the client "
          "certificates)");
    CHECK(error_of("[tls]\nlisten = \"*:8883\"\n") ==
          "pulsegate.toml:2: [tls] listen: expected \"host:port\" with an IP address (e.g. \"0.0.0.0:8883\"), got "
          "\"*:8883\"");

    config a;
    config b = a;
    b.tls.cert = "/new.pem";
    b.http.https = false;
    CHECK(restart_only_changes(a, b) == std::vector<std::string>{"[http] https", "[tls] cert"});
}

TEST_CASE("[[bridge]]: every key, defaults, to_toml, and what is refused") {
    const auto cfg = parse(R"([[bridge]]
name = "cloud"
url = "mqtts://broker.example"
client_id = "site-1"
username = "site"
password = "s3cret"
tls_ca = "/etc/ssl/ca.pem"
tls_cert = "/etc/ssl/site.pem"
tls_key = "/etc/ssl/site.key"
mqtt_version = 5
clean_start = true
session_expiry_s = 0
keepalive_s = 30
forward = [{ filter = "t/+/alerts/#", prefix = "site-1/", qos = 1 }, { filter = "t/+/d/+/telemetry", strip = "t/", qos = 0 }]
import = [{ filter = "site-1/t/+/d/+/cmd/#", strip = "site-1/", qos = 1 }]
queue_max_messages = 5000
queue_max_age_s = 3600
queue_max_mb = 64
max_inflight = 20
reconnect_max_s = 10
[[bridge]]
name = "second"
url = "mqtt://10.0.0.1:1884"
import = [{ filter = "cmd/#" }]
)");
    REQUIRE(cfg.bridges.size() == 2);
    const auto& b = cfg.bridges[0];
    CHECK(b.name == "cloud");
    CHECK(b.mqtt_version == 5);
    CHECK(b.clean_start);
    CHECK(b.keepalive_s == 30);
    REQUIRE(b.forward.size() == 2);
    CHECK(b.forward[0] == pulsegate::adapters::bridge_rule{"t/+/alerts/#", "", "site-1/", 1});
    CHECK(b.forward[1] == pulsegate::adapters::bridge_rule{"t/+/d/+/telemetry", "t/", "", 0});
    CHECK(b.import[0] == pulsegate::adapters::bridge_rule{"site-1/t/+/d/+/cmd/#", "site-1/", "", 1});
    CHECK(b.queue_max_messages == 5000);
    CHECK(b.queue_max_mb == 64);
    CHECK(b.max_inflight == 20);
    const auto& d = cfg.bridges[1];
    CHECK(d.mqtt_version == 4);
    CHECK_FALSE(d.clean_start);
    CHECK(d.queue_max_messages == 1000000);
    CHECK(d.queue_max_age_s == 604800);
    CHECK(d.import[0].qos == 1);
    CHECK(parse(to_toml(cfg)) == cfg);
    // check-config prints no password.
    CHECK(to_toml(cfg, true).find("s3cret") == std::string::npos);
    CHECK(to_toml(cfg, true).find("password = \"<secret>\"") != std::string::npos);

    config changed = cfg;
    changed.bridges[1].url = "mqtt://10.0.0.2";
    CHECK(restart_only_changes(cfg, changed) == std::vector<std::string>{"[[bridge]]"});

    const auto bridge = [](std::string_view body) {
        return error_of("[[bridge]]\nname = \"cloud\"\nurl = \"mqtt://h\"\n" + std::string(body));
    };
    CHECK(bridge("") == "pulsegate.toml:1: [[bridge]] #1 forward: a bridge needs at least one forward or import rule");
    CHECK(bridge("forward = [{ filter = \"a/#/b\" }]") ==
          "pulsegate.toml:1: [[bridge]] #1 forward[0] filter: not a valid MQTT filter (wildcard not occupying a whole "
          "level, or '#' not last)");
    CHECK(bridge("forward = [{ filter = \"$share/g/a\" }]") ==
          "pulsegate.toml:1: [[bridge]] #1 forward[0] filter: a shared subscription ($share/...) cannot be bridged");
    CHECK(bridge("forward = [{ filter = \"a\", prefix = \"x/+/\" }]") ==
          "pulsegate.toml:1: [[bridge]] #1 forward[0] prefix: no wildcards (+ #) in a topic prefix");
    CHECK(bridge("forward = [{ filter = \"a\", qos = 3 }]") ==
          "pulsegate.toml:1: [[bridge]] #1 forward[0] qos: expected an integer 0..2, got the integer 3");
    CHECK(bridge("forward = [{ filter = \"a\", topic = \"b\" }]") ==
          "pulsegate.toml:1: [[bridge]] #1 forward[0] topic: unknown key (known keys: filter, strip, prefix, qos)");
    CHECK(bridge("import = [{ filter = \"a\" }]\nqueue_max_messages = 0") ==
          "pulsegate.toml:1: [[bridge]] #1 queue_max_messages: expected an integer 1..1000000000, got the integer 0");
    CHECK(bridge("import = [{ filter = \"a\" }]\ntls_ca = \"ca.pem\"") ==
          "pulsegate.toml:1: [[bridge]] #1 tls_ca: TLS settings need an mqtts:// or wss:// url");
    CHECK(bridge("import = [{ filter = \"a\" }]\npassword = \"p\"") ==
          "pulsegate.toml:1: [[bridge]] #1 password: a password needs a username");
    CHECK(bridge("import = [{ filter = \"a\" }]\nusername = \"u\"\npassword = \"p\"\npassword_file = \"f\"") ==
          "pulsegate.toml:1: [[bridge]] #1 password_file: set password or password_file, not both");
    CHECK(bridge("import = [{ filter = \"a\" }]\npassword_file = \"f\"") ==
          "pulsegate.toml:1: [[bridge]] #1 password_file: a password needs a username");
    CHECK(bridge("import = [{ filter = \"a\" }]\nsession_expiry_s = 60") ==
          "pulsegate.toml:1: [[bridge]] #1 session_expiry_s: needs mqtt_version = 5");
    CHECK(bridge("import = [{ filter = \"a\" }]\nfrward = []").rfind(
              "pulsegate.toml:1: [[bridge]] #1 frward: unknown key (known keys: name, url, client_id,", 0) == 0);
    CHECK(error_of("[[bridge]]\nname = \"a b\"\nurl = \"mqtt://h\"\n") ==
          "pulsegate.toml:1: [[bridge]] #1 name: expected 1 to 64 letters, digits, - or _, got \"a b\"");
    CHECK(error_of("[[bridge]]\nname = \"a\"\nurl = \"http://h\"\nimport = [{ filter = \"a\" }]\n") ==
          "pulsegate.toml:1: [[bridge]] #1 url: unknown scheme \"http\" (use mqtt, mqtts, ws or wss)");
    CHECK(error_of("[[bridge]]\nname = \"a\"\nurl = \"mqtt://h:99999\"\nimport = [{ filter = \"a\" }]\n") ==
          "pulsegate.toml:1: [[bridge]] #1 url: port \"99999\" is not 1..65535");
    CHECK(error_of("[[bridge]]\nname = \"a\"\nurl = \"mqtt://u:p@h\"\nimport = [{ filter = \"a\" }]\n") ==
          "pulsegate.toml:1: [[bridge]] #1 url: no user info in the url: set username and password");
    CHECK(error_of("[[bridge]]\nname = \"a\"\nurl = \"mqtt://h\"\nimport = [{ filter = \"a\" }]\n"
                   "[[bridge]]\nname = \"a\"\nurl = \"mqtt://h\"\nimport = [{ filter = \"a\" }]\n") ==
          "pulsegate.toml:5: [[bridge]] #2 name: \"a\" is used twice");
}

TEST_CASE("bridge URLs map to Paho server URIs with the default ports") {
    using pulsegate::adapters::paho_uri;
    CHECK(paho_uri("mqtt://broker.example") == "tcp://broker.example:1883");
    CHECK(paho_uri("mqtts://broker.example") == "ssl://broker.example:8883");
    CHECK(paho_uri("mqtt://[::1]:1884") == "tcp://[::1]:1884");
    CHECK(paho_uri("wss://hub.example/mqtt") == "wss://hub.example:443/mqtt");
    CHECK(paho_uri("ws://hub.example:8080/mqtt") == "ws://hub.example:8080/mqtt");
    CHECK(pulsegate::adapters::check_bridge_url("mqtt://h/path") == "a path is only allowed for ws:// and wss://");
    CHECK(pulsegate::adapters::remap({"t/+/a/#", "t/", "site/", 1}, "t/acme/a/x") == "site/acme/a/x");
    CHECK(pulsegate::adapters::remap({"#", "zz/", "", 1}, "t/acme") == "t/acme");
}
