// The daily digest's settings and a send-now (engine/digest.hpp):
//   GET  /api/v1/digest          the tenant's settings
//   PUT  /api/v1/digest          {"enabled", "hour", "time_zone", "integrations"} (absent: unchanged)
//   GET  /api/v1/digest/preview  the digest of the last 24 hours, as it would be sent
//   POST /api/v1/digest/send     queues that digest now for the chosen integrations

#include "webui/api.hpp"
#include "webui/api_common.hpp"

#include "engine/digest.hpp"
#include "engine/outbox.hpp"

#include "common/json_text.hpp"

#include <boost/json/parse.hpp>

namespace pulsegate::webui {

namespace {

using namespace detail;

api_error unavailable_digest() { return unavailable("the digest is not available in this server"); }

response get_digest(const api_services& s, const caller& c, const request_context&) {
    if (s.digest == nullptr) return to_response(unavailable_digest());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto got = s.digest->get(*tenant);
    if (!got) return to_response(from_state(got.error(), "get digest settings"));
    return json_response(engine::to_json(*got));
}

response put_digest(const api_services& s, const caller& c, const request_context& ctx) {
    if (s.digest == nullptr) return to_response(unavailable_digest());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto body = body_object(ctx);
    if (!body) return to_response(body.error());
    if (body->contains("last_sent"))
        return to_response(api_error::invalid_argument("last_sent", "last_sent is kept by the server"));
    auto current = s.digest->get(*tenant);
    if (!current) return to_response(from_state(current.error(), "get digest settings"));
    std::string why;
    auto next = engine::parse_digest_settings(*body, *current, &why);
    if (!next) return to_response(api_error::invalid_argument(why.substr(0, why.find(' ')), why));
    if (next->enabled && next->integrations.empty())
        return to_response(api_error::invalid_argument(
            "integrations", "integrations must name at least one email integration when the digest is enabled"));
    auto saved = s.digest->put(*tenant, std::move(*next), now_ms());
    if (!saved) {
        if (saved.error().code == storage::state::state_errc::invalid_argument) {
            const auto& m = saved.error().message;
            return to_response(api_error::invalid_argument(m.substr(0, m.find(':')), m));
        }
        return to_response(from_state(saved.error(), "save digest settings"));
    }
    return json_response(engine::to_json(*saved));
}

response preview_digest(const api_services& s, const caller& c, const request_context&) {
    if (s.digest == nullptr) return to_response(unavailable_digest());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto settings = s.digest->get(*tenant);
    if (!settings) return to_response(from_state(settings.error(), "get digest settings"));
    const auto now = now_ms();
    const engine::digest_period p{.from_ms = now - 86'400'000, .to_ms = now, .day = rfc3339(now).substr(0, 10)};
    auto body = s.digest->payload(*tenant, p, settings->time_zone, now);
    if (!body) return to_response(from_state(body.error(), "preview digest"));
    return json_response(common::object_or_empty(*body)["digest"]);
}

response send_digest(const api_services& s, const caller& c, const request_context&) {
    if (s.digest == nullptr) return to_response(unavailable_digest());
    auto tenant = tenant_of(c);
    if (!tenant) return to_response(tenant.error());
    auto settings = s.digest->get(*tenant);
    if (!settings) return to_response(from_state(settings.error(), "get digest settings"));
    if (settings->integrations.empty())
        return to_response(api_error::invalid_argument(
            "integrations", "choose the digest's email integrations first (PUT /api/v1/digest)"));
    auto jobs = s.digest->send_now(*tenant, now_ms());
    if (!jobs) return to_response(from_state(jobs.error(), "send digest"));
    if (s.outbox != nullptr) s.outbox->notify();
    return json_response(json::object{{"jobs", *jobs}}, http::status::accepted);
}

} // namespace

void add_digest_routes(router& r, auth& a, const api_services& s) {
    BOOST_ASSERT(s.db != nullptr);
    auto bind = [&](access need, detail::api_handler fn) { return detail::guarded(a, s, need, fn); };
    using v = http::verb;
    r.add(v::get, "/api/v1/digest", bind(access::tenant_read, get_digest));
    r.add(v::put, "/api/v1/digest", bind(access::tenant_write, put_digest));
    r.add(v::get, "/api/v1/digest/preview", bind(access::tenant_read, preview_digest));
    r.add(v::post, "/api/v1/digest/send", bind(access::tenant_write, send_digest));
}

} // namespace pulsegate::webui
