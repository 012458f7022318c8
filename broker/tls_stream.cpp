// MQTT over TLS: the stream of a connection accepted on a TLS listener,
// after its handshake (server.cpp does the handshake).

#include "broker/stream.hpp"

#include "common/tls.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace pulsegate::broker {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Decrypted bytes land here first: the read buffer a connection passes may
// be shared by its shard (stream.hpp), and an SSL read can fill it at a
// step that does not call the handler.
constexpr std::size_t read_buffer_size = 16 * 1024;

class tls_stream final : public stream {
public:
    tls_stream(std::unique_ptr<tls_socket> s, std::shared_ptr<asio::ssl::context> ctx)
        : ctx_(std::move(ctx)), s_(std::move(s)), buf_(std::make_unique<std::uint8_t[]>(read_buffer_size)) {
        boost::system::error_code ec;
        s_->next_layer().set_option(tcp::no_delay(true), ec);
        auto ep = s_->next_layer().remote_endpoint(ec);
        if (!ec) remote_ = fmt::format("{}:{}", ep.address().to_string(), ep.port());
        identity_ = common::certificate_identity(s_->native_handle());
    }

    void async_read(std::span<std::uint8_t> into, io_handler handler) override {
        const auto n = std::min(into.size(), read_buffer_size);
        s_->async_read_some(asio::buffer(buf_.get(), n),
                            asio::bind_allocator(asio::recycling_allocator<void>(),
                                                 [this, into, h = std::move(handler)](boost::system::error_code ec,
                                                                                      std::size_t got) mutable {
                                                     if (got > 0) std::memcpy(into.data(), buf_.get(), got);
                                                     std::move(h)(ec, got);
                                                 }));
    }

    void async_write(std::span<const asio::const_buffer> buffers, io_handler handler) override {
        asio::async_write(*s_, buffers, std::move(handler));
    }

    void close() override {
        boost::system::error_code ec;
        s_->next_layer().shutdown(tcp::socket::shutdown_both, ec);
        s_->next_layer().close(ec);
    }

    // An SSL session is tied to its socket's io_context: it stays on its shard.
    std::unique_ptr<stream> rebind(asio::io_context&) override { return nullptr; }

    asio::any_io_executor get_executor() override { return s_->get_executor(); }
    std::string remote_address() const override { return remote_; }
    std::string certificate_identity() const override { return identity_; }

private:
    std::shared_ptr<asio::ssl::context> ctx_; // outlives s_ (declared first)
    std::unique_ptr<tls_socket> s_;
    std::unique_ptr<std::uint8_t[]> buf_;
    std::string remote_;
    std::string identity_;
};

} // namespace

std::unique_ptr<stream> make_tls_stream(std::unique_ptr<tls_socket> socket, std::shared_ptr<asio::ssl::context> ctx) {
    return std::make_unique<tls_stream>(std::move(socket), std::move(ctx));
}

} // namespace pulsegate::broker
