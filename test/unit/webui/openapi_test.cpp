// webui/openapi.json stays true to the router: every registered (method,
// pattern) is documented under `paths` with the same template syntax, every
// documented operation is registered, path parameters are declared, and
// every "$ref" resolves. When later issues add routes, build the full route
// table here and check it the same way.

#include "webui/builtin_routes.hpp"
#include "webui/openapi.hpp"

#include <boost/json/parse.hpp>

#include <doctest/doctest.h>

#include <algorithm>
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

// What differs between the router and the document; empty when they agree.
std::vector<std::string> mismatches(const router& r, const json::value& doc) {
    std::vector<std::string> out;
    const auto& paths = doc.at("paths").as_object();
    std::set<std::pair<std::string, std::string>> registered;
    for (const auto& route : r.routes()) {
        const auto method = lower(http::to_string(route.method));
        const auto where = method + " " + route.pattern;
        registered.emplace(method, route.pattern);
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

TEST_CASE("the built-in routes and the OpenAPI document agree") {
    metrics m;
    readiness checks;
    router r;
    register_builtin_routes(r, m, checks);
    REQUIRE(r.routes().size() == 4);
    const auto problems = mismatches(r, json::parse(openapi_document()));
    for (const auto& p : problems) FAIL_CHECK(p);
    CHECK(problems.empty());
}

TEST_CASE("the agreement check notices an undocumented route and a documented one missing") {
    metrics m;
    readiness checks;
    router r;
    register_builtin_routes(r, m, checks);
    r.add(http::verb::get, "/api/v1/undocumented/{id}", [](const request_context&) { return response{}; });
    auto doc = json::parse(openapi_document());
    doc.at("paths").as_object()["/api/v1/ghost"] = json::parse(R"({"get": {"responses": {}}})");
    const auto problems = mismatches(r, doc);
    REQUIRE(problems.size() == 2);
    CHECK(problems[0].starts_with("get /api/v1/undocumented/{id}: registered but not"));
    CHECK(problems[1].starts_with("get /api/v1/ghost: in webui/openapi.json but not registered"));
}
