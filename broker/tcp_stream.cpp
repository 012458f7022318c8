#include "broker/stream.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <unistd.h>

namespace pulsegate::broker {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class tcp_stream final : public stream {
public:
    explicit tcp_stream(tcp::socket s) : sock_(std::move(s)) {
        boost::system::error_code ec;
        sock_.set_option(tcp::no_delay(true), ec);
        sock_.non_blocking(true, ec);
        auto ep = sock_.remote_endpoint(ec);
        if (!ec) remote_ = fmt::format("{}:{}", ep.address().to_string(), ep.port());
    }

    void async_read(std::span<std::uint8_t> into, io_handler handler) override {
        if (more_) {
            // The last read filled the buffer: more may be waiting, and its
            // edge has already fired. Let the shard's other work run, then read.
            asio::post(sock_.get_executor(),
                       asio::bind_allocator(asio::recycling_allocator<void>(),
                                            [this, into, h = std::move(handler)]() mutable {
                                                read_now(into, std::move(h));
                                            }));
            return;
        }
        sock_.async_wait(tcp::socket::wait_read,
                         asio::bind_allocator(asio::recycling_allocator<void>(),
                                              [this, into, h = std::move(handler)](boost::system::error_code ec) mutable {
                                                  if (ec) std::move(h)(ec, 0);
                                                  else read_now(into, std::move(h));
                                              }));
    }

    void async_write(std::span<const asio::const_buffer> buffers, io_handler handler) override {
        asio::async_write(sock_, buffers, std::move(handler));
    }

    void close() override {
        boost::system::error_code ec;
        sock_.shutdown(tcp::socket::shutdown_both, ec);
        sock_.close(ec);
    }

    std::unique_ptr<stream> rebind(asio::io_context& ctx) override {
        boost::system::error_code ec;
        const auto protocol = sock_.local_endpoint(ec).protocol();
        if (ec) return nullptr;
        const int fd = sock_.release(ec);
        if (ec) return nullptr;
        tcp::socket moved(ctx);
        moved.assign(protocol, fd, ec);
        if (ec) {
            ::close(fd);
            return nullptr;
        }
        return std::make_unique<tcp_stream>(std::move(moved));
    }

    asio::any_io_executor get_executor() override { return sock_.get_executor(); }
    std::string remote_address() const override { return remote_; }

private:
    void read_now(std::span<std::uint8_t> into, io_handler h) {
        boost::system::error_code ec;
        const auto n = sock_.read_some(asio::buffer(into.data(), into.size()), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            more_ = false;
            async_read(into, std::move(h));
            return;
        }
        more_ = !ec && n == into.size();
        std::move(h)(ec, n);
    }

    tcp::socket sock_;
    std::string remote_;
    bool more_ = false;
};

} // namespace

std::unique_ptr<stream> make_tcp_stream(asio::ip::tcp::socket socket) {
    return std::make_unique<tcp_stream>(std::move(socket));
}

} // namespace pulsegate::broker
