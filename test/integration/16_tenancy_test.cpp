// 16: tenant isolation (DESIGN.md, MQTT contract: topic tree partitioned by
// tenant, identity and ACL; Web UI and REST API: tenant and operator routes).
//
// Two tenants, acme and globex, set up over REST the way an operator would.
// Both have a device called dev1, so the same unmounted names exist in both
// trees. Every path a tenant client has (CONNECT, SUBSCRIBE incl. shared and
// $SYS, PUBLISH, wills, retained messages, REST with a cookie or a token) is
// tried against the other tenant and must come back empty-handed, while the
// same path inside its own tenant works, so that "nothing arrived" means
// isolation and not a broken path. Absence is asserted only after a
// sentinel published later on the same path has arrived (quiet_window).
//
// pulsegate only: mosquitto has no tenants.
#include <doctest/doctest.h>

#include "harness.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace pulsegate::itest;
namespace r = pulsegate::itest::raw;

namespace {

constexpr std::string_view admin_password = "operator-secret-16";
constexpr std::string_view user_password = "tenant-user-secret-16";

// v5 reason codes the tests expect.
constexpr int bad_credentials = 0x86, not_authorized = 0x87, administrative_action = 0x98;

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// A refused CONNECT: bad user name or password, or not authorized.
bool is_refusal(int reason) { return reason == bad_credentials || reason == not_authorized; }

// ------------------------------------------------------------------ REST --

json_value json_of(http_response const& res) {
    auto v = parse_json(res.body);
    REQUIRE_MESSAGE(v, "not a JSON body: " << res.describe());
    return *v;
}

// The error code of a JSON error answer ("" when the body is not one).
std::string error_code(http_response const& res) {
    auto v = parse_json(res.body);
    return v ? (*v)["error"]["code"].str() : std::string{};
}

// Ids of a list answer {"items": [{"id": ...}, ...]}, sorted.
std::vector<std::string> ids_of(json_value const& list) {
    std::vector<std::string> out;
    for (auto const& item : list["items"].items()) out.push_back(item["id"].str());
    std::sort(out.begin(), out.end());
    return out;
}

// A string or number id as it goes into a URL.
std::string id_text(json_value const& v) { return v.is_string() ? v.str() : v.dump(); }

// A REST caller: a web session (cookie + CSRF token) or an API token.
struct rest {
    std::uint16_t port = 0;
    std::string cookie;  // "pulsegate_session=..."
    std::string csrf;
    std::string bearer;

    http_response call(std::string_view method, std::string_view target, std::string_view body = {},
                       bool with_csrf = true) const {
        http_headers h;
        if (!cookie.empty()) h.emplace_back("Cookie", cookie);
        if (with_csrf && !csrf.empty()) h.emplace_back("X-CSRF-Token", csrf);
        if (!bearer.empty()) h.emplace_back("Authorization", "Bearer " + bearer);
        if (!body.empty()) h.emplace_back("Content-Type", "application/json");
        return http_request(port, method, target, h, body);
    }
    http_response get(std::string_view target) const { return call("GET", target); }
    http_response post(std::string_view target, std::string_view body = {}) const {
        return call("POST", target, body);
    }
    http_response patch(std::string_view target, std::string_view body) const {
        return call("PATCH", target, body);
    }
    http_response del(std::string_view target) const { return call("DELETE", target); }
};

http_response login_raw(std::uint16_t port, std::string_view user, std::string_view password) {
    const std::string body =
        "{\"username\":" + json_quote(user) + ",\"password\":" + json_quote(password) + "}";
    return http_request(port, "POST", "/api/v1/auth/login", {{"Content-Type", "application/json"}}, body);
}

// A logged-in session; REQUIREs the login to succeed.
rest login(std::uint16_t port, std::string_view user, std::string_view password) {
    auto res = login_raw(port, user, password);
    REQUIRE_MESSAGE(res.status == 200, "login " << user << ": " << res.describe());
    auto v = json_of(res);
    CHECK(v["user"]["username"].str() == user);
    rest s;
    s.port = port;
    s.csrf = v["csrf_token"].str();
    REQUIRE_MESSAGE(!s.csrf.empty(), "login answered no csrf_token: " << res.body);
    auto set_cookie = res.header("Set-Cookie");
    REQUIRE_MESSAGE(set_cookie, "login set no cookie");
    s.cookie = set_cookie->substr(0, set_cookie->find(';'));
    REQUIRE(s.cookie.starts_with("pulsegate_session="));
    CHECK(contains(*set_cookie, "HttpOnly"));
    CHECK(contains(*set_cookie, "SameSite=Strict"));
    return s;
}

// The body of a create answer: 201 expected (any 2xx lets the test go on).
json_value created(http_response const& res, std::string_view what) {
    CHECK_MESSAGE(res.status == 201, what << ": " << res.describe());
    REQUIRE_MESSAGE(res.status / 100 == 2, what << ": " << res.describe());
    return json_of(res);
}

// What one tenant's setup produced.
struct tenant_setup {
    std::string id;
    rest admin;  // a tenant_admin's session
    rest api;    // the tenant's API token as Bearer
    std::string token;     // the same token: the MQTT password of {id}/api
    std::string token_id;
    std::map<std::string, std::string> secret;  // device id -> device secret
};

broker_options tenancy_options() {
    broker_options o;
    o.allow_anonymous = false;
    o.admin_password = std::string{admin_password};
    return o;
}

// One daemon with acme (devices dev1, other) and globex (devices dev1,
// gdev), each with a tenant_admin and an API token. About six argon2 runs.
struct world {
    broker_process b{tenancy_options()};
    std::uint16_t http = b.http_port();
    rest op = login(http, "admin", admin_password);
    tenant_setup acme = make_tenant("acme", {"dev1", "other"});
    tenant_setup globex = make_tenant("globex", {"dev1", "gdev"});

    void add_user(std::string const& name, std::string_view role, std::string_view tenant) {
        created(op.post("/api/v1/operator/users",
                        "{\"username\":" + json_quote(name) + ",\"password\":" + json_quote(user_password) +
                            ",\"role\":" + json_quote(role) + ",\"tenant\":" + json_quote(tenant) + "}"),
                "create user " + name);
    }

    tenant_setup make_tenant(std::string const& id, std::vector<std::string> const& devices) {
        tenant_setup t;
        t.id = id;
        auto tenant = created(op.post("/api/v1/operator/tenants",
                                      "{\"id\":" + json_quote(id) + ",\"name\":" + json_quote(id + " corp") + "}"),
                              "create tenant " + id);
        CHECK(tenant["id"].str() == id);
        add_user(id + "-admin", "tenant_admin", id);
        t.admin = login(http, id + "-admin", user_password);
        for (auto const& d : devices) {
            auto dev = created(t.admin.post("/api/v1/devices", "{\"id\":" + json_quote(d) + ",\"name\":" +
                                                                   json_quote(id + " " + d) + "}"),
                               "create device " + d);
            CHECK(dev["id"].str() == d);
            t.secret[d] = dev["secret"].str();
            REQUIRE_MESSAGE(!t.secret[d].empty(), "no secret in " << dev.dump());
        }
        auto tok = created(t.admin.post("/api/v1/tokens", R"({"name":"integrator"})"), "create token");
        t.token = tok["token"].str();
        REQUIRE_MESSAGE(!t.token.empty(), "no token in " << tok.dump());
        t.token_id = id_text(tok["id"]);
        t.api.port = http;
        t.api.bearer = t.token;
        return t;
    }
};

// ------------------------------------------------------------------ MQTT --

r::connect_spec creds(std::string client_id, std::string user, std::string password,
                      std::uint8_t version = 5) {
    auto s = r::spec(version, std::move(client_id));
    s.username = std::move(user);
    s.password = std::move(password);
    return s;
}

// The CONNACK reason for `s` (-1: none came). The connection is closed
// afterwards (abnormally: a will would be published).
int connack_reason(broker_process const& b, r::connect_spec const& s) {
    raw_client c{b.port()};
    auto ack = c.handshake(s);
    return ack ? ack->reason : -1;
}

// A connected client; REQUIREs the CONNACK to accept it.
std::unique_ptr<raw_client> connect_ok(broker_process const& b, r::connect_spec const& s) {
    auto c = std::make_unique<raw_client>(b.port());
    auto ack = c->handshake(s);
    REQUIRE_MESSAGE(ack, s.username.value_or("(anonymous)") << ": no CONNACK");
    REQUIRE_MESSAGE(ack->reason == 0, s.username.value_or("(anonymous)") << ": CONNACK reason "
                                                                            << int(ack->reason));
    return c;
}

// SUBACK reason codes for `filters` (all at `qos`), as "87 87 00".
std::string subscribe(raw_client& c, std::uint16_t id, std::vector<std::string> const& filters,
                      std::uint8_t qos = 0) {
    std::vector<std::pair<std::string, std::uint8_t>> f;
    for (auto const& x : filters) f.emplace_back(x, qos);
    REQUIRE(c.send(r::subscribe_packet(c.version(), id, f)));
    auto p = c.read_type(r::suback);
    REQUIRE_MESSAGE(p, "no SUBACK");
    auto a = r::parse_ack(*p, c.version());
    CHECK(a.packet_id == id);
    return to_hex(std::string(a.reasons.begin(), a.reasons.end()));
}

// A QoS 1 publish; the PUBACK reason code.
int publish1(raw_client& c, std::uint16_t id, std::string_view topic, std::string_view payload,
             bool retain = false) {
    REQUIRE(c.send(r::publish_packet(c.version(), topic, payload, 1, id, retain)));
    auto p = c.read_type(r::puback);
    REQUIRE_MESSAGE(p, "no PUBACK for " << topic);
    auto a = r::parse_ack(*p, c.version());
    CHECK(a.packet_id == id);
    return a.reason;
}

std::string describe(std::vector<r::publish_view> const& got) {
    std::string out;
    for (auto const& m : got) out += "\n  " + m.topic + " " + m.payload;
    return out.empty() ? "(none)" : out;
}

// The PUBLISH packets a raw client receives, those read_type() set aside
// first; QoS 1 ones are acknowledged. Other packets are dropped.
class inbox {
public:
    explicit inbox(raw_client& c) : c_(c) {
        for (auto const& p : c_.skipped())
            if (auto v = take(p)) queue_.push_back(std::move(*v));
        c_.skipped().clear();
    }

    // Publishes until one on `topic` with `payload` (not returned), then
    // what arrives within quiet_window after it. REQUIREs the sentinel.
    std::vector<r::publish_view> until_sentinel(std::string_view topic, std::string_view payload) {
        std::vector<r::publish_view> got;
        const auto deadline = steady::now() + event_timeout;
        for (;;) {
            auto v = pop(deadline);
            REQUIRE_MESSAGE(v, "the sentinel on " << topic << " never arrived; got" << describe(got));
            if (v->topic == topic && v->payload == payload) break;
            got.push_back(std::move(*v));
        }
        while (auto v = pop(steady::now() + quiet_window)) got.push_back(std::move(*v));
        return got;
    }

    // Reads until a publish on `topic` with `payload`; REQUIREs it.
    void expect(std::string_view topic, std::string_view payload) {
        std::vector<r::publish_view> got;
        const auto deadline = steady::now() + event_timeout;
        for (;;) {
            auto v = pop(deadline);
            REQUIRE_MESSAGE(v, topic << " " << payload << " never arrived; got" << describe(got));
            if (v->topic == topic && v->payload == payload) return;
            got.push_back(std::move(*v));
        }
    }

    // The next publish; REQUIREs one.
    r::publish_view next() {
        auto v = pop(steady::now() + event_timeout);
        REQUIRE_MESSAGE(v, "no PUBLISH arrived");
        return std::move(*v);
    }

private:
    std::optional<r::publish_view> take(r::packet const& p) {
        if (p.type != r::publish) return std::nullopt;
        auto v = r::parse_publish(p, c_.version());
        if (v.qos == 1) c_.send(r::ack_packet(r::puback, v.packet_id));
        return v;
    }
    std::optional<r::publish_view> pop(steady::time_point deadline) {
        if (!queue_.empty()) {
            auto v = std::move(queue_.front());
            queue_.pop_front();
            return v;
        }
        for (;;) {
            const auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
            if (left.count() <= 0) return std::nullopt;
            auto p = c_.read(left);
            if (!p) return std::nullopt;
            if (auto v = take(*p)) return v;
        }
    }

    raw_client& c_;
    std::deque<r::publish_view> queue_;
};

// The broker ends `c`'s session: a v5 DISCONNECT with 0x98 (administrative
// action) and close, or just close.
void expect_dropped(raw_client& c) {
    const auto deadline = steady::now() + event_timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
        REQUIRE_MESSAGE(left.count() > 0, "the broker did not end the connection");
        auto p = c.read(left);
        if (!p) {
            REQUIRE_MESSAGE(c.closed(), "the broker did not end the connection");
            return;
        }
        if (p->type == r::disconnect) CHECK(int(r::parse_ack(*p, c.version()).reason) == administrative_action);
    }
}

// The connection is still up: PINGREQ is answered.
void expect_alive(raw_client& c) {
    REQUIRE(c.send(r::pingreq_packet()));
    CHECK_MESSAGE(c.read_type(r::pingresp), "no PINGRESP: the connection was dropped");
}

// Polls `fetch` until `pred` holds for its JSON (true) or 10 s pass
// (false): for what the daemon writes in batches (rejected events).
template <class Fetch, class Pred>
bool poll_until(Fetch fetch, Pred pred, json_value& last) {
    const auto deadline = steady::now() + 10s;
    for (;;) {
        auto res = fetch();
        REQUIRE_MESSAGE(res.status == 200, res.describe());
        last = json_of(res);
        if (pred(last)) return true;
        if (steady::now() >= deadline) return false;
        // Nothing to wait on over HTTP: poll, a tenth of the batch period.
        std::this_thread::sleep_for(100ms);
    }
}

} // namespace

TEST_CASE("devices and integrators connect only with their own tenant's credentials") {
    if (is_mosquitto()) return;
    world w;
    auto const& a = w.acme;
    auto const& g = w.globex;
    struct attempt {
        char const* what;
        std::string user, password;
        bool accepted;
    };
    const std::vector<attempt> attempts = {
        {"acme device with its secret", "acme/dev1", a.secret.at("dev1"), true},
        {"globex device of the same id with its secret", "globex/dev1", g.secret.at("dev1"), true},
        {"acme integrator with acme's token", "acme/api", a.token, true},
        {"the operator with its password", "admin", std::string{admin_password}, true},
        {"a wrong secret", "acme/dev1", "not-the-secret", false},
        {"the globex dev1 secret for acme/dev1", "acme/dev1", g.secret.at("dev1"), false},
        {"the acme dev1 secret for globex/dev1", "globex/dev1", a.secret.at("dev1"), false},
        {"a globex device id under acme", "acme/gdev", g.secret.at("gdev"), false},
        {"another acme device's secret", "acme/dev1", a.secret.at("other"), false},
        {"globex's token for acme/api", "acme/api", g.token, false},
        {"acme's token for globex/api", "globex/api", a.token, false},
        {"a device secret for acme/api", "acme/api", a.secret.at("dev1"), false},
        {"a token for a device", "acme/dev1", a.token, false},
        {"a tenant user's password (operators only)", "acme-admin", std::string{user_password}, false},
        {"a tenant that does not exist", "initech/dev1", a.secret.at("dev1"), false},
    };
    int n = 0;
    for (auto const& t : attempts) {
        CAPTURE(t.what);
        raw_client c{w.b.port()};
        auto ack = c.handshake(creds("auth-" + std::to_string(n++), t.user, t.password));
        REQUIRE(ack);
        if (t.accepted) {
            CHECK(int(ack->reason) == 0);
        } else {
            CHECK_MESSAGE(is_refusal(ack->reason), "CONNACK reason " << int(ack->reason));
            CHECK(c.wait_closed());
        }
    }

    // A user name without a password, and no user name at all (anonymous
    // access is off).
    auto no_password = creds("auth-nopass", "acme/dev1", "");
    no_password.password.reset();
    CHECK(is_refusal(connack_reason(w.b, no_password)));
    CHECK(is_refusal(connack_reason(w.b, r::spec(5, "auth-anon"))));
    // 3.1.1: return code 4 (bad user name or password) or 5 (not authorized).
    const int v3 = connack_reason(w.b, creds("auth-v3", "acme/dev1", g.secret.at("dev1"), 4));
    CHECK((v3 == 4 || v3 == 5));
    CHECK(connack_reason(w.b, creds("auth-v3-ok", "acme/dev1", a.secret.at("dev1"), 4)) == 0);
}

TEST_CASE("a tenant's devices and integrators receive nothing of another tenant's tree") {
    if (is_mosquitto()) return;
    world w;
    auto& b = w.b;
    auto const& a = w.acme;
    auto const& g = w.globex;

    // globex's own clients are the controls: what they get proves the
    // messages were published and routed.
    auto gdev = connect_ok(b, creds("g-dev1", "globex/dev1", g.secret.at("dev1")));
    CHECK(subscribe(*gdev, 1, {"d/dev1/cmd/#"}) == "00");
    auto gapi = connect_ok(b, creds("g-api", "globex/api", g.token));
    CHECK(subscribe(*gapi, 1, {"#"}) == "00");
    // Same group name as acme's below: groups must not be shared across tenants.
    auto gshared = connect_ok(b, creds("g-shared", "globex/api", g.token));
    CHECK(subscribe(*gshared, 1, {"$share/g/#"}) == "00");

    // globex's retained messages exist before acme subscribes.
    CHECK(publish1(*gdev, 10, "d/dev1/state", "globex-retained", true) == 0);
    CHECK(publish1(*gapi, 10, "d/dev1/cmd/config", "globex-retained-cmd", true) == 0);

    // acme integrators, one per filter, each with a sentinel filter beside it
    // (nothing in acme can publish under t/ in its own namespace).
    const std::vector<std::string> filters = {"#", "+/#", "+/+/+", "d/dev1/#", "t/#", "t/globex/#",
                                              "$share/g/#", "$share/h/d/+/telemetry"};
    std::vector<std::unique_ptr<raw_client>> apis;
    for (std::size_t i = 0; i < filters.size(); ++i) {
        CAPTURE(filters[i]);
        apis.push_back(connect_ok(b, creds("a-api-" + std::to_string(i), "acme/api", a.token)));
        CHECK(subscribe(*apis.back(), 1, {filters[i], "d/other/heartbeat"}) == "00 00");
    }
    // $SYS is for operators only.
    auto asys = connect_ok(b, creds("a-sys", "acme/api", a.token));
    CHECK(subscribe(*asys, 1, {"$SYS/#", "$SYS/broker/uptime", "d/other/heartbeat"}) == "87 87 00");
    // An acme device may only subscribe to its own downlink.
    auto adev = connect_ok(b, creds("a-dev1", "acme/dev1", a.secret.at("dev1")));
    CHECK(subscribe(*adev, 1, {"#", "+/#", "t/#", "$SYS/#", "$share/g/#", "d/dev1/cmd/#"}) ==
          "87 87 87 87 87 00");

    // globex traffic on the same unmounted names acme uses.
    CHECK(publish1(*gdev, 11, "d/dev1/telemetry", R"({"globex_temp": 99})") == 0);
    CHECK(publish1(*gdev, 12, "d/dev1/heartbeat", "globex-heartbeat") == 0);
    CHECK(publish1(*gapi, 11, "d/dev1/cmd/reboot", "globex-cmd") == 0);
    inbox{*gapi}.expect("d/dev1/telemetry", R"({"globex_temp": 99})");
    inbox{*gdev}.expect("d/dev1/cmd/reboot", "globex-cmd");
    inbox{*gshared}.expect("d/dev1/heartbeat", "globex-heartbeat");

    // acme traffic on the same name: it must arrive where globex's did not.
    CHECK(publish1(*adev, 2, "d/dev1/telemetry", R"({"acme_temp": 1})") == 0);

    // Sentinels inside acme's tree, on the paths the acme clients listen to.
    auto aother = connect_ok(b, creds("a-other", "acme/other", a.secret.at("other")));
    CHECK(publish1(*aother, 1, "d/other/heartbeat", "acme-sentinel") == 0);
    auto apub = connect_ok(b, creds("a-api-pub", "acme/api", a.token));
    CHECK(publish1(*apub, 1, "d/dev1/cmd/sentinel", "acme-sentinel") == 0);

    auto no_globex = [](std::string_view who, std::vector<r::publish_view> const& got) {
        for (auto const& m : got) {
            CHECK_MESSAGE(!contains(m.payload, "globex"), who << " received " << m.topic << " " << m.payload);
            CHECK_MESSAGE(!m.topic.starts_with("t/"), who << " received " << m.topic);
            CHECK_MESSAGE(!m.topic.starts_with("$"), who << " received " << m.topic);
        }
    };
    for (std::size_t i = 0; i < filters.size(); ++i) {
        CAPTURE(filters[i]);
        const auto got = inbox{*apis[i]}.until_sentinel("d/other/heartbeat", "acme-sentinel");
        no_globex(filters[i], got);
        // The filter itself works: acme's reading on d/dev1/telemetry came
        // through every filter that matches it in acme's namespace.
        const bool matches = !filters[i].starts_with("t/");
        const bool seen = std::any_of(got.begin(), got.end(), [](r::publish_view const& m) {
            return m.topic == "d/dev1/telemetry" && m.payload == R"({"acme_temp": 1})";
        });
        CHECK_MESSAGE(seen == matches, "got" << describe(got));
    }
    {
        auto got = inbox{*asys}.until_sentinel("d/other/heartbeat", "acme-sentinel");
        CHECK_MESSAGE(got.empty(), "$SYS subscriber received" << describe(got));
    }
    no_globex("acme/dev1", inbox{*adev}.until_sentinel("d/dev1/cmd/sentinel", "acme-sentinel"));
}

TEST_CASE("publishes, subscriptions, wills and retained messages outside the identity's subtree are refused") {
    if (is_mosquitto()) return;
    world w;
    auto& b = w.b;
    auto const& a = w.acme;

    auto watcher = connect_ok(b, creds("a-watch", "acme/api", a.token));
    CHECK(subscribe(*watcher, 1, {"#"}) == "00");
    auto dev = connect_ok(b, creds("a-dev1", "acme/dev1", a.secret.at("dev1")));
    // Only its own downlink, and no filter that could match more.
    CHECK(subscribe(*dev, 1, {"d/other/cmd/#", "d/+/cmd/#", "d/dev1/#", "d/dev1/telemetry", "d/dev1/cmd/#"}) ==
          "87 87 87 87 00");

    SUBCASE("publishes") {
        CHECK(publish1(*dev, 2, "d/other/telemetry", R"({"x": 1})") == not_authorized);
        CHECK(publish1(*dev, 3, "d/other/state", "hijack", true) == not_authorized);
        CHECK(publish1(*dev, 4, "alerts/dev1/r1", "forged alert") == not_authorized);
        CHECK(publish1(*dev, 5, "d/dev1", "not below d/dev1/") == not_authorized);
        CHECK(publish1(*dev, 6, "$SYS/broker/uptime", "0") == not_authorized);
        // Integrators write commands only.
        CHECK(publish1(*watcher, 2, "d/dev1/telemetry", R"({"x": 3})") == not_authorized);
        // Inside its subtree: delivered and stored (the sentinel).
        CHECK(publish1(*dev, 7, "d/dev1/state", "mine", true) == 0);
        CHECK(publish1(*dev, 8, "d/dev1/telemetry", R"({"x": 2})") == 0);
        auto got = inbox{*watcher}.until_sentinel("d/dev1/telemetry", R"({"x": 2})");
        for (auto const& m : got) {
            CHECK_MESSAGE(!m.topic.starts_with("d/other/"), "delivered: " << m.topic << " " << m.payload);
            CHECK_MESSAGE(!m.topic.starts_with("alerts/"), "delivered: " << m.topic << " " << m.payload);
            CHECK_MESSAGE(m.payload != R"({"x": 3})", "delivered: " << m.topic << " " << m.payload);
        }

        // Not stored: the refused reading is not in d/other's series, and
        // the accepted one alone is in dev1's.
        auto other = a.admin.get("/api/v1/devices/other/telemetry?metric=x");
        REQUIRE_MESSAGE(other.status == 200, other.describe());
        CHECK_MESSAGE(json_of(other)["points"].size() == 0, other.body);
        auto latest = a.admin.get("/api/v1/devices/other/telemetry/latest");
        REQUIRE_MESSAGE(latest.status == 200, latest.describe());
        CHECK_MESSAGE(json_of(latest)["metrics"].size() == 0, latest.body);
        auto mine = a.admin.get("/api/v1/devices/dev1/telemetry?metric=x");
        REQUIRE_MESSAGE(mine.status == 200, mine.describe());
        auto points = json_of(mine)["points"];
        REQUIRE_MESSAGE(points.size() == 1, mine.body);
        CHECK(points[0]["value"].num() == 2);

        // A later subscriber gets the retained message inside the subtree,
        // not the refused one.
        auto later = connect_ok(b, creds("a-later", "acme/api", a.token));
        CHECK(subscribe(*later, 1, {"d/#"}) == "00");
        CHECK(publish1(*dev, 9, "d/dev1/heartbeat", "after") == 0);
        bool own_retained = false;
        for (auto const& m : inbox{*later}.until_sentinel("d/dev1/heartbeat", "after")) {
            CHECK_MESSAGE(m.topic != "d/other/state", "retained: " << m.topic << " " << m.payload);
            own_retained = own_retained || (m.topic == "d/dev1/state" && m.payload == "mine" && m.retain);
        }
        CHECK(own_retained);

        // Recorded as rejected events, for the operator (written in batches).
        json_value last;
        auto rejected = [&](std::string_view topic, std::string_view kind) {
            return [&w, topic, kind, &last] {
                return poll_until([&] { return w.op.get("/api/v1/operator/rejected"); },
                                  [&](json_value const& v) {
                                      for (auto const& e : v["items"].items())
                                          if (e["topic"].str() == topic && e["kind"].str() == kind &&
                                              contains(e.dump(), "acme/dev1"))
                                              return true;
                                      return false;
                                  },
                                  last);
            };
        };
        CHECK_MESSAGE(rejected("d/other/telemetry", "publish")(), "not in the rejected events: " << last.dump());
        CHECK_MESSAGE(rejected("d/other/cmd/#", "subscribe")(), "not in the rejected events: " << last.dump());
        CHECK(a.admin.get("/api/v1/operator/rejected").status == 403);
    }

    SUBCASE("wills") {
        auto with_will = [&](std::string id, std::string topic, bool retain) {
            auto s = creds(std::move(id), "acme/dev1", a.secret.at("dev1"));
            s.will = r::will_spec{std::move(topic), "gone", 1, retain, {}};
            return s;
        };
        CHECK(connack_reason(b, with_will("w1", "d/other/status", false)) == not_authorized);
        CHECK(connack_reason(b, with_will("w2", "d/other/state", true)) == not_authorized);
        CHECK(connack_reason(b, with_will("w3", "t/globex/d/dev1/status", false)) == not_authorized);
        CHECK(connack_reason(b, with_will("w4", "$SYS/broker/x", false)) == not_authorized);
        // Its own subtree: accepted (closing without DISCONNECT publishes it).
        CHECK(connack_reason(b, with_will("w5", "d/dev1/status", true)) == 0);
        inbox{*watcher}.expect("d/dev1/status", "gone");
        // Nothing of the refused wills was retained.
        auto later = connect_ok(b, creds("a-later", "acme/api", a.token));
        CHECK(subscribe(*later, 1, {"d/other/#", "d/dev1/heartbeat"}) == "00 00");
        CHECK(publish1(*dev, 2, "d/dev1/heartbeat", "after") == 0);
        auto got = inbox{*later}.until_sentinel("d/dev1/heartbeat", "after");
        CHECK_MESSAGE(got.empty(), "retained:" << describe(got));
        // Nor was any of them published.
        for (auto const& m : inbox{*watcher}.until_sentinel("d/dev1/heartbeat", "after"))
            CHECK_MESSAGE(m.topic == "d/dev1/status", "published: " << m.topic << " " << m.payload);
    }

    SUBCASE("3.1.1: a refused subscription gets 0x80") {
        auto v3 = connect_ok(b, creds("a-dev1-v3", "acme/dev1", a.secret.at("dev1"), 4));
        CHECK(subscribe(*v3, 1, {"#", "d/other/cmd/#", "d/dev1/cmd/#"}) == "80 80 00");
    }
}

TEST_CASE("an integrator sees its devices' telemetry unmounted and sends them commands; REST shows the reading") {
    if (is_mosquitto()) return;
    world w;
    auto& b = w.b;
    auto const& a = w.acme;
    auto const& g = w.globex;

    auto api = connect_ok(b, creds("a-api", "acme/api", a.token));
    CHECK(subscribe(*api, 1, {"d/+/telemetry"}, 1) == "01");
    // The operator is not mounted: it sees the internal names.
    auto op = connect_ok(b, creds("op", "admin", std::string{admin_password}));
    CHECK(subscribe(*op, 1, {"t/+/d/+/telemetry"}) == "00");
    auto dev = connect_ok(b, creds("a-dev1", "acme/dev1", a.secret.at("dev1")));
    CHECK(subscribe(*dev, 1, {"d/dev1/cmd/#"}, 1) == "01");

    CHECK(publish1(*dev, 2, "d/dev1/telemetry", R"({"temp_c": 21.5})") == 0);
    auto m = inbox{*api}.next();
    CHECK(m.topic == "d/dev1/telemetry");
    CHECK(m.payload == R"({"temp_c": 21.5})");
    inbox{*op}.expect("t/acme/d/dev1/telemetry", R"({"temp_c": 21.5})");

    CHECK(publish1(*api, 2, "d/dev1/cmd/reboot", "now") == 0);
    auto cmd = inbox{*dev}.next();
    CHECK(cmd.topic == "d/dev1/cmd/reboot");
    CHECK(cmd.payload == "now");

    // The reading, with a session and with the API token alike.
    for (auto const* who : {&a.admin, &a.api}) {
        CAPTURE(who->bearer.empty() ? "cookie" : "token");
        auto latest = who->get("/api/v1/devices/dev1/telemetry/latest");
        REQUIRE_MESSAGE(latest.status == 200, latest.describe());
        auto v = json_of(latest);
        CHECK(v["device"].str() == "dev1");
        CHECK_MESSAGE(v["metrics"]["temp_c"]["value"].num() == 21.5, latest.body);
        CHECK(v["metrics"]["temp_c"]["ts"].is_number());
        auto series = who->get("/api/v1/devices/dev1/telemetry?metric=temp_c");
        REQUIRE_MESSAGE(series.status == 200, series.describe());
        auto s = json_of(series);
        CHECK(s["metric"].str() == "temp_c");
        REQUIRE_MESSAGE(s["points"].size() == 1, series.body);
        CHECK(s["points"][0]["value"].num() == 21.5);
    }
    // globex's dev1 is another device: no such reading.
    auto glatest = g.admin.get("/api/v1/devices/dev1/telemetry/latest");
    REQUIRE_MESSAGE(glatest.status == 200, glatest.describe());
    CHECK_MESSAGE(!json_of(glatest)["metrics"].contains("temp_c"), glatest.body);
    auto gseries = g.admin.get("/api/v1/devices/dev1/telemetry?metric=temp_c");
    REQUIRE_MESSAGE(gseries.status == 200, gseries.describe());
    CHECK_MESSAGE(json_of(gseries)["points"].size() == 0, gseries.body);

    // Each tenant lists its own devices only.
    CHECK(ids_of(json_of(a.admin.get("/api/v1/devices"))) == std::vector<std::string>{"dev1", "other"});
    CHECK(ids_of(json_of(a.api.get("/api/v1/devices"))) == std::vector<std::string>{"dev1", "other"});
    CHECK(ids_of(json_of(g.admin.get("/api/v1/devices"))) == std::vector<std::string>{"dev1", "gdev"});
}

TEST_CASE("REST: another tenant's device answers 404 to a cookie and to a token, and stays unchanged") {
    if (is_mosquitto()) return;
    world w;
    auto& b = w.b;
    auto const& a = w.acme;
    auto const& g = w.globex;

    auto gdev = connect_ok(b, creds("g-gdev", "globex/gdev", g.secret.at("gdev")));
    CHECK(publish1(*gdev, 1, "d/gdev/telemetry", R"({"temp_c": 7})") == 0);
    auto gapi = connect_ok(b, creds("g-api", "globex/api", g.token));
    auto before = g.admin.get("/api/v1/devices/gdev");
    REQUIRE_MESSAGE(before.status == 200, before.describe());
    const auto was = json_of(before);

    struct request {
        char const* method;
        char const* path;  // {} is the device id
        char const* body;
    };
    const std::vector<request> requests = {
        {"GET", "/api/v1/devices/{}", ""},
        {"PATCH", "/api/v1/devices/{}", R"({"name":"pwned","disabled":true,"labels":{"owner":"acme"}})"},
        {"POST", "/api/v1/devices/{}/secret", ""},
        {"GET", "/api/v1/devices/{}/telemetry?metric=temp_c", ""},
        {"GET", "/api/v1/devices/{}/telemetry/latest", ""},
        {"GET", "/api/v1/devices/{}/metrics", ""},
        {"DELETE", "/api/v1/devices/{}", ""},
    };
    auto path_for = [](std::string p, std::string const& id) { return p.replace(p.find("{}"), 2, id); };
    for (auto const* who : {&a.admin, &a.api}) {
        CAPTURE(who->bearer.empty() ? "cookie" : "token");
        for (auto const& rq : requests) {
            CAPTURE(rq.method);
            CAPTURE(rq.path);
            auto res = who->call(rq.method, path_for(rq.path, "gdev"), rq.body);
            CHECK_MESSAGE(res.status == 404, res.describe());
            CHECK(error_code(res) == "not_found");
            // An unknown id answers alike.
            auto unknown = who->call(rq.method, path_for(rq.path, "nosuch"), rq.body);
            CHECK_MESSAGE(unknown.status == 404, unknown.describe());
            CHECK(error_code(unknown) == "not_found");
        }
        auto list = json_of(who->get("/api/v1/devices"));
        for (auto const& item : list["items"].items()) CHECK(item["id"].str() != "gdev");
        // Nor can acme revoke globex's token.
        auto revoke = who->del("/api/v1/tokens/" + g.token_id);
        CHECK_MESSAGE(revoke.status == 404, revoke.describe());
    }

    // globex still has gdev as it was, and its clients still work.
    auto after = g.admin.get("/api/v1/devices/gdev");
    REQUIRE_MESSAGE(after.status == 200, after.describe());
    const auto now = json_of(after);
    CHECK(now["name"].str() == was["name"].str());
    CHECK(now["status"].str() == was["status"].str());
    CHECK(now["labels"].dump() == was["labels"].dump());
    expect_alive(*gdev);
    expect_alive(*gapi);
    CHECK(publish1(*gdev, 2, "d/gdev/telemetry", R"({"temp_c": 8})") == 0);
    CHECK(connack_reason(b, creds("g-gdev-2", "globex/gdev", g.secret.at("gdev"))) == 0);
    CHECK(connack_reason(b, creds("g-api-2", "globex/api", g.token)) == 0);
    auto series = g.admin.get("/api/v1/devices/gdev/telemetry?metric=temp_c");
    REQUIRE_MESSAGE(series.status == 200, series.describe());
    CHECK_MESSAGE(json_of(series)["points"].size() == 2, series.body);

    // The same id in both tenants: acme's changes to its dev1 leave globex's alone.
    auto gdev1 = connect_ok(b, creds("g-dev1", "globex/dev1", g.secret.at("dev1")));
    auto renamed = a.admin.patch("/api/v1/devices/dev1", R"({"name":"acme renamed"})");
    CHECK_MESSAGE(renamed.status == 200, renamed.describe());
    CHECK(json_of(g.admin.get("/api/v1/devices/dev1"))["name"].str() == "globex dev1");
    CHECK(a.admin.del("/api/v1/devices/dev1").status == 204);
    CHECK(g.admin.get("/api/v1/devices/dev1").status == 200);
    expect_alive(*gdev1);
    CHECK(connack_reason(b, creds("g-dev1-2", "globex/dev1", g.secret.at("dev1"))) == 0);
}

TEST_CASE("REST: roles, CSRF and operator routes; operator reads are audited") {
    if (is_mosquitto()) return;
    world w;
    auto const& a = w.acme;
    auto const& g = w.globex;
    w.add_user("acme-viewer", "tenant_viewer", "acme");
    auto viewer = login(w.http, "acme-viewer", user_password);

    SUBCASE("a viewer reads but does not write") {
        CHECK(viewer.get("/api/v1/devices").status == 200);
        CHECK(viewer.get("/api/v1/devices/dev1").status == 200);
        CHECK(viewer.get("/api/v1/devices/gdev").status == 404);  // not 403: nothing leaks
        for (auto res : {viewer.post("/api/v1/devices", R"({"id":"by-viewer"})"),
                         viewer.patch("/api/v1/devices/dev1", R"({"name":"by viewer"})"),
                         viewer.post("/api/v1/devices/dev1/secret"), viewer.del("/api/v1/devices/dev1"),
                         viewer.post("/api/v1/tokens", R"({"name":"by-viewer"})")}) {
            CHECK_MESSAGE(res.status == 403, res.describe());
            CHECK(error_code(res) == "forbidden");
        }
        CHECK(a.admin.get("/api/v1/devices/by-viewer").status == 404);
        CHECK(json_of(a.admin.get("/api/v1/devices/dev1"))["name"].str() == "acme dev1");
        CHECK(connack_reason(w.b, creds("a-dev1", "acme/dev1", a.secret.at("dev1"))) == 0);
    }

    SUBCASE("a cookie write needs the session's CSRF token; a token needs none") {
        auto missing = a.admin.call("POST", "/api/v1/devices", R"({"id":"no-csrf"})", false);
        CHECK_MESSAGE(missing.status == 403, missing.describe());
        auto wrong = a.admin;
        wrong.csrf = "not-the-csrf-token";
        CHECK(wrong.post("/api/v1/devices", R"({"id":"no-csrf"})").status == 403);
        CHECK(wrong.patch("/api/v1/devices/dev1", R"({"name":"csrf"})").status == 403);
        CHECK(wrong.del("/api/v1/devices/dev1").status == 403);
        // Another session's token does not do either.
        auto mixed = g.admin;
        mixed.csrf = a.admin.csrf;
        CHECK(mixed.post("/api/v1/devices", R"({"id":"no-csrf"})").status == 403);
        CHECK(a.admin.get("/api/v1/devices/no-csrf").status == 404);
        CHECK(g.admin.get("/api/v1/devices/no-csrf").status == 404);
        CHECK(a.admin.get("/api/v1/devices/dev1").status == 200);
        auto by_token = a.api.post("/api/v1/devices", R"({"id":"by-token"})");
        CHECK_MESSAGE(by_token.status == 201, by_token.describe());
        CHECK(http_get(w.http, "/api/v1/devices").status == 401);
    }

    SUBCASE("operator routes are for operators, tenant routes for tenants") {
        for (rest const* who : {&a.admin, &a.api, static_cast<rest const*>(&viewer)}) {
            for (auto res : {who->get("/api/v1/operator/tenants"),
                             who->post("/api/v1/operator/tenants", R"({"id":"evil","name":"evil"})"),
                             who->post("/api/v1/operator/users",
                                       R"({"username":"evil","password":"evil-password","role":"operator_admin"})"),
                             who->get("/api/v1/operator/users"), who->get("/api/v1/operator/devices?tenant=globex"),
                             who->get("/api/v1/operator/audit"), who->get("/api/v1/operator/rejected")}) {
                CHECK_MESSAGE(res.status == 403, res.describe());
            }
        }
        auto tenants = w.op.get("/api/v1/operator/tenants");
        REQUIRE_MESSAGE(tenants.status == 200, tenants.describe());
        CHECK(ids_of(json_of(tenants)) == std::vector<std::string>{"acme", "globex"});
        CHECK(login_raw(w.http, "evil", "evil-password").status == 401);
        // An operator has no tenant: tenant routes are not theirs.
        CHECK(w.op.get("/api/v1/devices").status == 403);
    }

    SUBCASE("an operator's device listing is written to the audit log") {
        auto devices = w.op.get("/api/v1/operator/devices?tenant=acme");
        REQUIRE_MESSAGE(devices.status == 200, devices.describe());
        auto list = json_of(devices);
        CHECK(ids_of(list) == std::vector<std::string>{"dev1", "other"});
        for (auto const& d : list["items"].items()) CHECK(d["tenant"].str() == "acme");
        auto audit = w.op.get("/api/v1/operator/audit");
        REQUIRE_MESSAGE(audit.status == 200, audit.describe());
        const auto entries = json_of(audit);
        bool found = false;
        for (auto const& e : entries["items"].items())
            found = found || (e["actor"].str() == "user:admin" && contains(e["action"].str(), "device") &&
                              contains(e.dump(), "acme"));
        CHECK_MESSAGE(found, "no audit entry for the device listing: " << audit.body);
    }
}

TEST_CASE("REST: repeated failed logins for one user name are throttled") {
    if (is_mosquitto()) return;
    broker_process b{tenancy_options()};
    const auto port = b.http_port();
    auto op = login(port, "admin", admin_password);
    created(op.post("/api/v1/operator/tenants", R"({"id":"acme","name":"acme corp"})"), "create tenant");
    created(op.post("/api/v1/operator/users", "{\"username\":\"acme-admin\",\"password\":" +
                                                  json_quote(user_password) +
                                                  ",\"role\":\"tenant_admin\",\"tenant\":\"acme\"}"),
            "create user");
    // Default: 5 failures in 15 minutes per user name.
    for (int i = 0; i < 5; ++i) {
        auto res = login_raw(port, "acme-admin", "wrong-password-" + std::to_string(i));
        CHECK_MESSAGE(res.status == 401, res.describe());
    }
    for (auto password : {std::string{"wrong-password-x"}, std::string{user_password}}) {
        auto res = login_raw(port, "acme-admin", password);
        CHECK_MESSAGE(res.status == 429, res.describe());
        CHECK(error_code(res) == "too_many_requests");
        auto retry = res.header("Retry-After");
        REQUIRE(retry);
        CHECK(std::stoi(*retry) > 0);
        CHECK(res.header("Set-Cookie") == std::nullopt);
    }
    // Per user name: others still log in, sessions keep working.
    CHECK(login_raw(port, "admin", admin_password).status == 200);
    CHECK(op.get("/api/v1/operator/tenants").status == 200);
}

TEST_CASE("rotating a secret, disabling or deleting a device, revoking a token disconnect its clients") {
    if (is_mosquitto()) return;
    world w;
    auto& b = w.b;
    auto const& a = w.acme;
    auto const& g = w.globex;
    const auto old_secret = a.secret.at("dev1");

    auto dev = connect_ok(b, creds("a-dev1", "acme/dev1", old_secret));
    auto other = connect_ok(b, creds("a-other", "acme/other", a.secret.at("other")));
    auto gdev1 = connect_ok(b, creds("g-dev1", "globex/dev1", g.secret.at("dev1")));  // same id

    auto rotated = a.admin.post("/api/v1/devices/dev1/secret");
    REQUIRE_MESSAGE(rotated.status == 200, rotated.describe());
    const auto fresh = json_of(rotated)["secret"].str();
    CHECK(json_of(rotated)["id"].str() == "dev1");
    REQUIRE(!fresh.empty());
    CHECK(fresh != old_secret);
    expect_dropped(*dev);
    CHECK(is_refusal(connack_reason(b, creds("a-dev1", "acme/dev1", old_secret))));
    auto dev2 = connect_ok(b, creds("a-dev1", "acme/dev1", fresh));
    expect_alive(*other);
    expect_alive(*gdev1);

    auto disabled = a.admin.patch("/api/v1/devices/dev1", R"({"disabled":true})");
    REQUIRE_MESSAGE(disabled.status == 200, disabled.describe());
    CHECK(json_of(disabled)["status"].str() == "disabled");
    expect_dropped(*dev2);
    CHECK(is_refusal(connack_reason(b, creds("a-dev1", "acme/dev1", fresh))));
    auto enabled = a.admin.patch("/api/v1/devices/dev1", R"({"disabled":false})");
    REQUIRE_MESSAGE(enabled.status == 200, enabled.describe());
    auto dev3 = connect_ok(b, creds("a-dev1", "acme/dev1", fresh));

    auto deleted = a.admin.del("/api/v1/devices/dev1");
    CHECK_MESSAGE(deleted.status == 204, deleted.describe());
    expect_dropped(*dev3);
    CHECK(is_refusal(connack_reason(b, creds("a-dev1", "acme/dev1", fresh))));
    CHECK(a.admin.get("/api/v1/devices/dev1").status == 404);
    expect_alive(*other);
    expect_alive(*gdev1);
    CHECK(connack_reason(b, creds("g-dev1-2", "globex/dev1", g.secret.at("dev1"))) == 0);

    auto api = connect_ok(b, creds("a-api", "acme/api", a.token));
    auto gapi = connect_ok(b, creds("g-api", "globex/api", g.token));
    auto revoked = a.admin.del("/api/v1/tokens/" + a.token_id);
    CHECK_MESSAGE(revoked.status == 204, revoked.describe());
    expect_dropped(*api);
    CHECK(is_refusal(connack_reason(b, creds("a-api", "acme/api", a.token))));
    CHECK(a.api.get("/api/v1/devices").status == 401);
    expect_alive(*gapi);
    CHECK(g.api.get("/api/v1/devices").status == 200);
}
