#include "daemon/mqtt_identity.hpp"

#include "common/thread.hpp"

#include "broker/server.hpp"
#include "storage/state/api_token_repository.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/rejected_event_repository.hpp"
#include "storage/state/tenant_repository.hpp"
#include "storage/state/user_repository.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <spdlog/spdlog.h>

#include <chrono>

namespace pulsegate::daemon {

namespace state = storage::state;
using broker::client_identity;
using broker::client_kind;
using broker::protocol::reason_code;

namespace {

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Spent on unknown operator names so that a wrong name costs what a wrong
// password does (no probing names by timing).
const std::string& dummy_password_hash() {
    static const std::string h = engine::hash_password("pulsegate-no-such-user");
    return h;
}

bool tenant_enabled(state::database& db, std::string_view tenant) {
    auto t = state::tenant_repository(db).get(tenant);
    return t && *t && !(*t)->disabled;
}

} // namespace

struct mqtt_identity::rejection {
    std::int64_t at_ms = 0;
    std::string tenant; // empty: none
    std::string principal;
    std::string kind; // "connect", "publish", "subscribe"
    std::string topic;
    std::string reason;
};

mqtt_identity::mqtt_identity(state::database& db, const engine::server_key& key, mqtt_identity_options opts)
    : db_(db), key_(key), opts_(std::move(opts)), acl_(opts_.acl), cache_(opts_.cache),
      allow_anonymous_(opts_.allow_anonymous), anonymous_tenant_(opts_.anonymous_tenant),
      pool_(std::make_unique<boost::asio::thread_pool>(std::max(1u, opts_.workers))) {
    (void)dummy_password_hash(); // hash it now, not during the first CONNECT
    writer_ = std::thread([this] {
        common::name_this_thread("pg-ident-write");
        common::mark_background_thread();
        writer_loop();
    });
}

mqtt_identity::~mqtt_identity() { stop(); }

void mqtt_identity::stop() {
    if (pool_) pool_->join();
    {
        std::lock_guard lock(rej_mutex_);
        if (stopping_) return;
        stopping_ = true;
    }
    rej_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
}

void mqtt_identity::set_anonymous(bool allow, std::string tenant) {
    std::lock_guard lock(anon_mutex_);
    allow_anonymous_ = allow;
    anonymous_tenant_ = std::move(tenant);
}

mqtt_identity_stats mqtt_identity::stats() const {
    mqtt_identity_stats s;
    s.connects_allowed = allowed_.load(std::memory_order_relaxed);
    s.connects_refused = refused_.load(std::memory_order_relaxed);
    s.connects_busy = busy_.load(std::memory_order_relaxed);
    s.publishes_denied = pub_denied_.load(std::memory_order_relaxed);
    s.subscribes_denied = sub_denied_.load(std::memory_order_relaxed);
    s.rejections_dropped = dropped_.load(std::memory_order_relaxed);
    s.cache = cache_.counters();
    return s;
}

// ------------------------------------------------------------- CONNECT ---

client_identity mqtt_identity::to_client_identity(const engine::verified_identity& v,
                                                  std::string_view password) const {
    client_identity who;
    who.anonymous = false;
    who.principal = v.username;
    who.tenant = v.tenant.value_or(std::string{});
    switch (v.kind) {
    case engine::principal_kind::device:
        who.kind = client_kind::device;
        who.device = v.device;
        break;
    case engine::principal_kind::integrator:
        who.kind = client_kind::integrator;
        if (auto t = engine::parse_api_token(password)) who.credential = t->public_id;
        break;
    case engine::principal_kind::operator_: who.kind = client_kind::operator_; break;
    }
    return who;
}

std::optional<broker::auth_result> mqtt_identity::authenticate(const broker::connect_info& info,
                                                               std::shared_ptr<broker::auth_completion> done) {
    auto refuse = [&](reason_code rc, std::string why) -> broker::auth_result {
        refused_.fetch_add(1, std::memory_order_relaxed);
        auto parsed = info.username ? engine::parse_mqtt_username(*info.username) : std::nullopt;
        record({now_ms(), parsed ? parsed->tenant : std::string{},
                info.username ? std::string(*info.username) : std::string("anonymous"), "connect", "",
                std::move(why)});
        return rc;
    };

    if (!info.certificate.empty()) {
        // A verified client certificate names the device; a user name, if
        // sent, must be the same one.
        if (info.username && *info.username != info.certificate)
            return refuse(reason_code::not_authorized, "the user name is not the one of the client certificate (\"" +
                                                           std::string(info.certificate) + "\")");
        return defer([this, name = std::string(info.certificate)] { return check_certificate(name); }, done);
    }
    if (!info.username) {
        std::lock_guard lock(anon_mutex_);
        if (!allow_anonymous_) return refuse(reason_code::not_authorized, "anonymous access is disabled");
        client_identity who;
        who.tenant = anonymous_tenant_;
        who.principal = "anonymous";
        who.anonymous = true;
        who.kind = client_kind::anonymous;
        allowed_.fetch_add(1, std::memory_order_relaxed);
        return who;
    }
    if (!info.password || !engine::parse_mqtt_username(*info.username))
        return refuse(reason_code::bad_user_name_or_password, "bad user name or password");

    const auto now = engine::credential_cache::clock::now();
    if (auto v = cache_.find(*info.username, *info.password, now)) {
        if (!v->allowed) return refuse(reason_code::bad_user_name_or_password, "bad user name or password");
        allowed_.fetch_add(1, std::memory_order_relaxed);
        auto who = to_client_identity(v->identity, *info.password);
        seen(who);
        return who;
    }

    // The generation before the lookup: a change committed meanwhile makes
    // the insert a no-op instead of caching a verdict it has outdated.
    const auto generation = cache_.generation();
    return defer([this, user = std::string(*info.username), pass = std::string(*info.password),
                  generation] { return check(user, pass, generation); },
                 done);
}

std::optional<broker::auth_result> mqtt_identity::defer(std::function<broker::auth_result()> work,
                                                        std::shared_ptr<broker::auth_completion> done) {
    if (pending_.fetch_add(1, std::memory_order_relaxed) >= opts_.max_pending) {
        pending_.fetch_sub(1, std::memory_order_relaxed);
        busy_.fetch_add(1, std::memory_order_relaxed);
        return reason_code::server_busy;
    }
    boost::asio::post(*pool_, [this, work = std::move(work), done = std::move(done)] {
        auto r = work();
        pending_.fetch_sub(1, std::memory_order_relaxed);
        done->complete(std::move(r));
    });
    return std::nullopt;
}

broker::auth_result mqtt_identity::check_certificate(const std::string& name) {
    const auto parsed = engine::parse_mqtt_username(name);
    std::string why = "no device \"" + name + "\" for the client certificate";
    bool ok = false;
    if (parsed && parsed->kind == engine::principal_kind::device) {
        try {
            auto d = state::device_repository(db_).get(parsed->tenant, parsed->device);
            if (!d) {
                refused_.fetch_add(1, std::memory_order_relaxed);
                return reason_code::server_unavailable; // fail closed
            }
            if (*d && (*d)->disabled) why = "device disabled";
            else if (*d && !tenant_enabled(db_, parsed->tenant)) why = "tenant disabled";
            else ok = d->has_value();
        } catch (const std::exception& e) {
            spdlog::error("certificate check failed name={} error=\"{}\"", name, e.what());
            refused_.fetch_add(1, std::memory_order_relaxed);
            return reason_code::server_unavailable;
        }
    }
    if (!ok) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        record({now_ms(), parsed ? parsed->tenant : std::string{}, name, "connect", "", why});
        return reason_code::not_authorized;
    }
    engine::verified_identity v;
    v.username = name;
    v.kind = engine::principal_kind::device;
    v.tenant = parsed->tenant;
    v.device = parsed->device;
    allowed_.fetch_add(1, std::memory_order_relaxed);
    auto who = to_client_identity(v, "");
    who.credential = "certificate";
    seen(who);
    return who;
}

broker::auth_result mqtt_identity::check(const std::string& username, const std::string& password,
                                         std::uint64_t generation) {
    const auto parsed = engine::parse_mqtt_username(username);
    engine::verified_identity v;
    v.username = username;
    std::string why = "bad user name or password";
    bool ok = false;
    bool database_failed = false;
    try {
        switch (parsed->kind) {
        case engine::principal_kind::device: {
            v.kind = engine::principal_kind::device;
            v.tenant = parsed->tenant;
            v.device = parsed->device;
            auto d = state::device_repository(db_).get(parsed->tenant, parsed->device);
            if (!d) {
                database_failed = true;
            } else if (*d && engine::verify_credential(key_, password, (*d)->secret_hash)) {
                if ((*d)->disabled) why = "device disabled";
                else if (!tenant_enabled(db_, parsed->tenant)) why = "tenant disabled";
                else ok = true;
            }
            break;
        }
        case engine::principal_kind::integrator: {
            v.kind = engine::principal_kind::integrator;
            v.tenant = parsed->tenant;
            const auto token = engine::parse_api_token(password);
            if (!token) break;
            auto row = state::api_token_repository(db_).find_by_public_id(token->public_id);
            if (!row) {
                database_failed = true;
            } else if (*row && (*row)->tenant == parsed->tenant &&
                       engine::verify_credential(key_, password, (*row)->token_hash)) {
                if (!(*row)->active_at(now_ms())) why = "API token expired";
                else if (!tenant_enabled(db_, parsed->tenant)) why = "tenant disabled";
                else ok = true;
            }
            break;
        }
        case engine::principal_kind::operator_: {
            v.kind = engine::principal_kind::operator_;
            auto u = state::user_repository(db_).get_by_name(username);
            if (!u) {
                database_failed = true;
            } else if (!*u || !state::is_operator_role((*u)->role)) {
                (void)engine::verify_password(dummy_password_hash(), password);
            } else if (engine::verify_password((*u)->password_hash, password)) {
                if ((*u)->disabled) why = "user disabled";
                else ok = true;
            }
            break;
        }
        }
    } catch (const std::exception& e) {
        spdlog::error("credential check failed user={} error=\"{}\"", username, e.what());
        database_failed = true;
    }

    const auto now = engine::credential_cache::clock::now();
    if (database_failed) {
        // Fail closed, and do not cache: the next attempt asks again.
        refused_.fetch_add(1, std::memory_order_relaxed);
        return reason_code::server_unavailable;
    }
    if (!ok) {
        cache_.insert_denied(username, password, generation, now);
        refused_.fetch_add(1, std::memory_order_relaxed);
        record({now_ms(), parsed->tenant, username, "connect", "", why});
        return why == "bad user name or password" ? reason_code::bad_user_name_or_password
                                                  : reason_code::not_authorized;
    }
    cache_.insert_allowed(username, password, v, generation, now);
    allowed_.fetch_add(1, std::memory_order_relaxed);
    auto who = to_client_identity(v, password);
    seen(who);
    return who;
}

// ----------------------------------------------------------------- ACL ---

bool mqtt_identity::may_publish(const client_identity& who, std::string_view topic) {
    return acl_.may_publish(who, topic);
}

bool mqtt_identity::may_subscribe(const client_identity& who, std::string_view filter) {
    return acl_.may_subscribe(who, filter);
}

void mqtt_identity::denied(const client_identity& who, std::string_view topic_or_filter, bool subscribe) {
    (subscribe ? sub_denied_ : pub_denied_).fetch_add(1, std::memory_order_relaxed);
    record({now_ms(), who.tenant, who.principal, subscribe ? "subscribe" : "publish", std::string(topic_or_filter),
            "not authorized"});
}

// ---------------------------------------------------- rejected events ---

void mqtt_identity::record(rejection r) {
    {
        std::lock_guard lock(rej_mutex_);
        if (!stopping_ && rejections_.size() < opts_.max_queued_rejections) {
            rejections_.push_back(std::move(r));
            return;
        }
    }
    dropped_.fetch_add(1, std::memory_order_relaxed);
}

void mqtt_identity::seen(const client_identity& who) {
    if (who.kind != client_kind::device) return;
    std::lock_guard lock(rej_mutex_);
    // Bounded like the rejections: a connect storm past it loses only the
    // precision of last_seen.
    if (!stopping_ && seen_.size() < opts_.max_queued_rejections)
        seen_.push_back({who.tenant, who.device, now_ms()});
}

void mqtt_identity::writer_loop() {
    state::rejected_event_repository repo(db_);
    state::device_repository devices(db_);
    std::vector<state::device_seen> seen_batch;
    std::vector<rejection> batch;
    std::vector<state::rejected_event> rows;
    for (;;) {
        {
            std::unique_lock lock(rej_mutex_);
            // Once a second at most: a device hammering a forbidden topic
            // costs one transaction a second, not one per publish.
            rej_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
            batch.swap(rejections_);
            seen_batch.swap(seen_);
            if (batch.empty() && seen_batch.empty() && stopping_) return;
        }
        if (!seen_batch.empty()) {
            if (auto ok = devices.touch_last_seen(seen_batch); !ok)
                spdlog::warn("device last_seen not recorded count={} error=\"{}\"", seen_batch.size(),
                             ok.error().message);
            seen_batch.clear();
        }
        if (batch.empty()) continue;
        rows.clear();
        for (auto& r : batch) {
            state::rejected_event e;
            e.at_ms = r.at_ms;
            if (!r.tenant.empty()) e.tenant = std::move(r.tenant);
            e.principal = std::move(r.principal);
            e.kind = std::move(r.kind);
            e.topic = std::move(r.topic);
            e.reason = std::move(r.reason);
            rows.push_back(std::move(e));
        }
        if (auto ok = repo.append(rows); !ok) {
            dropped_.fetch_add(rows.size(), std::memory_order_relaxed);
            spdlog::warn("rejected events not recorded count={} error=\"{}\"", rows.size(), ok.error().message);
        }
        batch.clear();
    }
}

// -------------------------------------------------------------- hooks ---

void mqtt_identity::device_changed(std::string_view tenant, std::string_view device) {
    cache_.invalidate_principal(std::string(tenant) + "/" + std::string(device));
    if (server_ == nullptr) return;
    server_->disconnect_if(
        [t = std::string(tenant), d = std::string(device)](const client_identity& who) {
            return who.kind == client_kind::device && who.tenant == t && who.device == d;
        },
        "device credentials changed");
}

void mqtt_identity::token_revoked(const std::optional<std::string_view>& tenant, std::string_view public_id) {
    if (!tenant) return; // operator tokens are not MQTT credentials
    cache_.invalidate_principal(std::string(*tenant) + "/api");
    if (server_ == nullptr) return;
    server_->disconnect_if(
        [t = std::string(*tenant), id = std::string(public_id)](const client_identity& who) {
            return who.kind == client_kind::integrator && who.tenant == t && who.credential == id;
        },
        "API token revoked");
}

void mqtt_identity::tenant_changed(std::string_view tenant) {
    cache_.invalidate_tenant(tenant);
    // A rename keeps the tenant's clients; disabling or removing ends them.
    if (server_ == nullptr || tenant_enabled(db_, tenant)) return;
    server_->disconnect_if(
        [t = std::string(tenant)](const client_identity& who) { return !who.anonymous && who.tenant == t; },
        "tenant disabled");
}

void mqtt_identity::user_changed(std::string_view name) {
    cache_.invalidate_principal(name);
    if (server_ == nullptr) return;
    server_->disconnect_if(
        [n = std::string(name)](const client_identity& who) {
            return who.kind == client_kind::operator_ && who.principal == n;
        },
        "user changed");
}

} // namespace pulsegate::daemon
