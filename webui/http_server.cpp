// The accept loop, the per-connection coroutine and the server's stop.

#include "webui/http_server.hpp"

#include "common/log_limiter.hpp"
#include "common/thread.hpp"
#include "common/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/assert.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/url/parse.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <variant>
#include <vector>

namespace pulsegate::webui {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

constexpr auto token = asio::as_tuple(asio::use_awaitable);

// After an error answer the client may still be sending (a body we refused,
// the rest of garbage): read and drop up to this much for up to this long
// before closing, so that the kernel does not answer the unread bytes with a
// reset that can destroy our response before the client has read it.
constexpr std::size_t linger_bytes = 1024 * 1024;
constexpr std::chrono::seconds linger_time{2};

constexpr std::string_view unmatched_route = "(unmatched)";
constexpr std::string_view malformed_route = "(malformed)";

const std::vector<double> duration_buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5,     10};

void log_exception(std::exception_ptr e, std::string_view what) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        spdlog::error("http {} failed: {}", what, ex.what());
    } catch (...) {
        spdlog::error("http {} failed: unknown exception", what);
    }
}

// "host:port", "[v6]:port" or ":port" (all IPv4 addresses).
tcp::endpoint parse_listen(const std::string& spec) {
    const auto colon = spec.rfind(':');
    if (colon == std::string::npos)
        throw std::invalid_argument("http listen address \"" + spec + "\" has no port (write host:port)");
    std::string host = spec.substr(0, colon);
    const std::string port_text = spec.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "0.0.0.0";
    if (host == "localhost") host = "127.0.0.1";
    unsigned port = 0;
    const auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535)
        throw std::invalid_argument("http listen address \"" + spec + "\": the port must be 0..65535");
    boost::system::error_code aec;
    const auto addr = asio::ip::make_address(host, aec);
    if (aec)
        throw std::invalid_argument("http listen address \"" + spec + "\": \"" + host + "\" is not an IP address");
    return {addr, static_cast<unsigned short>(port)};
}

// A request we could not parse (answered 400), as opposed to a client that
// left (end_of_stream before a request, partial_message within one).
bool is_http_error(const boost::system::error_code& ec) {
    return ec.category() == beast::http::make_error_code(beast::http::error::end_of_stream).category() &&
           ec != beast::http::error::end_of_stream && ec != beast::http::error::partial_message;
}

std::string_view method_label(http::verb v) {
    return v == http::verb::unknown ? std::string_view("other") : std::string_view(http::to_string(v));
}

bool bodiless(http::status s) {
    const auto code = static_cast<unsigned>(s);
    return code < 200 || code == 204 || code == 304;
}

} // namespace

namespace detail {
template <class Stream>
class http_connection;

// What stop() needs of a connection, whatever its stream.
class connection_base {
public:
    virtual ~connection_base() = default;
    virtual void stop() = 0;
};
} // namespace detail
using detail::connection_base;
using detail::http_connection;
using plain_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

struct http_server::impl {
    const router& routes;
    http_server_options opts;

    // Connections by id, for stop(); each removes itself when it ends.
    std::mutex mutex;
    std::condition_variable all_closed;
    std::unordered_map<std::uint64_t, std::weak_ptr<connection_base>> connections;
    std::uint64_t next_id = 1;
    std::atomic<std::size_t> open{0};
    std::atomic<bool> stopping{false};
    bool started = false;
    bool stopped = false;

    family<counter>& requests;
    family<histogram>& durations;
    counter& rejected;
    callback_registration open_gauge;

    // Declared after everything handlers touch, so destroyed first (a stop
    // that timed out leaves coroutines that end with the io_context).
    asio::io_context ioc;
    asio::strand<asio::io_context::executor_type> accept_strand{asio::make_strand(ioc)};
    // The accept loop's failures: a warning every 10 s at most, with the count.
    common::log_limiter accept_warnings{std::chrono::seconds(10)};
    std::optional<tcp::acceptor> acceptor;
    tcp::endpoint endpoint;
    std::vector<std::thread> threads;

    impl(const router& r, metrics& m, http_server_options o)
        : routes(r),
          opts(std::move(o)),
          requests(m.add_counter("pulsegate_http_requests_total",
                                 "HTTP requests answered, by route pattern, method and status",
                                 {"route", "method", "status"})),
          durations(m.add_histogram("pulsegate_http_request_duration_seconds",
                                    "Time from a request's header being read to its response being written",
                                    duration_buckets, {"route", "method"})),
          rejected(m.add_counter("pulsegate_http_connections_rejected_total",
                                 "HTTP connections closed at accept because max_connections were open")
                       .with({})),
          open_gauge(m.add_callback_gauge("pulsegate_http_connections", "Open HTTP connections",
                                          [this] { return static_cast<double>(open.load()); })),
          ioc(static_cast<int>(std::max(1u, opts.threads))) {}

    asio::awaitable<void> accept_loop();
    // Runs a connection over `socket` (ctx: the TLS context of tls_stream).
    template <class Stream>
    void start(tcp::socket socket, std::shared_ptr<asio::ssl::context> ctx);

    // The endpoint registered for `path`, if any.
    const std::pair<std::string, websocket_acceptor>* websocket_for(std::string_view path) const {
        for (const auto& e : opts.websockets)
            if (e.first == path) return &e;
        return nullptr;
    }

    void forget(std::uint64_t id) {
        std::lock_guard lock(mutex);
        connections.erase(id);
        if (open.fetch_sub(1) == 1) all_closed.notify_all();
    }

    void record(std::string_view route, std::string_view method, http::status status,
                std::chrono::steady_clock::time_point start) {
        const auto code = std::to_string(static_cast<unsigned>(status));
        requests.with({route, method, code}).inc();
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        durations.with({route, method}).observe(took.count());
    }
};

namespace detail {

// One client connection over plain_stream or tls_stream. Owner: its strand
// (the socket's executor): the coroutine and stop()'s posted handler are the
// only code touching it.
template <class Stream>
class http_connection final : public connection_base, public std::enable_shared_from_this<http_connection<Stream>> {
    static constexpr bool tls = std::is_same_v<Stream, tls_stream>;

public:
    // `ctx`: the TLS context (tls_stream only).
    http_connection(http_server::impl& server, tcp::socket socket, std::uint64_t id,
                    std::shared_ptr<asio::ssl::context> ctx = nullptr)
        : server_(server), tls_ctx_(std::move(ctx)), stream_(open(std::move(socket), tls_ctx_.get())), id_(id) {
        boost::system::error_code ec;
        remote_ = tcp_layer().socket().remote_endpoint(ec); // a peer already gone shows as 0.0.0.0:0
    }
    ~http_connection() override { server_.forget(id_); }
    http_connection(const http_connection&) = delete;
    http_connection& operator=(const http_connection&) = delete;

    asio::any_io_executor executor() { return stream_.get_executor(); }

    asio::awaitable<void> run();

    // From any thread: closes the connection at once if it waits for a
    // request, else after the response in progress.
    void stop() override {
        asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
            self->stopping_ = true;
            if (self->websocket_) {
                boost::system::error_code ignored; // closing either way
                self->tcp_layer().socket().close(ignored);
                self->wake_websocket();
            } else if (self->idle_) {
                self->tcp_layer().cancel();
            }
        });
    }

private:
    static Stream open(tcp::socket socket, asio::ssl::context* ctx) {
        if constexpr (tls) return Stream(std::move(socket), *ctx);
        else return Stream(std::move(socket));
    }
    beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }

    bool stopping() const { return stopping_ || server_.stopping.load(); }

    asio::awaitable<bool> async_send(response res, bool head, unsigned version, bool keep_alive);
    asio::awaitable<void> refuse_plain_http();
    asio::awaitable<void> async_fail(response res, std::string_view route, std::string_view method,
                                     unsigned version, std::chrono::steady_clock::time_point start);
    asio::awaitable<void> run_websocket(http::request<http::string_body> req,
                                        std::shared_ptr<websocket_session> session);
    asio::awaitable<void> websocket_writer(std::shared_ptr<websocket_session> session);

    http_server::impl& server_;
    std::shared_ptr<asio::ssl::context> tls_ctx_; // outlives stream_
    Stream stream_;
    beast::flat_buffer buffer_;
    tcp::endpoint remote_;
    const std::uint64_t id_;
    bool idle_ = false;     // in the TLS handshake or waiting for a request (stop() may cut it)
    bool stopping_ = false; // stop() was called: no further request
    // Wakes the WebSocket writer and a paused reader (on the strand).
    void wake_websocket() {
        if (wake_) wake_->cancel();
        if (resume_) resume_->cancel();
    }

    // After an upgrade: the WebSocket over stream_, the writer's wake-up and
    // the wake-up of a reader that the session paused.
    std::optional<beast::websocket::stream<Stream&>> ws_;
    std::optional<asio::steady_timer> wake_;
    std::optional<asio::steady_timer> resume_;
    bool websocket_ = false;   // the handshake is done: stop() closes at once
    bool reader_done_ = false; // the read loop has ended: the writer stops
    bool writer_done_ = false; // the writer closes the WebSocket: the reader stops
};

} // namespace detail

template <class Stream>
asio::awaitable<void> http_connection<Stream>::run() {
    const auto& opts = server_.opts;
    if constexpr (tls) {
        tcp_layer().expires_after(opts.idle_timeout);
        idle_ = true; // no request yet: stop() may cut the handshake
        // The first bytes decide: a TLS record (ClientHello) starts with
        // 0x16; anything else is most likely plain HTTP to this port, which
        // gets a readable answer rather than a dropped connection.
        const auto [rec, rn] = co_await tcp_layer().async_read_some(buffer_.prepare(512), token);
        if (rec) co_return;
        buffer_.commit(rn);
        if (static_cast<const unsigned char*>(buffer_.data().data())[0] != 0x16) {
            idle_ = false;
            co_await refuse_plain_http();
            co_return;
        }
        const auto [ec, used] =
            co_await stream_.async_handshake(asio::ssl::stream_base::server, buffer_.data(), token);
        idle_ = false;
        if (ec) {
            spdlog::debug("https handshake failed addr={} error=\"{}\"", remote_.address().to_string(), ec.message());
            co_return;
        }
        buffer_.consume(used);
        // A client does not send application data before the handshake ends.
        if (buffer_.size() != 0) co_return;
    }
    for (;;) {
        if (stopping()) co_return;
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(opts.header_limit, UINT32_MAX)));
        // No body limit while the header is read: the parser would refuse a
        // large Content-Length before we know the route to count it under.
        // Set below, before any of the body is parsed.
        parser.body_limit(boost::none);

        tcp_layer().expires_after(opts.idle_timeout);
        idle_ = true;
        const auto [ec, n] = co_await http::async_read_header(stream_, buffer_, parser, token);
        idle_ = false;
        const auto start = std::chrono::steady_clock::now();
        if (ec == http::error::header_limit) {
            co_await async_fail(json_error(http::status::request_header_fields_too_large, codes::header_too_large,
                                           "the request header is larger than " + std::to_string(opts.header_limit) +
                                               " bytes; send fewer or shorter header fields"),
                                malformed_route, "other", 11, start);
            co_return;
        }
        if (is_http_error(ec)) {
            spdlog::debug("http malformed request from {}: {}", remote_.address().to_string(), ec.message());
            co_await async_fail(json_error(http::status::bad_request, codes::malformed_request,
                                           "malformed HTTP request (" + ec.message() + "); send HTTP/1.1"),
                                malformed_route, "other", 11, start);
            co_return;
        }
        if (ec) co_return; // the client left, timed out, or stop(): nothing to answer

        const auto& req = parser.get();
        const auto method = method_label(req.method());
        const auto version = req.version() == 10 ? 10u : 11u;
        const auto target = boost::urls::parse_origin_form(req.target());
        if (!target) {
            co_await async_fail(json_error(http::status::bad_request, codes::malformed_request,
                                           "the request target must be a path with an optional query, "
                                           "percent-encoded (e.g. /api/v1/devices?limit=10)"),
                                malformed_route, method, version, start);
            co_return;
        }
        const auto too_large = [&] {
            return json_error(http::status::payload_too_large, codes::payload_too_large,
                              "the request body is larger than " + std::to_string(opts.body_limit) +
                                  " bytes; send less per request");
        };
        const auto route_of = [&] {
            const auto p = server_.routes.find(req.method(), target->encoded_path()).pattern;
            return p.empty() ? unmatched_route : p;
        };
        if (const auto length = parser.content_length(); length && *length > opts.body_limit) {
            co_await async_fail(too_large(), route_of(), method, version, start);
            co_return;
        }
        parser.body_limit(opts.body_limit);
        if (!parser.is_done()) {
            if (beast::iequals(req[http::field::expect], "100-continue")) {
                http::response<http::empty_body> go_on{http::status::continue_, version};
                tcp_layer().expires_after(opts.write_timeout);
                const auto [wec, wn] = co_await http::async_write(stream_, go_on, token);
                if (wec) co_return;
            }
            tcp_layer().expires_after(opts.idle_timeout);
            const auto [bec, bn] = co_await http::async_read(stream_, buffer_, parser, token);
            if (bec == http::error::body_limit) {
                co_await async_fail(too_large(), route_of(), method, version, start);
                co_return;
            }
            if (is_http_error(bec)) {
                co_await async_fail(json_error(http::status::bad_request, codes::malformed_request,
                                               "malformed HTTP request body (" + bec.message() + ")"),
                                    route_of(), method, version, start);
                co_return;
            }
            if (bec) co_return;
        }

        request_context ctx;
        ctx.method = req.method();
        ctx.target = req.target();
        ctx.path = target->encoded_path();
        for (const auto& p : target->params()) ctx.query.emplace_back(p.key, p.value);
        ctx.headers = &req.base();
        ctx.body = req.body();
        ctx.remote = remote_;
        if (beast::websocket::is_upgrade(req))
            if (const auto* endpoint = server_.websocket_for(ctx.path)) {
                auto outcome = endpoint->second(ctx);
                if (auto* refused = std::get_if<response>(&outcome)) {
                    co_await async_fail(std::move(*refused), endpoint->first, method, version, start);
                    co_return;
                }
                server_.record(endpoint->first, method, http::status::switching_protocols, start);
                co_await run_websocket(parser.release(),
                                       std::move(std::get<std::shared_ptr<websocket_session>>(outcome)));
                co_return;
            }
        auto res = server_.routes.dispatch(ctx);
        const auto route = ctx.route.empty() ? unmatched_route : ctx.route;
        const auto status = res.status;
        const bool keep_alive = req.keep_alive() && !stopping();
        const bool sent = co_await async_send(std::move(res), req.method() == http::verb::head, version, keep_alive);
        server_.record(route, method, status, start);
        if (!sent) co_return;
        if (!keep_alive) {
            boost::system::error_code sec;
            tcp_layer().socket().shutdown(tcp::socket::shutdown_send, sec); // nothing to do if it fails: we close next
            co_return;
        }
    }
}

// HTTPS port, plain HTTP request: 400 in plain HTTP, naming the URL to use,
// and close (what nginx does).
template <class Stream>
asio::awaitable<void> http_connection<Stream>::refuse_plain_http() {
    boost::system::error_code lec;
    const auto local = tcp_layer().socket().local_endpoint(lec);
    const auto port = lec ? std::string("PORT") : std::to_string(local.port());
    spdlog::debug("http plain request on the https port from {}", remote_.address().to_string());
    auto res = json_error(http::status::bad_request, codes::malformed_request,
                          "this port speaks HTTPS and the request came in plain HTTP; use https://HOST:" + port + "/");
    http::response<http::string_body> out{res.status, 11};
    out.set(http::field::server, "pulsegate");
    out.set(http::field::content_type, res.content_type);
    out.set(http::field::cache_control, "no-store");
    out.set(http::field::connection, "close");
    out.body() = std::move(res.body);
    out.prepare_payload();
    tcp_layer().expires_after(server_.opts.write_timeout);
    co_await http::async_write(tcp_layer(), out, token);
    boost::system::error_code sec;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_send, sec); // closing next either way
}

template <class Stream>
asio::awaitable<bool> http_connection<Stream>::async_send(response res, bool head, unsigned version, bool keep_alive) {
    http::response<http::string_body> out{res.status, version};
    out.set(http::field::server, "pulsegate");
    for (auto& [name, value] : res.headers) out.insert(name, value);
    if (res.header("Cache-Control").empty()) out.set(http::field::cache_control, "no-store");
    if (res.header("X-Content-Type-Options").empty()) out.set("X-Content-Type-Options", "nosniff");
    // Over HTTPS, browsers keep to HTTPS for a year (they ignore it from a
    // certificate they do not trust, and for IP addresses: RFC 6797).
    if constexpr (std::is_same_v<Stream, tls_stream>)
        out.set(http::field::strict_transport_security, "max-age=31536000");
    if (!bodiless(res.status)) {
        if (!res.content_type.empty()) out.set(http::field::content_type, res.content_type);
        out.body() = std::move(res.body);
        out.prepare_payload();
        if (head) {
            // HEAD: the headers GET would send, without the body.
            const auto size = out.body().size();
            out.body().clear();
            out.content_length(size);
        }
    }
    out.keep_alive(keep_alive);
    tcp_layer().expires_after(server_.opts.write_timeout);
    const auto [ec, n] = co_await http::async_write(stream_, out, token);
    co_return !ec;
}

template <class Stream>
asio::awaitable<void> http_connection<Stream>::async_fail(response res, std::string_view route, std::string_view method,
                                             unsigned version, std::chrono::steady_clock::time_point start) {
    const auto status = res.status;
    const bool sent = co_await async_send(std::move(res), false, version, false);
    server_.record(route, method, status, start);
    if (!sent) co_return;
    boost::system::error_code ec;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) co_return;
    // Linger (see linger_bytes): drop what still comes until the client
    // closes, the bound, the deadline or stop().
    tcp_layer().expires_after(linger_time);
    std::array<char, 4096> sink;
    std::size_t total = 0;
    idle_ = true;
    while (total < linger_bytes && !stopping()) {
        const auto [rec, got] = co_await stream_.async_read_some(asio::buffer(sink), token);
        if (rec) break;
        total += got;
    }
    idle_ = false;
}

template <class Stream>
asio::awaitable<void> http_connection<Stream>::run_websocket(http::request<http::string_body> req,
                                                     std::shared_ptr<websocket_session> session) {
    namespace websocket = beast::websocket;
    const auto settings = session->settings();
    tcp_layer().expires_never(); // the WebSocket keeps its own timeouts
    auto& ws = ws_.emplace(stream_);
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.idle_timeout = std::chrono::seconds(30);
    timeouts.keep_alive_pings = true; // a peer that stops answering pings is closed
    ws.set_option(timeouts);
    ws.set_option(websocket::stream_base::decorator([protocol = settings.subprotocol](websocket::response_type& r) {
        r.set(http::field::server, "pulsegate");
        if (!protocol.empty()) r.set(http::field::sec_websocket_protocol, protocol);
    }));
    ws.read_message_max(settings.max_message);
    ws.binary(settings.binary);
    const auto [aec] = co_await ws.async_accept(req, token);
    if (aec || stopping()) co_return;
    websocket_ = true;
    wake_.emplace(stream_.get_executor(), asio::steady_timer::time_point::max());
    resume_.emplace(stream_.get_executor(), asio::steady_timer::time_point::max());
    std::weak_ptr<http_connection> weak = this->shared_from_this();
    session->opened([weak] {
        if (auto self = weak.lock()) asio::post(self->executor(), [self] { self->wake_websocket(); });
    });
    asio::co_spawn(
        executor(),
        [self = this->shared_from_this(), session]() -> asio::awaitable<void> { co_await self->websocket_writer(session); },
        [](std::exception_ptr e) { log_exception(e, "websocket writer"); });

    beast::flat_buffer in;
    while (!writer_done_ && !stopping()) {
        if (!session->may_receive()) {
            resume_->expires_at(asio::steady_timer::time_point::max());
            co_await resume_->async_wait(token);
            continue;
        }
        const auto [ec, n] = co_await ws.async_read(in, token);
        if (ec) break;
        if (ws.got_text() != settings.binary)
            session->received(std::string_view(static_cast<const char*>(in.data().data()), in.size()));
        else if (settings.binary)
            break; // MQTT over WebSocket: a text frame ends the connection
        in.consume(in.size());
    }
    reader_done_ = true;
    wake_->cancel();
    session->closed();
}

template <class Stream>
asio::awaitable<void> http_connection<Stream>::websocket_writer(std::shared_ptr<websocket_session> session) {
    while (!reader_done_ && !stopping()) {
        if (const auto close = session->should_close(); close != websocket_close::none) {
            const auto code = close == websocket_close::normal ? beast::websocket::close_code::normal
                                                               : beast::websocket::close_code::policy_error;
            writer_done_ = true;
            resume_->cancel(); // a paused reader ends instead of waiting
            co_await ws_->async_close(code, token);
            co_return;
        }
        if (auto m = session->next_outgoing()) {
            const auto [ec, n] = co_await ws_->async_write(asio::buffer(*m), token);
            if (ec) co_return;
            continue;
        }
        wake_->expires_at(asio::steady_timer::time_point::max());
        co_await wake_->async_wait(token);
    }
}

asio::awaitable<void> http_server::impl::accept_loop() {
    for (;;) {
        auto [ec, socket] = co_await acceptor->async_accept(asio::make_strand(ioc), token);
        if (stopping || ec == asio::error::operation_aborted) co_return;
        if (ec) {
            // Out of descriptors, or a connection gone before accept: back
            // off a moment rather than spin on the same error.
            if (const auto quiet = accept_warnings.admit(std::chrono::steady_clock::now()))
                spdlog::warn("http accept failed: {} (at the descriptor limit raise ulimit -n) "
                             "more_since_last_warning={}",
                             ec.message(), *quiet);
            asio::steady_timer pause(accept_strand, std::chrono::milliseconds(50));
            co_await pause.async_wait(token);
            continue;
        }
        if (open.load() >= opts.max_connections) {
            rejected.inc();
            boost::system::error_code ignored; // closing a socket we never used: nothing to report
            socket.close(ignored);
            continue;
        }
        if (opts.tls != nullptr) start<tls_stream>(std::move(socket), opts.tls->current());
        else start<plain_stream>(std::move(socket), nullptr);
    }
}

template <class Stream>
void http_server::impl::start(tcp::socket socket, std::shared_ptr<asio::ssl::context> ctx) {
    std::shared_ptr<http_connection<Stream>> c;
    {
        std::lock_guard lock(mutex);
        const auto id = next_id++;
        ++open;
        c = std::make_shared<http_connection<Stream>>(*this, std::move(socket), id, std::move(ctx));
        connections.emplace(id, c);
    }
    asio::co_spawn(
        c->executor(), [c]() -> asio::awaitable<void> { co_await c->run(); },
        [](std::exception_ptr e) { log_exception(e, "connection"); });
}

// ---- http_server --------------------------------------------------------------

http_server::http_server(const router& routes, metrics& m, http_server_options opts)
    : impl_(std::make_unique<impl>(routes, m, std::move(opts))) {}

http_server::~http_server() { stop(); }

void http_server::start() {
    auto& s = *impl_;
    BOOST_ASSERT_MSG(!s.started, "http_server::start called twice");
    const auto ep = parse_listen(s.opts.listen);
    s.acceptor.emplace(s.accept_strand);
    boost::system::error_code ec;
    s.acceptor->open(ep.protocol(), ec);
    if (!ec) s.acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) s.acceptor->bind(ep, ec);
    if (!ec) s.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::system_error(ec, "cannot listen for HTTP on " + s.opts.listen +
                                        " (is another process using it? set [http] listen)");
    s.endpoint = s.acceptor->local_endpoint();
    asio::co_spawn(s.accept_strand, s.accept_loop(), [](std::exception_ptr e) { log_exception(e, "accept loop"); });
    const unsigned n = std::max(1u, s.opts.threads);
    for (unsigned i = 0; i < n; ++i) {
        s.threads.emplace_back([&s, i] {
            common::name_this_thread(fmt::format("pg-http-{}", i));
            for (;;) {
                try {
                    s.ioc.run();
                    return;
                } catch (const std::exception& e) {
                    // A handler threw past its coroutine: log and keep serving.
                    spdlog::error("http thread handler failed: {}", e.what());
                }
            }
        });
    }
    s.started = true;
    spdlog::info("{} listening on {}:{} threads={}", s.opts.tls != nullptr ? "https" : "http",
                 s.endpoint.address().to_string(), s.endpoint.port(), n);
}

asio::ip::tcp::endpoint http_server::local_endpoint() const { return impl_->endpoint; }

void http_server::stop() {
    auto& s = *impl_;
    if (!s.started || s.stopped) return;
    BOOST_ASSERT_MSG(std::none_of(s.threads.begin(), s.threads.end(),
                                  [](const std::thread& t) { return t.get_id() == std::this_thread::get_id(); }),
                     "http_server::stop called from an HTTP thread");
    s.stopped = true;
    s.stopping = true;
    asio::post(s.accept_strand, [&s] {
        boost::system::error_code ignored; // the acceptor goes away either way
        s.acceptor->close(ignored);
    });
    std::vector<std::shared_ptr<connection_base>> live;
    {
        std::lock_guard lock(s.mutex);
        for (const auto& [id, weak] : s.connections)
            if (auto c = weak.lock()) live.push_back(std::move(c));
    }
    for (const auto& c : live) c->stop();
    live.clear(); // our references must not keep them open
    {
        std::unique_lock lock(s.mutex);
        if (!s.all_closed.wait_for(lock, s.opts.stop_timeout, [&] { return s.open.load() == 0; })) {
            spdlog::warn("http stop: {} connection(s) still busy after {} ms; cutting them", s.open.load(),
                         s.opts.stop_timeout.count());
            s.ioc.stop();
        }
    }
    for (auto& t : s.threads) t.join();
    s.threads.clear();
    spdlog::info("http stopped");
}

} // namespace pulsegate::webui
