// The REST conventions: error shape, list shape, pagination parameters and
// JSON bodies (response.hpp, pagination.hpp, json_body.hpp).

#include "webui/json_body.hpp"
#include "webui/pagination.hpp"
#include "webui/response.hpp"

#include <boost/json/parse.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <string>

using namespace pulsegate::webui;
namespace json = boost::json;

TEST_CASE("json_error has the error shape and status") {
    const auto res = json_error(http::status::conflict, codes::conflict, "device \"d1\" exists");
    CHECK(res.status == http::status::conflict);
    CHECK(res.content_type == "application/json");
    CHECK(json::parse(res.body) == json::parse(R"({"error": {"code": "conflict", "message": "device \"d1\" exists"}})"));
}

TEST_CASE("an api_error naming a field shows it") {
    const auto res = to_response(api_error::invalid_argument("limit", "bad"));
    CHECK(res.status == http::status::bad_request);
    CHECK(json::parse(res.body) ==
          json::parse(R"({"error": {"code": "invalid_argument", "message": "bad", "field": "limit"}})"));
}

TEST_CASE("list_response has items and next_cursor (null on the last page)") {
    json::array items{1, 2};
    auto res = list_response(items, "abc");
    CHECK(json::parse(res.body) == json::parse(R"({"items": [1, 2], "next_cursor": "abc"})"));
    res = list_response({}, std::nullopt);
    CHECK(json::parse(res.body) == json::parse(R"({"items": [], "next_cursor": null})"));
}

TEST_CASE("pagination parameters") {
    struct row {
        std::optional<std::string_view> limit;
        std::optional<std::string_view> cursor;
        bool ok;
        std::size_t want_limit;
        std::string_view want_cursor_or_field;
    };
    const std::string long_cursor(page_request::max_cursor_size + 1, 'c');
    const std::string max_cursor(page_request::max_cursor_size, 'c');
    const row rows[] = {
        {std::nullopt, std::nullopt, true, 100, ""},
        {"1", std::nullopt, true, 1, ""},
        {"1000", std::nullopt, true, 1000, ""},
        {"42", "opaque==", true, 42, "opaque=="},
        {std::nullopt, "", true, 100, ""},
        {std::nullopt, max_cursor, true, 100, max_cursor},
        {"0", std::nullopt, false, 0, "limit"},
        {"1001", std::nullopt, false, 0, "limit"},
        {"-1", std::nullopt, false, 0, "limit"},
        {"+5", std::nullopt, false, 0, "limit"},
        {"", std::nullopt, false, 0, "limit"},
        {"12abc", std::nullopt, false, 0, "limit"},
        {" 5", std::nullopt, false, 0, "limit"},
        {"5.0", std::nullopt, false, 0, "limit"},
        {"99999999999999999999999", std::nullopt, false, 0, "limit"},
        {std::nullopt, long_cursor, false, 0, "cursor"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.limit.value_or("(absent)"));
        CAPTURE(r.cursor.value_or("(absent)").substr(0, 20));
        const auto page = parse_page(r.limit, r.cursor);
        REQUIRE(page.has_value() == r.ok);
        if (r.ok) {
            CHECK(page->limit == r.want_limit);
            CHECK(page->cursor == r.want_cursor_or_field);
        } else {
            CHECK(page.error().status == http::status::bad_request);
            CHECK(page.error().code == "invalid_argument");
            CHECK(page.error().field == r.want_cursor_or_field);
            CHECK(page.error().message.find(std::string(r.want_cursor_or_field)) == 0);
        }
    }
}

TEST_CASE("pagination reads the request's query") {
    request_context ctx;
    ctx.query = {{"limit", "7"}, {"cursor", "c1"}, {"limit", "9"}};
    const auto page = parse_page(ctx);
    REQUIRE(page.has_value());
    CHECK(page->limit == 7); // the first value counts
    CHECK(page->cursor == "c1");
}

TEST_CASE("a JSON body parses") {
    request_context ctx;
    ctx.body = R"({"name": "x", "n": [1, 2]})";
    const auto v = parse_json_body(ctx);
    REQUIRE(v.has_value());
    CHECK(v->at("name") == "x");
}

TEST_CASE("invalid JSON is a 400 naming the position") {
    struct row {
        std::string_view body;
        std::string_view where;
    };
    const row rows[] = {
        {R"({"a": 1,})", "line 1, column 9 (byte 8)"},
        {"{\n  \"a\": tru\n}", "line 2, column 8 (byte 9)"},
        {"[1, 2", "line 1, column 6 (byte 5)"},
        {R"({"a": 1} x)", "line 1, column 10 (byte 9)"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.body);
        request_context ctx;
        ctx.body = r.body;
        const auto v = parse_json_body(ctx);
        REQUIRE(v.has_error());
        CHECK(v.error().status == http::status::bad_request);
        CHECK(v.error().code == "invalid_argument");
        CHECK(v.error().field == "body");
        CHECK(v.error().message.starts_with("invalid JSON at "));
        CHECK(v.error().message.find(r.where) != std::string::npos);
    }
}

TEST_CASE("an empty body and a too deep one are refused, not crashed on") {
    request_context ctx;
    ctx.body = "  ";
    auto v = parse_json_body(ctx);
    REQUIRE(v.has_error());
    CHECK(v.error().message.find("empty") != std::string::npos);

    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    ctx.body = deep;
    v = parse_json_body(ctx);
    REQUIRE(v.has_error());
    CHECK(v.error().code == "invalid_argument");
}

TEST_CASE("a JSON body needs a JSON content type when one is given") {
    http::fields headers;
    request_context ctx;
    ctx.headers = &headers;
    ctx.body = "{}";
    headers.set(http::field::content_type, "application/json; charset=utf-8");
    CHECK(parse_json_body(ctx).has_value());
    headers.set(http::field::content_type, "Application/JSON");
    CHECK(parse_json_body(ctx).has_value());
    headers.set(http::field::content_type, "application/x-www-form-urlencoded");
    const auto v = parse_json_body(ctx);
    REQUIRE(v.has_error());
    CHECK(v.error().status == http::status::unsupported_media_type);
    CHECK(v.error().code == "unsupported_media_type");
}
