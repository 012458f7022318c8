#pragma once
// A small HTTP/1.1 client for the server tests: one TCP connection, raw bytes
// out, parsed responses in. Every operation gives up after 10 s and throws,
// so a server bug fails the test instead of hanging it (a safety net, not a
// timing assertion).

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pulsegate::webui::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

using http_response = http::response<http::string_body>;

class test_client {
public:
    explicit test_client(const tcp::endpoint& server) {
        wait([&](auto done) { socket_.async_connect(server, [done](auto ec) mutable { done(ec, 0); }); },
             "connect");
    }

    void send(std::string_view raw) {
        wait([&](auto done) { asio::async_write(socket_, asio::buffer(raw), done); }, "write");
    }

    // The next response. `head`: the request was HEAD (no body follows).
    http_response read(bool head = false) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        if (head) parser.skip(true);
        auto ec = wait([&](auto done) { http::async_read(socket_, buffer_, parser, done); }, "read", false);
        if (ec) throw std::runtime_error("read response: " + ec.message());
        return parser.release();
    }

    // Sends one request and reads its response. `headers`: extra lines, each
    // ending in "\r\n". Content-Length is added when there is a body.
    http_response request(std::string_view method, std::string_view target, std::string_view body = {},
                          std::string_view headers = {}) {
        std::string raw;
        raw.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: test\r\n");
        raw.append(headers);
        if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
            raw.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
        raw.append("\r\n").append(body);
        send(raw);
        return read(method == "HEAD");
    }

    // True when the server has closed the connection: the next read sees
    // end of file (or a reset) rather than data.
    bool closed_by_server() {
        char c = 0;
        auto ec = wait([&](auto done) { socket_.async_read_some(asio::buffer(&c, 1), done); }, "read", false);
        return ec == asio::error::eof || ec == asio::error::connection_reset;
    }

private:
    template <class Start>
    boost::system::error_code wait(Start start, std::string_view what, bool throw_on_error = true) {
        std::optional<boost::system::error_code> result;
        ioc_.restart();
        start([&result](boost::system::error_code ec, std::size_t) { result = ec; });
        ioc_.run_for(std::chrono::seconds(10));
        if (!result) {
            boost::system::error_code ignored;
            socket_.close(ignored);
            ioc_.restart();
            ioc_.run();
            throw std::runtime_error(std::string(what) + ": no answer from the server within 10 s");
        }
        if (*result && throw_on_error) throw std::runtime_error(std::string(what) + ": " + result->message());
        return *result;
    }

    asio::io_context ioc_;
    tcp::socket socket_{ioc_};
    beast::flat_buffer buffer_;
};

} // namespace pulsegate::webui::test
