// The REST resources of webui/api.hpp: devices (+ telemetry), API tokens and
// the operator routes. In process: a real SQLite state database and a real
// LMDB telemetry store in a temporary directory, the real auth layer, a
// router with the routes, requests built by hand and dispatched.
//
// Two tenants, acme (A) and globex (B), prove that no tenant route crosses
// between them: B's ids answer A exactly like unknown ones and stay as they
// were. argon2 runs cost about a tenth of a second each: every user shares
// one password hash, made once, and only the few tests that need a session
// log in.

#include "webui/api.hpp"
#include "webui/api_common.hpp"
#include "webui/auth.hpp"
#include "webui/router.hpp"

#include "storage/lmdb_store.hpp"
#include "storage/state/api_token_repository.hpp"
#include "storage/state/audit_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rejected_event_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace json = boost::json;
namespace state = pulsegate::storage::state;
namespace storage = pulsegate::storage;
namespace engine = pulsegate::engine;
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

const std::string& password_hash() {
    static const std::string h = engine::hash_password(password);
    return h;
}

// What the routes told the rest of the daemon, in order.
struct recording_hooks : identity_hooks {
    std::mutex m;
    std::vector<std::string> events;

    void device_changed(std::string_view tenant, std::string_view device) override {
        add("device " + std::string(tenant) + "/" + std::string(device));
    }
    void token_revoked(const std::optional<std::string_view>& tenant, std::string_view id) override {
        add("token " + std::string(tenant.value_or("-")) + "/" + std::string(id));
    }
    void tenant_changed(std::string_view tenant) override { add("tenant " + std::string(tenant)); }
    void user_changed(std::string_view name) override { add("user " + std::string(name)); }

    void add(std::string e) {
        std::lock_guard l(m);
        events.push_back(std::move(e));
    }
    std::vector<std::string> take() {
        std::lock_guard l(m);
        return std::exchange(events, {});
    }
};

// Who sends a request: a Bearer token, a session (cookie + CSRF) or nobody.
struct credentials {
    std::string token;
    std::string cookie;
    std::string csrf;
};

json::value body_of(const response& r) { return json::parse(r.body); }
std::string error_code_of(const response& r) { return std::string(body_of(r).at("error").at("code").as_string()); }
std::string error_field_of(const response& r) {
    const auto b = body_of(r);
    const auto& e = b.at("error").as_object();
    return e.contains("field") ? std::string(e.at("field").as_string()) : std::string();
}
std::string str(const json::value& v) { return std::string(v.as_string()); }

struct fixture {
    temp_dir dir;
    std::unique_ptr<state::database> db;
    engine::server_key key{};
    std::unique_ptr<storage::lmdb_store> store;
    recording_hooks hooks;
    std::unique_ptr<auth> a;
    router r;
    credentials a_admin, b_admin, op_reader; // tenant tokens of acme and globex; an operator token

    fixture() {
        auto opened = state::database::open({.file = dir.path / "state.db"});
        REQUIRE_MESSAGE(opened.has_value(), (opened ? "" : opened.error().message));
        db = std::move(*opened);
        for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>(i * 5 + 3);

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
        state::user_repository users(*db);
        REQUIRE(users.create({std::nullopt, "admin", state::user_role::operator_admin, password_hash(), 1000}));
        REQUIRE(users.create({"acme", "victor", state::user_role::tenant_viewer, password_hash(), 1000}));

        a = std::make_unique<auth>(*db, key);
        a->add_routes(r);
        const api_services s{db.get(), store.get(), &key, &hooks};
        add_device_routes(r, *a, s);
        add_token_routes(r, *a, s);
        add_operator_routes(r, *a, s);

        a_admin.token = make_token("acme");
        b_admin.token = make_token("globex");
        op_reader.token = make_token(std::nullopt);
    }

    std::string make_token(std::optional<std::string> tenant) {
        const auto parts = engine::generate_api_token();
        REQUIRE(state::api_token_repository(*db).create({std::move(tenant), parts.public_id, "fixture token",
                                                         engine::credential_digest(key, parts.text()), std::nullopt,
                                                         std::nullopt, 1000}));
        return parts.text();
    }

    // `target` is the path with its query, e.g. "/api/v1/devices?limit=2".
    response send(verb method, const std::string& target, const credentials& who, const std::string& body = {}) {
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
                auto decode = [](std::string_view s) {
                    std::string plus(s);
                    std::replace(plus.begin(), plus.end(), '+', ' ');
                    return percent_decode(plus).value();
                };
                ctx.query.emplace_back(decode(pair.substr(0, eq)),
                                       eq == std::string_view::npos ? "" : decode(pair.substr(eq + 1)));
                rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
            }
        }
        ctx.headers = &headers;
        ctx.body = body;
        ctx.remote = {boost::asio::ip::make_address("192.0.2.10"), 40000};
        return r.dispatch(ctx);
    }

    response send(verb method, const std::string& target, const credentials& who, const json::object& body) {
        return send(method, target, who, json::serialize(body));
    }

    credentials login(std::string_view name) {
        auto res = send(verb::post, "/api/v1/auth/login", {},
                        json::object{{"username", name}, {"password", password}});
        REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
        const auto set = std::string(res.header("Set-Cookie"));
        const std::string prefix = "pulsegate_session=";
        REQUIRE(set.rfind(prefix, 0) == 0);
        credentials c;
        c.cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
        c.csrf = str(body_of(res).at("csrf_token"));
        return c;
    }

    // A device made through the API; returns its secret.
    std::string create_device(const credentials& who, const std::string& id, json::object extra = {}) {
        extra["id"] = id;
        auto res = send(verb::post, "/api/v1/devices", who, extra);
        REQUIRE_MESSAGE(res.status == http::status::created, res.body);
        return str(body_of(res).at("secret"));
    }

    state::device stored_device(const std::string& tenant, const std::string& id) {
        auto d = state::device_repository(*db).get(tenant, id);
        REQUIRE(d);
        REQUIRE(d->has_value());
        return **d;
    }

    std::vector<state::audit_entry> audit() {
        auto e = state::audit_repository(*db).list_recent({});
        REQUIRE(e);
        return *e;
    }

    void append(std::string_view tenant, std::string_view device, std::int64_t ts, std::string_view metric,
                double value) {
        const storage::metric_value mv[] = {{metric, value}};
        REQUIRE(store->append(storage::reading{tenant, device, ts, mv}, nullptr) == storage::append_result::queued);
    }
};

// Every item of a list route, following next_cursor with `limit` per page;
// also checks that no page is longer than the limit.
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

} // namespace

// ---- devices ----------------------------------------------------------------

TEST_CASE("devices: create answers 201 with the secret once; get and list never show it") {
    fixture f;
    auto res = f.send(verb::post, "/api/v1/devices", f.a_admin,
                      json::object{{"id", "dev-1"}, {"name", "Boiler"},
                                               {"labels", json::object{{"site", "plant-7"}}}});
    REQUIRE_MESSAGE(res.status == http::status::created, res.body);
    CHECK(res.header("Location") == "/api/v1/devices/dev-1");
    auto b = body_of(res).as_object();
    const auto secret = str(b.at("secret"));
    CHECK(engine::is_device_secret(secret));
    CHECK(str(b.at("id")) == "dev-1");
    CHECK(str(b.at("name")) == "Boiler");
    CHECK(str(b.at("labels").at("site")) == "plant-7");
    CHECK(str(b.at("status")) == "enabled");
    CHECK(b.at("last_seen").is_null());
    CHECK(str(b.at("created_at")).ends_with("Z"));

    // Stored as the keyed digest, never as the secret.
    const auto d = f.stored_device("acme", "dev-1");
    CHECK(d.secret_hash == engine::credential_digest(f.key, secret));
    CHECK(engine::verify_credential(f.key, secret, d.secret_hash));

    auto got = f.send(verb::get, "/api/v1/devices/dev-1", f.a_admin);
    REQUIRE(got.status == http::status::ok);
    CHECK_FALSE(body_of(got).as_object().contains("secret"));
    CHECK(got.body.find(secret) == std::string::npos);
    CHECK(got.body.find(d.secret_hash) == std::string::npos);

    auto list = f.send(verb::get, "/api/v1/devices", f.a_admin);
    REQUIRE(list.status == http::status::ok);
    CHECK(list.body.find(secret) == std::string::npos);
    CHECK(list.body.find(d.secret_hash) == std::string::npos);
    const auto list_body = body_of(list);
    const auto& items = list_body.at("items").as_array();
    REQUIRE(items.size() == 1);
    CHECK(str(items[0].at("id")) == "dev-1");
    CHECK(body_of(list).at("next_cursor").is_null());

    // The same id again: 409, the first device and its secret kept.
    auto again = f.send(verb::post, "/api/v1/devices", f.a_admin, json::object{{"id", "dev-1"}});
    CHECK(again.status == http::status::conflict);
    CHECK(error_code_of(again) == "conflict");
    CHECK(f.stored_device("acme", "dev-1").secret_hash == d.secret_hash);

    // Another tenant may use the same id.
    f.create_device(f.b_admin, "dev-1");
    CHECK(f.stored_device("globex", "dev-1").secret_hash != d.secret_hash);
}

TEST_CASE("devices: another tenant's device answers 404 like an unknown one and stays unchanged") {
    fixture f;
    f.create_device(f.b_admin, "dev-b", json::object{{"name", "B's"}});
    f.append("globex", "dev-b", 1'000'000, "temp", 21.5);
    f.store->flush();
    const auto before = f.stored_device("globex", "dev-b");
    f.hooks.take();

    struct probe {
        verb method;
        std::string suffix;
        std::string body;
    };
    const std::vector<probe> probes{
        {verb::get, "", ""},
        {verb::patch, "", R"({"name": "stolen", "disabled": true, "labels": {"x": "y"}})"},
        {verb::post, "/secret", ""},
        {verb::get, "/telemetry?metric=temp&from=0&to=2000000", ""},
        {verb::get, "/telemetry/latest", ""},
        {verb::get, "/metrics", ""},
        {verb::delete_, "", ""},
    };
    for (const auto& p : probes) {
        CAPTURE(p.suffix);
        CAPTURE(http::to_string(p.method));
        auto theirs = f.send(p.method, "/api/v1/devices/dev-b" + p.suffix, f.a_admin, p.body);
        auto unknown = f.send(p.method, "/api/v1/devices/dev-x" + p.suffix, f.a_admin, p.body);
        CHECK(theirs.status == http::status::not_found);
        CHECK(unknown.status == http::status::not_found);
        CHECK(error_code_of(theirs) == "not_found");
        // The same answer but for the id it names.
        auto expected = unknown.body;
        for (auto at = expected.find("dev-x"); at != std::string::npos; at = expected.find("dev-x", at))
            expected.replace(at, 5, "dev-b");
        CHECK(theirs.body == expected);
        CHECK(theirs.body.find("globex") == std::string::npos);
    }
    CHECK(f.stored_device("globex", "dev-b") == before);
    CHECK(f.hooks.take().empty());
    // B still sees it, and A's list does not.
    CHECK(f.send(verb::get, "/api/v1/devices/dev-b", f.b_admin).status == http::status::ok);
    CHECK(body_of(f.send(verb::get, "/api/v1/devices", f.a_admin)).at("items").as_array().empty());
}

TEST_CASE("devices: patch, disable, rotate and delete; the hooks hear of disable, enable, rotation and removal") {
    fixture f;
    const auto secret = f.create_device(f.a_admin, "dev-1", json::object{{"labels", json::object{{"a", "1"}}}});
    f.hooks.take();

    auto renamed = f.send(verb::patch, "/api/v1/devices/dev-1", f.a_admin,
                          json::object{{"name", "Pump"}, {"labels", json::object{{"b", "2"}}}});
    REQUIRE_MESSAGE(renamed.status == http::status::ok, renamed.body);
    CHECK(str(body_of(renamed).at("name")) == "Pump");
    CHECK(body_of(renamed).at("labels") == json::parse(R"({"b": "2"})")); // replaced, not merged
    CHECK(f.hooks.take().empty()); // a rename changes no credential

    auto disabled = f.send(verb::patch, "/api/v1/devices/dev-1", f.a_admin, json::object{{"disabled", true}});
    REQUIRE(disabled.status == http::status::ok);
    CHECK(str(body_of(disabled).at("status")) == "disabled");
    CHECK(str(body_of(disabled).at("name")) == "Pump"); // kept
    CHECK(f.stored_device("acme", "dev-1").disabled);
    CHECK(f.hooks.take() == std::vector<std::string>{"device acme/dev-1"});
    // Disabling again changes nothing and tells nobody.
    CHECK(f.send(verb::patch, "/api/v1/devices/dev-1", f.a_admin, json::object{{"disabled", true}}).status ==
          http::status::ok);
    CHECK(f.hooks.take().empty());
    CHECK(f.send(verb::patch, "/api/v1/devices/dev-1", f.a_admin, json::object{{"disabled", false}}).status ==
          http::status::ok);
    CHECK(f.hooks.take() == std::vector<std::string>{"device acme/dev-1"});

    const auto old_digest = f.stored_device("acme", "dev-1").secret_hash;
    auto rotated = f.send(verb::post, "/api/v1/devices/dev-1/secret", f.a_admin);
    REQUIRE_MESSAGE(rotated.status == http::status::ok, rotated.body);
    const auto fresh = str(body_of(rotated).at("secret"));
    CHECK(str(body_of(rotated).at("id")) == "dev-1");
    CHECK(fresh != secret);
    const auto new_digest = f.stored_device("acme", "dev-1").secret_hash;
    CHECK(new_digest != old_digest);
    CHECK(new_digest == engine::credential_digest(f.key, fresh));
    CHECK_FALSE(engine::verify_credential(f.key, secret, new_digest));
    CHECK(f.hooks.take() == std::vector<std::string>{"device acme/dev-1"});

    auto removed = f.send(verb::delete_, "/api/v1/devices/dev-1", f.a_admin);
    CHECK(removed.status == http::status::no_content);
    CHECK(removed.body.empty());
    CHECK(f.hooks.take() == std::vector<std::string>{"device acme/dev-1"});
    CHECK(f.send(verb::get, "/api/v1/devices/dev-1", f.a_admin).status == http::status::not_found);
    CHECK(f.send(verb::delete_, "/api/v1/devices/dev-1", f.a_admin).status == http::status::not_found);
    CHECK(f.hooks.take().empty());
}

TEST_CASE("devices: validation errors answer 400 naming the field, and write nothing") {
    fixture f;
    f.create_device(f.a_admin, "dev-1");
    const auto before = f.stored_device("acme", "dev-1");
    struct bad {
        verb method;
        std::string target;
        std::string body;
        std::string field;
    };
    const std::vector<bad> cases{
        {verb::post, "/api/v1/devices", "{}", "id"},
        {verb::post, "/api/v1/devices", R"({"id": 7})", "id"},
        {verb::post, "/api/v1/devices", R"({"id": "Dev_1"})", "id"},
        {verb::post, "/api/v1/devices", R"({"id": "api"})", "id"},
        {verb::post, "/api/v1/devices", R"({"id": "ok", "name": 5})", "name"},
        {verb::post, "/api/v1/devices", R"({"id": "ok", "labels": ["a"]})", "labels"},
        {verb::post, "/api/v1/devices", R"({"id": "ok", "labels": {"k": 1}})", "labels.k"},
        {verb::post, "/api/v1/devices", R"({"id": "ok", "labels": {"Bad Key": "v"}})", "labels"},
        {verb::post, "/api/v1/devices", R"([1, 2])", "body"},
        {verb::post, "/api/v1/devices", R"({"id": )", "body"},
        {verb::patch, "/api/v1/devices/dev-1", R"({"name": "ok", "disabled": "yes"})", "disabled"},
        {verb::patch, "/api/v1/devices/dev-1", R"({"name": "ok", "labels": {"k": null}})", "labels.k"},
        {verb::get, "/api/v1/devices/NOPE", "", "id"},
        {verb::get, "/api/v1/devices?limit=0", "", "limit"},
        {verb::get, "/api/v1/devices?cursor=Not%20One", "", "cursor"},
        {verb::get, "/api/v1/devices?label=Bad%20Key=v", "", "label"},
        {verb::get, "/api/v1/devices/dev-1/telemetry", "", "metric"},
        {verb::get, "/api/v1/devices/dev-1/telemetry?metric=t&from=10&to=5", "", "from"},
        {verb::get, "/api/v1/devices/dev-1/telemetry?metric=t&to=soon", "", "to"},
        {verb::get, "/api/v1/devices/dev-1/telemetry?metric=t&from=-1", "", "from"},
        {verb::get, "/api/v1/devices/dev-1/telemetry?metric=t&max_points=many", "", "max_points"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.target);
        CAPTURE(c.body);
        auto res = f.send(c.method, c.target, f.a_admin, c.body);
        CHECK(res.status == http::status::bad_request);
        CHECK(error_code_of(res) == "invalid_argument");
        CHECK(error_field_of(res) == c.field);
    }
    CHECK(f.stored_device("acme", "dev-1") == before);
    CHECK_FALSE(state::device_repository(*f.db).get("acme", "ok").value().has_value());

    // Unknown members are ignored; a form post is refused.
    CHECK(f.send(verb::post, "/api/v1/devices", f.a_admin, R"({"id": "ok", "colour": "blue"})").status ==
          http::status::created);
    http::fields form;
    form.set(http::field::authorization, "Bearer " + f.a_admin.token);
    form.set(http::field::content_type, "application/x-www-form-urlencoded");
    request_context ctx;
    ctx.method = verb::post;
    ctx.target = ctx.path = "/api/v1/devices";
    ctx.headers = &form;
    ctx.body = "id=evil";
    CHECK(f.r.dispatch(ctx).status == http::status::unsupported_media_type);
}

TEST_CASE("devices: pagination walks every page once, with and without a label filter") {
    fixture f;
    state::device_repository devices(*f.db);
    std::vector<std::string> ids;
    for (int i = 0; i < 11; ++i) {
        const auto id = "dev-" + std::to_string(10 + i);
        ids.push_back(id);
        state::device_labels labels{{"zone", i % 3 == 0 ? "north" : "south"}};
        if (i == 4) labels["spare"] = "";
        REQUIRE(devices.create({"acme", id, "", labels, "digest-" + id, 1000}));
    }
    f.create_device(f.b_admin, "dev-99"); // another tenant's: never listed

    int pages = 0;
    auto all = walk(f, "/api/v1/devices", f.a_admin, 4, &pages);
    CHECK(pages == 3);
    std::vector<std::string> seen;
    for (const auto& d : all) seen.push_back(str(d.at("id")));
    CHECK(seen == ids);

    auto north = walk(f, "/api/v1/devices?label=zone=north", f.a_admin, 2);
    std::vector<std::string> north_ids;
    for (const auto& d : north) north_ids.push_back(str(d.at("id")));
    CHECK(north_ids == std::vector<std::string>{"dev-10", "dev-13", "dev-16", "dev-19"});

    auto spare = walk(f, "/api/v1/devices?label=spare", f.a_admin, 5);
    REQUIRE(spare.size() == 1);
    CHECK(str(spare[0].at("id")) == "dev-14");

    // A page exactly as long as what is left ends the walk.
    auto exact = walk(f, "/api/v1/devices", f.a_admin, 11, &pages);
    CHECK(exact.size() == 11);
    CHECK(pages == 1);
}

TEST_CASE("devices: a viewer reads but cannot write (403), and nothing changes") {
    fixture f;
    f.create_device(f.a_admin, "dev-1");
    const auto before = f.stored_device("acme", "dev-1");
    const auto viewer = f.login("victor");
    CHECK(f.send(verb::get, "/api/v1/devices", viewer).status == http::status::ok);
    CHECK(f.send(verb::get, "/api/v1/devices/dev-1", viewer).status == http::status::ok);
    CHECK(f.send(verb::get, "/api/v1/tokens", viewer).status == http::status::ok);
    const std::vector<std::pair<verb, std::string>> writes{
        {verb::post, "/api/v1/devices"},          {verb::patch, "/api/v1/devices/dev-1"},
        {verb::delete_, "/api/v1/devices/dev-1"}, {verb::post, "/api/v1/devices/dev-1/secret"},
        {verb::post, "/api/v1/tokens"},           {verb::delete_, "/api/v1/tokens/aaaaaaaaaaaa"},
    };
    for (const auto& [m, path] : writes) {
        CAPTURE(path);
        auto res = f.send(m, path, viewer, R"({"id": "dev-2", "name": "x", "disabled": true})");
        CHECK(res.status == http::status::forbidden);
        CHECK(error_code_of(res) == "forbidden");
    }
    CHECK(f.stored_device("acme", "dev-1") == before);
    CHECK_FALSE(state::device_repository(*f.db).get("acme", "dev-2").value().has_value());
    // An operator is no tenant user: 403 on tenant routes as well.
    CHECK(f.send(verb::get, "/api/v1/devices", f.op_reader).status == http::status::forbidden);
    // No credentials at all: 401.
    CHECK(f.send(verb::get, "/api/v1/devices", {}).status == http::status::unauthorized);
}

// ---- telemetry --------------------------------------------------------------

TEST_CASE("telemetry: raw points, downsampled buckets with mean/min/max, latest and metric names") {
    fixture f;
    f.create_device(f.a_admin, "dev-1");
    f.create_device(f.a_admin, "dev-2");
    constexpr std::int64_t t0 = 1'700'000'000'000;
    for (int i = 0; i < 100; ++i) f.append("acme", "dev-1", t0 + i * 1000, "temp", i);
    f.append("acme", "dev-1", t0 + 500, "hum", 40);
    f.append("acme", "dev-2", t0, "temp", -5);
    f.store->flush();

    const std::string base = "/api/v1/devices/dev-1/telemetry?metric=temp&from=" + std::to_string(t0) +
                             "&to=" + std::to_string(t0 + 99'000);
    auto raw = f.send(verb::get, base, f.a_admin);
    REQUIRE_MESSAGE(raw.status == http::status::ok, raw.body);
    auto b = body_of(raw);
    CHECK(str(b.at("device")) == "dev-1");
    CHECK(str(b.at("metric")) == "temp");
    const auto& points = b.at("points").as_array();
    REQUIRE(points.size() == 100);
    for (int i = 0; i < 100; ++i) {
        CHECK(points[i].at("ts").to_number<std::int64_t>() == t0 + i * 1000);
        CHECK(points[i].at("value").to_number<double>() == doctest::Approx(i));
        CHECK_FALSE(points[i].as_object().contains("min"));
    }

    auto down = f.send(verb::get, base + "&max_points=10", f.a_admin);
    REQUIRE_MESSAGE(down.status == http::status::ok, down.body);
    b = body_of(down);
    const auto& buckets = b.at("points").as_array();
    REQUIRE(!buckets.empty());
    CHECK(buckets.size() <= 10);
    std::uint64_t total = 0;
    double lowest = 1e9, highest = -1e9;
    for (const auto& p : buckets) {
        const auto mean = p.at("value").to_number<double>();
        const auto lo = p.at("min").to_number<double>();
        const auto hi = p.at("max").to_number<double>();
        CHECK(lo <= mean);
        CHECK(mean <= hi);
        // Consecutive values: a bucket's mean is the middle of its min and max.
        CHECK(mean == doctest::Approx((lo + hi) / 2));
        total += p.at("count").to_number<std::uint64_t>();
        lowest = std::min(lowest, lo);
        highest = std::max(highest, hi);
    }
    CHECK(total == 100);
    CHECK(lowest == 0);
    CHECK(highest == 99);
    CHECK(b.at("bucket_ms").to_number<std::int64_t>() > 0);

    // max_points is clamped to 2..10000, not refused.
    auto tiny = f.send(verb::get, base + "&max_points=0", f.a_admin);
    REQUIRE_MESSAGE(tiny.status == http::status::ok, tiny.body);
    CHECK(body_of(tiny).at("points").as_array().size() <= 2);
    CHECK(f.send(verb::get, base + "&max_points=99999999", f.a_admin).status == http::status::ok);

    // A window inside the data.
    auto part = f.send(verb::get, "/api/v1/devices/dev-1/telemetry?metric=temp&from=" + std::to_string(t0 + 10'000) +
                                      "&to=" + std::to_string(t0 + 19'000),
                       f.a_admin);
    REQUIRE(part.status == http::status::ok);
    CHECK(body_of(part).at("points").as_array().size() == 10);

    // Defaults: the last 24 hours up to now hold nothing of 2023.
    auto recent = f.send(verb::get, "/api/v1/devices/dev-1/telemetry?metric=temp", f.a_admin);
    REQUIRE(recent.status == http::status::ok);
    CHECK(body_of(recent).at("points").as_array().empty());

    auto unknown_metric = f.send(verb::get, "/api/v1/devices/dev-1/telemetry?metric=nope&from=0&to=" +
                                                std::to_string(t0 + 200'000),
                                 f.a_admin);
    REQUIRE(unknown_metric.status == http::status::ok);
    CHECK(body_of(unknown_metric).at("points").as_array().empty());

    auto latest = f.send(verb::get, "/api/v1/devices/dev-1/telemetry/latest", f.a_admin);
    REQUIRE_MESSAGE(latest.status == http::status::ok, latest.body);
    b = body_of(latest);
    CHECK(str(b.at("device")) == "dev-1");
    CHECK(b.at("metrics").at("temp").at("value").to_number<double>() == 99);
    CHECK(b.at("metrics").at("temp").at("ts").to_number<std::int64_t>() == t0 + 99'000);
    CHECK(b.at("metrics").at("hum").at("value").to_number<double>() == 40);
    CHECK(b.at("metrics").as_object().size() == 2);

    auto metrics = f.send(verb::get, "/api/v1/devices/dev-1/metrics", f.a_admin);
    REQUIRE(metrics.status == http::status::ok);
    CHECK(body_of(metrics).at("metrics") == json::parse(R"(["hum", "temp"])"));

    // A known device without data.
    f.create_device(f.a_admin, "dev-3");
    auto empty = f.send(verb::get, "/api/v1/devices/dev-3/telemetry/latest", f.a_admin);
    REQUIRE(empty.status == http::status::ok);
    CHECK(body_of(empty).at("metrics").as_object().empty());

    // Another tenant sees none of it (404, as for an unknown device).
    CHECK(f.send(verb::get, base, f.b_admin).status == http::status::not_found);
    CHECK(f.send(verb::get, "/api/v1/devices/dev-1/telemetry/latest", f.b_admin).status == http::status::not_found);
    CHECK(f.send(verb::get, "/api/v1/devices/dev-1/metrics", f.b_admin).status == http::status::not_found);
}

// ---- tokens -----------------------------------------------------------------

TEST_CASE("tokens: create shows the token once; list shows neither token nor hash; revoke tells the hooks") {
    fixture f;
    const auto in_a_day = pulsegate::webui::detail::now_ms() + 86'400'000;
    auto res = f.send(verb::post, "/api/v1/tokens", f.a_admin,
                      json::object{{"name", "CI"}, {"expires_at", in_a_day}});
    REQUIRE_MESSAGE(res.status == http::status::created, res.body);
    auto b = body_of(res).as_object();
    const auto token = str(b.at("token"));
    const auto id = str(b.at("id"));
    auto parts = engine::parse_api_token(token);
    REQUIRE(parts);
    CHECK(parts->public_id == id);
    CHECK(str(b.at("name")) == "CI");
    CHECK(str(b.at("expires_at")) == pulsegate::webui::detail::rfc3339(in_a_day));

    auto stored = state::api_token_repository(*f.db).get(std::string("acme"), id).value();
    REQUIRE(stored);
    CHECK(stored->token_hash == engine::credential_digest(f.key, token));
    CHECK(stored->expires_at_ms == in_a_day);

    // The new token works.
    credentials ci{token, {}, {}};
    CHECK(f.send(verb::get, "/api/v1/devices", ci).status == http::status::ok);

    auto rfc = f.send(verb::post, "/api/v1/tokens", f.a_admin,
                      json::object{{"name", "until 2999"}, {"expires_at", "2999-01-02T03:04:05.678+01:00"}});
    REQUIRE_MESSAGE(rfc.status == http::status::created, rfc.body);
    CHECK(str(body_of(rfc).at("expires_at")) == "2999-01-02T02:04:05.678Z");
    auto forever = f.send(verb::post, "/api/v1/tokens", f.a_admin, json::object{{"name", "forever"}});
    REQUIRE(forever.status == http::status::created);
    CHECK(body_of(forever).at("expires_at").is_null());

    auto list = f.send(verb::get, "/api/v1/tokens", f.a_admin);
    REQUIRE(list.status == http::status::ok);
    CHECK(list.body.find(token) == std::string::npos);
    CHECK(list.body.find(stored->token_hash) == std::string::npos);
    std::set<std::string> names;
    const auto listed = body_of(list);
    for (const auto& t : listed.at("items").as_array()) {
        names.insert(str(t.at("name")));
        CHECK_FALSE(t.as_object().contains("token"));
        CHECK(t.as_object().contains("last_used_at"));
        CHECK(t.as_object().contains("created_at"));
    }
    CHECK(names == std::set<std::string>{"fixture token", "CI", "until 2999", "forever"});
    // B lists only its own.
    CHECK(body_of(f.send(verb::get, "/api/v1/tokens", f.b_admin)).at("items").as_array().size() == 1);

    // B cannot revoke A's token: 404 and the token still works.
    f.hooks.take();
    auto theirs = f.send(verb::delete_, "/api/v1/tokens/" + id, f.b_admin);
    CHECK(theirs.status == http::status::not_found);
    CHECK(f.send(verb::get, "/api/v1/devices", ci).status == http::status::ok);
    CHECK(f.hooks.take().empty());

    auto revoked = f.send(verb::delete_, "/api/v1/tokens/" + id, f.a_admin);
    CHECK(revoked.status == http::status::no_content);
    CHECK(f.hooks.take() == std::vector<std::string>{"token acme/" + id});
    CHECK(f.send(verb::get, "/api/v1/devices", ci).status == http::status::unauthorized);
    CHECK(f.send(verb::delete_, "/api/v1/tokens/" + id, f.a_admin).status == http::status::not_found);
}

TEST_CASE("tokens: bad input names the field; pagination walks every token") {
    fixture f;
    struct bad {
        std::string body;
        std::string field;
    };
    const std::vector<bad> cases{
        {R"({})", "name"},
        {R"({"name": ""})", "name"},
        {R"({"name": 3})", "name"},
        {R"({"name": "x", "expires_at": 1000})", "expires_at"},
        {R"({"name": "x", "expires_at": "2001-01-01T00:00:00Z"})", "expires_at"},
        {R"({"name": "x", "expires_at": "tomorrow"})", "expires_at"},
        {R"({"name": "x", "expires_at": "2999-02-30T00:00:00Z"})", "expires_at"},
        {R"({"name": "x", "expires_at": "2999-01-01T00:00:00"})", "expires_at"},
        {R"({"name": "x", "expires_at": true})", "expires_at"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.body);
        auto res = f.send(verb::post, "/api/v1/tokens", f.a_admin, c.body);
        CHECK(res.status == http::status::bad_request);
        CHECK(error_field_of(res) == c.field);
    }
    CHECK(f.send(verb::delete_, "/api/v1/tokens/NOT-A-TOKEN-ID", f.a_admin).status == http::status::bad_request);
    CHECK(f.send(verb::get, "/api/v1/tokens?cursor=abc", f.a_admin).status == http::status::bad_request);

    for (int i = 0; i < 6; ++i)
        REQUIRE(f.send(verb::post, "/api/v1/tokens", f.a_admin, json::object{{"name", "t" + std::to_string(i)}})
                    .status == http::status::created);
    int pages = 0;
    auto all = walk(f, "/api/v1/tokens", f.a_admin, 3, &pages);
    CHECK(pages == 3); // 7 tokens: the fixture's and six
    std::vector<std::string> names;
    for (const auto& t : all) names.push_back(str(t.at("name")));
    CHECK(names == std::vector<std::string>{"fixture token", "t0", "t1", "t2", "t3", "t4", "t5"});
}

// ---- operator routes --------------------------------------------------------

TEST_CASE("operator: every route appends its audit entry, with actor, tenant and remote address") {
    fixture f;
    f.create_device(f.a_admin, "dev-1");
    const auto op_id = engine::parse_api_token(f.op_reader.token)->public_id;
    const auto before = f.audit().size();

    auto res = f.send(verb::get, "/api/v1/operator/devices?tenant=acme", f.op_reader);
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    const auto res_body = body_of(res);
    const auto& items = res_body.at("items").as_array();
    REQUIRE(items.size() == 1);
    CHECK(str(items[0].at("tenant")) == "acme");
    CHECK(str(items[0].at("id")) == "dev-1");

    auto entries = f.audit();
    REQUIRE(entries.size() == before + 1);
    const auto& e = entries.front(); // newest first
    CHECK(e.actor == "token:" + op_id);
    CHECK(e.action == "device.list");
    CHECK(e.tenant == std::optional<std::string>("acme"));
    const auto details = json::parse(e.details_json);
    CHECK(str(details.at("remote")) == "192.0.2.10");
    CHECK(str(details.at("query").at("tenant")) == "acme");

    // Each read route writes one entry, even when its input is bad.
    const std::vector<std::pair<std::string, std::string>> reads{
        {"/api/v1/operator/tenants", "tenant.list"},
        {"/api/v1/operator/tenants/acme", "tenant.get"},
        {"/api/v1/operator/users", "user.list"},
        {"/api/v1/operator/users/victor", "user.get"},
        {"/api/v1/operator/devices?tenant=Not%20valid", "device.list"},
        {"/api/v1/operator/audit?tenant=acme", "audit.list"},
        {"/api/v1/operator/rejected", "rejected.list"},
    };
    for (const auto& [path, action] : reads) {
        CAPTURE(path);
        const auto n = f.audit().size();
        f.send(verb::get, path, f.op_reader);
        auto now = f.audit();
        REQUIRE(now.size() == n + 1);
        CHECK(now.front().action == action);
    }

    // A tenant user is refused before anything happens: 403, no entry.
    const auto n = f.audit().size();
    for (const auto& [path, action] : reads) {
        CAPTURE(path);
        CHECK(f.send(verb::get, path, f.a_admin).status == http::status::forbidden);
    }
    CHECK(f.send(verb::post, "/api/v1/operator/tenants", f.a_admin, R"({"id": "evil"})").status ==
          http::status::forbidden);
    CHECK(f.audit().size() == n);
    CHECK_FALSE(state::tenant_repository(*f.db).get("evil").value().has_value());
    // An operator token reads only.
    CHECK(f.send(verb::post, "/api/v1/operator/tenants", f.op_reader, R"({"id": "evil"})").status ==
          http::status::forbidden);
    CHECK_FALSE(state::tenant_repository(*f.db).get("evil").value().has_value());
}

TEST_CASE("operator: without an audit entry nothing is read or written (503)") {
    fixture f;
    f.create_device(f.a_admin, "dev-1");
    const auto admin = f.login("admin");
    // The routes get a read-only handle on the same file: reads would
    // work, but the audit append cannot.
    auto ro = state::database::open({.file = f.dir.path / "state.db", .mode = state::open_mode::read_only});
    REQUIRE(ro);
    REQUIRE(state::tenant_repository(**ro).list().value().size() == 2); // it can read
    router r2;
    add_operator_routes(r2, *f.a, {ro->get(), f.store.get(), &f.key, &f.hooks});
    const auto before = f.audit().size();

    auto dispatch = [&](verb m, std::string target, const credentials& who, std::string body = {}) {
        http::fields headers;
        if (!who.token.empty()) headers.set(http::field::authorization, "Bearer " + who.token);
        if (!who.cookie.empty()) headers.set(http::field::cookie, "pulsegate_session=" + who.cookie);
        if (!who.csrf.empty()) headers.set("X-CSRF-Token", who.csrf);
        request_context ctx;
        ctx.method = m;
        ctx.target = target;
        ctx.path = std::string_view(target).substr(0, target.find('?'));
        ctx.headers = &headers;
        ctx.body = body;
        return r2.dispatch(ctx);
    };
    for (const auto* path : {"/api/v1/operator/tenants", "/api/v1/operator/users", "/api/v1/operator/devices",
                             "/api/v1/operator/audit", "/api/v1/operator/rejected", "/api/v1/operator/tenants/acme"}) {
        CAPTURE(path);
        auto res = dispatch(verb::get, path, f.op_reader);
        CHECK(res.status == http::status::service_unavailable);
        CHECK(error_code_of(res) == "unavailable");
        CHECK(res.body.find("audit log cannot be written") != std::string::npos);
        CHECK(res.body.find("dev-1") == std::string::npos);
        CHECK(res.body.find("acme") == std::string::npos);
    }
    auto created = dispatch(verb::post, "/api/v1/operator/tenants", admin, R"({"id": "new-one"})");
    CHECK(created.status == http::status::service_unavailable);
    auto removed = dispatch(verb::delete_, "/api/v1/operator/users/victor", admin);
    CHECK(removed.status == http::status::service_unavailable);
    CHECK(f.audit().size() == before);
    CHECK_FALSE(state::tenant_repository(*f.db).get("new-one").value().has_value());
    CHECK(state::user_repository(*f.db).get_by_name("victor").value().has_value());
    CHECK(f.hooks.take().empty());
}

TEST_CASE("operator: tenants are created, listed, renamed, disabled and deleted") {
    fixture f;
    const auto admin = f.login("admin");
    f.hooks.take();

    auto created = f.send(verb::post, "/api/v1/operator/tenants", admin,
                          json::object{{"id", "initech"}, {"name", "Initech"}});
    REQUIRE_MESSAGE(created.status == http::status::created, created.body);
    CHECK(str(body_of(created).at("id")) == "initech");
    CHECK(body_of(created).at("disabled") == false);
    CHECK(f.audit().front().action == "tenant.create");
    CHECK(f.audit().front().target == "tenant:initech");
    CHECK(f.audit().front().tenant == std::optional<std::string>("initech"));
    CHECK(f.send(verb::post, "/api/v1/operator/tenants", admin, json::object{{"id", "initech"}}).status ==
          http::status::conflict);
    auto bad = f.send(verb::post, "/api/v1/operator/tenants", admin, json::object{{"id", "In Itech"}});
    CHECK(bad.status == http::status::bad_request);
    CHECK(error_field_of(bad) == "id");
    bad = f.send(verb::post, "/api/v1/operator/tenants", admin, json::object{{"id", "x"}, {"name", ""}});
    CHECK(error_field_of(bad) == "name");

    int pages = 0;
    auto all = walk(f, "/api/v1/operator/tenants", admin, 2, &pages);
    std::vector<std::string> ids;
    for (const auto& t : all) ids.push_back(str(t.at("id")));
    CHECK(ids == std::vector<std::string>{"acme", "globex", "initech"});
    CHECK(pages == 2);

    auto patched = f.send(verb::patch, "/api/v1/operator/tenants/initech", admin,
                          json::object{{"name", "Initech Corp"}, {"disabled", true}});
    REQUIRE_MESSAGE(patched.status == http::status::ok, patched.body);
    CHECK(str(body_of(patched).at("name")) == "Initech Corp");
    CHECK(body_of(patched).at("disabled") == true);
    CHECK(f.hooks.take() == std::vector<std::string>{"tenant initech"});
    CHECK(f.send(verb::patch, "/api/v1/operator/tenants/nope", admin, R"({"disabled": true})").status ==
          http::status::not_found);

    // acme has a device and a user: refused, naming them; cascade removes all.
    f.create_device(f.a_admin, "dev-1");
    auto refused = f.send(verb::delete_, "/api/v1/operator/tenants/acme", admin);
    CHECK(refused.status == http::status::conflict);
    const auto message = str(body_of(refused).at("error").at("message"));
    CHECK(message.find("1 device and 1 user") != std::string::npos);
    CHECK(message.find("cascade=true") != std::string::npos);
    CHECK(state::tenant_repository(*f.db).get("acme").value().has_value());
    CHECK(f.hooks.take().empty());

    auto gone = f.send(verb::delete_, "/api/v1/operator/tenants/acme?cascade=true", admin);
    CHECK(gone.status == http::status::no_content);
    CHECK(f.hooks.take() == std::vector<std::string>{"tenant acme", "user victor"});
    CHECK_FALSE(state::tenant_repository(*f.db).get("acme").value().has_value());
    CHECK_FALSE(state::device_repository(*f.db).get("acme", "dev-1").value().has_value());
    // acme's token went with it.
    CHECK(f.send(verb::get, "/api/v1/devices", f.a_admin).status == http::status::unauthorized);
    // The audit log keeps the history.
    CHECK(f.audit().front().action == "tenant.delete");
    CHECK(f.audit().front().tenant == std::optional<std::string>("acme"));

    // An empty tenant goes without cascade.
    CHECK(f.send(verb::delete_, "/api/v1/operator/tenants/initech", admin).status == http::status::no_content);
    CHECK(f.send(verb::delete_, "/api/v1/operator/tenants/initech", admin).status == http::status::not_found);
}

TEST_CASE("operator: users are created, listed, changed and deleted; passwords never come back") {
    fixture f;
    const auto admin = f.login("admin");
    f.hooks.take();

    struct bad {
        std::string body;
        std::string field;
    };
    const std::vector<bad> cases{
        {R"({"password": "long enough", "role": "tenant_admin", "tenant": "acme"})", "username"},
        {R"({"username": "a/b", "password": "long enough", "role": "tenant_admin", "tenant": "acme"})", "username"},
        {R"({"username": "bob", "password": "short", "role": "tenant_admin", "tenant": "acme"})", "password"},
        {R"({"username": "bob", "password": "long enough", "role": "boss", "tenant": "acme"})", "role"},
        {R"({"username": "bob", "password": "long enough", "role": "tenant_admin"})", "tenant"},
        {R"({"username": "bob", "password": "long enough", "role": "operator", "tenant": "acme"})", "tenant"},
        {R"({"username": "bob", "password": "long enough", "role": "tenant_admin", "tenant": "nowhere"})", "tenant"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.body);
        auto res = f.send(verb::post, "/api/v1/operator/users", admin, c.body);
        CHECK(res.status == http::status::bad_request);
        CHECK(error_field_of(res) == c.field);
        CHECK(f.audit().front().action == "user.create");
        CHECK(f.audit().front().details_json.find("long enough") == std::string::npos);
    }
    CHECK_FALSE(state::user_repository(*f.db).get_by_name("bob").value().has_value());

    auto created = f.send(verb::post, "/api/v1/operator/users", admin,
                          json::object{{"username", "bob"}, {"password", "bob's password"},
                                                   {"role", "tenant_admin"}, {"tenant", "globex"}});
    REQUIRE_MESSAGE(created.status == http::status::created, created.body);
    auto b = body_of(created).as_object();
    CHECK(str(b.at("username")) == "bob");
    CHECK(str(b.at("role")) == "tenant_admin");
    CHECK(str(b.at("tenant")) == "globex");
    CHECK(b.at("disabled") == false);
    CHECK(b.at("last_login_at").is_null());
    CHECK_FALSE(b.contains("password"));
    CHECK(created.body.find("argon2") == std::string::npos);
    auto stored = state::user_repository(*f.db).get_by_name("bob").value();
    REQUIRE(stored);
    CHECK(engine::verify_password(stored->password_hash, "bob's password"));
    CHECK(f.audit().front().details_json.find("bob's password") == std::string::npos);
    CHECK(f.send(verb::post, "/api/v1/operator/users", admin,
                 json::object{{"username", "bob"}, {"password", "other password"}, {"role", "operator"}})
              .status == http::status::conflict);

    auto list = f.send(verb::get, "/api/v1/operator/users", admin);
    REQUIRE(list.status == http::status::ok);
    CHECK(list.body.find("argon2") == std::string::npos);
    std::vector<std::string> names;
    for (const auto& u : walk(f, "/api/v1/operator/users", admin, 2)) names.push_back(str(u.at("username")));
    CHECK(names == std::vector<std::string>{"admin", "bob", "victor"});
    names.clear();
    for (const auto& u : walk(f, "/api/v1/operator/users?tenant=acme", admin, 2)) names.push_back(str(u.at("username")));
    CHECK(names == std::vector<std::string>{"victor"});
    auto admin_json = body_of(f.send(verb::get, "/api/v1/operator/users/admin", admin));
    CHECK(admin_json.at("tenant").is_null());
    CHECK_FALSE(admin_json.at("last_login_at").is_null());

    auto disabled = f.send(verb::patch, "/api/v1/operator/users/bob", admin, R"({"disabled": true})");
    REQUIRE_MESSAGE(disabled.status == http::status::ok, disabled.body);
    CHECK(body_of(disabled).at("disabled") == true);
    CHECK(f.hooks.take() == std::vector<std::string>{"user bob"});
    auto repassed = f.send(verb::patch, "/api/v1/operator/users/bob", admin, R"({"password": "a new password"})");
    REQUIRE(repassed.status == http::status::ok);
    CHECK(f.hooks.take() == std::vector<std::string>{"user bob"});
    CHECK(engine::verify_password(state::user_repository(*f.db).get_by_name("bob").value()->password_hash,
                                  "a new password"));
    CHECK(f.audit().front().details_json.find("a new password") == std::string::npos);
    auto short_pw = f.send(verb::patch, "/api/v1/operator/users/bob", admin, R"({"password": "x"})");
    CHECK(error_field_of(short_pw) == "password");
    CHECK(f.send(verb::patch, "/api/v1/operator/users/nobody", admin, R"({"disabled": true})").status ==
          http::status::not_found);

    // The last enabled operator_admin stays.
    auto last = f.send(verb::patch, "/api/v1/operator/users/admin", admin, R"({"disabled": true})");
    CHECK(last.status == http::status::conflict);
    CHECK(f.send(verb::delete_, "/api/v1/operator/users/admin", admin).status == http::status::conflict);
    CHECK_FALSE(state::user_repository(*f.db).get_by_name("admin").value()->disabled);

    CHECK(f.send(verb::delete_, "/api/v1/operator/users/bob", admin).status == http::status::no_content);
    CHECK(f.hooks.take() == std::vector<std::string>{"user bob"});
    CHECK(f.send(verb::delete_, "/api/v1/operator/users/bob", admin).status == http::status::not_found);
    CHECK(f.audit().front().action == "user.delete");
    CHECK(f.audit().front().target == "user:bob");
}

TEST_CASE("operator: devices of every tenant, the audit log and rejected events page with their cursors") {
    fixture f;
    for (const auto* id : {"a1", "a2", "a3"}) f.create_device(f.a_admin, id);
    for (const auto* id : {"b1", "b2"}) f.create_device(f.b_admin, id);
    std::vector<state::rejected_event> events;
    for (int i = 0; i < 5; ++i)
        events.push_back({0, 1000 + i, i % 2 == 0 ? std::optional<std::string>("acme") : std::optional<std::string>("globex"),
                          "acme/a1", "publish", "t/x/" + std::to_string(i), "not authorized"});
    REQUIRE(state::rejected_event_repository(*f.db).append(events));

    std::vector<std::string> seen;
    for (const auto& d : walk(f, "/api/v1/operator/devices", f.op_reader, 2))
        seen.push_back(str(d.at("tenant")) + "/" + str(d.at("id")));
    CHECK(seen == std::vector<std::string>{"acme/a1", "acme/a2", "acme/a3", "globex/b1", "globex/b2"});
    seen.clear();
    for (const auto& d : walk(f, "/api/v1/operator/devices?tenant=globex", f.op_reader, 1))
        seen.push_back(str(d.at("id")));
    CHECK(seen == std::vector<std::string>{"b1", "b2"});

    auto rejected = walk(f, "/api/v1/operator/rejected", f.op_reader, 2);
    REQUIRE(rejected.size() == 5);
    CHECK(str(rejected[0].at("topic")) == "t/x/4"); // newest first
    CHECK(str(rejected[4].at("topic")) == "t/x/0");
    CHECK(walk(f, "/api/v1/operator/rejected?tenant=acme", f.op_reader, 2).size() == 3);

    // The audit log: every walk above wrote one entry per page; filters.
    const auto total = f.audit().size();
    auto entries = walk(f, "/api/v1/operator/audit", f.op_reader, 3);
    CHECK(entries.size() == total + 1); // the first page's own entry; later pages' are newer than their cursor
    std::set<std::int64_t> ids;
    for (const auto& e : entries) ids.insert(e.at("id").as_int64());
    CHECK(ids.size() == entries.size()); // no entry twice
    CHECK(str(entries.back().at("at")).ends_with("Z"));
    CHECK(entries.front().at("details").is_object());
    auto only = walk(f, "/api/v1/operator/audit?tenant=globex", f.op_reader, 50);
    REQUIRE_FALSE(only.empty());
    for (const auto& e : only) CHECK(str(e.at("tenant")) == "globex");
    const auto actor = "token:" + engine::parse_api_token(f.op_reader.token)->public_id;
    auto by_actor = walk(f, "/api/v1/operator/audit?actor=" + actor, f.op_reader, 1000);
    CHECK(by_actor.size() == f.audit().size()); // every entry is this token's
    CHECK(walk(f, "/api/v1/operator/audit?actor=user:nobody", f.op_reader, 10).empty());
    CHECK(f.send(verb::get, "/api/v1/operator/audit?cursor=x", f.op_reader).status == http::status::bad_request);
    CHECK(f.send(verb::get, "/api/v1/operator/devices?cursor=x", f.op_reader).status == http::status::bad_request);
}

TEST_CASE("RFC 3339 times format and parse both ways") {
    using pulsegate::webui::detail::parse_rfc3339;
    using pulsegate::webui::detail::rfc3339;
    CHECK(rfc3339(0) == "1970-01-01T00:00:00.000Z");
    CHECK(rfc3339(1'795'435'200'123) == "2026-11-23T12:00:00.123Z");
    CHECK(rfc3339(951'782'400'000) == "2000-02-29T00:00:00.000Z");
    CHECK(parse_rfc3339("2026-11-23T12:00:00.123Z") == 1'795'435'200'123);
    CHECK(parse_rfc3339("2026-11-23t13:30:00.1234+01:30") == 1'795'435'200'123);
    CHECK(parse_rfc3339("2000-02-29T00:00:00Z") == 951'782'400'000);
    CHECK_FALSE(parse_rfc3339("2001-02-29T00:00:00Z"));
    CHECK_FALSE(parse_rfc3339("2026-11-22T12:00:00"));
    CHECK_FALSE(parse_rfc3339("2026-11-22 12:00:00Z"));
    CHECK_FALSE(parse_rfc3339("2026-11-22T12:00:00.Z"));
    CHECK_FALSE(parse_rfc3339("2026-11-22T24:00:00Z"));
    CHECK_FALSE(parse_rfc3339("2026-11-22T12:00:00Zjunk"));
    CHECK_FALSE(parse_rfc3339(""));
}
