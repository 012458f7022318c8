// The HTTP server in process (http_server.hpp): started on 127.0.0.1:0,
// spoken to over real sockets with test_client.

#include "http_test_client.hpp"

#include "webui/builtin_routes.hpp"
#include "webui/http_server.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <doctest/doctest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

using namespace pulsegate::webui;
using pulsegate::webui::test::test_client;
namespace json = boost::json;

namespace {

// A server with the built-in routes and a few test routes:
//   GET  /echo/{id}  -> {"id", "path", "target", "query": [[k, v]...], "remote"}
//   POST /echo       -> {"size": body size, "body": body}
//   GET  /boom       -> throws
//   GET  /gate       -> waits until open_gate() (for stop() tests)
struct fixture {
    metrics m;
    readiness checks;
    router r;
    std::unique_ptr<http_server> server;

    std::mutex gate_mutex;
    std::condition_variable gate_cv;
    bool gate_entered = false;
    bool gate_open = false;

    explicit fixture(http_server_options opts = {}) {
        register_builtin_routes(r, m, checks);
        r.add(http::verb::get, "/echo/{id}", [](const request_context& ctx) {
            json::array query;
            for (const auto& [k, v] : ctx.query) query.push_back(json::array{json::string(k), json::string(v)});
            return json_response(json::object{{"id", ctx.path_param("id")},
                                              {"path", ctx.path},
                                              {"target", ctx.target},
                                              {"query", query},
                                              {"remote", ctx.remote.address().to_string()}});
        });
        r.add(http::verb::post, "/echo", [](const request_context& ctx) {
            return json_response(json::object{{"size", ctx.body.size()}, {"body", ctx.body}});
        });
        r.add(http::verb::get, "/boom", [](const request_context&) -> response { throw std::runtime_error("boom"); });
        r.add(http::verb::get, "/gate", [this](const request_context&) {
            std::unique_lock lock(gate_mutex);
            gate_entered = true;
            gate_cv.notify_all();
            gate_cv.wait(lock, [&] { return gate_open; });
            return json_response(json::object{{"gate", "passed"}});
        });
        opts.listen = "127.0.0.1:0";
        server = std::make_unique<http_server>(r, m, opts);
        server->start();
    }

    ~fixture() {
        open_gate();
        server.reset();
    }

    boost::asio::ip::tcp::endpoint endpoint() const { return server->local_endpoint(); }

    void wait_gate_entered() {
        std::unique_lock lock(gate_mutex);
        REQUIRE(gate_cv.wait_for(lock, std::chrono::seconds(10), [&] { return gate_entered; }));
    }
    void open_gate() {
        std::lock_guard lock(gate_mutex);
        gate_open = true;
        gate_cv.notify_all();
    }
};

json::value body_json(const test::http_response& res) { return json::parse(res.body()); }

std::string error_code_of(const test::http_response& res) {
    return std::string(body_json(res).at("error").at("code").as_string());
}

// The value of the sample line starting with `series` + " " in `text`, or -1.
double sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
    return -1;
}

} // namespace

TEST_CASE("GET /healthz answers ok as JSON") {
    fixture f;
    test_client c(f.endpoint());
    const auto res = c.request("GET", "/healthz");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == "application/json");
    CHECK(res[http::field::cache_control] == "no-store");
    CHECK(body_json(res) == json::parse(R"({"status": "ok"})"));
    CHECK(f.endpoint().port() != 0);
}

TEST_CASE("GET /readyz: 200 when every check passes, 503 naming the failing ones") {
    fixture f;
    test_client c(f.endpoint());
    auto res = c.request("GET", "/readyz");
    CHECK(res.result() == http::status::ok);
    CHECK(body_json(res) == json::parse(R"({"status": "ready", "checks": []})"));

    std::atomic<bool> storage_ok{true};
    f.checks.add("storage", [&] {
        return storage_ok ? check_result::ok() : check_result::failing("data dir is read-only");
    });
    f.checks.add("listeners", [] { return check_result::ok(); });
    res = c.request("GET", "/readyz");
    CHECK(res.result() == http::status::ok);

    storage_ok = false;
    res = c.request("GET", "/readyz");
    CHECK(res.result() == http::status::service_unavailable);
    CHECK(body_json(res) == json::parse(R"({"status": "not_ready", "checks": [
        {"name": "storage", "status": "failing", "reason": "data dir is read-only"},
        {"name": "listeners", "status": "ok"}]})"));
}

TEST_CASE("GET /metrics: exposition format; requests counted by route pattern") {
    fixture f;
    test_client c(f.endpoint());
    // Responses are counted once written, before the next request on the
    // same connection is read: one connection makes the counts exact.
    c.request("GET", "/echo/a");
    c.request("GET", "/echo/b");
    c.request("GET", "/nothing-here");
    auto res = c.request("GET", "/metrics");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
    auto text = res.body();
    CHECK(sample(text, R"m(pulsegate_http_requests_total{route="/echo/{id}",method="GET",status="200"})m") == 2);
    CHECK(sample(text, R"m(pulsegate_http_requests_total{route="(unmatched)",method="GET",status="404"})m") == 1);
    CHECK(sample(text, R"m(pulsegate_http_request_duration_seconds_count{route="/echo/{id}",method="GET"})m") == 2);
    CHECK(sample(text, R"(pulsegate_http_connections)") == 1);
    CHECK(text.find("# TYPE pulsegate_http_request_duration_seconds histogram\n") != std::string::npos);
    for (std::istringstream in(text); std::getline(in, text);) {
        CAPTURE(text);
        CHECK((text.starts_with("# HELP ") || text.starts_with("# TYPE ") || text.starts_with("pulsegate_")));
        if (!text.starts_with("#")) CHECK(std::isdigit(static_cast<unsigned char>(text.back())));
    }

    const auto before = sample(c.request("GET", "/metrics").body(),
                               R"m(pulsegate_http_requests_total{route="/healthz",method="GET",status="200"})m");
    c.request("GET", "/healthz");
    const auto after = sample(c.request("GET", "/metrics").body(),
                              R"m(pulsegate_http_requests_total{route="/healthz",method="GET",status="200"})m");
    CHECK(after == std::max(before, 0.0) + 1);
}

TEST_CASE("unknown path: 404 JSON; wrong method: 405 JSON with Allow; HEAD: headers only") {
    fixture f;
    test_client c(f.endpoint());
    auto res = c.request("GET", "/api/v1/nope");
    CHECK(res.result() == http::status::not_found);
    CHECK(error_code_of(res) == "not_found");

    res = c.request("DELETE", "/healthz");
    CHECK(res.result() == http::status::method_not_allowed);
    CHECK(res[http::field::allow] == "GET, HEAD");
    CHECK(error_code_of(res) == "method_not_allowed");

    res = c.request("BREW", "/healthz"); // not a method Beast knows
    CHECK(res.result() == http::status::method_not_allowed);

    res = c.request("HEAD", "/healthz");
    CHECK(res.result() == http::status::ok);
    CHECK(res.body().empty());
    CHECK(res[http::field::content_length] == "15"); // {"status":"ok"}

    // The connection survived all of it.
    CHECK(c.request("GET", "/healthz").result() == http::status::ok);
}

TEST_CASE("a body over the limit: 413 before it is read, then close") {
    http_server_options opts;
    opts.body_limit = 1024;
    fixture f(opts);

    SUBCASE("Content-Length over the limit, body never sent") {
        test_client c(f.endpoint());
        c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1025\r\n\r\n");
        const auto res = c.read();
        CHECK(res.result() == http::status::payload_too_large);
        CHECK(error_code_of(res) == "payload_too_large");
        CHECK_FALSE(res.keep_alive());
        CHECK(c.closed_by_server());
    }
    SUBCASE("chunked body growing over the limit") {
        test_client c(f.endpoint());
        c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        c.send("400\r\n" + std::string(1024, 'x') + "\r\n10\r\n" + std::string(16, 'x') + "\r\n0\r\n\r\n");
        const auto res = c.read();
        CHECK(res.result() == http::status::payload_too_large);
        CHECK(c.closed_by_server());
    }
    SUBCASE("a body at the limit is fine") {
        test_client c(f.endpoint());
        const auto res = c.request("POST", "/echo", std::string(1024, 'x'));
        CHECK(res.result() == http::status::ok);
        CHECK(body_json(res).at("size") == 1024);
    }
    SUBCASE("the 413 is counted under the route") {
        test_client c(f.endpoint());
        c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
        CHECK(c.read().result() == http::status::payload_too_large);
        test_client c2(f.endpoint());
        CHECK(sample(c2.request("GET", "/metrics").body(),
                     R"m(pulsegate_http_requests_total{route="/echo",method="POST",status="413"})m") == 1);
    }
}

TEST_CASE("Expect: 100-continue gets 100 Continue before the body") {
    fixture f;
    test_client c(f.endpoint());
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    CHECK(c.read().result() == http::status::continue_);
    c.send("{}");
    const auto res = c.read();
    CHECK(res.result() == http::status::ok);
    CHECK(body_json(res).at("body") == "{}");
}

TEST_CASE("malformed requests: 400 JSON and close; oversized header: 431") {
    fixture f;
    const std::pair<std::string, http::status> cases[] = {
        {"GARBAGE\r\n\r\n", http::status::bad_request},
        {"GET / HTTP/9.9\r\n\r\n", http::status::bad_request},
        {"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", http::status::bad_request},
        {"GET nopath HTTP/1.1\r\nHost: t\r\n\r\n", http::status::bad_request},
        {"GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n", http::status::bad_request},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 12x\r\n\r\n", http::status::bad_request},
        {"GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", http::status::request_header_fields_too_large},
    };
    for (const auto& [raw, status] : cases) {
        CAPTURE(raw.substr(0, 40));
        test_client c(f.endpoint());
        c.send(raw);
        const auto res = c.read();
        CHECK(res.result() == status);
        CHECK(res[http::field::content_type] == "application/json");
        CHECK(!error_code_of(res).empty());
        CHECK(c.closed_by_server());
    }
    test_client c(f.endpoint());
    CHECK(c.request("GET", "/healthz").result() == http::status::ok);
}

TEST_CASE("keep-alive: several requests, also pipelined, on one connection") {
    fixture f;
    test_client c(f.endpoint());
    CHECK(c.request("GET", "/healthz").result() == http::status::ok);
    CHECK(c.request("GET", "/echo/x").result() == http::status::ok);
    c.send("GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(body_json(c.read()).at("id") == "1");
    CHECK(body_json(c.read()).at("id") == "2");
    auto res = c.request("GET", "/healthz", {}, "Connection: close\r\n");
    CHECK_FALSE(res.keep_alive());
    CHECK(c.closed_by_server());
}

TEST_CASE("path parameters and the query are percent-decoded") {
    fixture f;
    test_client c(f.endpoint());
    const auto res = c.request("GET", "/echo/a%20b%2Fc?x=1&y=a%2Bb+c&z&empty=&x=2");
    REQUIRE(res.result() == http::status::ok);
    CHECK(body_json(res) == json::parse(R"({
        "id": "a b/c",
        "path": "/echo/a%20b%2Fc",
        "target": "/echo/a%20b%2Fc?x=1&y=a%2Bb+c&z&empty=&x=2",
        "query": [["x", "1"], ["y", "a+b c"], ["z", ""], ["empty", ""], ["x", "2"]],
        "remote": "127.0.0.1"})"));
}

TEST_CASE("a handler that throws answers 500 and the connection goes on") {
    fixture f;
    test_client c(f.endpoint());
    const auto res = c.request("GET", "/boom");
    CHECK(res.result() == http::status::internal_server_error);
    CHECK(error_code_of(res) == "internal");
    CHECK(c.request("GET", "/healthz").result() == http::status::ok);
}

TEST_CASE("stop() closes an idle keep-alive connection at once") {
    http_server_options opts;
    opts.idle_timeout = std::chrono::hours(1); // stop() must not wait for it
    fixture f(opts);
    test_client c(f.endpoint());
    CHECK(c.request("GET", "/healthz").result() == http::status::ok);
    f.server->stop();
    CHECK(c.closed_by_server());
    f.server->stop(); // idempotent
}

TEST_CASE("stop() lets a request in progress finish") {
    http_server_options opts;
    opts.idle_timeout = std::chrono::hours(1);
    fixture f(opts);
    test_client c(f.endpoint());
    c.send("GET /gate HTTP/1.1\r\nHost: t\r\n\r\n");
    f.wait_gate_entered();
    auto stopped = std::async(std::launch::async, [&] { f.server->stop(); });
    f.open_gate();
    const auto res = c.read();
    CHECK(res.result() == http::status::ok);
    CHECK(body_json(res).at("gate") == "passed");
    CHECK(c.closed_by_server());
    stopped.get();
}

TEST_CASE("a connection idle past idle_timeout is closed") {
    http_server_options opts;
    opts.idle_timeout = std::chrono::milliseconds(50);
    fixture f(opts);
    test_client c(f.endpoint());
    CHECK(c.closed_by_server());
}

TEST_CASE("connections beyond max_connections are refused and counted") {
    http_server_options opts;
    opts.max_connections = 1;
    fixture f(opts);
    test_client first(f.endpoint());
    CHECK(first.request("GET", "/healthz").result() == http::status::ok); // accepted and counted
    test_client second(f.endpoint());
    CHECK(second.closed_by_server());
    const auto text = first.request("GET", "/metrics").body();
    CHECK(sample(text, "pulsegate_http_connections_rejected_total") == 1);
}

TEST_CASE("a bad listen address is a startup error naming it") {
    metrics m;
    router r;
    http_server_options opts;
    opts.listen = "nowhere:80";
    http_server bad(r, m, opts);
    CHECK_THROWS_AS(bad.start(), std::invalid_argument);

    fixture f;
    opts.listen = "127.0.0.1:" + std::to_string(f.endpoint().port()); // taken
    metrics m2;
    http_server taken(r, m2, opts);
    CHECK_THROWS_AS(taken.start(), std::system_error);
}

TEST_CASE("random bytes do not bring the server down") {
    http_server_options opts;
    opts.threads = 2;
    fixture f(opts);
    std::mt19937 rng(12345);
    const std::string prefixes[] = {"", "GET / HTTP/1.1\r\n", "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n",
                                    "GET /echo/%"};
    for (int i = 0; i < 200; ++i) {
        std::string raw = prefixes[i % 4];
        const auto n = rng() % 300;
        for (unsigned j = 0; j < n; ++j) raw.push_back(static_cast<char>(rng() % 256));
        if (i % 3 == 0) raw += "\r\n\r\n";
        test_client c(f.endpoint());
        c.send(raw);
        // Whatever it answers (or not), the next connection is served.
    }
    test_client c(f.endpoint());
    CHECK(c.request("GET", "/healthz").result() == http::status::ok);
}
