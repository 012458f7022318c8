// The REST auth layer (webui/auth.hpp): login and its cookie, the failed-login
// throttle (per user name, per address, fail closed when full), session
// cookies with CSRF, Bearer API tokens, roles against route requirements,
// idle and absolute expiry, logout, /auth/me, disabled users and tenants,
// and 503 when the database fails. In process: a real SQLite state database
// in a temporary directory, requests built by hand, an injected clock.
//
// argon2 runs cost about a tenth of a second each: every user shares one
// password hash, made once, and only logins that reach the password check
// pay for a verification.

#include "webui/auth.hpp"

#include "storage/state/api_token_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"
#include "storage/state/web_session_repository.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "test/temp_dir.hpp"
#include <sqlite3.h>

#include <atomic>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
namespace json = boost::json;
namespace state = pulsegate::storage::state;
namespace engine = pulsegate::engine;
using namespace pulsegate::webui;
using pulsegate::test::temp_dir;

// A failed REQUIRE(result) prints the error's message.
template <class T>
struct doctest::StringMaker<boost::system::result<T, state::state_error>> {
    static doctest::String convert(const boost::system::result<T, state::state_error>& r) {
        return r ? "(a value)" : ("error: " + r.error().message).c_str();
    }
};

template <>
struct doctest::StringMaker<boost::system::result<caller, api_error>> {
    static doctest::String convert(const boost::system::result<caller, api_error>& r) {
        return r ? ("caller " + r->actor()).c_str() : ("error: " + r.error().message).c_str();
    }
};

namespace {

constexpr std::string_view password = "correct horse battery";
constexpr std::int64_t start_ms = 1'700'000'000'000;
constexpr std::int64_t minute_ms = 60'000;

const std::string& password_hash() {
    static const std::string h = engine::hash_password(password);
    return h;
}

// Direct SQLite access, for what no repository offers (disabling a user or
// a tenant, breaking the schema).
void raw_exec(const fs::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

struct request {
    http::verb method = http::verb::get;
    std::string path{};
    std::string body{};
    http::fields headers{};
    std::string remote = "192.0.2.10";
};

struct session {
    std::string cookie; // the value of pulsegate_session
    std::string csrf;
};

json::value body_of(const response& r) { return json::parse(r.body); }

std::string error_code_of(const response& r) {
    return std::string(body_of(r).at("error").at("code").as_string());
}
std::string error_message_of(const response& r) {
    return std::string(body_of(r).at("error").at("message").as_string());
}

// What a guarded test route saw of its caller.
response echo_caller(const caller& c, const request_context&) {
    json::object o;
    o["name"] = c.name;
    o["role"] = state::to_string(c.role);
    o["tenant"] = c.tenant ? json::value(*c.tenant) : json::value(nullptr);
    o["via"] = c.via == caller::method::session ? "session" : "token";
    o["remote"] = c.remote;
    o["actor"] = c.actor();
    return json_response(o);
}

struct fixture {
    temp_dir dir;
    std::unique_ptr<state::database> db;
    engine::server_key key{};
    std::shared_ptr<std::atomic<std::int64_t>> clock = std::make_shared<std::atomic<std::int64_t>>(start_ms);
    std::unique_ptr<auth> a;
    router r;
    std::int64_t alice_id = 0;

    explicit fixture(auth_options opts = {}) {
        auto opened = state::database::open({.file = dir.path / "state.db"});
        REQUIRE_MESSAGE(opened.has_value(), (opened ? "" : opened.error().message));
        db = std::move(*opened);
        for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>(i * 7 + 1);

        state::tenant_repository tenants(*db);
        REQUIRE(tenants.create({"acme", "Acme", 1000, false}));
        REQUIRE(tenants.create({"initech", "Initech", 1000, true})); // disabled
        state::user_repository users(*db);
        REQUIRE(users.create({std::nullopt, "admin", state::user_role::operator_admin, password_hash(), 1000}));
        REQUIRE(users.create({std::nullopt, "op", state::user_role::operator_, password_hash(), 1000}));
        auto alice = users.create({"acme", "alice", state::user_role::tenant_admin, password_hash(), 1000});
        REQUIRE(alice);
        alice_id = *alice;
        REQUIRE(users.create({"acme", "victor", state::user_role::tenant_viewer, password_hash(), 1000}));
        REQUIRE(users.create({"initech", "dave", state::user_role::tenant_admin, password_hash(), 1000}));

        auto c = clock;
        opts.now_ms = [c] { return c->load(); };
        a = std::make_unique<auth>(*db, key, std::move(opts));
        a->add_routes(r);
        r.add(http::verb::get, "/t/read", a->guard(access::tenant_read, echo_caller));
        r.add(http::verb::post, "/t/write", a->guard(access::tenant_write, echo_caller));
        r.add(http::verb::get, "/o/read", a->guard(access::operator_read, echo_caller));
        r.add(http::verb::post, "/o/write", a->guard(access::operator_write, echo_caller));
    }

    void advance(std::int64_t ms) { *clock += ms; }
    std::int64_t now() const { return clock->load(); }

    response send(request q) {
        request_context ctx;
        ctx.method = q.method;
        ctx.target = q.path;
        ctx.path = q.path;
        ctx.headers = &q.headers;
        ctx.body = q.body;
        ctx.remote = {boost::asio::ip::make_address(q.remote), 40000};
        return r.dispatch(ctx);
    }

    response login(std::string_view name, std::string_view pw, std::string remote = "192.0.2.10") {
        request q;
        q.method = http::verb::post;
        q.path = "/api/v1/auth/login";
        q.headers.set(http::field::content_type, "application/json");
        q.body = json::serialize(json::object{{"username", name}, {"password", pw}});
        q.remote = std::move(remote);
        return send(std::move(q));
    }

    session login_ok(std::string_view name) {
        auto res = login(name, password);
        REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
        const auto set = std::string(res.header("Set-Cookie"));
        const std::string prefix = "pulsegate_session=";
        REQUIRE(set.rfind(prefix, 0) == 0);
        session s;
        s.cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
        s.csrf = std::string(body_of(res).at("csrf_token").as_string());
        return s;
    }

    // A request carrying a session cookie (and the CSRF token when given).
    response with_session(http::verb method, std::string path, const session& s, bool csrf = true) {
        request q;
        q.method = method;
        q.path = std::move(path);
        q.headers.set(http::field::cookie, "pulsegate_session=" + s.cookie);
        if (csrf) q.headers.set("X-CSRF-Token", s.csrf);
        return send(std::move(q));
    }

    response with_token(http::verb method, std::string path, std::string_view token) {
        request q;
        q.method = method;
        q.path = std::move(path);
        q.headers.set(http::field::authorization, "Bearer " + std::string(token));
        return send(std::move(q));
    }

    // A new API token; returns its text.
    std::string make_token(std::optional<std::string> tenant, std::optional<std::int64_t> expires_at = {}) {
        const auto parts = engine::generate_api_token();
        state::api_token_repository tokens(*db);
        REQUIRE(tokens.create({std::move(tenant), parts.public_id, "test token",
                               engine::credential_digest(key, parts.text()), expires_at, std::nullopt, 1000}));
        return parts.text();
    }
};

auth_options throttle_options(unsigned per_name, unsigned per_address) {
    auth_options o;
    o.max_failures = per_name;
    o.max_failures_per_address = per_address;
    o.failure_window = std::chrono::seconds(60);
    return o;
}

} // namespace

// ---- login ----------------------------------------------------------------

TEST_CASE("login answers the user and a CSRF token and sets the session cookie") {
    fixture f;
    const auto res = f.login("alice", password);
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    const auto body = body_of(res);
    CHECK(body.at("user") == json::parse(R"({"username": "alice", "role": "tenant_admin", "tenant": "acme"})"));
    const auto csrf = std::string(body.at("csrf_token").as_string());
    CHECK(csrf.size() >= 32);

    const auto set = std::string(res.header("Set-Cookie"));
    CAPTURE(set);
    const std::string prefix = "pulsegate_session=";
    REQUIRE(set.rfind(prefix, 0) == 0);
    const auto cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
    CHECK(cookie.size() >= 32);
    CHECK(set.substr(prefix.size() + cookie.size()) == "; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200");

    // Stored under the digest of the cookie, never the cookie itself.
    auto stored = state::web_session_repository(*f.db).get(engine::credential_digest(f.key, cookie), f.now());
    REQUIRE(stored);
    REQUIRE(stored->has_value());
    CHECK((*stored)->user_id == f.alice_id);
    CHECK((*stored)->csrf_token == csrf);
    CHECK((*stored)->remote_addr == "192.0.2.10");
    CHECK((*stored)->expires_at_ms == f.now() + 12 * 3600 * 1000);
    CHECK((*stored)->idle_expires_at_ms == f.now() + 30 * minute_ms);

    auto user = state::user_repository(*f.db).get_by_name("alice");
    REQUIRE(user);
    REQUIRE(user->has_value());
    CHECK((*user)->last_login_at_ms == f.now());

    // Two logins, two sessions.
    const auto again = f.login_ok("alice");
    CHECK(again.cookie != cookie);
    CHECK(again.csrf != csrf);
}

TEST_CASE("an operator logs in with tenant null; Secure is added under TLS") {
    auth_options o;
    o.secure_cookie = true;
    o.session_absolute = std::chrono::seconds(3600);
    fixture f(o);
    const auto res = f.login("admin", password);
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    CHECK(body_of(res).at("user") ==
          json::parse(R"({"username": "admin", "role": "operator_admin", "tenant": null})"));
    const auto set = std::string(res.header("Set-Cookie"));
    CHECK(set.find("; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600; Secure") != std::string::npos);
}

TEST_CASE("wrong password, unknown and impossible user names answer the same 401") {
    fixture f;
    // Capture the log: passwords must never reach it.
    std::ostringstream log;
    const auto previous = spdlog::default_logger();
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
    struct restore {
        std::shared_ptr<spdlog::logger> logger;
        ~restore() { spdlog::set_default_logger(logger); }
    } restore_log{previous};
    const auto expected =
        json::parse(R"({"error": {"code": "unauthorized", "message": "wrong user name or password"}})");
    for (auto [name, pw] : {std::pair<std::string_view, std::string_view>{"alice", "wrong password"},
                            {"mallory", password},
                            {"no/such user", password}}) {
        CAPTURE(name);
        const auto res = f.login(name, pw);
        CHECK(res.status == http::status::unauthorized);
        CHECK(body_of(res) == expected);
        CHECK(res.header("Set-Cookie").empty());
    }
    CHECK(log.str().find("http login failed: user name alice") != std::string::npos);
    CHECK(log.str().find("(invalid name)") != std::string::npos);
    CHECK(log.str().find("no/such user") == std::string::npos);
    CHECK(log.str().find("wrong password") == std::string::npos);
    CHECK(log.str().find(password) == std::string::npos);
}

TEST_CASE("a bad login body answers 400 naming the field, without counting a failure") {
    fixture f(throttle_options(1, 1));
    auto post = [&](std::string body, std::string type = "application/json") {
        request q;
        q.method = http::verb::post;
        q.path = "/api/v1/auth/login";
        q.headers.set(http::field::content_type, type);
        q.body = std::move(body);
        return f.send(std::move(q));
    };
    struct row {
        std::string body;
        std::string field;
    };
    for (const auto& [body, field] : {row{"{", "body"}, row{"[]", "body"}, row{R"({"password": "x"})", "username"},
                                      row{R"({"username": 1, "password": "x"})", "username"},
                                      row{R"({"username": "alice"})", "password"},
                                      row{R"({"username": "alice", "password": null})", "password"}}) {
        CAPTURE(body);
        const auto res = post(body);
        CHECK(res.status == http::status::bad_request);
        CHECK(body_of(res).at("error").at("field") == json::value(field));
    }
    const auto form = post("username=alice&password=x", "application/x-www-form-urlencoded");
    CHECK(form.status == http::status::unsupported_media_type);
    // Nothing was counted: the one allowed attempt is still there.
    CHECK(f.login("alice", password).status == http::status::ok);
}

// ---- throttling -----------------------------------------------------------

TEST_CASE("failed logins are throttled per user name until the window passes") {
    fixture f(throttle_options(3, 100));
    for (int i = 0; i < 3; ++i) CHECK(f.login("alice", "wrong password").status == http::status::unauthorized);

    // At the limit: 429 even with the right password (which is not checked).
    auto res = f.login("alice", password);
    CHECK(res.status == http::status::too_many_requests);
    CHECK(error_code_of(res) == "too_many_requests");
    CHECK(res.header("Retry-After") == "60");
    CHECK(error_message_of(res).find("for this user name") != std::string::npos);
    CHECK(res.header("Set-Cookie").empty());

    // Other names from the same address are not affected.
    CHECK(f.login("victor", password).status == http::status::ok);

    f.advance(30'000);
    res = f.login("alice", password);
    CHECK(res.status == http::status::too_many_requests);
    CHECK(res.header("Retry-After") == "30");

    f.advance(30'000);
    CHECK(f.login("alice", password).status == http::status::ok);
}

TEST_CASE("a successful login resets the user name's failure count") {
    fixture f(throttle_options(3, 100));
    for (int i = 0; i < 2; ++i) CHECK(f.login("alice", "wrong password").status == http::status::unauthorized);
    CHECK(f.login("alice", password).status == http::status::ok);
    for (int i = 0; i < 3; ++i) CHECK(f.login("alice", "wrong password").status == http::status::unauthorized);
    CHECK(f.login("alice", "wrong password").status == http::status::too_many_requests);
}

TEST_CASE("failed logins are throttled per source address, IPv6 per /64") {
    fixture f(throttle_options(100, 2));
    CHECK(f.login("mallory", "x", "10.0.0.1").status == http::status::unauthorized);
    CHECK(f.login("trudy", "x", "10.0.0.1").status == http::status::unauthorized);
    auto res = f.login("alice", password, "10.0.0.1");
    CHECK(res.status == http::status::too_many_requests);
    CHECK(error_message_of(res).find("from this address") != std::string::npos);
    CHECK(res.header("Retry-After") == "60");
    // Another address may log in.
    CHECK(f.login("alice", password, "10.0.0.2").status == http::status::ok);

    CHECK(f.login("mallory", "x", "2001:db8:1:2::1").status == http::status::unauthorized);
    CHECK(f.login("mallory", "x", "2001:db8:1:2::abcd").status == http::status::unauthorized);
    CHECK(f.login("alice", password, "2001:db8:1:2:ffff::9").status == http::status::too_many_requests);
    CHECK(f.login("alice", password, "2001:db8:1:3::1").status == http::status::ok);
}

TEST_CASE("parallel guesses cannot overshoot the limit") {
    // Attempts in flight count against the limit: of 4 concurrent guesses
    // with a limit of 2, exactly 2 reach the password check, whatever the
    // interleaving.
    fixture f(throttle_options(2, 100));
    std::atomic<int> unauthorized{0}, throttled{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&] {
            const auto status = f.login("alice", "wrong password").status;
            if (status == http::status::unauthorized) ++unauthorized;
            if (status == http::status::too_many_requests) ++throttled;
        });
    }
    for (auto& t : threads) t.join();
    CHECK(unauthorized == 2);
    CHECK(throttled == 2);
}

TEST_CASE("the throttle fails closed when it cannot track another key") {
    auto o = throttle_options(5, 100);
    o.max_tracked = 2;
    fixture f(o);
    // Tracks "alice" and the address: the table is full.
    CHECK(f.login("alice", "wrong password").status == http::status::unauthorized);
    // A new name cannot be tracked: refused without checking the password.
    auto res = f.login("victor", password);
    CHECK(res.status == http::status::too_many_requests);
    CHECK(res.header("Retry-After") == "60");
    CHECK(error_message_of(res).find("being tracked") != std::string::npos);
    // Once the window has passed the old keys are evicted.
    f.advance(60'000);
    CHECK(f.login("victor", password).status == http::status::ok);
}

// ---- sessions, CSRF and roles ---------------------------------------------

TEST_CASE("a session cookie authenticates; state-changing requests need the CSRF token") {
    fixture f;
    const auto s = f.login_ok("alice");

    auto res = f.with_session(http::verb::get, "/t/read", s, false); // GET: no CSRF needed
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    CHECK(body_of(res) == json::parse(R"({"name": "alice", "role": "tenant_admin", "tenant": "acme", "via": "session",
                                         "remote": "192.0.2.10", "actor": "user:alice"})"));
    CHECK(f.with_session(http::verb::head, "/t/read", s, false).status == http::status::ok);

    // Several cookies, spaces, another cookie of similar name.
    request q;
    q.path = "/t/read";
    q.headers.set(http::field::cookie, "theme=dark;  pulsegate_session_x=1 ; pulsegate_session=" + s.cookie + "; b=2");
    CHECK(f.send(std::move(q)).status == http::status::ok);

    res = f.with_session(http::verb::post, "/t/write", s, false);
    CHECK(res.status == http::status::forbidden);
    CHECK(error_message_of(res).find("missing or wrong X-CSRF-Token") == 0);

    session wrong = s;
    wrong.csrf[0] = wrong.csrf[0] == 'a' ? 'b' : 'a';
    CHECK(f.with_session(http::verb::post, "/t/write", wrong).status == http::status::forbidden);
    wrong.csrf = s.csrf + "x";
    CHECK(f.with_session(http::verb::post, "/t/write", wrong).status == http::status::forbidden);

    CHECK(f.with_session(http::verb::post, "/t/write", s).status == http::status::ok);

    // check() directly.
    request_context ctx;
    ctx.method = http::verb::post;
    http::fields h;
    h.set(http::field::cookie, "pulsegate_session=" + s.cookie);
    h.set("x-csrf-token", s.csrf);
    ctx.headers = &h;
    auto who = f.a->check(ctx, access::tenant_write);
    REQUIRE(who);
    CHECK(who->user_id == f.alice_id);
    CHECK(who->tenant == "acme");
}

TEST_CASE("no, unknown or malformed credentials answer 401") {
    fixture f;
    auto res = f.send({.path = "/t/read"});
    CHECK(res.status == http::status::unauthorized);
    CHECK(error_code_of(res) == "unauthorized");
    CHECK(error_message_of(res).find("log in") != std::string::npos);
    CHECK(error_message_of(res).find("Bearer") != std::string::npos);

    for (const std::string& cookie : {std::string("pulsegate_session="), std::string("pulsegate_session=abc"),
                                      "pulsegate_session=" + std::string(32, 'a'), std::string("other=1")}) {
        CAPTURE(cookie);
        request q;
        q.path = "/t/read";
        q.headers.set(http::field::cookie, cookie);
        CHECK(f.send(std::move(q)).status == http::status::unauthorized);
    }
    // A scheme other than Bearer is not ours.
    request q;
    q.path = "/t/read";
    q.headers.set(http::field::authorization, "Basic YWxpY2U6eA==");
    CHECK(f.send(std::move(q)).status == http::status::unauthorized);
}

TEST_CASE("roles against route requirements") {
    fixture f;
    const auto viewer = f.login_ok("victor");
    CHECK(f.with_session(http::verb::get, "/t/read", viewer).status == http::status::ok);
    auto res = f.with_session(http::verb::post, "/t/write", viewer);
    CHECK(res.status == http::status::forbidden);
    CHECK(error_message_of(res).find("tenant_viewer") != std::string::npos);
    CHECK(f.with_session(http::verb::get, "/o/read", viewer).status == http::status::forbidden);

    const auto op = f.login_ok("op");
    res = f.with_session(http::verb::get, "/t/read", op);
    CHECK(res.status == http::status::forbidden);
    CHECK(error_message_of(res).find("/api/v1/operator/") != std::string::npos);
    CHECK(f.with_session(http::verb::get, "/o/read", op).status == http::status::ok);
    res = f.with_session(http::verb::post, "/o/write", op);
    CHECK(res.status == http::status::forbidden);
    CHECK(error_message_of(res).find("operator_admin") != std::string::npos);

    const auto admin = f.login_ok("admin");
    CHECK(f.with_session(http::verb::post, "/o/write", admin).status == http::status::ok);
    CHECK(f.with_session(http::verb::post, "/t/write", admin).status == http::status::forbidden);

    // Tenant tokens act as tenant_admin; operator tokens as operator.
    const auto tenant_token = f.make_token("acme");
    CHECK(f.with_token(http::verb::post, "/t/write", tenant_token).status == http::status::ok);
    res = f.with_token(http::verb::get, "/o/read", tenant_token);
    CHECK(res.status == http::status::forbidden);
    CHECK(error_message_of(res).find("operators only") != std::string::npos);
    const auto operator_token = f.make_token(std::nullopt);
    CHECK(f.with_token(http::verb::get, "/o/read", operator_token).status == http::status::ok);
    CHECK(f.with_token(http::verb::post, "/o/write", operator_token).status == http::status::forbidden);
    CHECK(f.with_token(http::verb::get, "/t/read", operator_token).status == http::status::forbidden);
}

// ---- API tokens -----------------------------------------------------------

TEST_CASE("Bearer tokens: valid, wrong, malformed, expired, revoked") {
    fixture f;
    const auto token = f.make_token("acme");
    const auto public_id = engine::parse_api_token(token)->public_id;

    // No CSRF for tokens, even on POST.
    auto res = f.with_token(http::verb::post, "/t/write", token);
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    CHECK(body_of(res).at("name") == json::value(public_id));
    CHECK(body_of(res).at("role") == "tenant_admin");
    CHECK(body_of(res).at("tenant") == "acme");
    CHECK(body_of(res).at("via") == "token");
    CHECK(body_of(res).at("actor") == json::value("token:" + public_id));

    // Its use is recorded, at most about once a minute.
    state::api_token_repository tokens(*f.db);
    auto row = tokens.find_by_public_id(public_id);
    REQUIRE(row);
    REQUIRE(row->has_value());
    CHECK((*row)->last_used_at_ms == f.now());
    f.advance(1000);
    CHECK(f.with_token(http::verb::get, "/t/read", token).status == http::status::ok);
    CHECK((*tokens.find_by_public_id(public_id))->last_used_at_ms == f.now() - 1000);
    f.advance(minute_ms);
    CHECK(f.with_token(http::verb::get, "/t/read", token).status == http::status::ok);
    CHECK((*tokens.find_by_public_id(public_id))->last_used_at_ms == f.now());

    // The scheme is case-insensitive.
    request q;
    q.path = "/t/read";
    q.headers.set(http::field::authorization, "bearer  " + token);
    CHECK(f.send(std::move(q)).status == http::status::ok);

    std::string wrong_secret = token;
    wrong_secret.back() = wrong_secret.back() == '0' ? '1' : '0';
    const auto unknown = engine::generate_api_token().text();
    for (const auto& bad : {wrong_secret, unknown, std::string("pgt_nope"), std::string()}) {
        CAPTURE(bad);
        res = f.with_token(http::verb::get, "/t/read", bad);
        CHECK(res.status == http::status::unauthorized);
        CHECK(error_message_of(res).find("API token is not valid") != std::string::npos);
    }

    const auto expiring = f.make_token("acme", f.now() + 5000);
    CHECK(f.with_token(http::verb::get, "/t/read", expiring).status == http::status::ok);
    f.advance(5000);
    res = f.with_token(http::verb::get, "/t/read", expiring);
    CHECK(res.status == http::status::unauthorized);
    CHECK(error_message_of(res).find("expired") != std::string::npos);

    REQUIRE(tokens.revoke(std::string("acme"), public_id));
    CHECK(f.with_token(http::verb::get, "/t/read", token).status == http::status::unauthorized);

    // A token of a disabled tenant.
    const auto initech = f.make_token("initech");
    res = f.with_token(http::verb::get, "/t/read", initech);
    CHECK(res.status == http::status::unauthorized);
    CHECK(error_message_of(res).find("tenant initech is disabled") != std::string::npos);
}

TEST_CASE("a Bearer token wins over a session cookie sent with it") {
    fixture f;
    const auto s = f.login_ok("alice");
    const auto op_token = f.make_token(std::nullopt);
    request q;
    q.path = "/o/read";
    q.headers.set(http::field::cookie, "pulsegate_session=" + s.cookie);
    q.headers.set(http::field::authorization, "Bearer " + op_token);
    auto res = f.send(q);
    CHECK(res.status == http::status::ok);
    CHECK(body_of(res).at("via") == "token");

    // An invalid token is not rescued by the cookie.
    q.path = "/t/read";
    q.headers.set(http::field::authorization, "Bearer pgt_invalid");
    CHECK(f.send(q).status == http::status::unauthorized);
}

// ---- expiry, logout, me ---------------------------------------------------

TEST_CASE("sessions end after the idle timeout and at the absolute expiry") {
    auth_options o;
    o.session_idle = std::chrono::minutes(30);
    o.session_absolute = std::chrono::minutes(100);
    fixture f(o);
    const auto s = f.login_ok("alice");

    // Used within the idle timeout, it lives on.
    f.advance(29 * minute_ms);
    CHECK(f.with_session(http::verb::get, "/t/read", s).status == http::status::ok);
    f.advance(29 * minute_ms);
    CHECK(f.with_session(http::verb::get, "/t/read", s).status == http::status::ok);
    // Idle for 30 minutes: gone.
    f.advance(30 * minute_ms);
    auto res = f.with_session(http::verb::get, "/t/read", s);
    CHECK(res.status == http::status::unauthorized);
    CHECK(error_message_of(res).find("log in again") != std::string::npos);

    // However busy, it ends at the absolute expiry.
    const auto busy = f.login_ok("alice");
    for (int i = 0; i < 4; ++i) {
        f.advance(20 * minute_ms);
        CHECK(f.with_session(http::verb::get, "/t/read", busy).status == http::status::ok);
    }
    f.advance(20 * minute_ms); // 100 minutes after login
    CHECK(f.with_session(http::verb::get, "/t/read", busy).status == http::status::unauthorized);
}

TEST_CASE("logout needs the CSRF token, removes the session and expires the cookie") {
    fixture f;
    const auto s = f.login_ok("alice");
    CHECK(f.with_session(http::verb::post, "/api/v1/auth/logout", s, false).status == http::status::forbidden);

    auto res = f.with_session(http::verb::post, "/api/v1/auth/logout", s);
    CHECK(res.status == http::status::no_content);
    CHECK(res.body.empty());
    CHECK(res.header("Set-Cookie") == "pulsegate_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    auto row = state::web_session_repository(*f.db).get(engine::credential_digest(f.key, s.cookie), f.now());
    REQUIRE(row);
    CHECK_FALSE(row->has_value());

    CHECK(f.with_session(http::verb::get, "/t/read", s).status == http::status::unauthorized);
    res = f.with_session(http::verb::post, "/api/v1/auth/logout", s);
    CHECK(res.status == http::status::unauthorized);
    CHECK(f.send({.method = http::verb::post, .path = "/api/v1/auth/logout"}).status ==
          http::status::unauthorized);
}

TEST_CASE("auth/me answers the user and the CSRF token again") {
    fixture f;
    const auto s = f.login_ok("alice");
    auto res = f.with_session(http::verb::get, "/api/v1/auth/me", s, false);
    REQUIRE_MESSAGE(res.status == http::status::ok, res.body);
    CHECK(body_of(res) == json::parse(R"({"user": {"username": "alice", "role": "tenant_admin", "tenant": "acme"},
                                         "csrf_token": ")" + s.csrf + R"("})"));

    const auto token = f.make_token(std::nullopt);
    res = f.with_token(http::verb::get, "/api/v1/auth/me", token);
    REQUIRE(res.status == http::status::ok);
    const auto public_id = engine::parse_api_token(token)->public_id;
    CHECK(body_of(res) == json::parse(R"({"user": {"username": ")" + public_id +
                                      R"(", "role": "operator", "tenant": null}, "csrf_token": null})"));

    CHECK(f.send({.path = "/api/v1/auth/me"}).status == http::status::unauthorized);
}

// ---- disabled users and tenants, database failures ------------------------

TEST_CASE("disabled users and tenants cannot log in and lose their sessions") {
    fixture f;
    auto res = f.login("dave", password); // tenant initech is disabled
    CHECK(res.status == http::status::unauthorized);
    CHECK(error_message_of(res).find("tenant initech is disabled") != std::string::npos);
    CHECK(res.header("Set-Cookie").empty());

    const auto alice = f.login_ok("alice");
    const auto token = f.make_token("acme");
    raw_exec(f.db->file(), "UPDATE tenants SET disabled = 1 WHERE id = 'acme'");
    CHECK(f.with_session(http::verb::get, "/t/read", alice).status == http::status::unauthorized);
    CHECK(f.with_token(http::verb::get, "/t/read", token).status == http::status::unauthorized);

    const auto admin = f.login_ok("admin");
    raw_exec(f.db->file(), "UPDATE users SET disabled = 1 WHERE name = 'admin'");
    res = f.with_session(http::verb::get, "/o/read", admin);
    CHECK(res.status == http::status::unauthorized);
    CHECK(error_message_of(res).find("user admin is disabled") != std::string::npos);
    res = f.login("admin", password);
    CHECK(res.status == http::status::unauthorized);
    CHECK(error_message_of(res).find("disabled") != std::string::npos);
}

TEST_CASE("database errors answer 503 (fail closed)") {
    fixture f;
    const auto token = f.make_token("acme");
    raw_exec(f.db->file(), "DROP TABLE api_tokens");
    auto res = f.with_token(http::verb::get, "/t/read", token);
    CHECK(res.status == http::status::service_unavailable);
    CHECK(error_code_of(res) == "unavailable");
}
