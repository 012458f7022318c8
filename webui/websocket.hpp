#pragma once
// WebSocket endpoints of the HTTP server (http_server_options::websockets).
//
// An upgrade request (GET with Upgrade: websocket) to an endpoint's exact
// path goes to its acceptor on an HTTP thread, with the request's context
// (headers, cookies, query). The acceptor answers either a response — the
// upgrade is refused and that response is sent as plain HTTP (401, 403...)
// — or a session, and the server completes the handshake and runs it:
//
//   opened(wake)     once, after the handshake; `wake` may be called from
//                    any thread, at any time, to make the server ask for
//                    outgoing messages again (it is a no-op once closed)
//   next_outgoing()  on the connection's strand: the next text message to
//                    send, or none; called until none, then again after a wake
//   should_close()   checked with next_outgoing(): true closes the
//                    connection (policy violation) after what was sent
//   received(text)   a text message from the client (binary ones are ignored)
//   closed()         once, when the connection has ended, either side
//
// Messages are capped at 64 KiB inbound; idle connections are pinged and
// closed when the peer stops answering. The server's stop() closes every
// WebSocket connection at once.

#include "webui/request_context.hpp"
#include "webui/response.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace pulsegate::webui {

class websocket_session {
public:
    virtual ~websocket_session() = default;
    virtual void opened(std::function<void()> wake) = 0;
    virtual std::optional<std::string> next_outgoing() = 0;
    virtual bool should_close() { return false; }
    virtual void received(std::string_view text) = 0;
    virtual void closed() noexcept = 0;
};

using websocket_acceptor =
    std::function<std::variant<response, std::shared_ptr<websocket_session>>(const request_context&)>;

} // namespace pulsegate::webui
