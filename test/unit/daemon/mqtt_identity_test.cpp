// daemon/mqtt_identity: the broker's authenticator over a real state
// database. Devices, integrators and operators in, wrong or disabled
// credentials out; verdicts cached both ways and forgotten on change;
// refusals recorded as rejected events.

#include "daemon/mqtt_identity.hpp"

#include "storage/state/api_token_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rejected_event_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

using namespace pulsegate;
using broker::client_kind;
using broker::protocol::reason_code;
namespace state = storage::state;

namespace {

// Waits for a deferred answer (a safety net of 30 s, not a timing check).
struct waiter final : broker::auth_completion {
    std::mutex m;
    std::condition_variable cv;
    std::optional<broker::auth_result> result;
    void complete(broker::auth_result r) override {
        std::lock_guard lock(m);
        result = std::move(r);
        cv.notify_all();
    }
    broker::auth_result wait() {
        std::unique_lock lock(m);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return result.has_value(); }));
        return *result;
    }
};

struct fixture {
    test::temp_dir dir;
    std::unique_ptr<state::database> db;
    engine::server_key key{};
    std::string device_secret = engine::generate_device_secret();
    std::string token;

    fixture() {
        db = state::database::open({.file = dir.path / "state.db"}).value();
        key = engine::load_or_create_server_key(dir.path / "secret.key").value();
        for (const char* t : {"acme", "globex"})
            REQUIRE(state::tenant_repository(*db).create({.id = t, .name = t, .created_at_ms = 1}));
        REQUIRE(state::device_repository(*db).create(
            {.tenant = "acme", .id = "dev-1", .name = "d", .labels = {},
             .secret_hash = engine::credential_digest(key, device_secret), .created_at_ms = 1}));
        const auto t = engine::generate_api_token();
        token = t.text();
        REQUIRE(state::api_token_repository(*db).create({.tenant = std::string("acme"), .public_id = t.public_id,
                                                         .name = "ci", .token_hash = engine::credential_digest(key, token),
                                                         .expires_at_ms = std::nullopt, .created_by = std::nullopt,
                                                         .created_at_ms = 1}));
    }

    // The answer, whether it came at once or from a worker.
    static broker::auth_result connect(daemon::mqtt_identity& id, std::optional<std::string> user,
                                       std::optional<std::string> pass, bool* deferred = nullptr) {
        broker::connect_info info;
        info.client_id = "c";
        if (user) info.username = *user;
        if (pass) info.password = *pass;
        auto w = std::make_shared<waiter>();
        auto now = id.authenticate(info, w);
        if (deferred) *deferred = !now;
        return now ? *now : w->wait();
    }
};

const broker::client_identity& identity_of(const broker::auth_result& r) {
    REQUIRE(std::holds_alternative<broker::client_identity>(r));
    return std::get<broker::client_identity>(r);
}

reason_code code_of(const broker::auth_result& r) {
    REQUIRE(std::holds_alternative<reason_code>(r));
    return std::get<reason_code>(r);
}

} // namespace

TEST_CASE("devices and integrators are mounted in their tenant; verdicts are cached") {
    fixture f;
    daemon::mqtt_identity id(*f.db, f.key, {});

    bool deferred = false;
    const auto dev = fixture::connect(id, "acme/dev-1", f.device_secret, &deferred);
    CHECK(deferred); // the first check reads the database on a worker
    CHECK(identity_of(dev).kind == client_kind::device);
    CHECK(identity_of(dev).tenant == "acme");
    CHECK(identity_of(dev).device == "dev-1");
    CHECK_FALSE(identity_of(dev).anonymous);

    // The same credentials again: answered from the cache on the spot.
    const auto again = fixture::connect(id, "acme/dev-1", f.device_secret, &deferred);
    CHECK_FALSE(deferred);
    CHECK(identity_of(again).device == "dev-1");

    const auto api = fixture::connect(id, "acme/api", f.token);
    CHECK(identity_of(api).kind == client_kind::integrator);
    CHECK(identity_of(api).tenant == "acme");
    CHECK(identity_of(api).credential == engine::parse_api_token(f.token)->public_id);

    // The device's connection is recorded as last seen (written in batches).
    id.stop();
    auto d = state::device_repository(*f.db).get("acme", "dev-1");
    REQUIRE(d.has_value());
    REQUIRE(d->has_value());
    CHECK((*d)->last_seen_ms.has_value());
}

TEST_CASE("wrong, foreign and malformed credentials are refused, and the refusal is cached") {
    fixture f;
    daemon::mqtt_identity id(*f.db, f.key, {});
    CHECK(code_of(fixture::connect(id, "acme/dev-1", "pgd_wrong")) == reason_code::bad_user_name_or_password);
    // Another tenant's name for the same device and secret.
    CHECK(code_of(fixture::connect(id, "globex/dev-1", f.device_secret)) == reason_code::bad_user_name_or_password);
    // acme's token presented as globex's integrator.
    CHECK(code_of(fixture::connect(id, "globex/api", f.token)) == reason_code::bad_user_name_or_password);
    CHECK(code_of(fixture::connect(id, "acme/dev-1", std::nullopt)) == reason_code::bad_user_name_or_password);
    CHECK(code_of(fixture::connect(id, "a/b/c", "x")) == reason_code::bad_user_name_or_password);
    // Anonymous access is off by default.
    CHECK(code_of(fixture::connect(id, std::nullopt, std::nullopt)) == reason_code::not_authorized);

    bool deferred = true;
    CHECK(code_of(fixture::connect(id, "acme/dev-1", "pgd_wrong", &deferred)) ==
          reason_code::bad_user_name_or_password);
    CHECK_FALSE(deferred); // the negative verdict, from the cache
    CHECK(id.stats().connects_refused >= 7);
}

TEST_CASE("a disabled device or tenant is refused; a change forgets the cached verdict") {
    fixture f;
    daemon::mqtt_identity id(*f.db, f.key, {});
    REQUIRE(std::holds_alternative<broker::client_identity>(fixture::connect(id, "acme/dev-1", f.device_secret)));

    REQUIRE(state::device_repository(*f.db).set_disabled("acme", "dev-1", true));
    id.device_changed("acme", "dev-1");
    CHECK(code_of(fixture::connect(id, "acme/dev-1", f.device_secret)) == reason_code::not_authorized);

    REQUIRE(state::device_repository(*f.db).set_disabled("acme", "dev-1", false));
    id.device_changed("acme", "dev-1");
    CHECK(identity_of(fixture::connect(id, "acme/dev-1", f.device_secret)).device == "dev-1");

    // Rotation: the old secret stops working at once.
    const auto fresh = engine::generate_device_secret();
    REQUIRE(state::device_repository(*f.db).set_secret_hash("acme", "dev-1", engine::credential_digest(f.key, fresh)));
    id.device_changed("acme", "dev-1");
    CHECK(code_of(fixture::connect(id, "acme/dev-1", f.device_secret)) == reason_code::bad_user_name_or_password);
    CHECK(identity_of(fixture::connect(id, "acme/dev-1", fresh)).device == "dev-1");

    // A revoked token.
    REQUIRE(std::holds_alternative<broker::client_identity>(fixture::connect(id, "acme/api", f.token)));
    const auto pid = engine::parse_api_token(f.token)->public_id;
    REQUIRE(state::api_token_repository(*f.db).revoke(std::string("acme"), pid));
    id.token_revoked(std::string_view("acme"), pid);
    CHECK(code_of(fixture::connect(id, "acme/api", f.token)) == reason_code::bad_user_name_or_password);
}

TEST_CASE("operators log in with their password; tenant users cannot use MQTT") {
    fixture f;
    const auto hash = engine::hash_password("correct horse battery");
    REQUIRE(state::user_repository(*f.db).create(
        {.tenant = std::nullopt, .name = "ops", .role = state::user_role::operator_, .password_hash = hash, .created_at_ms = 1}));
    REQUIRE(state::user_repository(*f.db).create({.tenant = std::string("acme"), .name = "alice",
                                                  .role = state::user_role::tenant_admin, .password_hash = hash,
                                                  .created_at_ms = 1}));
    daemon::mqtt_identity id(*f.db, f.key, {});
    const auto ops = fixture::connect(id, "ops", "correct horse battery");
    CHECK(identity_of(ops).kind == client_kind::operator_);
    CHECK(identity_of(ops).tenant.empty()); // internal names
    CHECK(code_of(fixture::connect(id, "alice", "correct horse battery")) == reason_code::bad_user_name_or_password);
    CHECK(code_of(fixture::connect(id, "ops", "wrong password")) == reason_code::bad_user_name_or_password);
}

TEST_CASE("anonymous clients, when allowed, live in the configured tenant") {
    fixture f;
    daemon::mqtt_identity_options o;
    o.allow_anonymous = true;
    o.anonymous_tenant = "lab";
    daemon::mqtt_identity id(*f.db, f.key, o);
    const auto anon = fixture::connect(id, std::nullopt, std::nullopt);
    CHECK(identity_of(anon).anonymous);
    CHECK(identity_of(anon).tenant == "lab");
    id.set_anonymous(false, "lab");
    CHECK(code_of(fixture::connect(id, std::nullopt, std::nullopt)) == reason_code::not_authorized);
}

TEST_CASE("the ACL confines a device to its subtree; denials become rejected events") {
    fixture f;
    {
        daemon::mqtt_identity id(*f.db, f.key, {});
        const auto who = identity_of(fixture::connect(id, "acme/dev-1", f.device_secret));
        CHECK(id.may_publish(who, "d/dev-1/telemetry"));
        CHECK_FALSE(id.may_publish(who, "d/dev-2/telemetry"));
        CHECK_FALSE(id.may_publish(who, "d/dev-1"));
        CHECK(id.may_subscribe(who, "d/dev-1/cmd/#"));
        CHECK_FALSE(id.may_subscribe(who, "#"));
        id.denied(who, "d/dev-2/telemetry", false);
        id.denied(who, "#", true);
        CHECK(id.stats().publishes_denied == 1);
        CHECK(id.stats().subscribes_denied == 1);
        (void)fixture::connect(id, "acme/dev-1", "pgd_wrong");
        id.stop(); // writes what is queued
    }
    auto rows = state::rejected_event_repository(*f.db).list_recent({.tenant = std::string("acme")});
    REQUIRE(rows.has_value());
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& r : *rows) seen.emplace(r.kind, r.topic);
    CHECK(seen.count({"publish", "d/dev-2/telemetry"}) == 1);
    CHECK(seen.count({"subscribe", "#"}) == 1);
    CHECK(seen.count({"connect", ""}) == 1);
}
