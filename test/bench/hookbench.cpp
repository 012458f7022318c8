// pulsegate-hookbench: end-to-end alert delivery, for test/bench/run.sh
// (scenario `delivery`, README.md "Alert delivery").
//
// One process plays both ends of the path
//
//   device --PUBLISH--> pulsegate (ingest -> rules engine -> outbox)
//          --HTTP POST--> webhook receiver
//
// so that both ends read the same steady clock:
//
// - the receiver: HTTP/1.1 on 127.0.0.1:--hook-port, one Asio thread with a
//   coroutine per connection (pulsegate sends `Connection: close`, so one
//   request per connection). For every request it records the arrival time
//   (when the whole request has been read), the body's "event" and
//   "alert"."value", and the X-Pulsegate-Delivery header (the job id), then
//   answers 204 and closes. It does no other work, so it is the "fast
//   receiver" of the issue;
// - the devices: blocking MQTT 3.1.1 connections through pulsegate's codec
//   (broker/protocol/codec.hpp), anonymous, so they live in tenant
//   `default`. The rule (rules_setup.py --probe) is `probe > 999999`; the
//   route sends only `alert.opened` to the receiver.
//
// Phases, in this order, on one running daemon:
//
// 1. prime: every throughput device publishes one clearing reading (QoS 1,
//    all PUBACKs awaited, then --settle seconds), so that the burst below
//    measures alerts of known devices, not their first sighting.
// 2. latency: the probe device publishes `{"probe":V}` every
//    --probe-interval-ms, alternately a breach, V = 1000000 + sequence, and
//    a clear, V = 0 (QoS 0, as rules_latency). A breach is stamped just
//    before its write(); the clock stops when the receiver has read the
//    webhook request whose alert value is that V. Breaches of the first
//    --warmup seconds do not count; breaches without their request when
//    the receiver has been quiet for --quiet seconds are *missing*.
// 3. throughput: --devices devices (hook00000 ...) each publish one breach,
//    V = 2000000 + index, as fast as one connection writes them (QoS 1),
//    then the receiver waits for the --devices alert.opened requests (or
//    --quiet-burst seconds without one). deliveries/s = distinct devices
//    delivered / (last arrival - first PUBLISH written).
//
// With --http-port, pulsegate's delivery counters are read from /metrics
// after each phase (they are refreshed when read). One JSON object on
// stdout; progress on stderr. Exit status 0 done, 2 setup failed, 1 usage.

#include "broker/protocol/codec.hpp"

#include <CLI/CLI.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace pulsegate::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace proto = pulsegate::broker::protocol;
using steady = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

namespace {

constexpr auto token = asio::as_tuple(asio::use_awaitable);
constexpr std::int64_t probe_base = 1'000'000;
constexpr std::int64_t burst_base = 2'000'000;

struct settings {
    std::string host = "127.0.0.1";
    std::uint16_t port = 1883;
    std::uint16_t hook_port = 0;
    int http_port = 0;
    int broker_pid = 0;
    double probe_interval_ms = 25;
    double warmup = 1;
    double duration = 10;
    int devices = 2000;
    double settle = 2;
    double quiet = 2;
    double quiet_burst = 5;
    double max_wait = 120;
};

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "hookbench: %s\n", what.c_str());
    std::fflush(stderr);
    std::_Exit(2);
}

// utime + stime of a process in seconds, -1 if unreadable.
double read_cpu_s(int pid) {
    if (pid <= 0) return -1;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = s.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream in(s.substr(close + 2));
    std::string field;
    for (int i = 3; i < 14; ++i) in >> field; // state(3) ... utime(14) stime(15)
    double utime = 0, stime = 0;
    in >> utime >> stime;
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The pulsegate_delivery_* / pulsegate_alerts_* counters of /metrics;
// empty if unreadable. Blocking, at most ~2 s, between phases only.
std::map<std::string, double> scrape_metrics(const std::string& host, int port) {
    std::map<std::string, double> out;
    if (port <= 0) return out;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return out;
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    std::string text;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
        std::string req = "GET /metrics HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
        if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
            char buf[65536];
            for (;;) {
                ssize_t n = ::read(fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                text.append(buf, static_cast<std::size_t>(n));
            }
        }
    }
    ::close(fd);
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.starts_with("pulsegate_delivery_") && !line.starts_with("pulsegate_alerts_")) continue;
        auto sp = line.find(' ');
        if (sp == std::string::npos || line.find('{') < sp) continue;
        out[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
    }
    return out;
}

// p50, p99, max of ns latencies, in us; sorts `v`.
struct percentiles {
    double p50 = 0, p99 = 0, max = 0;
};
percentiles percentiles_us(std::vector<std::int64_t>& v) {
    percentiles p;
    if (v.empty()) return p;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
        auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
        return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1000.0;
    };
    p.p50 = at(0.50);
    p.p99 = at(0.99);
    p.max = static_cast<double>(v.back()) / 1000.0;
    return p;
}

// ---- the webhook receiver ----

// One request as the receiver saw it.
struct hook_request {
    std::int64_t at_ns = 0;
    std::int64_t value = -1; // alert.value, rounded; -1: none or not a number
    bool opened = false;     // "event" == "alert.opened"
};

// Owns the io_context thread; requests() and count() from any thread.
class receiver {
public:
    explicit receiver(std::uint16_t port) : acceptor_(ioc_) {
        tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
        boost::system::error_code ec;
        acceptor_.open(ep.protocol(), ec);
        if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) acceptor_.bind(ep, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) die("webhook receiver: cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + ec.message());
        asio::co_spawn(ioc_, accept_loop(), [](std::exception_ptr e) {
            if (e) std::fprintf(stderr, "hookbench: accept loop ended by an exception\n");
        });
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~receiver() {
        ioc_.stop();
        thread_.join();
    }

    std::size_t count() const { return count_.load(std::memory_order_acquire); }
    std::int64_t last_ns() const { return last_ns_.load(std::memory_order_acquire); }
    std::uint64_t errors() const { return errors_.load(); }
    std::vector<hook_request> requests() const {
        std::lock_guard lock(mu_);
        return log_;
    }

private:
    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(token);
            if (ec == asio::error::operation_aborted) co_return;
            if (ec) { // EMFILE and the like: counted, and the loop goes on
                ++errors_;
                continue;
            }
            asio::co_spawn(ioc_, session(std::move(socket)), [this](std::exception_ptr e) {
                if (e) ++errors_;
            });
        }
    }

    asio::awaitable<void> session(tcp::socket socket) {
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        auto [ec, n] = co_await http::async_read(socket, buf, req, token);
        if (ec) {
            ++errors_;
            co_return;
        }
        hook_request r;
        r.at_ns = now_ns();
        boost::system::error_code jec;
        auto v = boost::json::parse(req.body(), jec);
        if (!jec && v.is_object()) {
            const auto& o = v.get_object();
            if (auto* e = o.if_contains("event"); e && e->is_string()) r.opened = e->get_string() == "alert.opened";
            if (auto* a = o.if_contains("alert"); a && a->is_object())
                if (auto* val = a->get_object().if_contains("value"); val && val->is_number())
                    r.value = std::llround(val->to_number<double>());
        }
        {
            std::lock_guard lock(mu_);
            log_.push_back(r);
        }
        last_ns_.store(r.at_ns, std::memory_order_release);
        count_.fetch_add(1, std::memory_order_acq_rel);
        http::response<http::empty_body> res{http::status::no_content, 11};
        res.keep_alive(false);
        auto [wec, wn] = co_await http::async_write(socket, res, token);
        if (wec) ++errors_;
        boost::system::error_code sec;
        socket.shutdown(tcp::socket::shutdown_send, sec); // the peer may be gone: nothing to do
    }

    asio::io_context ioc_{1};
    tcp::acceptor acceptor_;
    std::thread thread_;
    mutable std::mutex mu_;
    std::vector<hook_request> log_;
    std::atomic<std::size_t> count_{0};
    std::atomic<std::int64_t> last_ns_{0};
    std::atomic<std::uint64_t> errors_{0};
};

// ---- the devices: a blocking MQTT 3.1.1 client ----

class mqtt_client {
public:
    mqtt_client(const std::string& host, std::uint16_t port, const std::string& client_id) {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) die(std::string("socket: ") + std::strerror(errno));
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        inet_pton(AF_INET, host.c_str(), &a.sin_addr);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
            die("connect to the broker: " + std::string(std::strerror(errno)));
        proto::connect c;
        c.version = proto::protocol_version::v311;
        c.clean_start = true;
        c.keep_alive = 300;
        c.client_id = client_id;
        std::string out;
        proto::encode(proto::packet{c}, proto::protocol_version::v311, out);
        write_all(out);
        auto p = read_packet();
        auto* ca = std::get_if<proto::connack>(&p);
        if (!ca || ca->code != proto::reason_code::success) die("CONNACK missing or refused");
    }
    ~mqtt_client() { ::close(fd_); }

    // Appends one PUBLISH of `payload` on `topic` to `out`.
    static void append_publish(std::string& out, std::string_view topic, std::string_view payload, int qos,
                               std::uint16_t id) {
        proto::publish p;
        p.qos = static_cast<std::uint8_t>(qos);
        p.topic = topic;
        p.packet_id = id;
        proto::encode_publish_header(p, payload.size(), proto::protocol_version::v311, out);
        out.append(payload);
    }

    void write_all(std::string_view data) {
        while (!data.empty()) {
            ssize_t n = ::write(fd_, data.data(), data.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) die("write to the broker: " + std::string(std::strerror(errno)));
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    // Reads until `n` PUBACKs have come.
    void await_pubacks(std::size_t n) {
        for (std::size_t got = 0; got < n;) {
            auto p = read_packet();
            if (auto* a = std::get_if<proto::ack>(&p); a && a->type == proto::packet_type::puback) ++got;
        }
    }

private:
    proto::packet read_packet() {
        for (;;) {
            std::span<const std::uint8_t> rest(in_.data() + off_, in_.size() - off_);
            auto f = proto::frame(rest, 1 << 20);
            if (!f) die("malformed packet from the broker");
            if (*f && (*f)->total_size() <= rest.size()) {
                const auto& h = **f;
                auto r = proto::decode(h.first_byte, rest.subspan(h.header_size, h.remaining_length),
                                       proto::protocol_version::v311);
                if (!r) die("undecodable packet from the broker");
                off_ += h.total_size();
                // Packets own no memory of the buffer beyond views; only
                // acks and connacks are read, which hold none.
                return *r;
            }
            if (off_ > 0) {
                in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(off_));
                off_ = 0;
            }
            std::uint8_t buf[65536];
            ssize_t n = ::read(fd_, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) die("the broker closed the connection");
            in_.insert(in_.end(), buf, buf + n);
        }
    }

    int fd_ = -1;
    std::vector<std::uint8_t> in_;
    std::size_t off_ = 0;
};

// Waits until `done()` or the receiver has been quiet for `quiet` s since
// `since_ns` or its last request (whichever is later), at most `max_wait` s.
template <class Done>
void wait_quiet(const receiver& rx, std::int64_t since_ns, double quiet, double max_wait, Done done) {
    auto quiet_ns = static_cast<std::int64_t>(quiet * 1e9);
    auto limit = now_ns() + static_cast<std::int64_t>(max_wait * 1e9);
    while (!done() && now_ns() < limit) {
        if (now_ns() - std::max(since_ns, rx.last_ns()) > quiet_ns) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

std::string device_name(int i) {
    char b[16];
    std::snprintf(b, sizeof b, "hook%05d", i);
    return b;
}

double metric(const std::map<std::string, double>& a, const std::map<std::string, double>& b, const char* key) {
    auto i = a.find(key), j = b.find(key);
    return i == a.end() || j == b.end() ? -1 : j->second - i->second;
}

int run(const settings& s) {
    receiver rx(s.hook_port);
    mqtt_client probe(s.host, s.port, "hookbench-probe");
    mqtt_client burst(s.host, s.port, "hookbench-burst");
    std::vector<std::string> topics;
    for (int i = 0; i < s.devices; ++i) topics.push_back("d/" + device_name(i) + "/telemetry");

    // 1. prime: every throughput device known, its alert closed.
    {
        std::string out;
        for (int i = 0; i < s.devices; ++i)
            mqtt_client::append_publish(out, topics[i], R"({"probe":0})", 1, static_cast<std::uint16_t>(i % 65535 + 1));
        burst.write_all(out);
        burst.await_pubacks(static_cast<std::size_t>(s.devices));
        std::this_thread::sleep_for(std::chrono::duration<double>(s.settle));
    }
    auto m0 = scrape_metrics(s.host, s.http_port);

    // 2. latency: breach, clear, breach ... every probe_interval_ms.
    std::fprintf(stderr, "hookbench: latency: a probe reading every %.0f ms for %.0f + %.0f s\n", s.probe_interval_ms,
                 s.warmup, s.duration);
    std::vector<std::int64_t> sent_ns; // by breach sequence
    auto cpu0 = read_cpu_s(s.broker_pid);
    auto t_start = now_ns();
    auto interval_ns = static_cast<std::int64_t>(s.probe_interval_ms * 1e6);
    auto end_ns = t_start + static_cast<std::int64_t>((s.warmup + s.duration) * 1e9);
    auto warm_ns = t_start + static_cast<std::int64_t>(s.warmup * 1e9);
    const std::string probe_topic = "d/probe/telemetry";
    for (std::int64_t k = 0;; ++k) {
        auto due = t_start + k * interval_ns;
        if (due >= end_ns && k % 2 == 0) break; // always end on a clear
        std::this_thread::sleep_until(steady::time_point(std::chrono::nanoseconds(due)));
        std::string out;
        bool breach = k % 2 == 0;
        auto payload = breach ? R"({"probe":)" + std::to_string(probe_base + k / 2) + "}" : std::string(R"({"probe":0})");
        mqtt_client::append_publish(out, probe_topic, payload, 0, 0);
        if (breach) sent_ns.push_back(now_ns());
        probe.write_all(out);
    }
    auto lat_send_end = now_ns();
    auto probe_done = [&] {
        auto reqs = rx.requests();
        std::set<std::int64_t> got;
        for (auto& r : reqs)
            if (r.opened && r.value >= probe_base && r.value < burst_base) got.insert(r.value);
        return got.size() >= sent_ns.size();
    };
    wait_quiet(rx, lat_send_end, s.quiet, 60, [&] { return rx.count() >= sent_ns.size() && probe_done(); });
    auto cpu1 = read_cpu_s(s.broker_pid);
    auto lat_wall = static_cast<double>(now_ns() - t_start) / 1e9;
    auto m1 = scrape_metrics(s.host, s.http_port);

    std::vector<std::int64_t> first_rx(sent_ns.size(), 0);
    std::size_t duplicates = 0, unexpected = 0;
    auto reqs = rx.requests();
    for (auto& r : reqs) {
        auto seq = r.value - probe_base;
        if (!r.opened || seq < 0 || seq >= static_cast<std::int64_t>(sent_ns.size())) {
            ++unexpected;
            continue;
        }
        auto& slot = first_rx[static_cast<std::size_t>(seq)];
        if (slot) ++duplicates;
        else slot = r.at_ns;
    }
    std::vector<std::int64_t> lat;
    std::size_t missing = 0, counted = 0;
    for (std::size_t i = 0; i < sent_ns.size(); ++i) {
        if (sent_ns[i] < warm_ns) continue;
        ++counted;
        if (!first_rx[i]) ++missing;
        else lat.push_back(first_rx[i] - sent_ns[i]);
    }
    auto lp = percentiles_us(lat);
    std::size_t before_burst = reqs.size();

    // 3. throughput: one breach per device, as fast as one connection writes.
    std::fprintf(stderr, "hookbench: throughput: %d devices breach at once\n", s.devices);
    auto cpu2 = read_cpu_s(s.broker_pid);
    std::string out;
    for (int i = 0; i < s.devices; ++i)
        mqtt_client::append_publish(out, topics[i], R"({"probe":)" + std::to_string(burst_base + i) + "}", 1,
                                    static_cast<std::uint16_t>(i % 65535 + 1));
    auto t0 = now_ns();
    burst.write_all(out);
    auto written_ns = now_ns();
    burst.await_pubacks(static_cast<std::size_t>(s.devices));
    auto acked_ns = now_ns();
    wait_quiet(rx, acked_ns, s.quiet_burst, s.max_wait,
               [&] { return rx.count() >= before_burst + static_cast<std::size_t>(s.devices); });
    auto cpu3 = read_cpu_s(s.broker_pid);
    auto m2 = scrape_metrics(s.host, s.http_port);
    reqs = rx.requests();
    std::vector<bool> seen(static_cast<std::size_t>(s.devices), false);
    std::size_t delivered = 0, burst_dup = 0;
    std::int64_t first = 0, last = 0;
    for (std::size_t j = before_burst; j < reqs.size(); ++j) {
        auto& r = reqs[j];
        auto i = r.value - burst_base;
        if (!r.opened || i < 0 || i >= s.devices) {
            ++unexpected;
            continue;
        }
        if (seen[static_cast<std::size_t>(i)]) {
            ++burst_dup;
            continue;
        }
        seen[static_cast<std::size_t>(i)] = true;
        ++delivered;
        if (!first) first = r.at_ns;
        last = std::max(last, r.at_ns);
    }
    auto span_s = delivered ? static_cast<double>(last - t0) / 1e9 : 0.0;
    auto flow_s = delivered > 1 ? static_cast<double>(last - first) / 1e9 : 0.0;
    auto burst_wall_s = static_cast<double>(now_ns() - t0) / 1e9;

    auto cpu_pct = [](double a, double b, double wall) { return a < 0 || b < 0 || wall <= 0 ? -1.0 : 100 * (b - a) / wall; };
    std::printf("{\"scenario\":\"delivery\",\"probe_interval_ms\":%.1f,\"warmup_s\":%.1f,\"duration_s\":%.1f,"
                "\"latency_samples\":%zu,\"latency_counted\":%zu,\"latency_missing\":%zu,\"latency_duplicates\":%zu,"
                "\"latency_p50_us\":%.0f,\"latency_p99_us\":%.0f,\"latency_max_us\":%.0f,",
                s.probe_interval_ms, s.warmup, s.duration, lat.size(), counted, missing, duplicates, lp.p50, lp.p99,
                lp.max);
    std::printf("\"devices\":%d,\"burst_delivered\":%zu,\"burst_duplicates\":%zu,\"burst_write_ms\":%.1f,"
                "\"burst_acked_ms\":%.1f,\"burst_first_ms\":%.1f,\"burst_last_ms\":%.1f,"
                "\"deliveries_per_s\":%.0f,\"deliveries_per_s_flow\":%.0f,\"unexpected_requests\":%zu,"
                "\"receiver_errors\":%llu,",
                s.devices, delivered, burst_dup, (written_ns - t0) / 1e6, (acked_ns - t0) / 1e6,
                first ? (first - t0) / 1e6 : -1.0, last ? (last - t0) / 1e6 : -1.0,
                span_s > 0 ? static_cast<double>(delivered) / span_s : 0.0,
                flow_s > 0 ? static_cast<double>(delivered - 1) / flow_s : 0.0, unexpected,
                static_cast<unsigned long long>(rx.errors()));
    std::printf("\"broker_cpu_pct_latency\":%.1f,\"broker_cpu_pct_burst\":%.1f,",
                cpu_pct(cpu0, cpu1, lat_wall), cpu_pct(cpu2, cpu3, burst_wall_s));
    std::printf("\"pg_latency_delivered\":%.0f,\"pg_latency_attempts\":%.0f,\"pg_burst_delivered\":%.0f,"
                "\"pg_burst_attempts\":%.0f,\"pg_retries\":%.0f,\"pg_dead\":%.0f,\"pg_alerts_opened\":%.0f}\n",
                metric(m0, m1, "pulsegate_delivery_delivered_total"), metric(m0, m1, "pulsegate_delivery_attempts_total"),
                metric(m1, m2, "pulsegate_delivery_delivered_total"), metric(m1, m2, "pulsegate_delivery_attempts_total"),
                metric(m0, m2, "pulsegate_delivery_retries_total"), metric(m0, m2, "pulsegate_delivery_dead_total"),
                metric(m0, m2, "pulsegate_alerts_opened_total"));
    std::fflush(stdout);
    std::fprintf(stderr, "hookbench: latency p50 %.0f us p99 %.0f us (%zu/%zu, %zu missing); burst %zu/%d in %.0f ms: %.0f/s\n",
                 lp.p50, lp.p99, lat.size(), counted, missing, delivered, s.devices, span_s * 1000,
                 span_s > 0 ? delivered / span_s : 0.0);
    return 0;
}

} // namespace
} // namespace pulsegate::bench

int main(int argc, char** argv) {
    pulsegate::bench::settings s;
    CLI::App app{"pulsegate-hookbench: publish -> webhook latency and deliveries/s (one JSON line on stdout)"};
    app.add_option("--host", s.host, "broker IPv4 address");
    app.add_option("--port", s.port, "broker MQTT port")->required();
    app.add_option("--hook-port", s.hook_port, "port of the webhook receiver on 127.0.0.1")->required();
    app.add_option("--http-port", s.http_port, "pulsegate's HTTP port: read its delivery counters from /metrics");
    app.add_option("--broker-pid", s.broker_pid, "read the broker's CPU time from /proc");
    app.add_option("--probe-interval-ms", s.probe_interval_ms, "latency: time between probe readings (breach, clear, ...)")
        ->check(CLI::Range(1.0, 10000.0));
    app.add_option("--warmup", s.warmup, "latency: seconds before breaches count");
    app.add_option("--duration", s.duration, "latency: seconds of probing after the warm-up");
    app.add_option("--devices", s.devices, "throughput: devices breaching at once")->check(CLI::Range(1, 60000));
    app.add_option("--settle", s.settle, "seconds to wait after priming the devices");
    app.add_option("--quiet", s.quiet, "latency: stop waiting when no request came for this many seconds");
    app.add_option("--quiet-burst", s.quiet_burst, "throughput: the same, for the burst");
    app.add_option("--max-wait", s.max_wait, "throughput: wait at most this many seconds for the deliveries");
    CLI11_PARSE(app, argc, argv);
    std::signal(SIGPIPE, SIG_IGN);
    return pulsegate::bench::run(s);
}
