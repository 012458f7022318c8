// MQTT over WebSocket at /mqtt on the HTTP port (daemon/mqtt_websocket.hpp):
// Paho C++ over ws:// against TCP clients both ways, and a raw WebSocket
// client (Beast) for the subprotocol, packets split across frames or
// sharing one, text frames, authentication and a broker-side close.

#include "harness.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <string>

using namespace pulsegate::itest;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

std::string ws_uri(const broker_process& b) { return "ws://127.0.0.1:" + std::to_string(b.wait_http_port()) + "/mqtt"; }

// A WebSocket client sending and reading MQTT packets as binary messages;
// reads give up after event_timeout.
class ws_mqtt {
public:
    ws_mqtt(std::uint16_t port, std::optional<std::string> offer) : ws_(ioc_) {
        ws_.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        ws_.set_option(websocket::stream_base::decorator([offer](websocket::request_type& req) {
            if (offer) req.set(beast::http::field::sec_websocket_protocol, *offer);
        }));
        beast::error_code ec;
        ws_.handshake(response, "127.0.0.1:" + std::to_string(port), "/mqtt", ec);
        accepted = !ec;
        ws_.binary(true);
    }

    void send(const std::string& bytes) { ws_.write(asio::buffer(bytes)); }
    void send_text(const std::string& text) {
        ws_.text(true);
        ws_.write(asio::buffer(text));
        ws_.binary(true);
    }

    // The next MQTT packet (messages are joined: a packet may span several),
    // or none when the connection ended or nothing came in time.
    std::optional<raw::packet> read() {
        for (;;) {
            if (auto p = take()) return p;
            beast::flat_buffer buf;
            std::optional<beast::error_code> done;
            ws_.async_read(buf, [&](beast::error_code ec, std::size_t) { done = ec; });
            ioc_.restart();
            ioc_.run_for(event_timeout);
            if (!done) {
                beast::error_code ignored;
                ws_.next_layer().close(ignored);
                ioc_.restart();
                ioc_.run();
                return std::nullopt;
            }
            if (*done) {
                ended = *done;
                return std::nullopt;
            }
            in_ += beast::buffers_to_string(buf.data());
        }
    }

    // Sends CONNECT; the CONNACK, or none.
    std::optional<raw::connack_view> connect(const raw::connect_spec& spec) {
        send(raw::connect_packet(spec));
        auto ack = read();
        if (!ack || ack->type != raw::connack) return std::nullopt;
        return raw::parse_connack(*ack, spec.version);
    }

    websocket::response_type response;
    bool accepted = false;
    beast::error_code ended; // why read() found the connection ended
    websocket::close_reason close_reason() const { return ws_.reason(); }

private:
    std::optional<raw::packet> take() { return raw::take_packet(in_); }

    asio::io_context ioc_;
    websocket::stream<tcp::socket> ws_;
    std::string in_;
};

} // namespace

TEST_CASE("Paho over ws:// and Paho over TCP talk to each other both ways" * doctest::skip(is_mosquitto())) {
    broker_process b;
    for (int v : {4, 5}) {
        CAPTURE(v);
        const std::string topic = "wsx/v" + std::to_string(v);
        paho_client ws(ws_uri(b), "ws-client-" + std::to_string(v), v);
        ws.connect();
        ws.subscribe(topic + "/down", 1);
        paho_client tcp_client(b, "tcp-client-" + std::to_string(v), v);
        tcp_client.connect();
        tcp_client.subscribe(topic + "/up", 1);

        tcp_client.publish(topic + "/down", "to the browser", 1);
        auto down = ws.messages().pop();
        REQUIRE(down);
        CHECK(down->topic == topic + "/down");
        CHECK(down->payload == "to the browser");
        CHECK(down->qos == 1);

        // Larger than one WebSocket frame of most clients and than the live
        // feed's 64 KiB message cap: the limit here is max_packet_size.
        std::string big(300 * 1024, 'x');
        for (std::size_t i = 0; i < big.size(); i += 1000) big[i] = static_cast<char>('a' + (i / 1000) % 26);
        ws.publish(topic + "/up", big, 1);
        auto up = tcp_client.messages().pop();
        REQUIRE(up);
        CHECK(up->topic == topic + "/up");
        CHECK(up->payload == big);
    }
}

TEST_CASE("the raw WebSocket: subprotocol, framing, text frames, authentication, a close by the broker" *
          doctest::skip(is_mosquitto())) {
    broker_options o;
    o.allow_anonymous = false;
    o.admin_password = "admin-pass-1";
    broker_process b(o);
    const auto port = b.wait_http_port();

    SUBCASE("the mqtt subprotocol is chosen from the offer; one that has none of it is refused") {
        ws_mqtt c(port, "mqttv3.1, mqtt");
        REQUIRE(c.accepted);
        CHECK(c.response[beast::http::field::sec_websocket_protocol] == "mqtt");
        ws_mqtt old(port, "mqttv3.1");
        REQUIRE(old.accepted);
        CHECK(old.response[beast::http::field::sec_websocket_protocol] == "mqttv3.1");
        ws_mqtt wrong(port, "wamp");
        CHECK_FALSE(wrong.accepted);
        CHECK(wrong.response.result_int() == 400);
        CHECK(wrong.response.body().find("mqtt") != std::string::npos);
    }
    SUBCASE("CONNECT goes through authentication: unknown credentials are refused, and the stream closes") {
        ws_mqtt c(port, "mqtt");
        REQUIRE(c.accepted);
        auto spec = raw::spec(5, "ws-nobody");
        spec.username = "acme/nobody";
        spec.password = "wrong";
        auto ack = c.connect(spec);
        REQUIRE(ack);
        CHECK(ack->reason == 0x86); // bad user name or password
        CHECK_FALSE(c.read());
        CHECK(c.ended == websocket::error::closed);
    }
    SUBCASE("a packet split across frames, packets sharing one, and a text frame that ends it") {
        // The operator admin may connect to MQTT (it sees the internal tree).
        ws_mqtt c(port, "mqtt");
        REQUIRE(c.accepted);
        auto spec = raw::spec(4, "ws-admin");
        spec.username = "admin";
        spec.password = "admin-pass-1";
        const auto connect = raw::connect_packet(spec);
        c.send(connect.substr(0, 7));
        c.send(connect.substr(7));
        auto ack = c.read();
        REQUIRE(ack);
        REQUIRE(ack->type == raw::connack);
        REQUIRE(raw::parse_connack(*ack, 4).reason == 0);

        c.send(raw::subscribe_packet(4, 1, {{"ws/echo", 0}}) + raw::publish_packet(4, "ws/echo", "hello", 0));
        auto suback = c.read();
        REQUIRE(suback);
        CHECK(suback->type == raw::suback);
        auto echo = c.read();
        REQUIRE(echo);
        REQUIRE(echo->type == raw::publish);
        CHECK(raw::parse_publish(*echo, 4).payload == "hello");

        c.send_text("not binary"); // MQTT over WebSocket: text frames end the connection
        CHECK_FALSE(c.read());
        CHECK(c.ended);
    }
    SUBCASE("a takeover by a TCP client closes the WebSocket with a normal close") {
        ws_mqtt c(port, "mqtt");
        REQUIRE(c.accepted);
        auto spec = raw::spec(4, "shared-id");
        spec.username = "admin";
        spec.password = "admin-pass-1";
        auto ack = c.connect(spec);
        REQUIRE(ack);
        REQUIRE(ack->reason == 0);

        raw_client tcp_client(b.port());
        auto tack = tcp_client.handshake(spec);
        REQUIRE(tack);
        CHECK(tack->reason == 0);
        CHECK_FALSE(c.read());
        CHECK(c.ended == websocket::error::closed);
        CHECK(c.close_reason().code == websocket::close_code::normal);
    }
}
