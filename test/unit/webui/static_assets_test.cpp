// The embedded web front end (static_assets.hpp): the table embed_assets.py
// generated, the header parsing, and the routes served by the real HTTP
// server on 127.0.0.1:0 (content types, ETag and 304, gzip only when
// accepted, the CSP and the other UI headers, 404, HEAD).

#include "http_test_client.hpp"

#include "webui/http_server.hpp"
#include "webui/static_assets.hpp"

#include <boost/beast/zlib/inflate_stream.hpp>
#include <boost/json/parse.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <regex>
#include <string>

using namespace pulsegate::webui;
using pulsegate::webui::test::test_client;
namespace json = boost::json;

namespace {

std::uint32_t crc32(std::string_view bytes) {
    std::uint32_t crc = 0xffffffffu;
    for (unsigned char b : bytes) {
        crc ^= b;
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

std::uint32_t le32(std::string_view b) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(b[0])) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(b[1])) << 8 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(b[2])) << 16 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(b[3])) << 24;
}

// The bytes of a gzip member as embed_assets.py writes it (RFC 1952: a
// 10-byte header without optional fields, raw deflate, CRC-32 and size);
// fails the test on anything else, a bad CRC or a wrong size.
std::string gunzip(std::string_view gz) {
    REQUIRE(gz.size() >= 18);
    REQUIRE(static_cast<unsigned char>(gz[0]) == 0x1f);
    REQUIRE(static_cast<unsigned char>(gz[1]) == 0x8b);
    REQUIRE(gz[2] == 8);                                      // deflate
    REQUIRE(gz[3] == 0);                                      // no name, comment or extra field
    REQUIRE(gz.substr(4, 4) == std::string_view("\0\0\0\0", 4)); // mtime 0: reproducible
    const auto trailer = gz.substr(gz.size() - 8);
    const auto deflated = gz.substr(10, gz.size() - 18);

    boost::beast::zlib::inflate_stream inflater;
    std::string out(le32(trailer.substr(4)), '\0');
    boost::beast::zlib::z_params zs;
    zs.next_in = deflated.data();
    zs.avail_in = deflated.size();
    std::array<char, 1> spare{}; // room to see the end of the stream when out is empty
    zs.next_out = out.empty() ? spare.data() : out.data();
    zs.avail_out = out.empty() ? spare.size() : out.size();
    boost::system::error_code ec;
    inflater.write(zs, boost::beast::zlib::Flush::finish, ec);
    CHECK(ec == boost::beast::zlib::error::end_of_stream);
    CHECK(zs.total_out == out.size());
    CHECK(zs.avail_in == 0);
    CHECK(crc32(out) == le32(trailer));
    return out;
}

std::string_view extension(std::string_view name) { return name.substr(name.rfind('.')); }

// A server with only the UI routes.
struct fixture {
    metrics m;
    router r;
    std::unique_ptr<http_server> server;

    fixture() {
        register_static_routes(r);
        server = std::make_unique<http_server>(r, m, http_server_options{.listen = "127.0.0.1:0"});
        server->start();
    }
};

void check_ui_headers(const test::http_response& res) {
    CHECK(res["Content-Security-Policy"] == ui_content_security_policy);
    CHECK(res["X-Content-Type-Options"] == "nosniff");
    CHECK(res["Referrer-Policy"] == "no-referrer");
    CHECK(res["X-Frame-Options"] == "DENY");
    // One of each, not the server's default next to ours.
    CHECK(res.count("X-Content-Type-Options") == 1);
    CHECK(res.count(http::field::cache_control) == 1);
}

const static_asset& asset(std::string_view name) {
    const auto* a = find_static_asset(name);
    REQUIRE_MESSAGE(a != nullptr, "no embedded asset " << name);
    return *a;
}

} // namespace

// ---- the table ---------------------------------------------------------------

TEST_CASE("the table: sorted unique names, the shell and uPlot, types by extension") {
    const auto all = static_assets();
    REQUIRE(all.size() >= 2);
    for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i - 1].name < all[i].name);
    for (const char* name : {"index.html", "app.js", "api.js", "dom.js", "app.css", "page-login.js",
                             "page-dashboard.js", "favicon.svg", "uPlot.esm.js", "uPlot.min.css"}) {
        CAPTURE(name);
        CHECK(find_static_asset(name) != nullptr);
    }
    CHECK(find_static_asset("missing.js") == nullptr);
    CHECK(find_static_asset("APP.JS") == nullptr);
    CHECK(find_static_asset("") == nullptr);

    for (const auto& a : all) {
        CAPTURE(a.name);
        CHECK(find_static_asset(a.name) == &a);
        const auto ext = extension(a.name);
        if (ext == ".html") CHECK(a.content_type == "text/html; charset=utf-8");
        else if (ext == ".js") CHECK(a.content_type == "text/javascript; charset=utf-8");
        else if (ext == ".css") CHECK(a.content_type == "text/css; charset=utf-8");
        else if (ext == ".svg") CHECK(a.content_type == "image/svg+xml");
        else CHECK(!a.content_type.empty());
    }
}

TEST_CASE("the table: strong ETags from the content; gzip only when smaller, and it inflates to the bytes") {
    const std::regex etag_syntax(R"("[0-9a-f]{16}")");
    for (const auto& a : static_assets()) {
        CAPTURE(a.name);
        CHECK(std::regex_match(std::string(a.etag), etag_syntax));
        if (a.gzip.empty()) {
            CHECK(a.gzip_etag.empty());
            continue;
        }
        CHECK(a.gzip.size() < a.body.size());
        CHECK(a.gzip_etag == std::string(a.etag.substr(0, a.etag.size() - 1)) + "-gz\"");
        CHECK(gunzip(a.gzip) == a.body);
    }
    // Different bytes, different tags.
    CHECK(asset("app.js").etag != asset("api.js").etag);
    // The big library is worth compressing.
    CHECK_FALSE(asset("uPlot.esm.js").gzip.empty());
}

TEST_CASE("the front end keeps the CSP's promises: no inline script or style, no other origin, no innerHTML") {
    const auto index = asset("index.html").body;
    const std::regex script_tag(R"(<script\b[^>]*>)", std::regex::icase);
    for (auto it = std::cregex_iterator(index.begin(), index.end(), script_tag); it != std::cregex_iterator(); ++it) {
        const std::string tag = it->str();
        CAPTURE(tag);
        CHECK(tag.find("src=\"/assets/") != std::string::npos); // a script from us, never inline
    }
    CHECK(std::regex_search(index.begin(), index.end(), std::regex(R"(<script type="module" src="/assets/app\.js">)")));
    CHECK_FALSE(std::regex_search(index.begin(), index.end(), std::regex(R"(<style|\sstyle=|\son[a-z]+=)", std::regex::icase)));
    CHECK_FALSE(std::regex_search(index.begin(), index.end(), std::regex(R"re((src|href)="(https?:)?//)re", std::regex::icase)));

    for (const auto& a : static_assets()) {
        if (extension(a.name) != ".js" || a.name.starts_with("uPlot")) continue;
        CAPTURE(a.name);
        // Comments may name them (dom.js explains why they are not used);
        // code may not call them.
        CHECK_FALSE(std::regex_search(a.body.begin(), a.body.end(),
                                      std::regex(R"(\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML\(|document\.write\()")));
        CHECK_FALSE(std::regex_search(a.body.begin(), a.body.end(), std::regex(R"(from\s+['"]https?:)")));
    }
}

// ---- header parsing ----------------------------------------------------------

TEST_CASE("accepts_gzip") {
    struct row {
        std::string_view header;
        bool want;
    };
    const row rows[] = {
        {"", false},
        {"gzip", true},
        {"GZIP", true},
        {"x-gzip", true},
        {"gzip, deflate, br", true},
        {"deflate, br", false},
        {"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
        {"gzip;q=0", false},
        {"gzip; q=0.000", false},
        {"gzip;Q=0", false},
        {"gzip;q=0.001", true},
        {"gzip;q=1", true},
        {"gzip;q=1.000", true},
        {"gzip;q=2", false},      // malformed: identity is the safe answer
        {"gzip;q=abc", false},
        {"*", true},
        {"*;q=0", false},
        {"gzip;q=0, *", false},   // named beats the wildcard
        {"identity", false},
        {"  gzip  ;  q=0.5 ", true},
        {",,gzip,,", true},
        {"gzipper", false},
    };
    for (const auto& r : rows) {
        CAPTURE(r.header);
        CHECK(accepts_gzip(r.header) == r.want);
    }
}

TEST_CASE("if_none_match_matches: lists, *, weak comparison") {
    struct row {
        std::string_view header;
        std::string_view etag;
        bool want;
    };
    const row rows[] = {
        {R"("abc")", R"("abc")", true},
        {R"(W/"abc")", R"("abc")", true},
        {R"("abc")", R"(W/"abc")", true},
        {R"("xyz", "abc")", R"("abc")", true},
        {R"("xyz",W/"abc")", R"("abc")", true},
        {R"("xyz")", R"("abc")", false},
        {R"("abc-gz")", R"("abc")", false},
        {R"(abc)", R"("abc")", false},          // unquoted: malformed
        {R"("xyz", abc, "abc")", R"("abc")", false}, // nothing after a malformed element
        {R"("abc)", R"("abc")", false},
        {"*", R"("abc")", true},
        {" * ", R"("abc")", true},
        {"", R"("abc")", false},
    };
    for (const auto& r : rows) {
        CAPTURE(r.header);
        CAPTURE(r.etag);
        CHECK(if_none_match_matches(r.header, r.etag) == r.want);
    }
}

// ---- serving -----------------------------------------------------------------

TEST_CASE("GET / is index.html and GET /assets/{name} each asset, with its type and the UI headers") {
    fixture f;
    test_client c(f.server->local_endpoint());

    auto res = c.request("GET", "/");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == "text/html; charset=utf-8");
    CHECK(res.body() == asset("index.html").body);
    CHECK(res[http::field::etag] == asset("index.html").etag);
    CHECK(res[http::field::cache_control] == "no-cache"); // not the server's no-store
    CHECK(res.count(http::field::content_encoding) == 0);
    check_ui_headers(res);

    for (const auto& a : static_assets()) {
        CAPTURE(a.name);
        res = c.request("GET", "/assets/" + std::string(a.name));
        CHECK(res.result() == http::status::ok);
        CHECK(res[http::field::content_type] == a.content_type);
        CHECK(res.body() == a.body);
        CHECK(res[http::field::etag] == a.etag);
        CHECK(res[http::field::vary] == (a.gzip.empty() ? "" : "Accept-Encoding"));
        check_ui_headers(res);
    }
    res = c.request("GET", "/assets/app.js");
    CHECK(res[http::field::content_type] == "text/javascript; charset=utf-8");
    res = c.request("GET", "/assets/app.css");
    CHECK(res[http::field::content_type] == "text/css; charset=utf-8");
}

TEST_CASE("gzip only when Accept-Encoding allows it; the gzipped bytes inflate to the plain ones") {
    fixture f;
    test_client c(f.server->local_endpoint());
    const auto& js = asset("uPlot.esm.js");

    auto res = c.request("GET", "/assets/uPlot.esm.js", {}, "Accept-Encoding: gzip, deflate, br\r\n");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_encoding] == "gzip");
    CHECK(res[http::field::vary] == "Accept-Encoding");
    CHECK(res[http::field::content_type] == js.content_type);
    CHECK(res[http::field::etag] == js.gzip_etag);
    CHECK(res.body().size() == js.gzip.size());
    CHECK(res.body().size() < js.body.size());
    CHECK(gunzip(res.body()) == js.body);
    check_ui_headers(res);

    for (const char* refuses : {"", "Accept-Encoding: gzip;q=0\r\n", "Accept-Encoding: br\r\n",
                                "Accept-Encoding: identity\r\n"}) {
        CAPTURE(refuses);
        res = c.request("GET", "/assets/uPlot.esm.js", {}, refuses);
        CHECK(res.result() == http::status::ok);
        CHECK(res.count(http::field::content_encoding) == 0);
        CHECK(res[http::field::vary] == "Accept-Encoding"); // caches must still tell them apart
        CHECK(res[http::field::etag] == js.etag);
        CHECK(res.body() == js.body);
    }

    // Two Accept-Encoding fields are one list.
    res = c.request("GET", "/", {}, "Accept-Encoding: br\r\nAccept-Encoding: gzip\r\n");
    CHECK(res[http::field::content_encoding] == "gzip");
    CHECK(gunzip(res.body()) == asset("index.html").body);
}

TEST_CASE("If-None-Match with the current ETag: 304 without a body; else the asset") {
    fixture f;
    test_client c(f.server->local_endpoint());
    const auto& js = asset("app.js");
    const auto plain_tag = std::string(js.etag);
    const auto gzip_tag = std::string(js.gzip_etag);

    auto check_304 = [&](const test::http_response& res, std::string_view tag) {
        CHECK(res.result() == http::status::not_modified);
        CHECK(res.body().empty());
        CHECK(res.count(http::field::content_length) == 0);
        CHECK(res[http::field::etag] == tag);
        CHECK(res[http::field::cache_control] == "no-cache");
        check_ui_headers(res);
    };

    check_304(c.request("GET", "/assets/app.js", {}, "If-None-Match: " + plain_tag + "\r\n"), plain_tag);
    check_304(c.request("GET", "/assets/app.js", {}, "If-None-Match: \"old\", W/" + plain_tag + "\r\n"), plain_tag);
    check_304(c.request("GET", "/assets/app.js", {}, "If-None-Match: *\r\n"), plain_tag);
    check_304(c.request("GET", "/assets/app.js", {}, "Accept-Encoding: gzip\r\nIf-None-Match: " + gzip_tag + "\r\n"),
              gzip_tag);
    check_304(c.request("HEAD", "/assets/app.js", {}, "If-None-Match: " + plain_tag + "\r\n"), plain_tag);
    check_304(c.request("GET", "/", {}, "If-None-Match: " + std::string(asset("index.html").etag) + "\r\n"),
              asset("index.html").etag);

    // A tag of the other coding, or of another version, is not current.
    auto res = c.request("GET", "/assets/app.js", {}, "If-None-Match: " + gzip_tag + "\r\n");
    CHECK(res.result() == http::status::ok);
    CHECK(res.body() == js.body);
    res = c.request("GET", "/assets/app.js", {}, "Accept-Encoding: gzip\r\nIf-None-Match: " + plain_tag + "\r\n");
    CHECK(res.result() == http::status::ok);
    CHECK(gunzip(res.body()) == js.body);
    res = c.request("GET", "/assets/app.js", {}, "If-None-Match: \"0000000000000000\"\r\n");
    CHECK(res.result() == http::status::ok);
    CHECK(res.body() == js.body);

    // The connection is still in step after the bodiless answers.
    CHECK(c.request("GET", "/assets/dom.js").body() == asset("dom.js").body);
}

TEST_CASE("HEAD: the GET headers, Content-Length of what GET would send, no body") {
    fixture f;
    test_client c(f.server->local_endpoint());
    const auto& js = asset("app.js");

    auto res = c.request("HEAD", "/assets/app.js");
    CHECK(res.result() == http::status::ok);
    CHECK(res.body().empty());
    CHECK(res[http::field::content_length] == std::to_string(js.body.size()));
    CHECK(res[http::field::content_type] == js.content_type);
    CHECK(res[http::field::etag] == js.etag);
    check_ui_headers(res);

    res = c.request("HEAD", "/assets/app.js", {}, "Accept-Encoding: gzip\r\n");
    CHECK(res[http::field::content_length] == std::to_string(js.gzip.size()));
    CHECK(res[http::field::content_encoding] == "gzip");

    res = c.request("HEAD", "/");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_length] == std::to_string(asset("index.html").body.size()));

    CHECK(c.request("GET", "/assets/app.js").body() == js.body);
}

TEST_CASE("an unknown asset: the JSON 404, with the UI headers; other methods: 405") {
    fixture f;
    test_client c(f.server->local_endpoint());
    for (const char* target : {"/assets/nope.js", "/assets/APP.JS", "/assets/..%2Fmeson.build", "/assets/%2e%2e",
                               "/assets/app.js/x", "/assets/", "/index.html"}) {
        CAPTURE(target);
        const auto res = c.request("GET", target);
        CHECK(res.result() == http::status::not_found);
        CHECK(res[http::field::content_type] == "application/json");
        CHECK(json::parse(res.body()).at("error").at("code") == "not_found");
    }
    auto res = c.request("GET", "/assets/nope.js");
    check_ui_headers(res);
    CHECK(res[http::field::cache_control] == "no-store");
    CHECK(res.count(http::field::etag) == 0);

    res = c.request("POST", "/assets/app.js");
    CHECK(res.result() == http::status::method_not_allowed);
    CHECK(res[http::field::allow] == "GET, HEAD");
    res = c.request("PUT", "/");
    CHECK(res.result() == http::status::method_not_allowed);
}
