// Devices of the caller's tenant and their telemetry:
//
//   GET    /api/v1/devices?label=k=v&limit=&cursor=   list (label: k=v, or k alone = has the label)
//   POST   /api/v1/devices                           {"id","name"?,"labels"?} -> 201 device + "secret"
//   GET    /api/v1/devices/{id}
//   PATCH  /api/v1/devices/{id}                      {"name"?,"labels"?,"disabled"?}
//   DELETE /api/v1/devices/{id}                      204
//   POST   /api/v1/devices/{id}/secret               -> {"id","secret"} (the old one stops working)
//   GET    /api/v1/devices/{id}/metrics              -> {"device","metrics":[names]}
//   GET    /api/v1/devices/{id}/telemetry?metric=&from=&to=&max_points=
//   GET    /api/v1/devices/{id}/telemetry/latest
//
// The secret is shown once (create, rotate); only its keyed digest is
// stored. Disabling, enabling, removing and rotating tell identity_hooks
// after the commit, so that MQTT clients of the device are dropped at once.
// A name is optional ("" when none). PATCH validates everything before it
// writes; it then writes name and labels, and the status, as two commits
// (the repository has no single call for both), so only a storage failure
// between them could leave half of a PATCH applied.
//
// Telemetry: from/to are epoch ms (default: the 24 hours up to now);
// max_points (default 1000) is clamped to 2..10000, the store's range. The
// answer adds "from", "to", "bucket_ms" (0: raw points) and "source" (raw,
// minute or hour: the ring read) to DESIGN.md's shape.

#include "webui/api.hpp"
#include "webui/api_common.hpp"
#include "webui/pagination.hpp"

#include "engine/alert_control.hpp"
#include "storage/lmdb_store.hpp"
#include "storage/state/device_repository.hpp"
#include "storage/state/tenant_repository.hpp"

#include <boost/json/array.hpp>

#include <algorithm>
#include <limits>

namespace pulsegate::webui {

namespace {

namespace state = storage::state;
using namespace detail;

constexpr std::int64_t day_ms = 24LL * 3600 * 1000;
// 9999-12-31T23:59:59.999Z: keeps from/to arithmetic far from overflow.
constexpr std::int64_t max_time_ms = 253402300799999LL;
constexpr std::int64_t default_max_points = 1000;
constexpr std::int64_t min_max_points = 2;
constexpr std::int64_t max_max_points = 10000;
constexpr std::size_t max_metric_bytes = 255;
// A label-filtered list reads at most this many devices per request; if it
// has not filled the page by then it returns what it has with a cursor.
constexpr std::size_t max_filter_scan = 10000;

api_error no_device(std::string_view id) {
    return api_error::not_found("no device \"" + std::string(id) +
                                "\" in your tenant; GET /api/v1/devices lists the devices you have");
}

// The device `id` of `tenant`: 404 for an unknown one and for another
// tenant's alike (the repository is tenant-scoped).
api_result<state::device> load_device(const api_services& s, std::string_view tenant, std::string_view id) {
    auto d = state::device_repository(*s.db).get(tenant, id);
    if (!d) return from_state(d.error(), "get device");
    if (!*d) return no_device(id);
    return std::move(**d);
}

void notify_device(const api_services& s, std::string_view tenant, std::string_view id) {
    if (s.hooks != nullptr) s.hooks->device_changed(tenant, id);
}

// A response from a result, or the error's.
response answer(const api_result<state::device>& d, http::status status = http::status::ok) {
    if (!d) return to_response(d.error());
    return json_response(device_json(*d), status);
}

struct label_filter {
    std::string key;
    std::optional<std::string> value; // none: the key alone must be present

    bool matches(const state::device& d) const {
        const auto it = d.labels.find(key);
        return it != d.labels.end() && (!value || it->second == *value);
    }
};

api_result<std::optional<label_filter>> parse_label_filter(const request_context& ctx) {
    const auto text = ctx.query_param("label");
    if (!text) return std::optional<label_filter>();
    label_filter f;
    const auto eq = text->find('=');
    f.key = std::string(text->substr(0, eq));
    if (eq != std::string_view::npos) f.value = std::string(text->substr(eq + 1));
    if (auto ok = engine::validate_label_key(f.key); !ok) return invalid("label", ok);
    if (f.value)
        if (auto ok = engine::validate_label_value(*f.value); !ok) return invalid("label", ok);
    return std::optional<label_filter>(std::move(f));
}

response list_devices(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto page = parse_page(ctx);
    if (!page) return to_response(page.error());
    auto filter = parse_label_filter(ctx);
    if (!filter) return to_response(filter.error());
    state::device_repository devices(*s.db);
    // Device list cursors are the id of the last device shown (the
    // repository's own cursor format), so a filtered page may stop anywhere.
    if (!page->cursor.empty() && !engine::validate_device_id(page->cursor))
        return to_response(api_error::invalid_argument(
            "cursor", "cursor is not one this list made; pass back next_cursor unchanged, or none for the first page"));

    json::array items;
    std::optional<std::string> cursor = page->cursor.empty() ? std::nullopt : std::optional(page->cursor);
    std::optional<std::string> next;
    std::size_t scanned = 0;
    for (;;) {
        auto got = devices.list(*tenant, page->limit,
                                cursor ? std::optional<std::string_view>(*cursor) : std::nullopt);
        if (!got) return to_response(from_state(got.error(), "list devices"));
        bool full = false;
        for (std::size_t i = 0; i < got->items.size(); ++i) {
            const auto& d = got->items[i];
            ++scanned;
            if (*filter && !(*filter)->matches(d)) continue;
            items.push_back(device_json(d));
            if (items.size() == page->limit) {
                full = true;
                if (i + 1 < got->items.size() || got->next_cursor) next = d.id;
                break;
            }
        }
        if (full || !got->next_cursor) break;
        if (scanned >= max_filter_scan) {
            next = got->next_cursor;
            break;
        }
        cursor = got->next_cursor;
    }
    return list_response(std::move(items), std::move(next));
}

response create_device(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    auto id = required_string(*body, "id");
    if (!id) return to_response(id.error());
    if (auto ok = engine::validate_device_id(*id); !ok) return to_response(invalid("id", ok));
    auto name = optional_string(*body, "name");
    if (!name) return to_response(name.error());
    if (*name && !(*name)->empty())
        if (auto ok = engine::validate_display_name(**name); !ok) return to_response(invalid("name", ok));
    auto labels = optional_labels(*body, "labels");
    if (!labels) return to_response(labels.error());

    if (const auto quota = s.device_quota != nullptr ? s.device_quota->load(std::memory_order_relaxed) : 0;
        quota > 0) {
        auto in = state::tenant_repository(*s.db).contents(*tenant);
        if (!in) return to_response(from_state(in.error(), "count devices"));
        if (in->devices >= quota)
            return to_response(api_error{http::status::forbidden, std::string(codes::quota_exceeded),
                                         "quota exceeded: tenant \"" + *tenant + "\" has " +
                                             std::to_string(in->devices) + " devices and may have at most " +
                                             std::to_string(quota) +
                                             " ([quotas] devices); delete a device or ask the operator to raise "
                                             "the quota",
                                         ""});
    }

    const auto secret = engine::generate_device_secret();
    state::new_device d{*tenant, *id, name->value_or(""), labels->value_or(state::device_labels{}),
                        engine::credential_digest(*s.key, secret), now_ms()};
    if (auto r = state::device_repository(*s.db).create(d); !r) {
        if (r.error().code == state::state_errc::already_exists)
            return to_response(api_error::conflict("a device with id \"" + *id +
                                                   "\" exists already; choose another id, or rotate its secret "
                                                   "with POST /api/v1/devices/" + *id + "/secret"));
        return to_response(from_state(r.error(), "create device"));
    }
    if (s.alerts != nullptr) s.alerts->devices_changed(*tenant); // heartbeat rules count from now
    auto created = load_device(s, *tenant, *id);
    if (!created) return to_response(created.error());
    auto o = device_json(*created);
    o["secret"] = secret;
    auto res = json_response(o, http::status::created);
    res.headers.emplace_back("Location", "/api/v1/devices/" + *id);
    return res;
}

response get_device(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_id(ctx, "id", "id", engine::validate_device_id);
    if (!id) return to_response(id.error());
    return answer(load_device(s, *tenant, *id));
}

response patch_device(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_id(ctx, "id", "id", engine::validate_device_id);
    if (!id) return to_response(id.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    // Everything is validated before anything is written.
    auto name = optional_string(*body, "name");
    if (!name) return to_response(name.error());
    if (*name && !(*name)->empty())
        if (auto ok = engine::validate_display_name(**name); !ok) return to_response(invalid("name", ok));
    auto labels = optional_labels(*body, "labels");
    if (!labels) return to_response(labels.error());
    auto disabled = optional_bool(*body, "disabled");
    if (!disabled) return to_response(disabled.error());

    auto before = load_device(s, *tenant, *id);
    if (!before) return to_response(before.error());
    state::device_repository devices(*s.db);
    if (*name || *labels) {
        if (auto r = devices.update(*tenant, *id, {*name, *labels}); !r) {
            if (r.error().code == state::state_errc::not_found) return to_response(no_device(*id));
            return to_response(from_state(r.error(), "update device"));
        }
        if (*labels && s.alerts != nullptr) s.alerts->devices_changed(*tenant); // label scopes
    }
    if (*disabled && **disabled != before->disabled) {
        if (auto r = devices.set_disabled(*tenant, *id, **disabled); !r) {
            if (r.error().code == state::state_errc::not_found) return to_response(no_device(*id));
            return to_response(from_state(r.error(), **disabled ? "disable device" : "enable device"));
        }
        notify_device(s, *tenant, *id);
    }
    return answer(load_device(s, *tenant, *id));
}

response delete_device(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_id(ctx, "id", "id", engine::validate_device_id);
    if (!id) return to_response(id.error());
    if (auto r = state::device_repository(*s.db).remove(*tenant, *id); !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_device(*id));
        return to_response(from_state(r.error(), "remove device"));
    }
    notify_device(s, *tenant, *id);
    return response{http::status::no_content, {}, {}, {}};
}

response rotate_secret(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_id(ctx, "id", "id", engine::validate_device_id);
    if (!id) return to_response(id.error());
    const auto secret = engine::generate_device_secret();
    if (auto r = state::device_repository(*s.db).set_secret_hash(*tenant, *id, engine::credential_digest(*s.key, secret));
        !r) {
        if (r.error().code == state::state_errc::not_found) return to_response(no_device(*id));
        return to_response(from_state(r.error(), "rotate device secret"));
    }
    notify_device(s, *tenant, *id);
    json::object o;
    o["id"] = *id;
    o["secret"] = secret;
    return json_response(o);
}

api_error no_telemetry_store() {
    return unavailable("telemetry is not available on this server (no telemetry store); the operator should "
                       "check the daemon's storage configuration");
}

response list_metrics(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_id(ctx, "id", "id", engine::validate_device_id);
    if (!id) return to_response(id.error());
    auto d = load_device(s, *tenant, *id);
    if (!d) return to_response(d.error());
    if (s.telemetry == nullptr) return to_response(no_telemetry_store());
    json::array names;
    for (const auto& k : s.telemetry->list_series(*tenant, *id))
        if (k.device == *id) names.push_back(json::value(k.metric));
    json::object o;
    o["device"] = *id;
    o["metrics"] = std::move(names);
    return json_response(o);
}

response query_telemetry(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_id(ctx, "id", "id", engine::validate_device_id);
    if (!id) return to_response(id.error());
    const auto metric = ctx.query_param("metric");
    if (!metric || metric->empty())
        return to_response(api_error::invalid_argument(
            "metric", "metric is required: name one metric of the device (GET /api/v1/devices/" + *id +
                          "/metrics lists them)"));
    if (metric->size() > max_metric_bytes || metric->find('\0') != std::string_view::npos)
        return to_response(api_error::invalid_argument(
            "metric", "metric must be 1 to " + std::to_string(max_metric_bytes) + " bytes without NUL"));
    auto to = query_int64(ctx, "to", 0, max_time_ms);
    if (!to) return to_response(to.error());
    auto from = query_int64(ctx, "from", 0, max_time_ms);
    if (!from) return to_response(from.error());
    auto max_points = query_int64(ctx, "max_points", std::numeric_limits<std::int64_t>::min(),
                                  std::numeric_limits<std::int64_t>::max());
    if (!max_points)
        return to_response(api_error::invalid_argument(
            "max_points", "max_points must be a whole number (values outside " + std::to_string(min_max_points) +
                              " to " + std::to_string(max_max_points) +
                              " are clamped to that range)"));
    const std::int64_t to_ms = to->value_or(now_ms());
    const std::int64_t from_ms = from->value_or(std::max<std::int64_t>(0, to_ms - day_ms));
    if (from_ms > to_ms)
        return to_response(api_error::invalid_argument(
            "from", "from (" + std::to_string(from_ms) + ") is after to (" + std::to_string(to_ms) +
                        "); both are epoch milliseconds, from <= to"));
    // The store wants at least 2 (a min and a max survive downsampling).
    const auto points = std::clamp<std::int64_t>(max_points->value_or(default_max_points), min_max_points, max_max_points);

    auto d = load_device(s, *tenant, *id);
    if (!d) return to_response(d.error());
    if (s.telemetry == nullptr) return to_response(no_telemetry_store());

    storage::series_query q;
    q.series = {*tenant, *id, std::string(*metric)};
    q.from_ms = from_ms;
    q.to_ms = to_ms;
    q.max_points = static_cast<std::size_t>(points);
    auto got = s.telemetry->query_buckets(q);
    if (!got)
        return to_response(unavailable("reading telemetry failed (" + got.error().message() +
                                       "); retry, and if it persists the operator should check the data dir"));

    json::array out;
    out.reserve(got->buckets.size());
    for (const auto& b : got->buckets) {
        json::object p;
        p["ts"] = b.ts_ms;
        p["value"] = b.mean;
        if (got->bucket_ms != 0) {
            p["min"] = b.min;
            p["max"] = b.max;
            p["count"] = b.count;
        }
        out.push_back(std::move(p));
    }
    json::object o;
    o["device"] = *id;
    o["metric"] = std::string(*metric);
    o["from"] = from_ms;
    o["to"] = to_ms;
    // 0: raw points; otherwise the width of each bucket ("ts" is its start).
    o["bucket_ms"] = got->bucket_ms;
    o["source"] = got->source == storage::resolution::raw      ? "raw"
                  : got->source == storage::resolution::minute ? "minute"
                                                               : "hour";
    o["points"] = std::move(out);
    return json_response(o);
}

response latest_telemetry(const api_services& s, const caller& c, const request_context& ctx) {
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto id = path_id(ctx, "id", "id", engine::validate_device_id);
    if (!id) return to_response(id.error());
    auto d = load_device(s, *tenant, *id);
    if (!d) return to_response(d.error());
    if (s.telemetry == nullptr) return to_response(no_telemetry_store());
    json::object metrics;
    for (const auto& v : s.telemetry->latest(*tenant, *id)) {
        json::object p;
        p["ts"] = v.ts_ms;
        p["value"] = v.value;
        metrics[v.metric] = std::move(p);
    }
    json::object o;
    o["device"] = *id;
    o["metrics"] = std::move(metrics);
    return json_response(o);
}

} // namespace

void add_device_routes(router& r, auth& a, const api_services& s) {
    BOOST_ASSERT(s.db != nullptr && s.key != nullptr);
    auto bind = [&](access need, detail::api_handler fn) { return detail::guarded(a, s, need, fn); };
    using v = http::verb;
    r.add(v::get, "/api/v1/devices", bind(access::tenant_read, list_devices));
    r.add(v::post, "/api/v1/devices", bind(access::tenant_write, create_device));
    r.add(v::get, "/api/v1/devices/{id}", bind(access::tenant_read, get_device));
    r.add(v::patch, "/api/v1/devices/{id}", bind(access::tenant_write, patch_device));
    r.add(v::delete_, "/api/v1/devices/{id}", bind(access::tenant_write, delete_device));
    r.add(v::post, "/api/v1/devices/{id}/secret", bind(access::tenant_write, rotate_secret));
    r.add(v::get, "/api/v1/devices/{id}/metrics", bind(access::tenant_read, list_metrics));
    r.add(v::get, "/api/v1/devices/{id}/telemetry", bind(access::tenant_read, query_telemetry));
    r.add(v::get, "/api/v1/devices/{id}/telemetry/latest", bind(access::tenant_read, latest_telemetry));
}

} // namespace pulsegate::webui
