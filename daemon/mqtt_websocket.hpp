#pragma once
// MQTT over WebSocket at /mqtt on the HTTP port (DESIGN.md: Listeners), for
// browser MQTT clients such as MQTT.js. The HTTP server owns the WebSocket
// (binary messages, subprotocol "mqtt", or "mqttv3.1" for old clients); the
// MQTT byte stream inside goes to the broker through a broker::stream_pipe,
// so a WebSocket client is a broker connection like any other: the same
// CONNECT authentication, ACLs, limits and metrics.

#include "webui/websocket.hpp"

#include <cstdint>

namespace pulsegate::broker {
class server;
}

namespace pulsegate::daemon {

// `broker` must outlive the HTTP server. Messages are capped a little
// above `max_packet_size`; at most that much input waits unread per client.
webui::websocket_acceptor mqtt_websocket_acceptor(broker::server& broker, std::uint32_t max_packet_size);

} // namespace pulsegate::daemon
