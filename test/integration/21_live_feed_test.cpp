// The web UI's live feed, GET /api/v1/ws (webui/live_feed.hpp), with a real
// WebSocket client (Beast) against the daemon: who may open it (session
// cookie, same origin, tenant users only), subscriptions, a device's readings
// and the tenant's alert events arriving as they happen, errors for unknown
// devices and malformed messages, and that another tenant's device cannot
// be watched.

#include "harness.hpp"
#include "tenant_world.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

using namespace pulsegate::itest;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// A WebSocket client whose reads give up after 5 s.
class feed_client {
public:
    // Connects and upgrades; `status` is the HTTP status of a refused upgrade (0: accepted).
    feed_client(std::uint16_t port, const std::string& cookie, std::optional<std::string> origin) : ws_(ioc_) {
        auto& sock = ws_.next_layer();
        sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        const std::string host = "127.0.0.1:" + std::to_string(port);
        ws_.set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
            if (!cookie.empty()) req.set(beast::http::field::cookie, cookie);
            if (origin) req.set(beast::http::field::origin, *origin);
        }));
        websocket::response_type res;
        beast::error_code ec;
        ws_.handshake(res, host, "/api/v1/ws", ec);
        status = ec ? res.result_int() : 0;
    }

    void send(const std::string& text) { ws_.write(asio::buffer(text)); }

    // The next message as JSON, or none after 5 s (the client is then
    // closed: a cancelled WebSocket read leaves the stream unusable).
    std::optional<json_value> next() {
        beast::flat_buffer buf;
        std::optional<beast::error_code> done;
        ws_.async_read(buf, [&](beast::error_code ec, std::size_t) { done = ec; });
        ioc_.restart();
        ioc_.run_for(std::chrono::seconds(5));
        if (!done) {
            beast::error_code ignored;
            ws_.next_layer().close(ignored);
            ioc_.restart();
            ioc_.run();
            return std::nullopt;
        }
        if (*done) {
            closed_by_server = *done == websocket::error::closed;
            return std::nullopt;
        }
        return parse_json(beast::buffers_to_string(buf.data()));
    }

    // Reads until a message of `type` (others are skipped), or none.
    std::optional<json_value> next_of(std::string_view type) {
        for (int i = 0; i < 100; ++i) {
            auto m = next();
            if (!m) return std::nullopt;
            if ((*m)["type"].str() == type) return m;
        }
        return std::nullopt;
    }

    unsigned status = 0;
    bool closed_by_server = false; // a read ended with the server's close frame

private:
    asio::io_context ioc_;
    websocket::stream<tcp::socket> ws_;
};

std::string origin_of(std::uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); }

} // namespace

TEST_CASE("the live feed: access, subscriptions, readings and alert events as they happen" *
          doctest::skip(is_mosquitto())) {
    world w(rules_options());
    auto t = w.make_tenant("acme", {{"s1"}, {"s2"}});
    auto other = w.make_tenant("globex", {{"g1"}});
    create_rule(t, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");
    const auto port = w.http;

    SUBCASE("a plain GET is told to upgrade") {
        auto res = t.admin.get("/api/v1/ws");
        CHECK(res.status == 426);
        CHECK(error_code(res) == "upgrade_required");
    }
    SUBCASE("no session: 401; another site's page: 403") {
        CHECK(feed_client(port, "", origin_of(port)).status == 401);
        CHECK(feed_client(port, t.admin.cookie, std::string("http://evil.example")).status == 403);
    }
    SUBCASE("a feed whose session ended (logout) closes before it sends more") {
        feed_client feed(port, t.admin.cookie, origin_of(port));
        REQUIRE(feed.status == 0);
        REQUIRE(feed.next_of("hello"));
        feed.send(R"({"op":"subscribe","device":"s1"})");
        REQUIRE(feed.next_of("subscribed"));
        auto dev = device_client(w.b, t, "s1");
        dev->publish("d/s1/telemetry", R"({"temp":20})", 1);
        REQUIRE(feed.next_of("telemetry")); // open while the session lasts

        CHECK(t.admin.post("/api/v1/auth/logout").status == 204);
        std::this_thread::sleep_for(1100ms); // the feed asks at most once a second
        dev->publish("d/s1/telemetry", R"({"temp":21})", 1);
        CHECK_FALSE(feed.next_of("telemetry"));
        CHECK(feed.closed_by_server);
    }
    SUBCASE("subscribed: the device's readings and the tenant's alert events") {
        feed_client feed(port, t.admin.cookie, origin_of(port));
        REQUIRE(feed.status == 0);
        auto hello = feed.next();
        REQUIRE(hello);
        CHECK((*hello)["type"].str() == "hello");
        CHECK((*hello)["tenant"].str() == "acme");

        feed.send(R"({"op":"subscribe","alerts":true})");
        auto sub = feed.next();
        REQUIRE(sub);
        CHECK((*sub)["type"].str() == "subscribed");
        CHECK((*sub)["alerts"].boolean());
        feed.send(R"({"op":"subscribe","device":"s1"})");
        sub = feed.next();
        REQUIRE(sub);
        CHECK((*sub)["device"].str() == "s1");

        // Errors name what is wrong; the feed goes on.
        for (auto bad : {R"({"op":"subscribe","device":"nope"})", R"({"op":"subscribe","device":"g1"})",
                         "not json", R"({"op":"dance"})"}) {
            feed.send(bad);
            auto e = feed.next();
            REQUIRE_MESSAGE(e, bad);
            CHECK_MESSAGE((*e)["type"].str() == "error", bad);
            CHECK(!(*e)["message"].str().empty());
        }

        device_client(w.b, t, "s2")->publish("d/s2/telemetry", R"({"temp":5})", 1); // not watched
        device_client(w.b, t, "s1")->publish("d/s1/telemetry", R"({"temp":31,"hum":40})", 1);
        auto reading = feed.next_of("telemetry");
        REQUIRE(reading);
        CHECK((*reading)["device"].str() == "s1");
        CHECK((*reading)["values"]["temp"].num() == 31);
        CHECK((*reading)["values"]["hum"].num() == 40);
        CHECK((*reading)["ts"].num() > 0);
        auto alert = feed.next_of("alert");
        REQUIRE(alert);
        CHECK((*alert)["event"]["event"].str() == "alert.opened");
        CHECK((*alert)["event"]["alert"]["device"].str() == "s1");

        // Another tenant's readings and alerts never arrive.
        create_rule(other, R"({"name":"hot","kind":"threshold","metric":"temp","op":">","value":30,"severity":"major"})");
        device_client(w.b, other, "g1")->publish("d/g1/telemetry", R"({"temp":99})", 1);
        feed.send(R"({"op":"unsubscribe","device":"s1"})");
        auto unsub = feed.next_of("unsubscribed");
        REQUIRE(unsub);
        device_client(w.b, t, "s1")->publish("d/s1/telemetry", R"({"temp":32})", 1);
        for (auto m = feed.next(); m; m = feed.next()) {
            INFO(m->dump());
            CHECK((*m)["type"].str() != "telemetry");
            CHECK((*m)["event"]["tenant"].str() != "globex");
        }
    }
}
