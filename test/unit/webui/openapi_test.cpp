// webui/openapi.json stays true to the router: every registered (method,
// pattern) is documented under `paths` with the same template syntax, every
// documented operation is registered, path parameters are declared, and
// every "$ref" resolves. The route table is the daemon's: the built-in
// routes, auth, the REST resources of webui/api.hpp and the web UI's static
// routes; routes added later belong in full_routes below. The UI routes
// (static_route_patterns: "/", "/assets/{name}") serve the front end, not
// the REST API, so they stay out of the document and out of the check.

#include "webui/api.hpp"
#include "webui/live_feed.hpp"
#include "webui/auth.hpp"
#include "webui/builtin_routes.hpp"
#include "webui/openapi.hpp"
#include "webui/static_assets.hpp"

#include <boost/json/parse.hpp>

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace pulsegate::webui;
namespace json = boost::json;

namespace {

const std::set<std::string> operation_keys{"get", "put", "post", "delete", "options", "head", "patch", "trace"};

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// "#/components/parameters/limit" -> the value it names, or null.
const json::value* resolve(const json::value& doc, std::string_view ref) {
    if (!ref.starts_with("#/")) return nullptr;
    boost::system::error_code ec;
    const auto* v = doc.find_pointer(ref.substr(1), ec);
    return ec ? nullptr : v;
}

void check_refs(const json::value& doc, const json::value& v) {
    if (const auto* o = v.if_object()) {
        if (const auto* ref = o->if_contains("$ref")) {
            CAPTURE(ref->as_string());
            CHECK(resolve(doc, ref->as_string()) != nullptr);
        }
        for (const auto& [k, child] : *o) check_refs(doc, child);
    } else if (const auto* a = v.if_array()) {
        for (const auto& child : *a) check_refs(doc, child);
    }
}

// The names of the path parameters an operation (or its path item) declares.
std::set<std::string> declared_path_params(const json::value& doc, const json::object& item, const json::object& op) {
    std::set<std::string> out;
    for (const auto* holder : {&item, &op}) {
        const auto* params = holder->if_contains("parameters");
        if (params == nullptr) continue;
        for (const auto& p : params->as_array()) {
            const json::value* v = &p;
            if (const auto* ref = p.as_object().if_contains("$ref")) v = resolve(doc, ref->as_string());
            if (v == nullptr) continue;
            if (v->at("in") == "path") out.insert(std::string(v->at("name").as_string()));
        }
    }
    return out;
}

std::set<std::string> template_params(std::string_view pattern) {
    std::set<std::string> out;
    for (auto open = pattern.find('{'); open != std::string_view::npos; open = pattern.find('{', open + 1))
        out.insert(std::string(pattern.substr(open + 1, pattern.find('}', open) - open - 1)));
    return out;
}

bool ui_route(std::string_view pattern) {
    return std::find(std::begin(static_route_patterns), std::end(static_route_patterns), pattern) !=
           std::end(static_route_patterns);
}

// What differs between the router and the document; empty when they agree.
// The UI routes must not be documented.
std::vector<std::string> mismatches(const router& r, const json::value& doc) {
    std::vector<std::string> out;
    const auto& paths = doc.at("paths").as_object();
    std::set<std::pair<std::string, std::string>> registered;
    for (const auto& route : r.routes()) {
        const auto method = lower(http::to_string(route.method));
        const auto where = method + " " + route.pattern;
        registered.emplace(method, route.pattern);
        if (ui_route(route.pattern)) {
            if (paths.contains(route.pattern))
                out.push_back(route.pattern + ": a web UI route, not part of the REST API: remove it from "
                              "webui/openapi.json");
            continue;
        }
        const auto* item = paths.if_contains(route.pattern);
        const auto* op = item != nullptr ? item->as_object().if_contains(method) : nullptr;
        if (op == nullptr) {
            out.push_back(where + ": registered but not in webui/openapi.json");
            continue;
        }
        if (!op->as_object().contains("responses")) out.push_back(where + ": no responses documented");
        if (declared_path_params(doc, item->as_object(), op->as_object()) != template_params(route.pattern))
            out.push_back(where + ": the path parameters declared differ from the template's");
    }
    for (const auto& [pattern, item] : paths) {
        for (const auto& [key, op] : item.as_object()) {
            if (!operation_keys.contains(std::string(key))) continue;
            if (!registered.contains({std::string(key), std::string(pattern)}))
                out.push_back(std::string(key) + " " + std::string(pattern) +
                              ": in webui/openapi.json but not registered");
        }
    }
    return out;
}

// Every route the daemon registers, on services that are never called.
struct full_routes {
    pulsegate::test::temp_dir dir;
    std::unique_ptr<pulsegate::storage::state::database> db;
    pulsegate::engine::server_key key{};
    metrics m;
    readiness checks;
    std::unique_ptr<auth> a;
    router r;

    full_routes() {
        auto opened = pulsegate::storage::state::database::open({.file = dir.path / "state.db"});
        REQUIRE(opened.has_value());
        db = std::move(*opened);
        a = std::make_unique<auth>(*db, key);
        register_builtin_routes(r, m, checks);
        register_static_routes(r);
        a->add_routes(r);
        const api_services s{db.get(), nullptr, &key, nullptr};
        add_device_routes(r, *a, s);
        add_token_routes(r, *a, s);
        add_operator_routes(r, *a, s);
        add_rule_routes(r, *a, s);
        add_alert_routes(r, *a, s);
        add_silence_routes(r, *a, s);
        add_integration_routes(r, *a, s);
        add_digest_routes(r, *a, s);
        add_live_feed_route(r);
        add_info_route(r, *a, [] { return server_info{}; });
    }
};

} // namespace

TEST_CASE("the OpenAPI document is OpenAPI 3.0 with the shared schemas") {
    const auto doc = json::parse(openapi_document());
    CHECK(doc.at("openapi").as_string().starts_with("3.0."));
    CHECK(doc.at("info").as_object().contains("title"));
    const auto& schemas = doc.at("components").at("schemas").as_object();
    CHECK(schemas.contains("Error"));
    CHECK(schemas.contains("List"));
    check_refs(doc, doc);
}

TEST_CASE("the daemon's routes and the OpenAPI document agree") {
    full_routes all;
    // 4 built-in, 2 web UI, 3 auth, 1 info, 9 devices and telemetry, 3 tokens, 14
    // operator, 6 rules, 5 alerts, 3 silences, 17 delivery (integrations,
    // routes, deliveries, digest), 1 live feed.
    REQUIRE(all.r.routes().size() == 68);
    const auto problems = mismatches(all.r, json::parse(openapi_document()));
    for (const auto& p : problems) FAIL_CHECK(p);
    CHECK(problems.empty());
}

TEST_CASE("the agreement check notices an undocumented route and a documented one missing") {
    full_routes all;
    auto& r = all.r;
    r.add(http::verb::get, "/api/v1/undocumented/{id}", [](const request_context&) { return response{}; });
    auto doc = json::parse(openapi_document());
    doc.at("paths").as_object()["/api/v1/ghost"] = json::parse(R"({"get": {"responses": {}}})");
    const auto problems = mismatches(r, doc);
    REQUIRE(problems.size() == 2);
    CHECK(problems[0].starts_with("get /api/v1/undocumented/{id}: registered but not"));
    CHECK(problems[1].starts_with("get /api/v1/ghost: in webui/openapi.json but not registered"));
}

TEST_CASE("the web UI routes are registered but stay out of the OpenAPI document") {
    full_routes all;
    const auto routes = all.r.routes();
    for (const auto pattern : static_route_patterns) {
        CAPTURE(pattern);
        CHECK(std::count(routes.begin(), routes.end(), route_info{http::verb::get, std::string(pattern)}) == 1);
    }
    auto doc = json::parse(openapi_document());
    doc.at("paths").as_object()["/assets/{name}"] = json::parse(R"({"get": {"responses": {}}})");
    const auto problems = mismatches(all.r, doc);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].starts_with("/assets/{name}: a web UI route"));
}

TEST_CASE("the security of every operation: schemes exist, cookie writes need the CSRF token") {
    const auto doc = json::parse(openapi_document());
    const auto& schemes = doc.at("components").at("securitySchemes").as_object();
    CHECK(schemes.contains("bearerAuth"));
    CHECK(schemes.contains("cookieAuth"));
    CHECK(schemes.contains("csrfToken"));
    const std::set<std::string> open{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/auth/login"};
    for (const auto& [pattern, item] : doc.at("paths").as_object()) {
        for (const auto& [method, op] : item.as_object()) {
            if (!operation_keys.contains(std::string(method))) continue;
            const auto where = std::string(method) + " " + std::string(pattern);
            CAPTURE(where);
            const auto* sec = op.as_object().if_contains("security");
            if (sec == nullptr) sec = doc.as_object().if_contains("security");
            REQUIRE(sec != nullptr);
            const auto& alternatives = sec->as_array();
            if (open.contains(std::string(pattern))) {
                CHECK(alternatives.empty());
                continue;
            }
            REQUIRE_FALSE(alternatives.empty());
            for (const auto& alt : alternatives) {
                for (const auto& [name, scopes] : alt.as_object()) CHECK(schemes.contains(name));
                // A cookie on a state-changing request goes with the CSRF token.
                if (method != "get" && alt.as_object().contains("cookieAuth"))
                    CHECK(alt.as_object().contains("csrfToken"));
            }
        }
    }
}
