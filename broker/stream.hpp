#pragma once
// The byte stream under an MQTT connection. The connection speaks MQTT over
// any of these: TCP, TLS (tls_stream.cpp) and WebSocket (a stream_pipe,
// pipe_stream.hpp, fed by the HTTP server). Owner: the connection's shard
// (all calls on its executor).

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace pulsegate::broker {

class stream {
public:
    using io_handler = boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

    virtual ~stream() = default;

    // Reads what is available (at least one byte) into `into` and calls
    // `handler(ec, n)` on the stream's executor. `into` may be a buffer
    // shared by every connection of the shard: an implementation writes into
    // it only in the step that calls the handler, never while waiting (TCP:
    // readiness is awaited, then the socket is read; a TLS stream reads into
    // its own buffer and copies). While waiting, a connection holds only the
    // pending handler: no coroutine frame, no buffer. Errors: EOF, reset,
    // operation_aborted after close().
    virtual void async_read(std::span<std::uint8_t> into, io_handler handler) = 0;

    // Writes all of `buffers` (which stay valid until `handler` runs); one
    // write in flight at a time.
    virtual void async_write(std::span<const boost::asio::const_buffer> buffers, io_handler handler) = 0;

    // Closes the stream; pending operations complete with operation_aborted.
    virtual void close() = 0;

    // The same connection on another io_context (another shard), or null if
    // this kind of stream cannot move. Only with no operation pending; this
    // stream is left closed.
    virtual std::unique_ptr<stream> rebind(boost::asio::io_context& ctx) = 0;

    virtual boost::asio::any_io_executor get_executor() = 0;
    // "address:port" of the peer, for logs.
    virtual std::string remote_address() const = 0;
    // "tenant/device" named by the peer's verified client certificate
    // (common/tls.hpp certificate_identity), or "".
    virtual std::string certificate_identity() const { return {}; }
};

// Plain TCP. Reads await readiness and then read without suspending, so a
// shard can read every connection into one shared buffer; a read that fills
// the buffer is followed by another after a yield (more may be waiting)
// instead of a wait for an edge that has already fired.
std::unique_ptr<stream> make_tcp_stream(boost::asio::ip::tcp::socket socket);

// TLS, after the handshake. `ctx` is the context the socket was made with
// (kept alive with it).
using tls_socket = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
std::unique_ptr<stream> make_tls_stream(std::unique_ptr<tls_socket> socket,
                                        std::shared_ptr<boost::asio::ssl::context> ctx);

// stream::async_read for coroutines: co_await async_read(s, buf, token).
template <class Token>
auto async_read(stream& s, std::span<std::uint8_t> into, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [&s, into](auto handler) { s.async_read(into, std::move(handler)); }, token);
}

} // namespace pulsegate::broker
