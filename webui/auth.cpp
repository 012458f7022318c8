#include "webui/auth.hpp"

#include "storage/state/api_token_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"
#include "storage/state/web_session_repository.hpp"
#include "webui/json_body.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/json/object.hpp>

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace pulsegate::webui {

namespace {

namespace state = storage::state;
using state::user_role;

constexpr std::size_t session_id_length = 32; // 160 bits, as every generated credential
constexpr std::size_t csrf_token_length = 32;
constexpr std::int64_t token_touch_interval_ms = 60'000;
constexpr std::int64_t session_touch_interval_ms = 60'000;

// An argon2id hash of a random password nobody knows, made with the limits
// engine::hash_password uses. Unknown user names are verified against it so
// that they cost the same time as known ones.
constexpr std::string_view dummy_password_hash =
    "$argon2id$v=19$m=65536,t=2,p=1$CI9tK17gi4Ra6PBd3NYxPQ$4rzu9DiSXS/RyUc/3neJYc/DswPTBf4F2yzvCJQFYqY";

const std::string& dummy_hash() {
    // Should hash_password's limits ever change, a dummy with the old ones
    // would answer faster than real hashes: make a matching one once.
    static const std::string h = engine::password_needs_rehash(dummy_password_hash)
                                     ? engine::hash_password(engine::random_token(32))
                                     : std::string(dummy_password_hash);
    return h;
}

std::int64_t system_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t to_ms(std::chrono::seconds s) { return std::chrono::duration_cast<std::chrono::milliseconds>(s).count(); }

api_error make_error(http::status status, std::string_view code, std::string message) {
    return {status, std::string(code), std::move(message), {}};
}
api_error unauthorized(std::string message) {
    return make_error(http::status::unauthorized, codes::unauthorized, std::move(message));
}
api_error forbidden(std::string message) {
    return make_error(http::status::forbidden, codes::forbidden, std::move(message));
}
// Fail closed: whatever could not be read is not let through.
api_error unavailable(const state::state_error& e) {
    spdlog::error("http auth: {}", e.message);
    return make_error(http::status::service_unavailable, codes::unavailable,
                      "the state database is unavailable; try again later (the server log has the cause)");
}

const std::string no_credentials =
    "authentication required: log in (POST /api/v1/auth/login) or pass a valid API token in "
    "Authorization: Bearer pgt_...";
const std::string session_gone =
    "your session has expired or was logged out: log in again (POST /api/v1/auth/login)";

// The client's address as audit entries show it (IPv4-mapped IPv6 as IPv4).
std::string remote_text(const request_context& ctx) {
    auto a = ctx.remote.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        a = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
    return a.to_string();
}

// The throttle key of the client's address. IPv6 clients usually hold a
// whole /64, so that is what one key covers.
std::string address_key(const request_context& ctx) {
    auto a = ctx.remote.address();
    if (a.is_v6() && !a.to_v6().is_v4_mapped()) {
        auto bytes = a.to_v6().to_bytes();
        std::fill(bytes.begin() + 8, bytes.end(), 0);
        return "a:" + boost::asio::ip::address_v6(bytes).to_string() + "/64";
    }
    return "a:" + remote_text(ctx);
}

bool is_safe_method(http::verb v) noexcept { return v == http::verb::get || v == http::verb::head; }

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The token of `Authorization: Bearer <token>` (scheme case-insensitive);
// nullopt without such a header. Other schemes are ignored (a proxy's Basic
// credentials are not ours to judge).
std::optional<std::string_view> bearer_token(const request_context& ctx) {
    const auto value = ctx.header(http::field::authorization);
    if (!value)
        return std::nullopt;
    const auto v = trim(*value);
    const auto space = std::min(v.find_first_of(" \t"), v.size());
    if (!boost::beast::iequals(v.substr(0, space), "Bearer"))
        return std::nullopt;
    return trim(v.substr(space)); // may be empty: an invalid token
}

// Every value of our session cookie in the Cookie header(s): "a=1; b=2".
// Several are possible (a cookie set for a parent domain or another path
// rides along); the caller tries each.
std::vector<std::string_view> session_cookie_values(const request_context& ctx) {
    std::vector<std::string_view> out;
    if (ctx.headers == nullptr)
        return out;
    auto [first, last] = ctx.headers->equal_range(http::field::cookie);
    for (auto it = first; it != last; ++it) {
        std::string_view rest = it->value();
        while (!rest.empty()) {
            const auto semi = rest.find(';');
            const auto pair = trim(rest.substr(0, semi));
            rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
            const auto eq = pair.find('=');
            if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != session_cookie_name)
                continue;
            auto value = trim(pair.substr(eq + 1));
            if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
                value = value.substr(1, value.size() - 2);
            out.push_back(value);
        }
    }
    return out;
}

std::string session_cookie(std::string_view value, std::int64_t max_age_s, bool secure) {
    std::string c = std::string(session_cookie_name) + "=" + std::string(value) +
                    "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" + std::to_string(max_age_s);
    if (secure)
        c += "; Secure";
    return c;
}

json::object user_json(std::string_view name, user_role role, const std::optional<std::string>& tenant) {
    json::object u;
    u["username"] = name;
    u["role"] = state::to_string(role);
    if (tenant)
        u["tenant"] = *tenant;
    else
        u["tenant"] = nullptr;
    return u;
}

bool csrf_matches(std::string_view presented, std::string_view expected) noexcept {
    // Lengths are no secret (every token has the same); the bytes are.
    return presented.size() == expected.size() && !expected.empty() &&
           sodium_memcmp(presented.data(), expected.data(), expected.size()) == 0;
}

// Whether `c` may do what `need` says; the 403 otherwise.
std::optional<api_error> check_access(const caller& c, access need) {
    const bool token = c.via == caller::method::token;
    switch (need) {
    case access::tenant_read:
    case access::tenant_write:
        if (c.is_operator() || !c.tenant)
            return forbidden("operators have no tenant and cannot use tenant routes: use the "
                             "/api/v1/operator/... routes");
        if (need == access::tenant_write && c.role != user_role::tenant_admin)
            return forbidden("user " + c.name + " is a tenant_viewer and may only read: ask a tenant_admin of " +
                             *c.tenant + " to make this change");
        return std::nullopt;
    case access::operator_read:
    case access::operator_write:
        if (!c.is_operator())
            return forbidden(std::string("this route is for operators only; ") +
                             (token ? "tenant API tokens" : "tenant users") +
                             " use the tenant routes (/api/v1/devices, /api/v1/tokens, ...)");
        if (need == access::operator_write && c.role != user_role::operator_admin)
            return forbidden(token ? "operator API tokens may only read: log in as an operator_admin to make "
                                     "this change"
                                   : "this change needs the operator_admin role (user " + c.name +
                                         " is an operator)");
        return std::nullopt;
    }
    return forbidden("unknown access requirement");
}

// ---- the failed-login throttle --------------------------------------------

// Counts failed logins per key ("n:<user name>", "a:<address>") in fixed
// windows that begin at a key's first failure.
//
// Invariants: at most max_tracked keys; a key with an attempt in flight
// (pending > 0) is never evicted, so the failure it may record always has
// its slot. Slots are reserved before the password is checked: when none
// can be had the attempt is refused (fail closed), because a failure that
// could not be counted would be a free guess.
//
// Threads: one mutex around everything; no I/O under it.
class login_throttle {
public:
    explicit login_throttle(const auth_options& o)
        : window_ms_(to_ms(o.failure_window)), per_name_(o.max_failures), per_address_(o.max_failures_per_address),
          max_tracked_(o.max_tracked) {}

    struct refusal {
        std::int64_t retry_after_s = 1;
        std::string message;
    };

    // Reserves the keys for one attempt (`name_key` may be empty: not
    // tracked). A refusal means: answer 429, do not check the password.
    std::optional<refusal> begin(const std::string& name_key, const std::string& addr_key, std::int64_t now) {
        std::lock_guard lock(mu_);
        std::int64_t retry_ms = 0;
        std::string message;
        auto limited = [&](const std::string& key, unsigned limit, std::string_view what) {
            auto it = slots_.find(key);
            if (it == slots_.end())
                return;
            auto& s = it->second;
            if (s.failures > 0 && now - s.window_start >= window_ms_)
                s.failures = 0;
            // Attempts in flight count: parallel guesses cannot overshoot.
            if (s.failures + s.pending < limit)
                return;
            retry_ms = std::max(retry_ms, s.failures > 0 ? s.window_start + window_ms_ - now : 1000);
            message = "too many failed logins " + std::string(what) + "; try again in " +
                      std::to_string(seconds_up(retry_ms)) + " s";
        };
        if (!name_key.empty())
            limited(name_key, per_name_, "for this user name");
        limited(addr_key, per_address_, "from this address");
        if (retry_ms > 0)
            return refusal{seconds_up(retry_ms), std::move(message)};

        const std::size_t missing =
            (!name_key.empty() && !slots_.contains(name_key) ? 1 : 0) + (slots_.contains(addr_key) ? 0 : 1);
        if (slots_.size() + missing > max_tracked_) {
            evict(now);
            if (slots_.size() + missing > max_tracked_) {
                const auto wait = seconds_up(earliest_expiry(now));
                spdlog::warn("http login refused: the failed-login throttle tracks {} keys (auth max_tracked); "
                             "refusing logins until some expire",
                             slots_.size());
                return refusal{wait, "too many failed logins are being tracked; try again in " +
                                         std::to_string(wait) + " s"};
            }
        }
        if (!name_key.empty())
            ++slots_.try_emplace(name_key, slot{0, now, 0}).first->second.pending;
        ++slots_.try_emplace(addr_key, slot{0, now, 0}).first->second.pending;
        return std::nullopt;
    }

    enum class outcome {
        failed,    // counts against both keys
        succeeded, // resets the user name's count
        neither,   // right password but refused (disabled), or the database failed
    };

    // Ends an attempt begin() let through.
    void end(const std::string& name_key, const std::string& addr_key, outcome o, std::int64_t now) {
        std::lock_guard lock(mu_);
        auto finish = [&](const std::string& key, bool is_name) {
            auto it = slots_.find(key);
            if (it == slots_.end())
                return; // cannot happen: pending slots are not evicted
            auto& s = it->second;
            --s.pending;
            if (o == outcome::failed) {
                if (s.failures == 0 || now - s.window_start >= window_ms_) {
                    s.failures = 0;
                    s.window_start = now;
                }
                ++s.failures;
            } else if (o == outcome::succeeded && is_name) {
                s.failures = 0;
            }
            if (s.failures == 0 && s.pending == 0)
                slots_.erase(it);
        };
        if (!name_key.empty())
            finish(name_key, true);
        finish(addr_key, false);
    }

private:
    struct slot {
        unsigned failures = 0;
        std::int64_t window_start = 0; // of the first failure counted
        unsigned pending = 0;          // attempts between begin() and end()
    };

    static std::int64_t seconds_up(std::int64_t ms) { return std::max<std::int64_t>(1, (ms + 999) / 1000); }

    bool expired(const slot& s, std::int64_t now) const { return s.failures == 0 || now - s.window_start >= window_ms_; }

    // O(n), only when full.
    void evict(std::int64_t now) {
        std::erase_if(slots_, [&](const auto& kv) { return kv.second.pending == 0 && expired(kv.second, now); });
    }

    // Milliseconds until the first tracked window ends (1 s if none).
    std::int64_t earliest_expiry(std::int64_t now) const {
        std::int64_t best = -1;
        for (const auto& [key, s] : slots_) {
            if (s.failures == 0)
                continue;
            const auto left = s.window_start + window_ms_ - now;
            if (best < 0 || left < best)
                best = left;
        }
        return best < 0 ? 1000 : best;
    }

    const std::int64_t window_ms_;
    const unsigned per_name_;
    const unsigned per_address_;
    const std::size_t max_tracked_;
    std::mutex mu_;
    std::unordered_map<std::string, slot> slots_;
};

} // namespace

// ---- auth -----------------------------------------------------------------

struct auth::impl {
    state::database& db;
    const engine::server_key& key;
    auth_options opts;
    login_throttle throttle;

    impl(state::database& d, const engine::server_key& k, auth_options o)
        : db(d), key(k), opts(std::move(o)), throttle(opts) {}

    std::int64_t now() const { return opts.now_ms ? opts.now_ms() : system_now_ms(); }

    struct identity {
        caller who;
        std::optional<state::web_session> session; // for cookie callers
    };

    // Who is calling, before CSRF and role checks.
    boost::system::result<identity, api_error> authenticate(const request_context& ctx) {
        const auto t = now();
        if (auto token = bearer_token(ctx))
            return from_token(ctx, *token, t);
        return from_session(ctx, t);
    }

    // 401 when the tenant is disabled or gone, 503 when it cannot be read.
    std::optional<api_error> tenant_refusal(const std::string& tenant) {
        auto got = state::tenant_repository(db).get(tenant);
        if (!got)
            return unavailable(got.error());
        if (!*got || (*got)->disabled)
            return unauthorized("tenant " + tenant + " is disabled: ask an operator to enable it");
        return std::nullopt;
    }

    boost::system::result<identity, api_error> from_token(const request_context& ctx, std::string_view text,
                                                          std::int64_t t) {
        static const std::string invalid =
            "the API token is not valid (malformed, unknown or revoked): pass a valid token in "
            "Authorization: Bearer pgt_..., or log in";
        const auto parts = engine::parse_api_token(text);
        if (!parts)
            return unauthorized(invalid);
        state::api_token_repository tokens(db);
        auto row = tokens.find_by_public_id(parts->public_id);
        if (!row)
            return unavailable(row.error());
        if (!*row || !engine::verify_credential(key, text, (*row)->token_hash))
            return unauthorized(invalid);
        const auto& tok = **row;
        // Only the holder of the token gets this far, so telling expiry
        // apart reveals nothing.
        if (!tok.active_at(t))
            return unauthorized("the API token " + tok.public_id + " has expired: create a new one");
        if (tok.tenant) {
            if (auto bad = tenant_refusal(*tok.tenant))
                return *bad;
        }
        if (!tok.last_used_at_ms || t - *tok.last_used_at_ms >= token_touch_interval_ms) {
            // Bookkeeping only: a failure must not refuse a valid token.
            if (auto r = tokens.touch_last_used(tok.public_id, t); !r)
                spdlog::warn("http auth: cannot record the use of API token {}: {}", tok.public_id, r.error().message);
        }
        identity id;
        id.who.via = caller::method::token;
        id.who.user_id = tok.created_by;
        id.who.name = tok.public_id;
        id.who.role = tok.tenant ? user_role::tenant_admin : user_role::operator_;
        id.who.tenant = tok.tenant;
        id.who.remote = remote_text(ctx);
        return id;
    }

    boost::system::result<identity, api_error> from_session(const request_context& ctx, std::int64_t t) {
        const auto values = session_cookie_values(ctx);
        if (values.empty())
            return unauthorized(no_credentials);
        state::web_session_repository sessions(db);
        std::optional<state::web_session> found;
        std::size_t tried = 0;
        for (auto v : values) {
            if (v.size() != session_id_length || ++tried > 4)
                continue;
            auto got = sessions.get(engine::credential_digest(key, v), t);
            if (!got)
                return unavailable(got.error());
            if (*got) {
                found = std::move(**got);
                break;
            }
        }
        if (!found)
            return unauthorized(session_gone);

        auto u = state::user_repository(db).get(found->user_id);
        if (!u)
            return unavailable(u.error());
        if (!*u)
            return unauthorized(session_gone); // the user was removed
        const auto& usr = **u;
        if (usr.disabled)
            return unauthorized("user " + usr.name + " is disabled: ask an operator to enable it");
        if (usr.tenant) {
            if (auto bad = tenant_refusal(*usr.tenant))
                return *bad;
        }
        // Writing on every request would cost a disk sync per GET; once a
        // minute is precise enough for an idle timeout of minutes.
        const auto interval = std::min(session_touch_interval_ms, to_ms(opts.session_idle) / 4);
        if (t - found->last_seen_at_ms >= interval) {
            auto r = sessions.touch(found->id_hash, t, t + to_ms(opts.session_idle));
            if (!r && r.error().code == state::state_errc::not_found)
                return unauthorized(session_gone); // logged out or expired meanwhile
            // Otherwise the session was valid when read: not extending it
            // only lets it expire earlier.
            if (!r)
                spdlog::warn("http auth: cannot extend the session of user {}: {}", usr.name, r.error().message);
        }
        identity id;
        id.who.via = caller::method::session;
        id.who.user_id = usr.id;
        id.who.name = usr.name;
        id.who.role = usr.role;
        id.who.tenant = usr.tenant;
        id.who.remote = remote_text(ctx);
        id.session = std::move(found);
        return id;
    }

    std::optional<api_error> check_csrf(const request_context& ctx, const identity& id) const {
        if (!id.session || is_safe_method(ctx.method))
            return std::nullopt;
        const auto presented = ctx.header(csrf_header_name);
        if (!presented || !csrf_matches(trim(*presented), id.session->csrf_token))
            return forbidden("missing or wrong X-CSRF-Token: send the csrf_token that login (or GET /api/v1/auth/me) "
                             "returned in the X-CSRF-Token header");
        return std::nullopt;
    }

    // ---- routes -----------------------------------------------------------

    response login(const request_context& ctx) {
        auto body = parse_json_body(ctx);
        if (!body)
            return to_response(body.error());
        const auto* obj = body->if_object();
        if (obj == nullptr)
            return to_response(api_error::invalid_argument(
                "body", "the request body must be a JSON object {\"username\": ..., \"password\": ...}"));
        auto string_member = [&](std::string_view name) -> const json::string* {
            auto it = obj->find(name);
            return it == obj->end() ? nullptr : it->value().if_string();
        };
        const auto* username = string_member("username");
        if (username == nullptr)
            return to_response(api_error::invalid_argument("username", "username is required and must be a string"));
        const auto* password = string_member("password");
        if (password == nullptr)
            return to_response(api_error::invalid_argument("password", "password is required and must be a string"));

        const std::string name(*username);
        // A name no user can have names no account: it is not tracked (nor
        // logged as given), only the address is.
        const bool valid_name = engine::validate_user_name(name).ok();
        const std::string name_key = valid_name ? "n:" + name : std::string();
        const std::string addr_key = address_key(ctx);
        const std::string remote = remote_text(ctx);
        const std::string_view shown_name = valid_name ? std::string_view(name) : "(invalid name)";

        if (auto refused = throttle.begin(name_key, addr_key, now())) {
            spdlog::warn("http login throttled: user name {} from {}", shown_name, remote);
            auto res = to_response(
                make_error(http::status::too_many_requests, codes::too_many_requests, refused->message));
            res.headers.emplace_back("Retry-After", std::to_string(refused->retry_after_s));
            return res;
        }
        auto outcome = login_throttle::outcome::neither;
        // Ends the attempt on every path, exceptions included.
        struct ender {
            impl& self;
            const std::string& n;
            const std::string& a;
            login_throttle::outcome& o;
            ~ender() { self.throttle.end(n, a, o, self.now()); }
        } end_attempt{*this, name_key, addr_key, outcome};

        std::optional<state::user> usr;
        if (valid_name) {
            auto got = state::user_repository(db).get_by_name(name);
            if (!got)
                return to_response(unavailable(got.error()));
            usr = std::move(*got);
        }
        const bool match = engine::verify_password(usr ? std::string_view(usr->password_hash) : dummy_hash(),
                                                   std::string_view(password->data(), password->size()));
        if (!usr || !match) {
            outcome = login_throttle::outcome::failed;
            spdlog::info("http login failed: user name {} from {}", shown_name, remote);
            return json_error(http::status::unauthorized, codes::unauthorized, "wrong user name or password");
        }
        // The password was right: say what is wrong, without counting it.
        if (usr->disabled) {
            spdlog::info("http login refused: user {} from {} is disabled", usr->name, remote);
            return to_response(unauthorized("user " + usr->name + " is disabled: ask an operator to enable it"));
        }
        if (usr->tenant) {
            if (auto bad = tenant_refusal(*usr->tenant)) {
                if (bad->status == http::status::unauthorized)
                    spdlog::info("http login refused: user {} from {}: tenant {} is disabled", usr->name, remote,
                                 *usr->tenant);
                return to_response(*bad);
            }
        }

        const auto t = now();
        state::web_session s;
        std::string cookie_value;
        s.user_id = usr->id;
        s.csrf_token = engine::random_token(csrf_token_length);
        s.created_at_ms = t;
        s.last_seen_at_ms = t;
        s.expires_at_ms = t + to_ms(opts.session_absolute);
        s.idle_expires_at_ms = std::min(s.expires_at_ms, t + to_ms(opts.session_idle));
        s.remote_addr = remote;
        state::web_session_repository sessions(db);
        for (int attempt = 0;; ++attempt) {
            cookie_value = engine::random_token(session_id_length);
            s.id_hash = engine::credential_digest(key, cookie_value);
            auto r = sessions.create(s);
            if (r)
                break;
            // A digest collision of 160-bit ids: draw again, once.
            if (r.error().code != state::state_errc::already_exists || attempt > 0)
                return to_response(unavailable(r.error()));
        }
        outcome = login_throttle::outcome::succeeded;
        // Bookkeeping only: the session is made, the login stands.
        if (auto r = state::user_repository(db).record_login(usr->id, t); !r)
            spdlog::warn("http login: cannot record the login of user {}: {}", usr->name, r.error().message);
        spdlog::info("http login: user {} from {}", usr->name, remote);

        json::object out;
        out["user"] = user_json(usr->name, usr->role, usr->tenant);
        out["csrf_token"] = s.csrf_token;
        auto res = json_response(out);
        res.headers.emplace_back("Set-Cookie",
                                 session_cookie(cookie_value, opts.session_absolute.count(), opts.secure_cookie));
        return res;
    }

    response logout(const request_context& ctx) {
        // Expire the browser's cookie whatever happens: a stale one is no use.
        auto with_cleared_cookie = [&](response res) {
            res.headers.emplace_back("Set-Cookie", session_cookie("", 0, opts.secure_cookie));
            return res;
        };
        auto id = from_session(ctx, now());
        if (!id) {
            if (id.error().status == http::status::service_unavailable)
                return to_response(id.error());
            return with_cleared_cookie(to_response(
                unauthorized("there is no session to log out of (no session cookie, or it has expired)")));
        }
        if (auto bad = check_csrf(ctx, *id))
            return to_response(*bad);
        if (auto r = state::web_session_repository(db).remove(id->session->id_hash); !r)
            return to_response(unavailable(r.error()));
        spdlog::info("http logout: user {} from {}", id->who.name, id->who.remote);
        return with_cleared_cookie(response{http::status::no_content, {}, {}, {}});
    }

    response me(const request_context& ctx) {
        auto id = authenticate(ctx);
        if (!id)
            return to_response(id.error());
        json::object out;
        out["user"] = user_json(id->who.name, id->who.role, id->who.tenant);
        if (id->session)
            out["csrf_token"] = id->session->csrf_token;
        else
            out["csrf_token"] = nullptr;
        return json_response(out);
    }
};

auth::auth(state::database& db, const engine::server_key& key, auth_options opts)
    : impl_(std::make_unique<impl>(db, key, std::move(opts))) {}

auth::~auth() = default;

void auth::add_routes(router& r) {
    r.add(http::verb::post, "/api/v1/auth/login", [this](const request_context& ctx) { return impl_->login(ctx); });
    r.add(http::verb::post, "/api/v1/auth/logout", [this](const request_context& ctx) { return impl_->logout(ctx); });
    r.add(http::verb::get, "/api/v1/auth/me", [this](const request_context& ctx) { return impl_->me(ctx); });
}

boost::system::result<caller, api_error> auth::check(const request_context& ctx, access need) {
    auto id = impl_->authenticate(ctx);
    if (!id)
        return id.error();
    if (auto bad = impl_->check_csrf(ctx, *id))
        return *bad;
    if (auto bad = check_access(id->who, need))
        return *bad;
    return std::move(id->who);
}

handler auth::guard(access need, guarded_handler fn) {
    return [this, need, fn = std::move(fn)](const request_context& ctx) {
        auto who = check(ctx, need);
        if (!who)
            return to_response(who.error());
        return fn(*who, ctx);
    };
}

} // namespace pulsegate::webui
