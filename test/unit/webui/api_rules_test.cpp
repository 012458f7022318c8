// The rules-engine resources of webui/api.hpp: rules (+ dry run), alerts and
// silences, and the operator's alert list. In process: a real SQLite state
// database and a real LMDB telemetry store in a temporary directory, the
// real auth layer, requests built by hand and dispatched. The engine is
// stood in for by a small alert_control over the alert repository (the real
// one is tested in test/unit/engine/): it records what the routes tell it.
//
// Two tenants, acme (A) and globex (B): B's ids answer A exactly like
// unknown ones and stay as they were.

#include "webui/api.hpp"
#include "webui/auth.hpp"
#include "webui/router.hpp"

#include "common/json_text.hpp"
#include "common/time.hpp"
#include "engine/alert_control.hpp"
#include "engine/alert_json.hpp"
#include "storage/lmdb_store.hpp"
#include "storage/state/alert_repository.hpp"
#include "storage/state/api_token_repository.hpp"
#include "storage/state/audit_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rule_repository.hpp"
#include "storage/state/silence_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace json = boost::json;
namespace state = pulsegate::storage::state;
namespace storage = pulsegate::storage;
namespace engine = pulsegate::engine;
namespace common = pulsegate::common;
using namespace pulsegate::webui;
using pulsegate::test::temp_dir;

template <class T>
struct doctest::StringMaker<boost::system::result<T, state::state_error>> {
    static doctest::String convert(const boost::system::result<T, state::state_error>& r) {
        return r ? "(a value)" : ("error: " + r.error().message).c_str();
    }
};

namespace {

using verb = http::verb;
constexpr std::string_view password = "correct horse battery";
constexpr std::int64_t t0 = 1'700'000'000'000; // 2023-11-14T22:13:20Z
constexpr std::int64_t hour_ms = 3'600'000;
constexpr std::int64_t day_ms = 24 * hour_ms;

// The engine's side of ack/close, on the repository; and what it was told.
struct test_engine : engine::alert_control {
    state::database* db = nullptr;
    std::mutex m;
    std::vector<std::string> events;
    std::map<std::int64_t, state::alert_record> live_alerts; // what live() answers
    bool stopping = false;

    using result = boost::system::result<state::alert_record>;

    result change(std::string_view tenant, std::int64_t id, std::string_view user, bool close) {
        if (stopping) return make_error_code(engine::alert_errc::unavailable);
        state::alert_repository repo(*db);
        auto got = repo.get(tenant, id);
        REQUIRE(got);
        if (!*got) return make_error_code(engine::alert_errc::not_found);
        auto a = **got;
        if (a.status == state::alert_status::closed) return make_error_code(engine::alert_errc::already_closed);
        if (close) {
            a.status = state::alert_status::closed;
            a.closed_at_ms = a.opened_at_ms + 600'000;
            a.closed_by = std::string(user);
        } else {
            if (a.status == state::alert_status::acknowledged)
                return make_error_code(engine::alert_errc::already_acknowledged);
            a.status = state::alert_status::acknowledged;
            a.acknowledged_at_ms = a.opened_at_ms + 60'000;
            a.acknowledged_by = std::string(user);
        }
        REQUIRE(repo.upsert(std::span<const state::alert_record>(&a, 1)));
        add((close ? "close " : "ack ") + std::to_string(id) + " by " + std::string(user));
        return a;
    }

    result acknowledge(std::string_view tenant, std::int64_t id, std::string_view user) override {
        return change(tenant, id, user, false);
    }
    result close(std::string_view tenant, std::int64_t id, std::string_view user) override {
        return change(tenant, id, user, true);
    }
    result live(std::string_view tenant, std::int64_t id) override {
        std::lock_guard l(m);
        const auto it = live_alerts.find(id);
        if (it == live_alerts.end() || it->second.tenant != tenant) return make_error_code(engine::alert_errc::not_found);
        return it->second;
    }
    void rules_changed(std::string_view tenant) override { add("rules " + std::string(tenant)); }
    void silences_changed(std::string_view tenant) override { add("silences " + std::string(tenant)); }
    void devices_changed(std::string_view tenant) override { add("devices " + std::string(tenant)); }

    void add(std::string e) {
        std::lock_guard l(m);
        events.push_back(std::move(e));
    }
    std::vector<std::string> take() {
        std::lock_guard l(m);
        return std::exchange(events, {});
    }
};

struct credentials {
    std::string token;
    std::string cookie;
    std::string csrf;
};

json::value body_of(const response& r) { return json::parse(r.body); }
// A value as a client reads it back (whole doubles come back as integers).
json::value as_sent(const json::value& v) { return json::parse(common::to_json_text(v)); }
std::string error_code_of(const response& r) { return std::string(body_of(r).at("error").at("code").as_string()); }
std::string error_field_of(const response& r) {
    const auto b = body_of(r);
    const auto& e = b.at("error").as_object();
    return e.contains("field") ? std::string(e.at("field").as_string()) : std::string();
}
std::string str(const json::value& v) { return std::string(v.as_string()); }

state::alert_record make_alert(std::int64_t id, std::string tenant, std::string device, std::int64_t rule,
                               state::severity sev, state::alert_status status, std::int64_t opened_at,
                               state::alert_kind kind = state::alert_kind::threshold) {
    state::alert_record a;
    a.id = id;
    a.tenant = std::move(tenant);
    a.device = std::move(device);
    a.rule = rule;
    a.rule_name = "rule " + std::to_string(rule);
    a.kind = kind;
    a.sev = sev;
    a.status = status;
    if (kind == state::alert_kind::threshold) {
        a.metric = "temp";
        a.value = 31.5;
        a.threshold = 30;
        a.last_value = 32;
    }
    a.message = "temp above 30";
    a.opened_at_ms = opened_at;
    a.last_seen_at_ms = opened_at + 1000;
    if (status == state::alert_status::closed) a.closed_at_ms = opened_at + 5000;
    return a;
}

struct fixture {
    temp_dir dir;
    std::unique_ptr<state::database> db;
    engine::server_key key{};
    std::unique_ptr<storage::lmdb_store> store;
    test_engine eng;
    std::unique_ptr<auth> a;
    router r;
    credentials a_admin, b_admin, op_reader;

    fixture() {
        auto opened = state::database::open({.file = dir.path / "state.db"});
        REQUIRE_MESSAGE(opened.has_value(), (opened ? "" : opened.error().message));
        db = std::move(*opened);
        eng.db = db.get();
        for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>(i * 7 + 1);

        storage::lmdb_options o;
        o.dir = dir.path / "telemetry";
        o.initial_map_size = 4u << 20;
        o.points_per_series = 1000;
        o.minute_slots = 200;
        o.hour_slots = 50;
        store = std::make_unique<storage::lmdb_store>(o);
        store->start();

        state::tenant_repository tenants(*db);
        REQUIRE(tenants.create({"acme", "Acme", 1000, false}));
        REQUIRE(tenants.create({"globex", "Globex", 1000, false}));

        a = std::make_unique<auth>(*db, key);
        a->add_routes(r);
        api_services s{db.get(), store.get(), &key, nullptr};
        s.alerts = &eng;
        add_operator_routes(r, *a, s);
        add_rule_routes(r, *a, s);
        add_alert_routes(r, *a, s);
        add_silence_routes(r, *a, s);

        a_admin.token = make_token("acme", "ops robot");
        b_admin.token = make_token("globex", "globex robot");
        op_reader.token = make_token(std::nullopt, "operator robot");
    }

    std::string make_token(std::optional<std::string> tenant, std::string name) {
        const auto parts = engine::generate_api_token();
        REQUIRE(state::api_token_repository(*db).create({std::move(tenant), parts.public_id, std::move(name),
                                                         engine::credential_digest(key, parts.text()), std::nullopt,
                                                         std::nullopt, 1000}));
        return parts.text();
    }

    static response dispatch(const router& to, verb method, const std::string& target, const credentials& who,
                             const std::string& body) {
        http::fields headers;
        if (!who.token.empty()) headers.set(http::field::authorization, "Bearer " + who.token);
        if (!who.cookie.empty()) headers.set(http::field::cookie, "pulsegate_session=" + who.cookie);
        if (!who.csrf.empty()) headers.set("X-CSRF-Token", who.csrf);
        if (!body.empty()) headers.set(http::field::content_type, "application/json");
        request_context ctx;
        ctx.method = method;
        ctx.target = target;
        const auto q = target.find('?');
        ctx.path = std::string_view(target).substr(0, q);
        if (q != std::string::npos) {
            std::string_view rest = std::string_view(target).substr(q + 1);
            while (!rest.empty()) {
                const auto amp = rest.find('&');
                const auto pair = rest.substr(0, amp);
                const auto eq = pair.find('=');
                ctx.query.emplace_back(percent_decode(pair.substr(0, eq)).value(),
                                       eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1)).value());
                rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
            }
        }
        ctx.headers = &headers;
        ctx.body = body;
        ctx.remote = {boost::asio::ip::make_address("192.0.2.20"), 40000};
        return to.dispatch(ctx);
    }

    response send(verb method, const std::string& target, const credentials& who, const std::string& body = {}) {
        return dispatch(r, method, target, who, body);
    }
    response send(verb method, const std::string& target, const credentials& who, const json::object& body) {
        return send(method, target, who, json::serialize(body));
    }

    credentials viewer() {
        REQUIRE(state::user_repository(*db).create(
            {"acme", "victor", state::user_role::tenant_viewer, engine::hash_password(password), 1000}));
        auto res = send(verb::post, "/api/v1/auth/login", {}, json::object{{"username", "victor"}, {"password", password}});
        REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
        const auto set = std::string(res.header("Set-Cookie"));
        const std::string prefix = "pulsegate_session=";
        REQUIRE(set.rfind(prefix, 0) == 0);
        credentials c;
        c.cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
        c.csrf = str(body_of(res).at("csrf_token"));
        return c;
    }

    void device(const std::string& tenant, const std::string& id, state::device_labels labels = {}) {
        REQUIRE(state::device_repository(*db).create({tenant, id, "", std::move(labels), "digest-" + id, 1000}));
    }

    void append(std::string_view tenant, std::string_view device, std::int64_t ts, std::string_view metric,
                double value) {
        const storage::metric_value mv[] = {{metric, value}};
        REQUIRE(store->append(storage::reading{tenant, device, ts, mv}, nullptr) == storage::append_result::queued);
    }

    void upsert(const std::vector<state::alert_record>& alerts) { REQUIRE(state::alert_repository(*db).upsert(alerts)); }

    // A rule made through the API; returns its id.
    std::int64_t create_rule(const credentials& who, json::object def) {
        auto res = send(verb::post, "/api/v1/rules", who, def);
        REQUIRE_MESSAGE(res.status == http::status::created, res.body);
        return body_of(res).at("id").as_int64();
    }
};

json::object threshold_rule(std::string name = "hot") {
    return json::object{{"name", name}, {"kind", "threshold"}, {"metric", "temp"}, {"op", ">"},
                        {"value", 30},  {"severity", "major"}};
}

// Every item of a list route, following next_cursor with `limit` per page.
std::vector<json::object> walk(fixture& f, const std::string& path, const credentials& who, int limit,
                               int* pages = nullptr) {
    std::vector<json::object> out;
    std::string cursor;
    int n = 0;
    for (;;) {
        REQUIRE(n < 100);
        std::string target = path + (path.find('?') == std::string::npos ? "?" : "&") + "limit=" + std::to_string(limit);
        if (!cursor.empty()) target += "&cursor=" + cursor;
        auto res = f.send(verb::get, target, who);
        REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
        const auto b = body_of(res);
        const auto& items = b.at("items").as_array();
        CHECK(items.size() <= static_cast<std::size_t>(limit));
        for (const auto& i : items) out.push_back(i.as_object());
        ++n;
        if (b.at("next_cursor").is_null()) break;
        cursor = str(b.at("next_cursor"));
    }
    if (pages != nullptr) *pages = n;
    return out;
}

std::vector<std::int64_t> ids_of(const std::vector<json::object>& items) {
    std::vector<std::int64_t> out;
    for (const auto& i : items) out.push_back(i.at("id").as_int64());
    return out;
}

// The same answer but for the id it names.
void check_same_404(const response& theirs, const response& unknown, const std::string& their_id,
                    const std::string& unknown_id) {
    CHECK(theirs.status == http::status::not_found);
    CHECK(unknown.status == http::status::not_found);
    auto expected = unknown.body;
    for (auto at = expected.find(unknown_id); at != std::string::npos; at = expected.find(unknown_id, at + 1))
        expected.replace(at, unknown_id.size(), their_id);
    CHECK(theirs.body == expected);
    CHECK(theirs.body.find("globex") == std::string::npos);
}

} // namespace

// ---- rules --------------------------------------------------------------------

TEST_CASE("rules: create, get, list, replace and delete; the engine hears of every write") {
    fixture f;
    auto def = threshold_rule();
    def["description"] = "boiler too hot";
    def["for_s"] = 60;
    def["clear_value"] = 28.5;
    def["scope"] = json::object{{"labels", json::object{{"site", "plant-7"}}}};
    def["escalate_after_s"] = 900;
    auto res = f.send(verb::post, "/api/v1/rules", f.a_admin, def);
    REQUIRE_MESSAGE(res.status == http::status::created, res.body);
    const auto b = body_of(res).as_object();
    const auto id = b.at("id").as_int64();
    CHECK(res.header("Location") == "/api/v1/rules/" + std::to_string(id));
    CHECK(str(b.at("name")) == "hot");
    CHECK(str(b.at("description")) == "boiler too hot");
    CHECK(str(b.at("kind")) == "threshold");
    CHECK(str(b.at("metric")) == "temp");
    CHECK(str(b.at("op")) == ">");
    CHECK(b.at("value").to_number<double>() == 30);
    CHECK(b.at("for_s").as_int64() == 60);
    CHECK(b.at("clear_value").as_double() == 28.5);
    CHECK(b.at("interval_s").is_null());
    CHECK(b.at("missed").is_null());
    CHECK(str(b.at("severity")) == "major");
    CHECK(b.at("scope") == json::parse(R"({"labels": {"site": "plant-7"}})"));
    CHECK(b.at("enabled").as_bool());
    CHECK(b.at("escalate_after_s").as_int64() == 900);
    CHECK(str(b.at("created_at")).ends_with("Z"));
    CHECK(f.eng.take() == std::vector<std::string>{"rules acme"});

    // Stored as given.
    const auto stored = state::rule_repository(*f.db).get("acme", id).value().value();
    CHECK(stored.scope.labels == state::label_map{{"site", "plant-7"}});
    CHECK(stored.clear_value == std::optional<double>(28.5));
    CHECK(stored.op == state::compare_op::gt);

    auto got = f.send(verb::get, "/api/v1/rules/" + std::to_string(id), f.a_admin);
    REQUIRE(got.status == http::status::ok);
    CHECK(body_of(got) == json::value(b));

    // PUT replaces the whole definition: a heartbeat rule now, defaults back.
    const auto heartbeat = json::object{{"name", "silent"}, {"kind", "heartbeat"}, {"interval_s", 60},
                                        {"severity", "critical"}, {"enabled", false},
                                        {"scope", json::object{{"device", "dev-1"}}}};
    auto put = f.send(verb::put, "/api/v1/rules/" + std::to_string(id), f.a_admin, heartbeat);
    REQUIRE_MESSAGE(put.status == http::status::ok, put.body);
    const auto p = body_of(put).as_object();
    CHECK(p.at("id").as_int64() == id);
    CHECK(str(p.at("kind")) == "heartbeat");
    CHECK(p.at("interval_s").as_int64() == 60);
    CHECK(p.at("missed").as_int64() == 1);
    CHECK(p.at("metric").is_null());
    CHECK(p.at("op").is_null());
    CHECK(p.at("clear_value").is_null());
    CHECK(str(p.at("description")).empty());
    CHECK(p.at("escalate_after_s").is_null());
    CHECK_FALSE(p.at("enabled").as_bool());
    CHECK(p.at("scope") == json::parse(R"({"device": "dev-1"})"));
    CHECK(p.at("created_at") == b.at("created_at"));
    CHECK(f.eng.take() == std::vector<std::string>{"rules acme"});
    CHECK(body_of(f.send(verb::get, "/api/v1/rules/" + std::to_string(id), f.a_admin)) == json::value(p));

    auto removed = f.send(verb::delete_, "/api/v1/rules/" + std::to_string(id), f.a_admin);
    CHECK(removed.status == http::status::no_content);
    CHECK(removed.body.empty());
    CHECK(f.eng.take() == std::vector<std::string>{"rules acme"});
    CHECK(f.send(verb::get, "/api/v1/rules/" + std::to_string(id), f.a_admin).status == http::status::not_found);
    CHECK(f.send(verb::delete_, "/api/v1/rules/" + std::to_string(id), f.a_admin).status == http::status::not_found);
    CHECK(f.send(verb::put, "/api/v1/rules/" + std::to_string(id), f.a_admin, heartbeat).status ==
          http::status::not_found);
    CHECK(f.eng.take().empty());
}

TEST_CASE("rules: pagination walks every rule once") {
    fixture f;
    std::vector<std::int64_t> made;
    for (int i = 0; i < 7; ++i) made.push_back(f.create_rule(f.a_admin, threshold_rule("r" + std::to_string(i))));
    f.create_rule(f.b_admin, threshold_rule("theirs"));
    int pages = 0;
    const auto all = walk(f, "/api/v1/rules", f.a_admin, 3, &pages);
    CHECK(ids_of(all) == made);
    CHECK(pages == 3);
    CHECK(f.send(verb::get, "/api/v1/rules?cursor=zz", f.a_admin).status == http::status::bad_request);
}

TEST_CASE("rules: every invalid field answers 400 naming it, and nothing is written") {
    fixture f;
    struct bad {
        std::string body;
        std::string field;
    };
    const std::string t = R"("kind": "threshold", "metric": "temp", "op": ">", "value": 30, "severity": "major")";
    const std::string h = R"("kind": "heartbeat", "interval_s": 60, "severity": "major")";
    const std::vector<bad> cases{
        {"[]", "body"},
        {"{" + t + "}", "name"},
        {R"({"name": "", )" + t + "}", "name"},
        {R"({"name": ")" + std::string(129, 'x') + R"(", )" + t + "}", "name"},
        {R"({"name": 5, )" + t + "}", "name"},
        {R"({"name": "n", "description": 5, )" + t + "}", "description"},
        {R"({"name": "n", "kind": "sometimes", "severity": "major"})", "kind"},
        {R"({"name": "n", "severity": "major"})", "kind"},
        {R"({"name": "n", "kind": "threshold", "op": ">", "value": 30, "severity": "major"})", "metric"},
        {R"({"name": "n", "kind": "threshold", "metric": "", "op": ">", "value": 30, "severity": "major"})", "metric"},
        {R"({"name": "n", "kind": "threshold", "metric": "a/b", "op": ">", "value": 30, "severity": "major"})",
         "metric"},
        {R"({"name": "n", "kind": "threshold", "metric": "a+", "op": ">", "value": 30, "severity": "major"})",
         "metric"},
        {R"({"name": "n", "kind": "threshold", "metric": "#", "op": ">", "value": 30, "severity": "major"})", "metric"},
        {R"({"name": "n", "kind": "threshold", "metric": ")" + std::string(256, 'm') +
             R"(", "op": ">", "value": 30, "severity": "major"})",
         "metric"},
        {R"({"name": "n", "kind": "threshold", "metric": "temp", "value": 30, "severity": "major"})", "op"},
        {R"({"name": "n", "kind": "threshold", "metric": "temp", "op": "=>", "value": 30, "severity": "major"})", "op"},
        {R"({"name": "n", "kind": "threshold", "metric": "temp", "op": ">", "severity": "major"})", "value"},
        {R"({"name": "n", "kind": "threshold", "metric": "temp", "op": ">", "value": "30", "severity": "major"})",
         "value"},
        {R"({"name": "n", )" + t + R"(, "for_s": -1})", "for_s"},
        {R"({"name": "n", )" + t + R"(, "for_s": 604801})", "for_s"},
        {R"({"name": "n", )" + t + R"(, "for_s": 1.5})", "for_s"},
        {R"({"name": "n", )" + t + R"(, "clear_value": 31})", "clear_value"},
        {R"({"name": "n", "kind": "threshold", "metric": "temp", "op": "<", "value": 5, "clear_value": 4,
             "severity": "major"})",
         "clear_value"},
        {R"({"name": "n", "kind": "threshold", "metric": "temp", "op": "==", "value": 5, "clear_value": 5,
             "severity": "major"})",
         "clear_value"},
        {R"({"name": "n", "kind": "threshold", "metric": "temp", "op": "!=", "value": 5, "clear_value": 4,
             "severity": "major"})",
         "clear_value"},
        {R"({"name": "n", "kind": "heartbeat", "severity": "major"})", "interval_s"},
        {R"({"name": "n", "kind": "heartbeat", "interval_s": 0, "severity": "major"})", "interval_s"},
        {R"({"name": "n", "kind": "heartbeat", "interval_s": 2592001, "severity": "major"})", "interval_s"},
        {R"({"name": "n", )" + h + R"(, "missed": 0})", "missed"},
        {R"({"name": "n", )" + h + R"(, "missed": 1001})", "missed"},
        {R"({"name": "n", "kind": "heartbeat", "interval_s": 60})", "severity"},
        {R"({"name": "n", "kind": "heartbeat", "interval_s": 60, "severity": "panic"})", "severity"},
        {R"({"name": "n", )" + t + R"(, "scope": []})", "scope"},
        {R"({"name": "n", )" + t + R"(, "scope": {"device": "d", "labels": {"a": "b"}}})", "scope"},
        {R"({"name": "n", )" + t + R"(, "scope": {"device": "Not Valid"}})", "scope.device"},
        {R"({"name": "n", )" + t + R"(, "scope": {"labels": {"Bad Key": "v"}}})", "scope.labels"},
        {R"({"name": "n", )" + t + R"(, "scope": {"labels": {"k": 1}}})", "scope.labels.k"},
        {R"({"name": "n", )" + t + R"(, "enabled": "yes"})", "enabled"},
        {R"({"name": "n", )" + t + R"(, "escalate_after_s": 0})", "escalate_after_s"},
        {R"({"name": "n", )" + t + R"(, "escalate_after_s": 2592001})", "escalate_after_s"},
    };
    const auto id = f.create_rule(f.a_admin, threshold_rule());
    const auto before = state::rule_repository(*f.db).get("acme", id).value().value();
    f.eng.take();
    for (const auto& c : cases) {
        CAPTURE(c.body);
        for (auto [m, target] : {std::pair{verb::post, std::string("/api/v1/rules")},
                                 std::pair{verb::put, "/api/v1/rules/" + std::to_string(id)}}) {
            auto res = f.send(m, target, f.a_admin, c.body);
            CHECK(res.status == http::status::bad_request);
            CHECK(error_code_of(res) == "invalid_argument");
            CHECK(error_field_of(res) == c.field);
        }
        // The dry run validates the same, under "rule.".
        auto test = f.send(verb::post, "/api/v1/rules/test", f.a_admin, R"({"rule": )" + c.body + "}");
        CHECK(test.status == http::status::bad_request);
        CHECK(error_field_of(test) == (c.field == "body" ? "rule" : "rule." + c.field));
    }
    CHECK(state::rule_repository(*f.db).list("acme").value().items.size() == 1);
    CHECK(state::rule_repository(*f.db).get("acme", id).value().value() == before);
    CHECK(f.eng.take().empty());

    // Edges that are fine: the limits themselves, clear_value on the clearing side or equal, unknown members.
    auto ok = threshold_rule(std::string(128, 'n'));
    ok["metric"] = std::string(255, 'm');
    ok["op"] = "<=";
    ok["value"] = -5.5;
    ok["clear_value"] = -5.5;
    ok["for_s"] = 604800.0;
    ok["escalate_after_s"] = 2592000;
    ok["whatever"] = "ignored";
    ok["interval_s"] = "ignored for a threshold rule";
    CHECK(f.send(verb::post, "/api/v1/rules", f.a_admin, ok).status == http::status::created);
    // Path ids.
    CHECK(error_field_of(f.send(verb::get, "/api/v1/rules/abc", f.a_admin)) == "id");
    CHECK(error_field_of(f.send(verb::get, "/api/v1/rules/0", f.a_admin)) == "id");
    CHECK(error_field_of(f.send(verb::delete_, "/api/v1/rules/-3", f.a_admin)) == "id");
}

TEST_CASE("rules: another tenant's rule answers 404 like an unknown one and stays unchanged") {
    fixture f;
    const auto theirs = f.create_rule(f.b_admin, threshold_rule("b's"));
    const auto before = state::rule_repository(*f.db).get("globex", theirs).value().value();
    const auto unknown = theirs + 1000;
    f.eng.take();
    const std::vector<std::pair<verb, std::string>> probes{
        {verb::get, ""}, {verb::put, json::serialize(threshold_rule("stolen"))}, {verb::delete_, ""}};
    for (const auto& [m, body] : probes) {
        CAPTURE(http::to_string(m));
        check_same_404(f.send(m, "/api/v1/rules/" + std::to_string(theirs), f.a_admin, body),
                       f.send(m, "/api/v1/rules/" + std::to_string(unknown), f.a_admin, body),
                       std::to_string(theirs), std::to_string(unknown));
    }
    CHECK(state::rule_repository(*f.db).get("globex", theirs).value().value() == before);
    CHECK(f.eng.take().empty());
    CHECK(body_of(f.send(verb::get, "/api/v1/rules", f.a_admin)).at("items").as_array().empty());
}

TEST_CASE("rules, alerts, silences: a viewer reads but cannot write (403)") {
    fixture f;
    const auto rule = f.create_rule(f.a_admin, threshold_rule());
    f.upsert({make_alert(1, "acme", "dev-1", rule, state::severity::major, state::alert_status::open, t0)});
    const auto viewer = f.viewer();
    for (const auto* path : {"/api/v1/rules", "/api/v1/alerts", "/api/v1/alerts/1", "/api/v1/alerts/stats",
                             "/api/v1/silences"}) {
        CAPTURE(path);
        CHECK(f.send(verb::get, path, viewer).status == http::status::ok);
    }
    CHECK(f.send(verb::get, "/api/v1/rules/" + std::to_string(rule), viewer).status == http::status::ok);
    f.eng.take();
    const auto r = "/api/v1/rules/" + std::to_string(rule);
    const std::vector<std::pair<verb, std::string>> writes{
        {verb::post, "/api/v1/rules"},       {verb::put, r},
        {verb::delete_, r},                  {verb::post, "/api/v1/rules/test"},
        {verb::post, "/api/v1/alerts/1/ack"}, {verb::post, "/api/v1/alerts/1/close"},
        {verb::post, "/api/v1/silences"},    {verb::delete_, "/api/v1/silences/1"},
    };
    const auto body = json::serialize(json::object{{"rule", threshold_rule()},
                                                   {"matchers", json::object{}},
                                                   {"duration_s", 60},
                                                   {"name", "x"},
                                                   {"kind", "threshold"},
                                                   {"metric", "temp"},
                                                   {"op", ">"},
                                                   {"value", 1},
                                                   {"severity", "info"}});
    for (const auto& [m, path] : writes) {
        CAPTURE(path);
        auto res = f.send(m, path, viewer, body);
        CHECK(res.status == http::status::forbidden);
        CHECK(error_code_of(res) == "forbidden");
    }
    CHECK(f.eng.take().empty());
    CHECK(state::rule_repository(*f.db).list("acme").value().items.size() == 1);
    CHECK(state::silence_repository(*f.db).list("acme").value().items.empty());
    CHECK(state::alert_repository(*f.db).get("acme", 1).value()->status == state::alert_status::open);
    // An operator is no tenant user.
    CHECK(f.send(verb::get, "/api/v1/rules", f.op_reader).status == http::status::forbidden);
    CHECK(f.send(verb::get, "/api/v1/alerts", f.op_reader).status == http::status::forbidden);
    CHECK(f.send(verb::get, "/api/v1/silences", {}).status == http::status::unauthorized);
}

// ---- dry run ------------------------------------------------------------------

TEST_CASE("rules/test: a threshold rule with for_s and clear_value opens and closes at the exact times") {
    fixture f;
    f.device("acme", "dev-1", {{"site", "a"}});
    f.device("acme", "dev-2", {{"site", "a"}});
    f.device("acme", "dev-3", {{"site", "b"}});
    f.device("globex", "dev-1", {{"site", "a"}});
    constexpr std::int64_t s = 1000;
    // temp > 30 for 10 s, clearing at 28:
    //   +5 s 31 breaches (pending), +20 s opens at +15 s (the timer), +25 s 29 is not clear yet, +30 s 27 closes;
    //   +40 s 35 breaches, +45 s 20 is back before 10 s: nothing; +60 s 40 breaches and is still
    //   pending at the end: opens at +70 s, open.
    const std::vector<std::pair<std::int64_t, double>> points{{0, 25},       {5 * s, 31},  {10 * s, 32},
                                                              {20 * s, 33},  {25 * s, 29}, {30 * s, 27},
                                                              {40 * s, 35},  {45 * s, 20}, {60 * s, 40}};
    for (const auto& [dt, v] : points) f.append("acme", "dev-1", t0 + dt, "temp", v);
    f.append("acme", "dev-3", t0, "temp", 99); // out of the scope
    f.append("globex", "dev-1", t0, "temp", 99);
    f.store->flush();

    auto rule = threshold_rule();
    rule["for_s"] = 10;
    rule["clear_value"] = 28;
    rule["scope"] = json::object{{"labels", json::object{{"site", "a"}}}};
    auto res = f.send(verb::post, "/api/v1/rules/test", f.a_admin,
                      json::object{{"rule", rule}, {"from", t0 - s}, {"to", common::rfc3339(t0 + 100 * s)}});
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    const auto b = body_of(res);
    CHECK(str(b.at("from")) == common::rfc3339(t0 - s));
    CHECK(str(b.at("to")) == common::rfc3339(t0 + 100 * s));
    CHECK(b.at("devices_evaluated").as_int64() == 2);
    CHECK_FALSE(b.at("truncated").as_bool());
    const auto& items = b.at("items").as_array();
    REQUIRE(items.size() == 2);
    CHECK(str(items[0].at("device")) == "dev-1");
    CHECK(items[0].at("samples").as_int64() == 9);
    CHECK(str(items[0].at("source")) == "raw");
    CHECK(items[0].at("alerts") == json::parse(R"([
        {"opened_at": ")" + common::rfc3339(t0 + 15 * s) + R"(", "closed_at": ")" + common::rfc3339(t0 + 30 * s) +
                                                 R"(", "value": 31, "close_value": 27, "count": 3},
        {"opened_at": ")" + common::rfc3339(t0 + 70 * s) + R"(", "closed_at": null, "value": 40,
         "close_value": null, "count": 1}])"));
    CHECK(str(items[1].at("device")) == "dev-2");
    CHECK(items[1].at("alerts").as_array().empty());

    // The window cuts the readings: from +35 s only the second episode is seen.
    auto later = f.send(verb::post, "/api/v1/rules/test", f.a_admin,
                        json::object{{"rule", rule}, {"from", t0 + 35 * s}, {"to", t0 + 65 * s}});
    REQUIRE(later.status == http::status::ok);
    CHECK(body_of(later).at("items").at(0).at("samples").as_int64() == 3);
    CHECK(body_of(later).at("items").at(0).at("alerts").as_array().empty()); // +70 s is after `to`

    // Nothing was saved and nobody was told.
    CHECK(state::rule_repository(*f.db).list("acme").value().items.empty());
    CHECK(state::alert_repository(*f.db).list("acme", {}).value().items.empty());
    CHECK(f.eng.take().empty());

    // One device by scope; an unregistered one is not evaluated.
    rule["scope"] = json::object{{"device", "dev-3"}};
    auto one = f.send(verb::post, "/api/v1/rules/test", f.a_admin,
                      json::object{{"rule", rule}, {"from", t0 - s}, {"to", t0 + 100 * s}});
    REQUIRE(one.status == http::status::ok);
    CHECK(body_of(one).at("devices_evaluated").as_int64() == 1);
    CHECK(str(body_of(one).at("items").at(0).at("alerts").at(0).at("opened_at")) == common::rfc3339(t0 + 10 * s));
    rule["scope"] = json::object{{"device", "nobody"}};
    CHECK(body_of(f.send(verb::post, "/api/v1/rules/test", f.a_admin,
                         json::object{{"rule", rule}, {"from", t0}, {"to", t0 + s}}))
              .at("devices_evaluated")
              .as_int64() == 0);
}

TEST_CASE("rules/test: a heartbeat rule sees every series of the device, merged") {
    fixture f;
    f.device("acme", "dev-1");
    constexpr std::int64_t s = 1000;
    f.append("acme", "dev-1", t0, "temp", 1);
    f.append("acme", "dev-1", t0 + 10 * s, "hum", 50);
    f.append("acme", "dev-1", t0 + 60 * s, "temp", 2);
    f.store->flush();
    // Silent for 20 s (10 s x 2) opens NO_HEARTBEAT: +10 s .. +60 s and +60 s .. the end (+100 s).
    const auto rule = json::object{{"name", "alive"}, {"kind", "heartbeat"}, {"interval_s", 10}, {"missed", 2},
                                   {"severity", "critical"}};
    auto res = f.send(verb::post, "/api/v1/rules/test", f.a_admin,
                      json::object{{"rule", rule}, {"from", t0 - s}, {"to", t0 + 100 * s}});
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    const auto item = body_of(res).at("items").at(0);
    CHECK(item.at("samples").as_int64() == 3);
    const auto& alerts = item.at("alerts").as_array();
    REQUIRE(alerts.size() == 2);
    CHECK(str(alerts[0].at("opened_at")) == common::rfc3339(t0 + 30 * s));
    CHECK(str(alerts[0].at("closed_at")) == common::rfc3339(t0 + 60 * s));
    CHECK(str(alerts[1].at("opened_at")) == common::rfc3339(t0 + 80 * s));
    CHECK(alerts[1].at("closed_at").is_null());
}

TEST_CASE("rules/test: the window is checked and at most 200 devices are evaluated") {
    fixture f;
    const auto rule = threshold_rule();
    const std::vector<std::pair<json::object, std::string>> bad{
        {json::object{{"from", t0}}, "rule"},
        {json::object{{"rule", "hot"}}, "rule"},
        {json::object{{"rule", rule}, {"from", t0 + 1}, {"to", t0}}, "from"},
        {json::object{{"rule", rule}, {"from", t0}, {"to", t0 + 31 * day_ms + 1}}, "from"},
        {json::object{{"rule", rule}, {"from", "yesterday"}}, "from"},
        {json::object{{"rule", rule}, {"to", -5}}, "to"},
        {json::object{{"rule", rule}, {"to", true}}, "to"},
    };
    for (const auto& [body, field] : bad) {
        CAPTURE(json::serialize(body));
        auto res = f.send(verb::post, "/api/v1/rules/test", f.a_admin, body);
        CHECK(res.status == http::status::bad_request);
        CHECK(error_field_of(res) == field);
    }
    CHECK(f.send(verb::post, "/api/v1/rules/test", f.a_admin,
                 json::object{{"rule", rule}, {"from", t0}, {"to", t0 + 31 * day_ms}})
              .status == http::status::ok);

    for (int i = 0; i < 201; ++i) f.device("acme", "d" + std::to_string(1000 + i));
    auto res = f.send(verb::post, "/api/v1/rules/test", f.a_admin,
                      json::object{{"rule", rule}, {"from", t0}, {"to", t0 + 1000}});
    REQUIRE(res.status == http::status::ok);
    CHECK(body_of(res).at("devices_evaluated").as_int64() == 200);
    CHECK(body_of(res).at("truncated").as_bool());
    CHECK(body_of(res).at("items").as_array().size() == 200);
}

// ---- alerts -------------------------------------------------------------------

TEST_CASE("alerts: the list filters and pages, newest first; bad filters name the parameter") {
    fixture f;
    using st = state::alert_status;
    using sv = state::severity;
    std::vector<state::alert_record> alerts;
    // ids 1..12: rule i, device dev-(i % 3), severities, kinds and states cycling, one opened per hour.
    for (std::int64_t i = 1; i <= 12; ++i) {
        const auto kind = i % 4 == 0 ? state::alert_kind::no_heartbeat : state::alert_kind::threshold;
        alerts.push_back(make_alert(i, "acme", "dev-" + std::to_string(i % 3), i,
                                    i % 2 == 0 ? sv::critical : sv::warning,
                                    i % 3 == 0 ? st::closed : (i % 3 == 1 ? st::open : st::acknowledged),
                                    t0 + i * hour_ms, kind));
    }
    alerts.push_back(make_alert(13, "globex", "dev-1", 1, sv::critical, st::open, t0));
    f.upsert(alerts);

    int pages = 0;
    const auto all = walk(f, "/api/v1/alerts", f.a_admin, 5, &pages);
    CHECK(ids_of(all) == std::vector<std::int64_t>{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
    CHECK(pages == 3);
    // The shape (engine/alert_json.hpp).
    CHECK(json::value(all.back()) == as_sent(engine::alert_json(alerts[0])));
    const auto& one = all.back();
    CHECK(str(one.at("kind")) == "THRESHOLD");
    CHECK(str(one.at("status")) == "open");
    CHECK(str(one.at("opened_at")) == common::rfc3339(t0 + hour_ms));
    CHECK(one.at("close_reason").is_null());
    CHECK(one.at("acknowledged_at").is_null());

    const std::vector<std::pair<std::string, std::vector<std::int64_t>>> filters{
        {"status=open", {10, 7, 4, 1}},
        {"status=closed", {12, 9, 6, 3}},
        {"severity=critical", {12, 10, 8, 6, 4, 2}},
        {"device=dev-1", {10, 7, 4, 1}},
        {"kind=NO_HEARTBEAT", {12, 8, 4}},
        {"rule=4", {4}},
        {"from=" + std::to_string(t0 + 10 * hour_ms), {12, 11, 10}},
        {"to=" + std::to_string(t0 + 3 * hour_ms), {2, 1}},
        {"from=" + std::to_string(t0 + 3 * hour_ms) + "&to=" + std::to_string(t0 + 5 * hour_ms), {4, 3}},
        {"status=open&severity=critical&kind=NO_HEARTBEAT", {4}},
        {"device=dev-9", {}},
    };
    for (const auto& [q, expected] : filters) {
        CAPTURE(q);
        CHECK(ids_of(walk(f, "/api/v1/alerts?" + q, f.a_admin, 2)) == expected);
    }
    const std::vector<std::pair<std::string, std::string>> bad{
        {"status=opened", "status"},   {"severity=high", "severity"}, {"device=Dev%201", "device"},
        {"kind=threshold", "kind"},    {"rule=0", "rule"},            {"rule=x", "rule"},
        {"from=-1", "from"},           {"to=soon", "to"},             {"from=5&to=5", "from"},
        {"limit=0", "limit"},          {"cursor=zz", "cursor"},
    };
    for (const auto& [q, field] : bad) {
        CAPTURE(q);
        auto res = f.send(verb::get, "/api/v1/alerts?" + q, f.a_admin);
        CHECK(res.status == http::status::bad_request);
        CHECK(error_field_of(res) == field);
    }
}

TEST_CASE("alerts: get reads the engine first for a non-closed alert, then the database; others' ids are 404") {
    fixture f;
    auto open = make_alert(5, "acme", "dev-1", 1, state::severity::major, state::alert_status::open, t0);
    auto closed = make_alert(6, "acme", "dev-1", 1, state::severity::major, state::alert_status::closed, t0);
    closed.closed_by = "alice";
    f.upsert({open, closed, make_alert(7, "globex", "dev-1", 1, state::severity::major, state::alert_status::open, t0)});

    auto got = f.send(verb::get, "/api/v1/alerts/5", f.a_admin);
    REQUIRE(got.status == http::status::ok);
    CHECK(body_of(got) == as_sent(engine::alert_json(open)));
    // The engine holds a fresher count and last value.
    auto fresh = open;
    fresh.count = 42;
    fresh.last_value = 35.25;
    f.eng.live_alerts[5] = fresh;
    auto live = f.send(verb::get, "/api/v1/alerts/5", f.a_admin);
    CHECK(body_of(live).at("count").as_int64() == 42);
    CHECK(body_of(live).at("last_value").as_double() == 35.25);

    const auto c = body_of(f.send(verb::get, "/api/v1/alerts/6", f.a_admin));
    CHECK(str(c.at("status")) == "closed");
    CHECK(str(c.at("close_reason")) == "manual");
    CHECK(str(c.at("closed_by")) == "alice");

    check_same_404(f.send(verb::get, "/api/v1/alerts/7", f.a_admin), f.send(verb::get, "/api/v1/alerts/8", f.a_admin),
                   "7", "8");
    CHECK(error_field_of(f.send(verb::get, "/api/v1/alerts/x", f.a_admin)) == "id");
}

TEST_CASE("alerts: ack and close go through the engine; 409 when done already, 404 for others', 503 without") {
    fixture f;
    f.upsert({make_alert(1, "acme", "dev-1", 1, state::severity::major, state::alert_status::open, t0),
              make_alert(2, "acme", "dev-2", 1, state::severity::major, state::alert_status::open, t0),
              make_alert(3, "globex", "dev-1", 1, state::severity::major, state::alert_status::open, t0)});

    auto ack = f.send(verb::post, "/api/v1/alerts/1/ack", f.a_admin);
    REQUIRE_MESSAGE(ack.status == http::status::ok, ack.body);
    CHECK(str(body_of(ack).at("status")) == "acknowledged");
    CHECK(str(body_of(ack).at("acknowledged_by")) == "ops robot"); // the token's name
    CHECK(str(body_of(ack).at("acknowledged_at")) == common::rfc3339(t0 + 60'000));
    CHECK(f.eng.take() == std::vector<std::string>{"ack 1 by ops robot"});
    auto again = f.send(verb::post, "/api/v1/alerts/1/ack", f.a_admin);
    CHECK(again.status == http::status::conflict);
    CHECK(error_code_of(again) == "conflict");

    auto closed = f.send(verb::post, "/api/v1/alerts/1/close", f.a_admin);
    REQUIRE(closed.status == http::status::ok);
    CHECK(str(body_of(closed).at("status")) == "closed");
    CHECK(str(body_of(closed).at("close_reason")) == "manual");
    CHECK(str(body_of(closed).at("closed_by")) == "ops robot");
    CHECK(f.send(verb::post, "/api/v1/alerts/1/close", f.a_admin).status == http::status::conflict);
    CHECK(f.send(verb::post, "/api/v1/alerts/1/ack", f.a_admin).status == http::status::conflict);
    // An open alert closes directly.
    CHECK(f.send(verb::post, "/api/v1/alerts/2/close", f.a_admin).status == http::status::ok);
    f.eng.take();

    for (const auto* action : {"ack", "close"}) {
        CAPTURE(action);
        check_same_404(f.send(verb::post, "/api/v1/alerts/3/" + std::string(action), f.a_admin),
                       f.send(verb::post, "/api/v1/alerts/9/" + std::string(action), f.a_admin), "3", "9");
    }
    CHECK(f.eng.take().empty());
    CHECK(state::alert_repository(*f.db).get("globex", 3).value()->status == state::alert_status::open);

    // The engine stopping, and no engine at all: 503.
    f.eng.stopping = true;
    CHECK(f.send(verb::post, "/api/v1/alerts/2/ack", f.a_admin).status == http::status::service_unavailable);
    f.eng.stopping = false;
    router bare;
    add_alert_routes(bare, *f.a, {f.db.get(), f.store.get(), &f.key, nullptr, nullptr});
    auto none = fixture::dispatch(bare, verb::post, "/api/v1/alerts/2/close", f.a_admin, {});
    CHECK(none.status == http::status::service_unavailable);
    CHECK(error_code_of(none) == "unavailable");
    // Reads still work from the database.
    CHECK(fixture::dispatch(bare, verb::get, "/api/v1/alerts/2", f.a_admin, {}).status == http::status::ok);
}

TEST_CASE("alerts: stats count open alerts by severity, alerts per day and the mean times") {
    fixture f;
    const auto now = common::now_ms();
    const auto today = now - now % day_ms;
    const auto yesterday_noon = today - 12 * hour_ms;
    using st = state::alert_status;
    using sv = state::severity;
    auto acked = make_alert(1, "acme", "dev-1", 1, sv::critical, st::acknowledged, yesterday_noon);
    acked.acknowledged_at_ms = yesterday_noon + 60'000;
    auto acked2 = make_alert(2, "acme", "dev-2", 1, sv::major, st::acknowledged, yesterday_noon);
    acked2.acknowledged_at_ms = yesterday_noon + 120'000;
    auto closed = make_alert(3, "acme", "dev-3", 1, sv::minor, st::closed, yesterday_noon);
    closed.closed_at_ms = yesterday_noon + 300'000;
    f.upsert({acked, acked2, closed,
              make_alert(4, "acme", "dev-4", 1, sv::critical, st::open, yesterday_noon - day_ms),
              make_alert(5, "globex", "dev-1", 1, sv::info, st::open, yesterday_noon)});

    auto res = f.send(verb::get, "/api/v1/alerts/stats", f.a_admin);
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    const auto b = body_of(res);
    CHECK(b.at("open_by_severity") ==
          json::parse(R"({"critical": 2, "major": 1, "minor": 0, "warning": 0, "info": 0})"));
    const auto& days = b.at("per_day").as_array();
    REQUIRE(days.size() == 7);
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> by_day;
    for (const auto& d : days) by_day[str(d.at("day"))] = {d.at("opened").as_int64(), d.at("closed").as_int64()};
    CHECK(by_day.size() == 7);
    CHECK(by_day[common::utc_date(yesterday_noon)] == std::pair<std::int64_t, std::int64_t>{3, 1});
    CHECK(by_day[common::utc_date(yesterday_noon - day_ms)] == std::pair<std::int64_t, std::int64_t>{1, 0});
    CHECK(b.at("mean_time_to_ack_s").to_number<double>() == doctest::Approx(90));
    CHECK(b.at("mean_time_to_close_s").to_number<double>() == doctest::Approx(300));

    auto short_window = body_of(f.send(verb::get, "/api/v1/alerts/stats?days=1", f.a_admin));
    CHECK(short_window.at("per_day").as_array().size() == 1);
    for (const auto* q : {"days=0", "days=91", "days=x"}) {
        CAPTURE(q);
        auto bad = f.send(verb::get, std::string("/api/v1/alerts/stats?") + q, f.a_admin);
        CHECK(bad.status == http::status::bad_request);
        CHECK(error_field_of(bad) == "days");
    }
}

TEST_CASE("operator alerts: every tenant's or one, filtered, after the audit entry") {
    fixture f;
    f.upsert({make_alert(1, "acme", "dev-1", 1, state::severity::major, state::alert_status::open, t0),
              make_alert(2, "globex", "dev-1", 1, state::severity::critical, state::alert_status::open, t0),
              make_alert(3, "globex", "dev-2", 1, state::severity::major, state::alert_status::closed, t0)});
    const auto audit = [&] { return state::audit_repository(*f.db).list_recent({}).value(); };
    const auto before = audit().size();

    CHECK(ids_of(walk(f, "/api/v1/operator/alerts", f.op_reader, 2)) == std::vector<std::int64_t>{3, 2, 1});
    auto res = f.send(verb::get, "/api/v1/operator/alerts?tenant=globex&status=open", f.op_reader);
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    const auto items = body_of(res).at("items").as_array();
    REQUIRE(items.size() == 1);
    CHECK(items[0].at("id").as_int64() == 2);
    CHECK(str(items[0].at("tenant")) == "globex");
    const auto entries = audit();
    REQUIRE(entries.size() == before + 2 + 1); // two pages, one filtered list
    CHECK(entries.front().action == "alert.list");
    CHECK(entries.front().tenant == std::optional<std::string>("globex"));

    // Bad input is audited too, then refused.
    auto bad = f.send(verb::get, "/api/v1/operator/alerts?severity=huge", f.op_reader);
    CHECK(bad.status == http::status::bad_request);
    CHECK(error_field_of(bad) == "severity");
    CHECK(error_field_of(f.send(verb::get, "/api/v1/operator/alerts?tenant=No%20Such", f.op_reader)) == "tenant");
    CHECK(audit().size() == before + 5);
    // Tenant users may not.
    CHECK(f.send(verb::get, "/api/v1/operator/alerts", f.a_admin).status == http::status::forbidden);
    CHECK(audit().size() == before + 5);
}

// ---- silences -----------------------------------------------------------------

TEST_CASE("silences: create, list with the active filter, delete; the engine hears of writes") {
    fixture f;
    const auto rule = f.create_rule(f.a_admin, threshold_rule());
    f.eng.take();
    const auto now = common::now_ms();

    auto res = f.send(verb::post, "/api/v1/silences", f.a_admin,
                      json::object{{"matchers", json::object{{"device", "dev-1"},
                                                             {"labels", json::object{{"site", "plant-7"}}},
                                                             {"rule", rule},
                                                             {"kind", "THRESHOLD"},
                                                             {"severity", "major"}}},
                                   {"comment", "maintenance"},
                                   {"duration_s", 3600}});
    REQUIRE_MESSAGE(res.status == http::status::created, res.body);
    const auto b = body_of(res).as_object();
    const auto active_id = b.at("id").as_int64();
    CHECK(res.header("Location") == "/api/v1/silences/" + std::to_string(active_id));
    CHECK(b.at("matchers") == json::parse(R"({"device": "dev-1", "labels": {"site": "plant-7"}, "rule": )" +
                                          std::to_string(rule) + R"(, "kind": "THRESHOLD", "severity": "major"})"));
    CHECK(str(b.at("comment")) == "maintenance");
    CHECK(str(b.at("created_by")) == "ops robot");
    CHECK(b.at("active").as_bool());
    const auto starts = common::parse_rfc3339(b.at("starts_at").as_string()).value();
    CHECK(starts >= now);
    CHECK(common::parse_rfc3339(b.at("ends_at").as_string()).value() == starts + 3'600'000);
    CHECK(f.eng.take() == std::vector<std::string>{"silences acme"});
    const auto stored = state::silence_repository(*f.db).get("acme", active_id).value().value();
    CHECK(stored.matchers.rule == std::optional<std::int64_t>(rule));
    CHECK(stored.matchers.kind == std::optional<state::alert_kind>(state::alert_kind::threshold));

    // Starting tomorrow, until an explicit end; and one already over (written directly).
    auto future = f.send(verb::post, "/api/v1/silences", f.a_admin,
                         json::object{{"matchers", json::object{}},
                                      {"starts_at", common::rfc3339(now + day_ms)},
                                      {"ends_at", common::rfc3339(now + 2 * day_ms)}});
    REQUIRE_MESSAGE(future.status == http::status::created, future.body);
    const auto future_id = body_of(future).at("id").as_int64();
    CHECK_FALSE(body_of(future).at("active").as_bool());
    CHECK(body_of(future).at("matchers").as_object().empty());
    CHECK(str(body_of(future).at("comment")).empty());
    state::silence_record over;
    over.tenant = "acme";
    over.created_by = "someone";
    over.starts_at_ms = now - 2 * hour_ms;
    over.ends_at_ms = now - hour_ms;
    over.created_at_ms = now - 2 * hour_ms;
    const auto over_id = state::silence_repository(*f.db).create(over).value();
    over.tenant = "globex";
    state::silence_repository(*f.db).create(over).value();

    CHECK(ids_of(walk(f, "/api/v1/silences", f.a_admin, 1)) ==
          std::vector<std::int64_t>{active_id, future_id, over_id});
    CHECK(ids_of(walk(f, "/api/v1/silences?active=true", f.a_admin, 1)) == std::vector<std::int64_t>{active_id});
    CHECK(ids_of(walk(f, "/api/v1/silences?active=false", f.a_admin, 1)) ==
          std::vector<std::int64_t>{future_id, over_id});
    CHECK(ids_of(walk(f, "/api/v1/silences?active=false", f.a_admin, 5)) ==
          std::vector<std::int64_t>{future_id, over_id});
    CHECK(error_field_of(f.send(verb::get, "/api/v1/silences?active=yes", f.a_admin)) == "active");

    f.eng.take();
    auto removed = f.send(verb::delete_, "/api/v1/silences/" + std::to_string(future_id), f.a_admin);
    CHECK(removed.status == http::status::no_content);
    CHECK(f.eng.take() == std::vector<std::string>{"silences acme"});
    CHECK(f.send(verb::delete_, "/api/v1/silences/" + std::to_string(future_id), f.a_admin).status ==
          http::status::not_found);
    CHECK(f.eng.take().empty());
    CHECK(ids_of(walk(f, "/api/v1/silences", f.a_admin, 10)) == std::vector<std::int64_t>{active_id, over_id});
}

TEST_CASE("silences: invalid input names the field; another tenant's silence and rule are unknown") {
    fixture f;
    const auto theirs_rule = f.create_rule(f.b_admin, threshold_rule());
    const auto now = common::now_ms();
    const auto m = R"("matchers": {})";
    const std::vector<std::pair<std::string, std::string>> cases{
        {R"({"duration_s": 60})", "matchers"},
        {R"({"matchers": [], "duration_s": 60})", "matchers"},
        {R"({"matchers": {"device": "Dev 1"}, "duration_s": 60})", "matchers.device"},
        {R"({"matchers": {"device": 7}, "duration_s": 60})", "matchers.device"},
        {R"({"matchers": {"labels": {"k": 1}}, "duration_s": 60})", "matchers.labels.k"},
        {R"({"matchers": {"labels": {"Bad": "v"}}, "duration_s": 60})", "matchers.labels"},
        {R"({"matchers": {"rule": 0}, "duration_s": 60})", "matchers.rule"},
        {R"({"matchers": {"rule": "one"}, "duration_s": 60})", "matchers.rule"},
        {R"({"matchers": {"rule": )" + std::to_string(theirs_rule) + R"(}, "duration_s": 60})", "matchers.rule"},
        {R"({"matchers": {"kind": "threshold"}, "duration_s": 60})", "matchers.kind"},
        {R"({"matchers": {"severity": "high"}, "duration_s": 60})", "matchers.severity"},
        {"{" + std::string(m) + R"(, "comment": 5, "duration_s": 60})", "comment"},
        {"{" + std::string(m) + R"(, "comment": ")" + std::string(1025, 'c') + R"(", "duration_s": 60})", "comment"},
        {"{" + std::string(m) + "}", "ends_at"},
        {"{" + std::string(m) + R"(, "duration_s": 0})", "duration_s"},
        {"{" + std::string(m) + R"(, "duration_s": 31622401})", "duration_s"},
        {"{" + std::string(m) + R"(, "duration_s": 60, "ends_at": ")" + common::rfc3339(now + day_ms) + R"("})",
         "duration_s"},
        {"{" + std::string(m) + R"(, "ends_at": "tomorrow"})", "ends_at"},
        {"{" + std::string(m) + R"(, "ends_at": )" + std::to_string(now + day_ms) + "}", "ends_at"},
        {"{" + std::string(m) + R"(, "ends_at": ")" + common::rfc3339(now - 1000) + R"("})", "ends_at"},
        {"{" + std::string(m) + R"(, "starts_at": ")" + common::rfc3339(now + 2 * day_ms) + R"(", "ends_at": ")" +
             common::rfc3339(now + day_ms) + R"("})",
         "ends_at"},
        {"{" + std::string(m) + R"(, "starts_at": "now", "duration_s": 60})", "starts_at"},
    };
    for (const auto& [body, field] : cases) {
        CAPTURE(body);
        auto res = f.send(verb::post, "/api/v1/silences", f.a_admin, body);
        CHECK(res.status == http::status::bad_request);
        CHECK(error_code_of(res) == "invalid_argument");
        CHECK(error_field_of(res) == field);
    }
    CHECK(state::silence_repository(*f.db).list("acme").value().items.empty());

    auto b = f.send(verb::post, "/api/v1/silences", f.b_admin, R"({"matchers": {}, "duration_s": 60})");
    REQUIRE(b.status == http::status::created);
    const auto theirs = body_of(b).at("id").as_int64();
    f.eng.take();
    check_same_404(f.send(verb::delete_, "/api/v1/silences/" + std::to_string(theirs), f.a_admin),
                   f.send(verb::delete_, "/api/v1/silences/" + std::to_string(theirs + 100), f.a_admin),
                   std::to_string(theirs), std::to_string(theirs + 100));
    CHECK(state::silence_repository(*f.db).get("globex", theirs).value().has_value());
    CHECK(body_of(f.send(verb::get, "/api/v1/silences", f.a_admin)).at("items").as_array().empty());
    CHECK(f.eng.take().empty());
    CHECK(error_field_of(f.send(verb::delete_, "/api/v1/silences/first", f.a_admin)) == "id");
}

TEST_CASE("alert JSON: nulls for what has not happened, close_reason, RFC 3339 with milliseconds") {
    auto a = make_alert(9, "acme", "dev-1", 4, state::severity::info, state::alert_status::open, 1'795'435'200'123,
                        state::alert_kind::no_heartbeat);
    a.value = std::nullopt;
    auto o = engine::alert_json(a);
    CHECK(str(o.at("opened_at")) == "2026-11-23T12:00:00.123Z");
    CHECK(str(o.at("kind")) == "NO_HEARTBEAT");
    CHECK(o.at("metric").is_null());
    CHECK(o.at("value").is_null());
    CHECK(o.at("threshold").is_null());
    CHECK(o.at("closed_at").is_null());
    CHECK(o.at("close_reason").is_null());
    CHECK(o.at("escalated_at").is_null());
    CHECK(o.at("escalation_level").as_int64() == 0);
    CHECK_FALSE(o.at("silenced").as_bool());
    CHECK(o.at("rule").as_int64() == 4);
    CHECK(str(o.at("rule_name")) == "rule 4");
    CHECK(str(o.at("tenant")) == "acme");
    a.status = state::alert_status::closed;
    a.closed_at_ms = a.opened_at_ms + 1;
    CHECK(str(engine::alert_json(a).at("close_reason")) == "auto");
    CHECK(str(engine::alert_json(a).at("closed_at")) == "2026-11-23T12:00:00.124Z");
    a.closed_by = "bob";
    CHECK(str(engine::alert_json(a).at("close_reason")) == "manual");
    a.last_value = std::numeric_limits<double>::quiet_NaN();
    CHECK(engine::alert_json(a).at("last_value").is_null());
}

TEST_CASE("common time: RFC 3339 and UTC dates") {
    CHECK(common::rfc3339(-1) == "1969-12-31T23:59:59.999Z");
    CHECK(common::parse_rfc3339("1969-12-31T23:59:59.999Z") == -1);
    CHECK(common::utc_date(1'795'435'200'123) == "2026-11-23");
    CHECK(common::utc_date(-1) == "1969-12-31");
    CHECK(common::parse_rfc3339(common::rfc3339(t0)) == t0);
}
