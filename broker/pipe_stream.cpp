#include "broker/pipe_stream.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>

namespace pulsegate::broker {

namespace asio = boost::asio;

// The broker's end. It holds the executor of the shard it runs on; the
// pipe holds everything else.
class pipe_stream final : public stream {
public:
    pipe_stream(std::shared_ptr<stream_pipe> pipe, asio::any_io_executor ex) : pipe_(std::move(pipe)), ex_(std::move(ex)) {}
    ~pipe_stream() override {
        if (pipe_) pipe_->close();
    }

    void async_read(std::span<std::uint8_t> into, io_handler handler) override {
        pipe_->async_read(ex_, into, std::move(handler));
    }
    void async_write(std::span<const asio::const_buffer> buffers, io_handler handler) override {
        pipe_->async_write(ex_, buffers, std::move(handler));
    }
    void close() override { pipe_->close(); }
    std::unique_ptr<stream> rebind(asio::io_context& ctx) override {
        return std::make_unique<pipe_stream>(std::move(pipe_), ctx.get_executor());
    }
    asio::any_io_executor get_executor() override { return ex_; }
    std::string remote_address() const override { return pipe_ ? pipe_->remote_ : std::string(); }

private:
    std::shared_ptr<stream_pipe> pipe_; // null once rebound
    asio::any_io_executor ex_;
};

std::shared_ptr<stream_pipe> stream_pipe::create(std::size_t inbound_limit, std::string remote) {
    return std::shared_ptr<stream_pipe>(new stream_pipe(inbound_limit, std::move(remote)));
}

std::unique_ptr<stream> stream_pipe::make_stream(asio::io_context& ctx) {
    return std::make_unique<pipe_stream>(shared_from_this(), ctx.get_executor());
}

void stream_pipe::set_notify(std::function<void()> notify) {
    std::lock_guard lock(mutex_);
    notify_ = std::move(notify);
}

void stream_pipe::complete(asio::any_io_executor ex, stream::io_handler h, boost::system::error_code ec,
                           std::size_t n) {
    asio::post(ex, [h = std::move(h), ec, n]() mutable { std::move(h)(ec, n); });
}

void stream_pipe::push(std::string_view bytes) {
    std::lock_guard lock(mutex_);
    if (carrier_closed_ || broker_closed_) return;
    if (in_pos_ == in_.size()) {
        in_.clear();
        in_pos_ = 0;
    }
    in_.append(bytes);
    if (read_ && !read_posted_) {
        read_posted_ = true;
        asio::post(read_->ex, [self = shared_from_this()] { self->finish_read(); });
    }
}

bool stream_pipe::wants_more() const {
    std::lock_guard lock(mutex_);
    if (backlog() < inbound_limit_) return true;
    carrier_paused_ = true;
    return false;
}

void stream_pipe::async_read(asio::any_io_executor ex, std::span<std::uint8_t> into, stream::io_handler h) {
    std::lock_guard lock(mutex_);
    if (broker_closed_) return complete(std::move(ex), std::move(h), asio::error::operation_aborted, 0);
    read_.emplace(pending_read{into, std::move(h), ex});
    if (backlog() > 0 || carrier_closed_) {
        read_posted_ = true;
        asio::post(ex, [self = shared_from_this()] { self->finish_read(); });
    }
}

void stream_pipe::finish_read() {
    std::unique_lock lock(mutex_);
    read_posted_ = false;
    if (!read_) return; // closed meanwhile: completed there
    std::size_t n = 0;
    boost::system::error_code ec;
    if (backlog() > 0) {
        n = std::min(read_->into.size(), backlog());
        std::memcpy(read_->into.data(), in_.data() + in_pos_, n);
        in_pos_ += n;
    } else if (carrier_closed_) {
        ec = asio::error::eof;
    } else {
        return; // nothing yet: the next push posts again
    }
    auto r = std::move(*read_);
    read_.reset();
    std::function<void()> notify;
    if (carrier_paused_ && backlog() < inbound_limit_) {
        carrier_paused_ = false;
        notify = notify_;
    }
    lock.unlock();
    if (notify) notify();
    std::move(r.handler)(ec, n); // on r.ex: finish_read was posted there
}

void stream_pipe::async_write(asio::any_io_executor ex, std::span<const asio::const_buffer> buffers,
                              stream::io_handler h) {
    std::size_t size = 0;
    for (const auto& b : buffers) size += b.size();
    std::string bytes;
    bytes.reserve(size);
    for (const auto& b : buffers) bytes.append(static_cast<const char*>(b.data()), b.size());
    std::function<void()> notify;
    {
        std::lock_guard lock(mutex_);
        if (broker_closed_) return complete(std::move(ex), std::move(h), asio::error::operation_aborted, 0);
        if (carrier_closed_) return complete(std::move(ex), std::move(h), asio::error::broken_pipe, 0);
        out_ = std::move(bytes);
        write_.emplace(pending_write{size, std::move(h), std::move(ex)});
        notify = notify_;
    }
    if (notify) notify();
}

std::optional<std::string> stream_pipe::take_outgoing() {
    std::lock_guard lock(mutex_);
    if (!out_) return std::nullopt;
    auto bytes = std::move(out_);
    out_.reset();
    if (write_) {
        complete(std::move(write_->ex), std::move(write_->handler), {}, write_->size);
        write_.reset();
    }
    return bytes;
}

bool stream_pipe::closing() const {
    std::lock_guard lock(mutex_);
    return broker_closed_ && !out_;
}

void stream_pipe::close() {
    std::function<void()> notify;
    {
        std::lock_guard lock(mutex_);
        if (broker_closed_) return;
        broker_closed_ = true;
        if (read_) {
            complete(std::move(read_->ex), std::move(read_->handler), asio::error::operation_aborted, 0);
            read_.reset();
        }
        if (write_) {
            // Not taken yet: it is not sent.
            complete(std::move(write_->ex), std::move(write_->handler), asio::error::operation_aborted, 0);
            write_.reset();
            out_.reset();
        }
        notify = notify_;
    }
    if (notify) notify();
}

void stream_pipe::carrier_closed() {
    std::lock_guard lock(mutex_);
    carrier_closed_ = true;
    notify_ = nullptr; // the carrier is gone
    out_.reset();
    if (write_) {
        complete(std::move(write_->ex), std::move(write_->handler), asio::error::broken_pipe, 0);
        write_.reset();
    }
    if (read_ && !read_posted_) {
        read_posted_ = true;
        asio::post(read_->ex, [self = shared_from_this()] { self->finish_read(); });
    }
}

} // namespace pulsegate::broker
