#include "daemon/mqtt_websocket.hpp"

#include "broker/pipe_stream.hpp"
#include "broker/server.hpp"
#include "webui/api_error.hpp"
#include "webui/response.hpp"

#include <boost/beast/http/field.hpp>

#include <fmt/format.h>

#include <memory>
#include <string>
#include <string_view>

namespace pulsegate::daemon {

namespace {

namespace http = boost::beast::http;

// The subprotocol to answer, from the client's comma-separated offer: "mqtt"
// (MQTT 3.1.1 and 5), else "mqttv3.1" (MQTT 3.1 clients), else none.
std::string_view pick_subprotocol(std::string_view offer) {
    bool v31 = false;
    while (!offer.empty()) {
        const auto comma = offer.find(',');
        auto item = offer.substr(0, comma);
        offer = comma == std::string_view::npos ? std::string_view() : offer.substr(comma + 1);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (item == "mqtt") return "mqtt";
        v31 = v31 || item == "mqttv3.1";
    }
    return v31 ? "mqttv3.1" : "";
}

class mqtt_session final : public webui::websocket_session {
public:
    mqtt_session(broker::server& broker, std::shared_ptr<broker::stream_pipe> pipe, std::string subprotocol,
                 std::size_t max_message)
        : broker_(broker), pipe_(std::move(pipe)), subprotocol_(std::move(subprotocol)), max_message_(max_message) {}

    webui::websocket_settings settings() const override {
        return {.binary = true, .subprotocol = subprotocol_, .max_message = max_message_};
    }

    void opened(std::function<void()> wake) override {
        pipe_->set_notify(std::move(wake));
        auto pipe = pipe_;
        if (!broker_.adopt([pipe](boost::asio::io_context& ctx) { return pipe->make_stream(ctx); }))
            pipe_->close(); // shutting down: the WebSocket closes
    }
    std::optional<std::string> next_outgoing() override { return pipe_->take_outgoing(); }
    webui::websocket_close should_close() override {
        return pipe_->closing() ? webui::websocket_close::normal : webui::websocket_close::none;
    }
    void received(std::string_view data) override { pipe_->push(data); }
    bool may_receive() override { return pipe_->wants_more(); }
    void closed() noexcept override { pipe_->carrier_closed(); }

private:
    broker::server& broker_;
    std::shared_ptr<broker::stream_pipe> pipe_;
    const std::string subprotocol_;
    const std::size_t max_message_;
};

} // namespace

webui::websocket_acceptor mqtt_websocket_acceptor(broker::server& broker, std::uint32_t max_packet_size) {
    // A packet's fixed header (at most 5 bytes) comes on top of its size.
    const std::size_t max_message = std::size_t{max_packet_size} + 5;
    return [&broker, max_message](const webui::request_context& ctx)
               -> std::variant<webui::response, std::shared_ptr<webui::websocket_session>> {
        std::string_view protocol;
        if (const auto offer = ctx.header(http::field::sec_websocket_protocol)) {
            protocol = pick_subprotocol(*offer);
            if (protocol.empty())
                return webui::json_error(http::status::bad_request, webui::codes::invalid_argument,
                                         "MQTT over WebSocket speaks the subprotocol \"mqtt\" (or \"mqttv3.1\"); "
                                         "the client offered \"" + std::string(*offer) + "\"");
        }
        const auto remote = fmt::format("{}:{}", ctx.remote.address().to_string(), ctx.remote.port());
        return std::make_shared<mqtt_session>(broker, broker::stream_pipe::create(max_message, remote),
                                              std::string(protocol), max_message);
    };
}

} // namespace pulsegate::daemon
