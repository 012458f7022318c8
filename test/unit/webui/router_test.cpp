// The router (router.hpp): pattern matching, path parameters, 404/405 and
// their JSON shapes, pattern validation, handlers that throw.

#include "webui/router.hpp"

#include <boost/json/parse.hpp>

#include <doctest/doctest.h>

#include <stdexcept>

using namespace pulsegate::webui;
namespace json = boost::json;

namespace {

// A handler answering "{route} {param=value ...}" as text, to see what matched.
handler echo(std::string name) {
    return [name](const request_context& ctx) {
        std::string out = name;
        for (const auto& [k, v] : ctx.path_params) out += " " + std::string(k) + "=" + v;
        return text_response(out);
    };
}

response call(const router& r, http::verb method, std::string_view path) {
    request_context ctx;
    ctx.method = method;
    ctx.target = path;
    ctx.path = path;
    return r.dispatch(ctx);
}

router sample() {
    router r;
    r.add(http::verb::get, "/api/v1/devices", echo("list"));
    r.add(http::verb::post, "/api/v1/devices", echo("create"));
    r.add(http::verb::get, "/api/v1/devices/{id}", echo("get"));
    r.add(http::verb::delete_, "/api/v1/devices/{id}", echo("delete"));
    r.add(http::verb::get, "/api/v1/devices/{id}/telemetry/latest", echo("latest"));
    r.add(http::verb::get, "/api/v1/devices/count", echo("count"));
    r.add(http::verb::get, "/a/{x}/b/{y}", echo("two"));
    r.add(http::verb::get, "/", echo("root"));
    return r;
}

} // namespace

TEST_CASE("literal routes and path parameters match; parameters are percent-decoded") {
    const auto r = sample();
    CHECK(call(r, http::verb::get, "/api/v1/devices").body == "list");
    CHECK(call(r, http::verb::post, "/api/v1/devices").body == "create");
    CHECK(call(r, http::verb::get, "/api/v1/devices/d1").body == "get id=d1");
    CHECK(call(r, http::verb::delete_, "/api/v1/devices/d1").body == "delete id=d1");
    CHECK(call(r, http::verb::get, "/api/v1/devices/d1/telemetry/latest").body == "latest id=d1");
    CHECK(call(r, http::verb::get, "/api/v1/devices/a%20b%2Fc").body == "get id=a b/c");
    CHECK(call(r, http::verb::get, "/api/v1/devices/a+b").body == "get id=a+b"); // '+' is a space only in queries
    CHECK(call(r, http::verb::get, "/a/1/b/2").body == "two x=1 y=2");
    CHECK(call(r, http::verb::get, "/").body == "root");
}

TEST_CASE("a literal segment wins over a parameter") {
    const auto r = sample();
    CHECK(call(r, http::verb::get, "/api/v1/devices/count").body == "count");
    CHECK(call(r, http::verb::get, "/api/v1/devices/counts").body == "get id=counts");
}

TEST_CASE("literal segments compare decoded") {
    const auto r = sample();
    CHECK(call(r, http::verb::get, "/api/v1/%64evices").body == "list");
}

TEST_CASE("unknown paths answer 404 not_found in the error shape") {
    const auto r = sample();
    for (auto path : {"/nope", "/api/v1/devices/", "/api/v1/devices//telemetry/latest", "/api/v1/devices/x/y",
                      "/api/v1/devices/%zz", "/api/v1/devices/%4"}) {
        CAPTURE(path);
        const auto res = call(r, http::verb::get, path);
        CHECK(res.status == http::status::not_found);
        CHECK(res.content_type == "application/json");
        const auto v = json::parse(res.body);
        CHECK(v.at("error").at("code") == "not_found");
        CHECK(!v.at("error").at("message").as_string().empty());
    }
}

TEST_CASE("a known path with another method answers 405 with Allow") {
    const auto r = sample();
    auto res = call(r, http::verb::put, "/api/v1/devices/d1");
    CHECK(res.status == http::status::method_not_allowed);
    CHECK(res.header("Allow") == "DELETE, GET, HEAD");
    const auto v = json::parse(res.body);
    CHECK(v.at("error").at("code") == "method_not_allowed");

    res = call(r, http::verb::delete_, "/api/v1/devices");
    CHECK(res.status == http::status::method_not_allowed);
    CHECK(res.header("Allow") == "GET, HEAD, POST");

    res = call(r, http::verb::unknown, "/api/v1/devices");
    CHECK(res.status == http::status::method_not_allowed);
}

TEST_CASE("HEAD runs the GET handler") {
    const auto r = sample();
    CHECK(call(r, http::verb::head, "/api/v1/devices/d1").body == "get id=d1");
}

TEST_CASE("the matched pattern and parameters are in the context") {
    router r;
    std::string seen;
    r.add(http::verb::get, "/api/v1/devices/{id}/telemetry/latest", [&](const request_context& ctx) {
        seen = std::string(ctx.route) + " " + std::string(ctx.path_param("id"));
        return text_response("");
    });
    call(r, http::verb::get, "/api/v1/devices/x%2Fy/telemetry/latest");
    CHECK(seen == "/api/v1/devices/{id}/telemetry/latest x/y");
}

TEST_CASE("a handler that throws answers 500 internal") {
    router r;
    r.add(http::verb::get, "/boom", [](const request_context&) -> response { throw std::runtime_error("boom"); });
    const auto res = call(r, http::verb::get, "/boom");
    CHECK(res.status == http::status::internal_server_error);
    CHECK(json::parse(res.body).at("error").at("code") == "internal");
}

TEST_CASE("bad patterns and clashes are refused at registration") {
    router r;
    r.add(http::verb::get, "/a/{id}", echo("x"));
    CHECK_THROWS_AS(r.add(http::verb::get, "/a/{id}", echo("x")), std::invalid_argument);   // twice
    CHECK_THROWS_AS(r.add(http::verb::post, "/a/{name}", echo("x")), std::invalid_argument); // same shape
    CHECK_THROWS_AS(r.add(http::verb::get, "a", echo("x")), std::invalid_argument);
    CHECK_THROWS_AS(r.add(http::verb::get, "/b/{}", echo("x")), std::invalid_argument);
    CHECK_THROWS_AS(r.add(http::verb::get, "/b/{Id}", echo("x")), std::invalid_argument);
    CHECK_THROWS_AS(r.add(http::verb::get, "/b/x{id}", echo("x")), std::invalid_argument);
    CHECK_THROWS_AS(r.add(http::verb::get, "/b/{id}/{id}", echo("x")), std::invalid_argument);
    CHECK_THROWS_AS(r.add(http::verb::head, "/c", echo("x")), std::invalid_argument);
    CHECK_THROWS_AS(r.add(http::verb::get, "/c", handler{}), std::invalid_argument);
    CHECK_NOTHROW(r.add(http::verb::post, "/a/{id}", echo("x")));
}

TEST_CASE("routes() lists every method and pattern, sorted") {
    const auto routes = sample().routes();
    REQUIRE(routes.size() == 8);
    CHECK(routes.front() == route_info{http::verb::get, "/"});
    CHECK(routes[2] == route_info{http::verb::get, "/api/v1/devices"});
    CHECK(routes[3] == route_info{http::verb::post, "/api/v1/devices"});
}

TEST_CASE("percent_decode") {
    CHECK(percent_decode("a%20b") == "a b");
    CHECK(percent_decode("%2f%2F") == "//");
    CHECK(percent_decode("a+b") == "a+b");
    CHECK(percent_decode("") == "");
    CHECK_FALSE(percent_decode("%"));
    CHECK_FALSE(percent_decode("%2"));
    CHECK_FALSE(percent_decode("%g0"));
}
