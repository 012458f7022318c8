#pragma once
// Authentication of REST requests and the login routes (DESIGN.md, Web UI
// and REST API).
//
// Two ways in:
//   - a session cookie set by POST /api/v1/auth/login: HttpOnly,
//     SameSite=Strict, Path=/, Secure when auth_options::secure_cookie (TLS);
//     idle and absolute expiry; state-changing requests (anything but GET and
//     HEAD) need the session's CSRF token in X-CSRF-Token (403 otherwise);
//   - `Authorization: Bearer pgt_...` API tokens (no CSRF: a browser never
//     sends them by itself).
// Failed logins are throttled per user name and per source address (IPv6:
// per /64); the throttle fails closed (when it cannot track a failure it
// refuses: 429). An unknown user name costs the same argon2 run as a known
// one, so names cannot be probed by timing.
//
// Database errors answer 503 unavailable: nothing is let through that could
// not be checked.
//
// Routes it registers:
//   POST /api/v1/auth/login {"username", "password"} -> 200
//        {"user": {"username", "role", "tenant" (null: operator)}, "csrf_token"}
//        and the session cookie; 401 wrong user name or password, disabled
//        user or tenant; 429 throttled (Retry-After); 400 bad body.
//   POST /api/v1/auth/logout (session cookie + X-CSRF-Token) -> 204, the
//        session row removed and the cookie expired; 401 without a session.
//   GET  /api/v1/auth/me -> 200 the login body again (a reloaded page gets
//        its CSRF token back); for an API token {"user": {"username": its
//        public id, "role", "tenant"}, "csrf_token": null}.
//
// Threads: every method may be called from any HTTP thread at once.

#include "engine/identity.hpp"
#include "storage/state/database.hpp"
#include "webui/caller.hpp"
#include "webui/identity_hooks.hpp"
#include "webui/router.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace pulsegate::webui {

struct auth_options {
    std::chrono::seconds session_idle{30 * 60};
    std::chrono::seconds session_absolute{12 * 3600};
    bool secure_cookie = false; // set under TLS
    // Failed logins: after `max_failures` within `failure_window` for one
    // user name, or `max_failures_per_address` for one source address,
    // further attempts answer 429 until the window has passed.
    unsigned max_failures = 5;
    unsigned max_failures_per_address = 20;
    std::chrono::seconds failure_window{15 * 60};
    std::size_t max_tracked = 10000; // user names + addresses tracked; full: refuse (fail closed)
    // The clock, epoch milliseconds; empty: the system clock. Tests inject
    // one to reach expiries and windows without sleeping.
    std::function<std::int64_t()> now_ms;
};

constexpr std::string_view session_cookie_name = "pulsegate_session";
constexpr std::string_view csrf_header_name = "X-CSRF-Token";

class auth {
public:
    // `key`: the server key (engine::load_or_create_server_key) that session
    // ids and tokens are digested with. `db` and `key` must outlive this.
    auth(storage::state::database& db, const engine::server_key& key, auth_options opts = {});
    ~auth();
    auth(const auth&) = delete;
    auth& operator=(const auth&) = delete;

    void add_routes(router& r);

    // The caller of `ctx` if it may do what `need` says: 401 unauthorized
    // (no credentials, unknown or expired session or token, disabled user or
    // tenant), 403 forbidden (CSRF token missing or wrong on a
    // state-changing cookie request; a role that lacks `need`, including an
    // operator on a tenant route), 503 unavailable (the database failed).
    // A Bearer token wins over a session cookie sent with it. Using a
    // session pushes its idle expiry forward (written at most once a
    // minute, so it may end up to a minute early).
    boost::system::result<caller, api_error> check(const request_context& ctx, access need);

    using guarded_handler = std::function<response(const caller&, const request_context&)>;
    // A router handler that runs `fn` only for callers that pass check().
    handler guard(access need, guarded_handler fn);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace pulsegate::webui
