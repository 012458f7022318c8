#pragma once
// WebSocket endpoints of the HTTP server (http_server_options::websockets).
//
// An upgrade request (GET with Upgrade: websocket) to an endpoint's exact
// path goes to its acceptor on an HTTP thread, with the request's context
// (headers, cookies, query). The acceptor answers either a response — the
// upgrade is refused and that response is sent as plain HTTP (401, 403...)
// — or a session, and the server completes the handshake and runs it:
//
//   settings()       once, before the handshake: message kind, subprotocol
//                    to answer, inbound message cap
//   opened(wake)     once, after the handshake; `wake` may be called from
//                    any thread, at any time, to make the server ask for
//                    outgoing messages again and resume a paused reader (it
//                    is a no-op once closed)
//   next_outgoing()  on the connection's strand: the next message to send,
//                    or none; called until none, then again after a wake
//   should_close()   checked before next_outgoing(): anything but `none`
//                    closes the connection with that code after what was
//                    sent
//   received(data)   a message from the client of the session's kind (text
//                    sessions ignore binary messages; a binary session is
//                    closed by a text one, as MQTT over WebSocket requires)
//   may_receive()    checked before each read and after each wake: false
//                    pauses reading (back-pressure towards the client)
//   closed()         once, when the connection has ended, either side
//
// Idle connections are pinged and closed when the peer stops answering. The
// server's stop() closes every WebSocket connection at once.
#include "webui/request_context.hpp"
#include "webui/response.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace pulsegate::webui {

enum class websocket_close : unsigned char { none, normal, policy_violation };

struct websocket_settings {
    bool binary = false;     // messages are binary (else text)
    std::string subprotocol; // answered in Sec-WebSocket-Protocol unless empty
    std::size_t max_message = 64 * 1024;
};

class websocket_session {
public:
    virtual ~websocket_session() = default;
    virtual websocket_settings settings() const { return {}; }
    virtual void opened(std::function<void()> wake) = 0;
    virtual std::optional<std::string> next_outgoing() = 0;
    virtual websocket_close should_close() { return websocket_close::none; }
    virtual void received(std::string_view data) = 0;
    virtual bool may_receive() { return true; }
    virtual void closed() noexcept = 0;
};

using websocket_acceptor =
    std::function<std::variant<response, std::shared_ptr<websocket_session>>(const request_context&)>;

} // namespace pulsegate::webui
