#pragma once
// The HTTP/1.1 server of the web UI and REST API (Boost.Beast).
//
// It runs on an io_context of its own with `threads` threads, never on the
// broker's shards. Each connection is one coroutine on its own strand that
// reads a request, runs the router's handler, writes the response and, with
// keep-alive, reads the next one (pipelined requests are answered in order).
//
// Limits at the edge, each answered with a JSON error and a closed
// connection: a request header over `header_limit` (431 header_too_large), a
// body over `body_limit` (413 payload_too_large, sent as soon as the
// Content-Length shows it, before any of the body is read), anything that is
// not HTTP/1.x we can parse (400 malformed_request). A connection that sends
// nothing for `idle_timeout` (or takes longer than that for one request) is
// closed; more than `max_connections` open connections are refused at
// accept.
//
// It counts every response in pulsegate_http_requests_total{route, method,
// status} (route: the matched pattern, "(unmatched)" or "(malformed)") and
// pulsegate_http_request_duration_seconds{route, method}, and shows
// pulsegate_http_connections and pulsegate_http_connections_rejected_total.
//
// Lifetime: construct, start(), ... stop() (or destroy, which stops). The
// router and the metrics registry must outlive the server, and the router
// must not change after start().

#include "webui/metrics.hpp"
#include "webui/router.hpp"
#include "webui/websocket.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pulsegate::common {
class tls_source;
}

namespace pulsegate::webui {

namespace detail {
template <class Stream>
class http_connection;
}

struct http_server_options {
    // "host:port" or "[v6]:port"; port 0 picks a free port (local_endpoint()).
    std::string listen = "127.0.0.1:8080";
    unsigned threads = 1; // 0 counts as 1
    std::size_t header_limit = 8 * 1024;
    std::size_t body_limit = 1024 * 1024;
    // Waiting for the next request on a connection, and reading one request.
    std::chrono::milliseconds idle_timeout{30'000};
    // Writing one response.
    std::chrono::milliseconds write_timeout{30'000};
    // How long stop() lets requests in progress finish before it cuts them.
    std::chrono::milliseconds stop_timeout{5'000};
    std::size_t max_connections = 512;
    // WebSocket endpoints by exact path (webui/websocket.hpp). Upgrade
    // requests to other paths are routed as plain requests.
    std::vector<std::pair<std::string, websocket_acceptor>> websockets{};
    // HTTPS with the source's current certificate (taken per connection, so
    // a reload reaches new connections); null: plain HTTP. Must outlive the
    // server.
    const common::tls_source* tls = nullptr;
};

class http_server {
public:
    http_server(const router& routes, metrics& m, http_server_options opts = {});
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    // Binds, listens and starts the threads. Throws std::invalid_argument for
    // a malformed `listen` and std::system_error when it cannot bind (both
    // name the address: startup errors for the daemon to report).
    void start();

    // The bound address (after start(); useful with port 0).
    boost::asio::ip::tcp::endpoint local_endpoint() const;

    // Stops accepting, closes idle connections at once, lets requests in
    // progress finish (their response says Connection: close) for up to
    // stop_timeout, then ends the threads. Blocks until they have ended.
    // Idempotent; must not be called from a handler.
    void stop();

private:
    template <class Stream>
    friend class detail::http_connection;
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace pulsegate::webui
