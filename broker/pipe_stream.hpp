#pragma once
// A stream whose bytes another component carries on its own threads: MQTT
// over WebSocket, where the HTTP server owns the connection and the frames,
// and the broker sees only the byte stream inside them.
//
// Two sides share a stream_pipe:
//   the carrier (any thread): push() what arrived, take_outgoing() what to
//     send, closing() after the broker closed, carrier_closed() when its
//     connection has ended; wants_more() false asks it to stop reading until
//     notified (back-pressure: at most `inbound_limit` bytes wait unread);
//   the broker: make_stream() gives the broker::stream a connection runs on.
// The pipe calls `notify` (set_notify) from any thread, with no lock held,
// whenever the carrier has something to do: bytes to send, a close, or room
// for more input.
//
// A write completes when the carrier has taken its bytes, so a connection
// writes to a slow carrier no faster than the carrier sends.

#include "broker/stream.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace pulsegate::broker {

class stream_pipe : public std::enable_shared_from_this<stream_pipe> {
public:
    // `remote`: "address:port" of the peer, for logs.
    static std::shared_ptr<stream_pipe> create(std::size_t inbound_limit, std::string remote);

    void set_notify(std::function<void()> notify);

    // Carrier side.
    void push(std::string_view bytes);
    bool wants_more() const;
    std::optional<std::string> take_outgoing();
    bool closing() const;
    void carrier_closed();

    // Broker side: the stream of a connection on `ctx` (one at a time).
    std::unique_ptr<stream> make_stream(boost::asio::io_context& ctx);

    // Ends the stream from the broker's side (also what stream::close does):
    // pending operations complete with operation_aborted, closing() turns
    // true once nothing is left to send.
    void close();

private:
    friend class pipe_stream;
    stream_pipe(std::size_t inbound_limit, std::string remote)
        : inbound_limit_(inbound_limit), remote_(std::move(remote)) {}

    struct pending_read {
        std::span<std::uint8_t> into;
        stream::io_handler handler;
        boost::asio::any_io_executor ex;
    };
    struct pending_write {
        std::size_t size;
        stream::io_handler handler;
        boost::asio::any_io_executor ex;
    };

    void async_read(boost::asio::any_io_executor ex, std::span<std::uint8_t> into, stream::io_handler h);
    void async_write(boost::asio::any_io_executor ex, std::span<const boost::asio::const_buffer> buffers,
                     stream::io_handler h);
    // On the reader's executor: completes the pending read if there is
    // anything to complete it with.
    void finish_read();
    // Posts `h(ec, n)` to `ex`.
    static void complete(boost::asio::any_io_executor ex, stream::io_handler h, boost::system::error_code ec,
                         std::size_t n);
    std::size_t backlog() const { return in_.size() - in_pos_; }

    const std::size_t inbound_limit_;
    const std::string remote_;

    mutable std::mutex mutex_;
    std::function<void()> notify_;
    std::string in_; // pushed bytes; in_pos_ of them have been read
    std::size_t in_pos_ = 0;
    mutable bool carrier_paused_ = false; // wants_more() said no: notify when there is room
    std::optional<pending_read> read_;
    bool read_posted_ = false; // finish_read is on its way
    std::optional<std::string> out_;
    std::optional<pending_write> write_;
    bool broker_closed_ = false;
    bool carrier_closed_ = false;
};

} // namespace pulsegate::broker
