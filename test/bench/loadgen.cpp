// pulsegate-loadgen: an MQTT load generator for test/bench/run.sh.
//
// One thread, one epoll loop, non-blocking sockets. It shares a 2-core
// machine with the broker under test, so it is built to be cheap per
// message: publishers write batches of packets with one write(), subscribers
// read up to a megabyte per wake-up and frame every whole packet out of the
// buffer, and subscriber sockets are served before publisher sockets in each
// turn of the loop so that the receiving side is not what limits a run.
//
// Packets are encoded and decoded with pulsegate's own codec
// (broker/protocol/codec.hpp), MQTT 3.1.1 by default (--mqtt 5 for v5).
//
// Every payload starts with the publisher's index (u32), a sequence number
// (u64) and the steady-clock time the packet was encoded (u64 ns), in host
// order: publisher and subscriber live in this process. A subscriber keeps
// one bitmap of seen sequence numbers per publisher, which gives exact
// unique/duplicate/lost counts; a message whose sequence number is lower
// than the highest already seen from its publisher counts as reordered.
//
// Back-pressure is honest: a publisher only produces a new batch when its
// previous one is fully written, waits for EPOLLOUT when the socket is full,
// and "sent" counts only the packets written to the socket. Publisher send
// buffers are fixed (SO_SNDBUF 256 KiB) so that little data piles up in the
// kernel between the generator and the broker.
//
// After the publishers stop, the subscribers drain until no message has
// arrived for --quiet seconds (bounded by --max-drain), so the delivered
// share is measured at the end, not at the deadline.
//
// The telemetry scenario speaks the device contract instead: --devices
// connections publish QoS 1 JSON readings of 4 metrics on
// `d/dev{i}/telemetry`, each with an explicit "ts" that is the run's base
// epoch millisecond plus the device's sequence number, so every reading is a
// distinct point per series and the subscriber (on `d/+/telemetry`) recovers
// device and sequence from topic and "ts". Payloads come from one fixed-width
// template whose digits are patched in place: no JSON encoding per message.
//
// The rules scenarios (test/bench/README.md, "Rules engine") speak the device
// contract too, with readings of --metrics-per-reading metrics out of
// --metrics ("m000" ...; device i always carries the same ones) and values
// 100.000..999.999, from --devices devices ("dev00000" ...) spread over
// --publishers connections, each publishing for its devices in turn:
//   rules_ingest   QoS 1, at most --window unacknowledged per connection, at
//                  full speed, no subscriber: readings/s acknowledged and,
//                  with --http-port, accepted by pulsegate's ingest;
//   rules_latency  QoS 0 paced at --rate readings/s in total (background),
//                  plus a probe device publishing `{"probe":V}` every
//                  --probe-interval-ms, alternately breaching (V = 1000000 +
//                  sequence) and clearing (V = 0); one subscriber on the
//                  probe's telemetry topic (plain publish -> subscriber
//                  latency) and, with --alerts, one on `alerts/probe/#`
//                  (publish -> alert.opened latency, matched on the event's
//                  "value": the breaching reading that opened the alert).
// With --http-port (pulsegate's HTTP listener) both read pulsegate's
// counters from /metrics before and after the run.
//
// The bridge scenarios (test/bench/README.md, "Bridge") measure a broker's
// bridge to an upstream broker: the devices publish the telemetry readings
// into the broker under test (--port) and the subscriber sits on the
// upstream (--sub-port, filter --sub-filter), so what it counts is what the
// bridge delivered there. A warm-up reading on `d/warmup/telemetry`,
// published once a second until it arrives upstream, shows that the bridge
// is up before anything is measured; it is never counted.
//   bridge_forward  the telemetry load for --duration while connected:
//                   forwarded/s = arrived upstream / (first publish -> last
//                   arrival), and the acked (ingest) rate;
//   bridge_prepare  creates the subscriber's persistent session on the
//                   upstream (--client-id, clean session off), waits for the
//                   warm-up reading and disconnects: run.sh then stops the
//                   upstream (which saves the session);
//   bridge_fill     publishes --count readings (QoS 1, every one acked) while
//                   the upstream is down, so that the bridge queues them;
//   bridge_collect  started before the upstream: connects as soon as the
//                   upstream listens (the time it does is "upstream start"),
//                   resumes the persistent session and counts until --count
//                   readings arrived (or --quiet seconds without one): time
//                   to the first and the last, drain rate, order, duplicates.
// The readings' "ts" is --base-ts plus the sequence number, so that
// bridge_fill and bridge_collect, two processes, agree on it.
//
// The result is one JSON object on stdout; progress and errors go to stderr.
// Exit status: 0 done, 2 setup failed (broker unreachable, refused CONNECT or
// SUBSCRIBE), 1 bad usage.

#include "broker/protocol/codec.hpp"

#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::bench {

namespace proto = pulsegate::broker::protocol;
using steady = std::chrono::steady_clock;

namespace {

// u32 publisher index, u64 sequence, u64 steady-clock ns.
constexpr std::size_t payload_header_size = 20;
constexpr std::size_t publish_batch_bytes = 16 * 1024;
constexpr std::size_t read_chunk = 256 * 1024;
constexpr std::size_t read_budget = 1024 * 1024;
constexpr int publisher_sndbuf = 256 * 1024;
constexpr std::uint32_t max_packet = 16 * 1024 * 1024;

// The telemetry payload, fixed width: "ts" has 13 digits (epoch ms until the
// year 2286) and every metric's last three digits are patched per reading.
constexpr std::string_view telemetry_template =
    R"({"ts":0000000000000,"metrics":{"temp":21.000,"hum":45.000,"pres":1013.000,"volt":3.000}})";
constexpr std::size_t telemetry_ts_offset = 6; // after {"ts":
constexpr std::size_t telemetry_ts_digits = 13;
constexpr int telemetry_metrics = 4;
// rules_latency's probe readings: {"probe":1000123} or {"probe":0.00000}.
constexpr std::size_t probe_payload_size = 17;
// The bridge scenarios' warm-up reading (never counted).
constexpr std::string_view warmup_topic = "d/warmup/telemetry";
constexpr std::string_view warmup_suffix = "/warmup/telemetry";
constexpr std::string_view warmup_payload = R"({"v": 1})";

struct settings {
    std::string host = "127.0.0.1";
    std::uint16_t port = 1883;
    std::string scenario = "fanin";
    int publishers = 1;
    int subscribers = 1;
    int qos = 0;
    int window = 64;
    int payload = 100;
    double duration = 5.0;
    double warmup = 1.0;
    double rate = 20000.0;
    int connections = 10000;
    int keepalive = 300;
    int idle_keepalive = 600;
    int max_connecting = 200;
    int broker_pid = 0;
    double quiet = 1.0;
    double max_drain = 60.0;
    double settle = 1.0;
    int mqtt = 4;
    std::string topic_prefix = "bench";
    int devices = 1000;
    // Rules scenarios.
    int metrics = 100;
    int metrics_per_reading = 4;
    double probe_interval_ms = 25;
    bool alerts = false;
    int http_port = 0;
    std::string samples_out; // rules_latency: one CSV line per breach
    // Bridge scenarios.
    std::uint16_t sub_port = 0; // subscribers connect here (0: --port)
    std::string sub_filter = "site/t/+/d/+/telemetry";
    int sub_qos = 1;
    std::string client_id;      // a persistent subscriber session (clean session off)
    std::uint64_t count = 100000;
    std::uint64_t base_ts = 0;  // epoch ms of sequence number 0 (0: now)
    int upstream_pid = 0;
    std::string upstream_pid_file;
    double bridge_timeout = 60; // warm-up reading / upstream start, at most
};

double seconds(steady::duration d) { return std::chrono::duration<double>(d).count(); }

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
            .count());
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "loadgen: %s\n", what.c_str());
    std::fflush(stderr);
    std::_Exit(2);
}

// Raises the soft fd limit to the hard one: the idle scenario opens 10,000
// sockets.
void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            std::fprintf(stderr, "loadgen: setrlimit: %s\n", std::strerror(errno));
    }
}

// Writes `v` as exactly `width` decimal digits ending at p + width.
void patch_digits(char* p, std::uint64_t v, std::size_t width) {
    for (std::size_t i = width; i-- > 0; v /= 10) p[i] = static_cast<char>('0' + v % 10);
}

// write_bytes of /proc/PID/io: bytes the process caused to be written to the
// storage layer (all threads); -1 if unreadable.
long long read_write_bytes(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/io");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("write_bytes:", 0) == 0) return std::strtoll(line.c_str() + 12, nullptr, 10);
    return -1;
}

// VmRSS of a process in KiB, 0 if unreadable.
long read_rss_kb(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

// utime + stime of a process in seconds, -1 if unreadable.
double read_cpu_s(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = s.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream in(s.substr(close + 2));
    std::string field;
    // Fields after the command: state(3) ... utime(14) stime(15).
    for (int i = 3; i < 14; ++i) in >> field;
    double utime = 0, stime = 0;
    in >> utime >> stime;
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_s() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto tv = [](timeval t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// The unlabelled samples of pulsegate's /metrics (Prometheus text) at
// host:port; empty if it cannot be read. Blocking, at most ~2 s: called only
// before and after a run.
std::map<std::string, double, std::less<>> scrape_metrics(const std::string& host, int port) {
    std::map<std::string, double, std::less<>> out;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return out;
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
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
        if (!line.starts_with("pulsegate_")) continue;
        auto sp = line.find(' ');
        if (sp == std::string::npos || line.find('{') < sp) continue;
        out[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
    }
    return out;
}

// p50, p99 and max of latencies in ns, in us; sorts `v`.
struct percentiles {
    double p50 = 0, p99 = 0, max = 0;
};
percentiles percentiles_us(std::vector<std::uint64_t>& v) {
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

// A bitmap of sequence numbers that grows as they come.
class seq_bitmap {
public:
    // Returns whether `i` was already set.
    bool test_and_set(std::uint64_t i) {
        auto w = static_cast<std::size_t>(i >> 6);
        if (w >= bits_.size()) bits_.resize(std::max(w + 1, bits_.size() * 2), 0);
        std::uint64_t m = std::uint64_t{1} << (i & 63);
        bool was = (bits_[w] & m) != 0;
        bits_[w] |= m;
        return was;
    }
    bool test(std::uint64_t i) const {
        auto w = static_cast<std::size_t>(i >> 6);
        return w < bits_.size() && (bits_[w] >> (i & 63) & 1) != 0;
    }

private:
    std::vector<std::uint64_t> bits_;
};

// What one subscriber saw from one publisher.
struct publisher_track {
    seq_bitmap seen;
    std::int64_t max_seq = -1;
    std::uint64_t unique = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t reordered = 0;
};

enum class role { publisher, subscriber, idle };
enum class phase { connecting, awaiting_connack, awaiting_suback, ready, closed };

struct connection {
    int fd = -1;
    role kind = role::idle;
    int index = 0;
    phase state = phase::connecting;
    bool want_out = false; // EPOLLOUT currently requested

    std::vector<std::uint8_t> in;
    std::size_t in_len = 0;
    std::string out;
    std::size_t out_off = 0;

    // Publisher.
    std::string topic;
    std::size_t packet_size = 0; // every PUBLISH of a publisher has this size
    std::uint64_t next_seq = 0;
    std::uint64_t publish_bytes = 0; // written since the start of measurement
    bool active = false;             // still producing
    int inflight = 0;                // QoS 1: unacknowledged
    std::uint16_t next_packet_id = 1;
    std::vector<std::uint64_t> packet_seq; // QoS 1: packet id -> sequence
    seq_bitmap acked;
    std::uint64_t acked_count = 0;
    std::uint64_t acked_at_stop = 0; // acked_count when publishing stopped
    std::uint64_t quota = UINT64_MAX; // bridge_fill: publishes no more than this

    // Rules scenarios: the devices this connection publishes for, in turn.
    std::vector<std::uint32_t> devices;
    std::size_t next_device = 0;
    bool probe = false; // rules_latency: the probe device's connection

    // Subscriber.
    std::vector<publisher_track> tracks;
    std::string filter; // rules scenarios: its own filter and QoS
    int sub_qos = 0;
    bool persistent = false;    // bridge: --client-id, clean session off
    bool session_present = false; // what its CONNACK said
};

struct totals {
    std::uint64_t disconnects = 0;
    std::uint64_t protocol_errors = 0;
    std::uint64_t bad_payloads = 0;
    std::uint64_t refused = 0;
};

class load_generator {
public:
    explicit load_generator(settings s) : s_(std::move(s)) {
        version_ = s_.mqtt == 5 ? proto::protocol_version::v5 : proto::protocol_version::v311;
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) die(std::string("epoll_create1: ") + std::strerror(errno));
        addr_.sin_family = AF_INET;
        addr_.sin_port = htons(s_.port);
        if (inet_pton(AF_INET, s_.host.c_str(), &addr_.sin_addr) != 1)
            die("bad IPv4 address: " + s_.host);
        payload_.assign(static_cast<std::size_t>(s_.payload), 'x');
        run_id_ = std::to_string(getpid());
        bridge_ = s_.scenario.starts_with("bridge_");
        sub_addr_ = addr_;
        if (s_.sub_port != 0) sub_addr_.sin_port = htons(s_.sub_port);
        if (s_.scenario == "telemetry" || bridge_) {
            telemetry_ = true;
            s_.publishers = s_.devices;
            s_.qos = 1;
            payload_.assign(telemetry_template);
            s_.payload = static_cast<int>(payload_.size());
            // The fraction of every metric value: the 3 digits after its '.'.
            for (auto pos = payload_.find('.'); pos != std::string::npos; pos = payload_.find('.', pos + 1))
                value_offsets_.push_back(pos + 1);
            base_ts_ = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                      std::chrono::system_clock::now().time_since_epoch())
                                                      .count());
            if (s_.base_ts != 0) base_ts_ = s_.base_ts;
        }
        if (s_.scenario == "rules_ingest" || s_.scenario == "rules_latency") init_rules();
    }

    int run() {
        if (s_.scenario == "idle") return run_idle();
        if (s_.scenario == "latency") return run_latency();
        if (s_.scenario == "bridge_forward") return run_bridge_forward();
        if (s_.scenario == "bridge_prepare") return run_bridge_prepare();
        if (s_.scenario == "bridge_fill") return run_bridge_fill();
        if (s_.scenario == "bridge_collect") return run_bridge_collect();
        if (telemetry_) return run_telemetry();
        if (s_.scenario == "rules_ingest") return run_rules_ingest();
        if (s_.scenario == "rules_latency") return run_rules_latency();
        return run_throughput();
    }

private:
    // The rules scenarios' payload `{"m000":100.000,...}`, fixed width, and
    // one topic per device `d/dev00000/telemetry`.
    void init_rules() {
        rules_ = true;
        if (s_.metrics < 1 || s_.metrics > 1000 || s_.metrics_per_reading < 1 ||
            s_.metrics_per_reading > s_.metrics || s_.devices > 100000)
            die("rules scenarios: need 1 <= --metrics-per-reading <= --metrics <= 1000 and --devices <= 100000");
        payload_ = "{";
        for (int k = 0; k < s_.metrics_per_reading; ++k) {
            if (k > 0) payload_ += ",";
            payload_ += "\"m";
            name_offsets_.push_back(payload_.size());
            payload_ += "000\":";
            value_offsets_.push_back(payload_.size());
            payload_ += "100.000";
        }
        payload_ += "}";
        s_.payload = static_cast<int>(payload_.size());
        char topic[64];
        for (int d = 0; d < s_.devices; ++d) {
            std::snprintf(topic, sizeof topic, "d/dev%05d/telemetry", d);
            device_topics_.emplace_back(topic);
        }
        s_.qos = s_.scenario == "rules_ingest" ? 1 : 0;
        if (s_.publishers > s_.devices) s_.publishers = s_.devices;
    }

    // ---- connection plumbing ----

    // Subscribers connect to --sub-port when given (the bridge scenarios'
    // upstream). `connected`: a socket already connected (bridge_collect),
    // made non-blocking and taken over.
    connection& open(role kind, int index, int connected = -1) {
        conns_.push_back(std::make_unique<connection>());
        auto& c = *conns_.back();
        c.kind = kind;
        c.index = index;
        c.fd = connected >= 0 ? connected : socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c.fd < 0) die(std::string("socket: ") + std::strerror(errno));
        int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (kind == role::publisher)
            setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &publisher_sndbuf, sizeof publisher_sndbuf);
        c.in.resize(kind == role::idle ? 8192 : read_chunk);
        ++connecting_;
        if (connected >= 0) {
            fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
        } else {
            const auto& to = kind == role::subscriber ? sub_addr_ : addr_;
            int rc = ::connect(c.fd, reinterpret_cast<const sockaddr*>(&to), sizeof to);
            if (rc != 0 && errno != EINPROGRESS) {
                fail(c, std::string("connect: ") + std::strerror(errno));
                return c;
            }
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.ptr = &c;
        c.want_out = true;
        if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0)
            die(std::string("epoll_ctl: ") + std::strerror(errno));
        return c;
    }

    void set_want_out(connection& c, bool want) {
        if (c.want_out == want || c.state == phase::closed) return;
        epoll_event ev{};
        ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
        ev.data.ptr = &c;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
        c.want_out = want;
    }

    void close_conn(connection& c) {
        if (c.state == phase::closed) return;
        if (c.state != phase::ready) --connecting_;
        c.state = phase::closed;
        epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
    }

    // A connection ended or could not be set up.
    void fail(connection& c, const std::string& why) {
        bool was_ready = c.state == phase::ready;
        close_conn(c);
        if (was_ready) {
            ++totals_.disconnects;
            if (totals_.disconnects <= 5) std::fprintf(stderr, "loadgen: connection lost: %s\n", why.c_str());
            return;
        }
        ++failed_setup_;
        if (setup_fatal_) die("connection setup failed: " + why);
        if (failed_setup_ <= 5) std::fprintf(stderr, "loadgen: connection setup failed: %s\n", why.c_str());
    }

    // Writes what is pending; asks for EPOLLOUT if the socket is full.
    void flush(connection& c) {
        while (c.out_off < c.out.size()) {
            ssize_t n = ::write(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off);
            if (n > 0) {
                c.out_off += static_cast<std::size_t>(n);
                if (c.kind == role::publisher && measuring_) c.publish_bytes += static_cast<std::uint64_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                set_want_out(c, true);
                return;
            }
            fail(c, std::string("write: ") + std::strerror(errno));
            return;
        }
        c.out.clear();
        c.out_off = 0;
        set_want_out(c, wants_to_produce(c));
    }

    bool wants_to_produce(const connection& c) const {
        if (c.kind != role::publisher || !c.active || paced_ || c.next_seq >= c.quota) return false;
        return s_.qos == 0 || c.inflight < s_.window;
    }

    void send_connect(connection& c) {
        proto::connect p;
        p.version = version_;
        p.clean_start = !c.persistent;
        p.keep_alive = static_cast<std::uint16_t>(c.kind == role::idle ? s_.idle_keepalive : s_.keepalive);
        std::string id = c.persistent ? s_.client_id
                                      : "lg-" + run_id_ + "-" + std::to_string(static_cast<int>(c.kind)) + "-" +
                                            std::to_string(c.index);
        p.client_id = id;
        proto::encode(proto::packet{p}, version_, c.out);
        c.state = phase::awaiting_connack;
        flush(c);
    }

    void send_subscribe(connection& c) {
        proto::subscribe p;
        p.packet_id = 1;
        std::string filter = rules_ ? c.filter : subscribe_filter();
        proto::subscription_request r;
        r.filter = filter;
        r.qos = static_cast<std::uint8_t>(rules_ || bridge_ ? c.sub_qos : s_.qos);
        p.entries.push_back(r);
        proto::encode(proto::packet{p}, version_, c.out);
        c.state = phase::awaiting_suback;
        flush(c);
    }

    std::string topic_base() const { return s_.topic_prefix + "/" + run_id_ + "/" + s_.scenario; }
    // Fan-in and latency subscribe with a wildcard; fan-out to the exact topic.
    std::string subscribe_filter() const {
        if (bridge_) return s_.sub_filter;
        if (telemetry_) return "d/+/telemetry";
        return s_.scenario == "fanout" ? topic_base() + "/0" : topic_base() + "/+";
    }

    void became_ready(connection& c) {
        c.state = phase::ready;
        --connecting_;
        ++ready_;
    }

    // ---- publishing ----

    // Appends one PUBLISH with the next sequence number.
    void append_publish(connection& c, std::uint64_t stamp_ns) {
        proto::publish p;
        p.qos = static_cast<std::uint8_t>(s_.qos);
        p.topic = c.topic;
        if (rules_ && !c.probe) {
            auto dev = c.devices[c.next_device];
            c.next_device = (c.next_device + 1) % c.devices.size();
            p.topic = device_topics_[dev];
            std::uint64_t v = c.next_seq * 7919 + dev;
            for (std::size_t k = 0; k < name_offsets_.size(); ++k) {
                auto metric = (static_cast<std::uint64_t>(dev) * name_offsets_.size() + k) %
                              static_cast<std::uint64_t>(s_.metrics);
                patch_digits(payload_.data() + name_offsets_[k], metric, 3);
                // 100.000 .. 999.999: JSON allows no leading zero.
                patch_digits(payload_.data() + value_offsets_[k], 100 + v % 900, 3);
                patch_digits(payload_.data() + value_offsets_[k] + 4, (v / 1000) % 1000, 3);
                v = v * 31 + 17;
            }
        }
        if (s_.qos > 0) {
            p.packet_id = c.next_packet_id;
            c.packet_seq[c.next_packet_id] = c.next_seq;
            c.next_packet_id = static_cast<std::uint16_t>(c.next_packet_id == 65535 ? 1 : c.next_packet_id + 1);
            ++c.inflight;
        }
        if (rules_) {
            // Patched above.
        } else if (telemetry_) {
            patch_digits(payload_.data() + telemetry_ts_offset, base_ts_ + c.next_seq, telemetry_ts_digits);
            std::uint64_t v = c.next_seq * 7 + static_cast<std::uint64_t>(c.index);
            for (auto off : value_offsets_) {
                patch_digits(payload_.data() + off, v % 1000, 3);
                v = v * 31 + 17;
            }
        } else {
            auto idx = static_cast<std::uint32_t>(c.index);
            std::memcpy(payload_.data(), &idx, 4);
            std::memcpy(payload_.data() + 4, &c.next_seq, 8);
            std::memcpy(payload_.data() + 12, &stamp_ns, 8);
        }
        ++c.next_seq;
        proto::encode_publish_header(p, payload_.size(), version_, c.out);
        c.out.append(payload_);
    }

    // Full speed: a new batch only once the previous one is written.
    void produce(connection& c) {
        if (c.out_off < c.out.size() || !c.active) return;
        c.out.clear();
        c.out_off = 0;
        std::uint64_t stamp = now_ns();
        while (c.out.size() < publish_batch_bytes && (s_.qos == 0 || c.inflight < s_.window) && c.next_seq < c.quota)
            append_publish(c, stamp);
        flush(c);
    }

    // ---- receiving ----

    void on_readable(connection& c, steady::time_point now) {
        std::size_t budget = read_budget;
        while (budget > 0 && c.state != phase::closed) {
            if (c.in.size() - c.in_len < 4096) c.in.resize(c.in.size() * 2);
            ssize_t n = ::read(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len);
            if (n > 0) {
                c.in_len += static_cast<std::size_t>(n);
                budget = budget > static_cast<std::size_t>(n) ? budget - static_cast<std::size_t>(n) : 0;
                parse(c, now);
                continue;
            }
            if (n == 0) {
                fail(c, "closed by broker");
                return;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            fail(c, std::string("read: ") + std::strerror(errno));
            return;
        }
        if (c.state == phase::closed) return;
        if (c.kind == role::publisher && c.active && !paced_ && c.out_off == c.out.size())
            produce(c);
        else if (c.out_off < c.out.size())
            flush(c);
    }

    void parse(connection& c, steady::time_point now) {
        std::size_t off = 0;
        while (c.state != phase::closed) {
            std::span<const std::uint8_t> rest(c.in.data() + off, c.in_len - off);
            auto f = proto::frame(rest, max_packet);
            if (!f) {
                ++totals_.protocol_errors;
                fail(c, "malformed packet from broker: " + std::string(f.error().detail));
                return;
            }
            if (!*f || (*f)->total_size() > rest.size()) break;
            const auto& h = **f;
            handle(c, h, rest.subspan(h.header_size, h.remaining_length), now);
            off += h.total_size();
        }
        if (off > 0 && c.state != phase::closed) {
            std::memmove(c.in.data(), c.in.data() + off, c.in_len - off);
            c.in_len -= off;
        }
    }

    void handle(connection& c, const proto::frame_header& h, std::span<const std::uint8_t> body,
                steady::time_point now) {
        auto r = proto::decode(h.first_byte, body, version_);
        if (!r) {
            ++totals_.protocol_errors;
            fail(c, "undecodable packet from broker: " + std::string(r.error().detail));
            return;
        }
        auto& p = *r;
        if (auto* pub = std::get_if<proto::publish>(&p)) {
            on_publish(c, *pub, now);
        } else if (auto* a = std::get_if<proto::ack>(&p)) {
            if (a->type == proto::packet_type::puback) on_puback(c, a->packet_id, now);
        } else if (auto* ca = std::get_if<proto::connack>(&p)) {
            if (ca->code != proto::reason_code::success) {
                ++totals_.refused;
                fail(c, "CONNACK refused: " + std::string(proto::to_string(ca->code)));
                return;
            }
            c.session_present = ca->session_present;
            if (c.kind == role::subscriber)
                send_subscribe(c);
            else
                became_ready(c);
        } else if (auto* sa = std::get_if<proto::suback>(&p)) {
            for (auto code : sa->codes)
                if (static_cast<std::uint8_t>(code) >= 0x80) {
                    ++totals_.refused;
                    fail(c, "SUBACK refused: " + std::string(proto::to_string(code)));
                    return;
                }
            became_ready(c);
        } else if (auto* d = std::get_if<proto::disconnect>(&p)) {
            fail(c, "DISCONNECT from broker: " + std::string(proto::to_string(d->code)));
        }
    }

    void on_publish(connection& c, const proto::publish& p, steady::time_point now) {
        if (p.qos == 1) {
            proto::ack a;
            a.type = proto::packet_type::puback;
            a.packet_id = p.packet_id;
            proto::encode(proto::packet{a}, version_, c.out);
        }
        if (rules_) {
            on_rules_publish(c, p, now);
            return;
        }
        if (bridge_ && c.kind == role::subscriber && p.topic.ends_with(warmup_suffix)) {
            warm_seen_ = true; // not counted, whenever it comes
            return;
        }
        if (c.kind != role::subscriber || p.payload.size() < payload_header_size) {
            ++totals_.bad_payloads;
            return;
        }
        std::uint32_t pub = 0;
        std::uint64_t seq = 0, stamp = 0;
        if (telemetry_) {
            auto where = parse_telemetry(p.topic, p.payload);
            if (!where) {
                ++totals_.bad_payloads;
                return;
            }
            pub = where->first;
            seq = where->second;
        } else {
            std::memcpy(&pub, p.payload.data(), 4);
            std::memcpy(&seq, p.payload.data() + 4, 8);
            std::memcpy(&stamp, p.payload.data() + 12, 8);
        }
        if (pub >= c.tracks.size()) {
            ++totals_.bad_payloads;
            return;
        }
        auto& t = c.tracks[pub];
        if (t.seen.test_and_set(seq)) {
            ++t.duplicates;
        } else {
            ++t.unique;
            if (static_cast<std::int64_t>(seq) < t.max_seq)
                ++t.reordered;
            else
                t.max_seq = static_cast<std::int64_t>(seq);
        }
        if (!any_rx_) {
            first_rx_ = now;
            // bridge_collect: the brokers' CPU over the drain itself, without
            // the wait for the bridge to reconnect.
            if (collect_up_pid_ != 0) {
                broker_cpu_first_ = s_.broker_pid ? read_cpu_s(s_.broker_pid) : -1;
                upstream_cpu_first_ = read_cpu_s(collect_up_pid_);
            }
        }
        any_rx_ = true;
        last_rx_ = now;
        if (paced_ && stamp >= window_begin_ns_ && stamp < window_end_ns_) {
            auto rx = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
            latencies_ns_.push_back(rx > stamp ? rx - stamp : 0);
        }
    }

    // `.../dev{i}/telemetry` and a payload starting `{"ts":<13 digits>` ->
    // (i, ts - base); nothing if either does not match what we publish.
    std::optional<std::pair<std::uint32_t, std::uint64_t>> parse_telemetry(std::string_view topic,
                                                                           std::string_view payload) const {
        constexpr std::string_view suffix = "/telemetry", prefix = "dev";
        if (!topic.ends_with(suffix)) return std::nullopt;
        topic.remove_suffix(suffix.size());
        topic = topic.substr(topic.rfind('/') + 1);
        if (!topic.starts_with(prefix) || topic.size() == prefix.size() || topic.size() > prefix.size() + 9)
            return std::nullopt;
        std::uint32_t dev = 0;
        for (char ch : topic.substr(prefix.size())) {
            if (ch < '0' || ch > '9') return std::nullopt;
            dev = dev * 10 + static_cast<std::uint32_t>(ch - '0');
        }
        if (payload.size() < telemetry_ts_offset + telemetry_ts_digits ||
            payload.substr(0, telemetry_ts_offset) != telemetry_template.substr(0, telemetry_ts_offset))
            return std::nullopt;
        std::uint64_t ts = 0;
        for (std::size_t i = 0; i < telemetry_ts_digits; ++i) {
            auto ch = payload[telemetry_ts_offset + i];
            if (ch < '0' || ch > '9') return std::nullopt;
            ts = ts * 10 + static_cast<std::uint64_t>(ch - '0');
        }
        if (ts < base_ts_) return std::nullopt;
        return std::pair{dev, ts - base_ts_};
    }

    void on_puback(connection& c, std::uint16_t packet_id, steady::time_point now) {
        if (c.kind != role::publisher || c.inflight == 0) return;
        --c.inflight;
        std::uint64_t seq = c.packet_seq[packet_id];
        if (!c.acked.test_and_set(seq)) ++c.acked_count;
        last_ack_ = now;
        // The next batch is produced once the whole read is parsed (see
        // on_readable): one write for all the acks of one read.
    }

    // ---- the loop ----

    // One epoll round; subscribers are served before publishers.
    void poll_once(int timeout_ms) {
        epoll_event evs[512];
        int n = epoll_wait(ep_, evs, 512, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) return;
            die(std::string("epoll_wait: ") + std::strerror(errno));
        }
        auto now = steady::now();
        for (int pass = 0; pass < 2; ++pass)
            for (int i = 0; i < n; ++i) {
                if (evs[i].data.ptr == &timer_tag_) {
                    if (pass == 1) on_timer();
                    continue;
                }
                auto& c = *static_cast<connection*>(evs[i].data.ptr);
                bool first = c.kind != role::publisher;
                if ((pass == 0) != first || c.state == phase::closed) continue;
                on_event(c, evs[i].events, now);
            }
    }

    void on_event(connection& c, std::uint32_t events, steady::time_point now) {
        if (c.state == phase::connecting) {
            if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                fail(c, std::string("connect: ") + std::strerror(err));
                return;
            }
            send_connect(c);
            return;
        }
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, now);
        if (c.state == phase::closed) return;
        if (events & EPOLLOUT) {
            if (c.out_off < c.out.size())
                flush(c);
            else if (c.kind == role::publisher && c.active && !paced_)
                produce(c);
            else
                set_want_out(c, false);
        }
    }

    // Runs the loop until `done` holds; false on timeout.
    template <class Pred>
    bool loop_until(Pred done, double timeout_s) {
        auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                            std::chrono::duration<double>(timeout_s));
        while (!done()) {
            if (steady::now() > deadline) return false;
            poll_once(10);
        }
        return true;
    }

    // Opens `n` connections of one kind, at most --max-connecting at a time
    // in the handshake, and waits for all to be ready (or failed).
    bool open_all(role kind, int n, double timeout_s) {
        int opened = 0;
        auto target_ready = ready_ + n;
        auto deadline = steady::now() + std::chrono::duration_cast<steady::duration>(
                                            std::chrono::duration<double>(timeout_s));
        while (ready_ + failed_setup_ < target_ready) {
            while (opened < n && connecting_ < s_.max_connecting) {
                auto& c = open(kind, opened);
                init_role(c);
                ++opened;
            }
            if (steady::now() > deadline) return false;
            poll_once(10);
        }
        return true;
    }

    void init_role(connection& c) {
        if (c.kind == role::publisher && rules_) {
            // rules_latency: the last publisher is the probe device.
            c.probe = s_.scenario == "rules_latency" && c.index == s_.publishers - 1;
            c.topic = c.probe ? "d/probe/telemetry" : device_topics_[0];
            if (!c.probe) {
                int background = s_.scenario == "rules_latency" ? s_.publishers - 1 : s_.publishers;
                for (int d = c.index; d < s_.devices; d += background) c.devices.push_back(static_cast<std::uint32_t>(d));
            }
            if (s_.qos > 0) c.packet_seq.assign(65536, 0);
            proto::publish p;
            p.qos = static_cast<std::uint8_t>(s_.qos);
            p.topic = c.topic;
            p.packet_id = 1;
            std::string probe;
            proto::encode_publish_header(p, c.probe ? probe_payload_size : payload_.size(), version_, probe);
            c.packet_size = probe.size() + (c.probe ? probe_payload_size : payload_.size());
        } else if (c.kind == role::subscriber && rules_) {
            // 0: the probe's telemetry; 1: its alert events (QoS 1, as published).
            c.filter = c.index == 0 ? "d/probe/telemetry" : "alerts/probe/#";
            c.sub_qos = c.index == 0 ? 0 : 1;
        } else if (c.kind == role::publisher) {
            if (telemetry_)
                c.topic = "d/dev" + std::to_string(c.index) + "/telemetry";
            else
                c.topic = s_.scenario == "fanout" ? topic_base() + "/0" : topic_base() + "/" + std::to_string(c.index);
            if (s_.qos > 0) c.packet_seq.assign(65536, 0);
            proto::publish p;
            p.qos = static_cast<std::uint8_t>(s_.qos);
            p.topic = c.topic;
            p.packet_id = 1;
            std::string probe;
            proto::encode_publish_header(p, payload_.size(), version_, probe);
            c.packet_size = probe.size() + payload_.size();
        } else if (c.kind == role::subscriber) {
            c.tracks.resize(static_cast<std::size_t>(s_.publishers));
            c.sub_qos = s_.sub_qos;
            c.persistent = bridge_ && !s_.client_id.empty();
        }
    }

    void setup(int subscribers, int publishers) {
        setup_fatal_ = true;
        if (!open_all(role::subscriber, subscribers, 30)) die("timed out waiting for SUBACKs");
        if (!open_all(role::publisher, publishers, 30)) die("timed out waiting for CONNACKs");
    }

    std::vector<connection*> of(role kind) {
        std::vector<connection*> v;
        for (auto& c : conns_)
            if (c->kind == kind) v.push_back(c.get());
        return v;
    }

    void on_timer() {
        std::uint64_t ticks = 0;
        [[maybe_unused]] auto n = ::read(timer_fd_, &ticks, sizeof ticks);
        if (!paced_) return;
        if (rules_) {
            rules_tick();
            return;
        }
        auto now = steady::now();
        for (auto* c : publishers_) {
            if (!c->active || c->state != phase::ready) continue;
            auto due = static_cast<std::uint64_t>(seconds(now - t_start_) * s_.rate);
            if (c->next_seq >= due) continue;
            if (c->out_off == c->out.size()) {
                c->out.clear();
                c->out_off = 0;
            }
            std::uint64_t stamp = now_ns();
            while (c->next_seq < due) append_publish(*c, stamp);
            flush(*c);
        }
    }

    // Common to throughput and latency runs: start, produce until the
    // deadline, stop, drain.
    struct run_times {
        steady::time_point start, stop, end;
        bool drain_timeout = false;
    };

    run_times measure(double produce_s) {
        run_times t;
        auto pubs = publishers_ = of(role::publisher);
        cpu0_ = self_cpu_s();
        broker_cpu0_ = s_.broker_pid ? read_cpu_s(s_.broker_pid) : -1;
        broker_wb0_ = s_.broker_pid ? read_write_bytes(s_.broker_pid) : -1;
        upstream_cpu0_ = s_.upstream_pid ? read_cpu_s(s_.upstream_pid) : -1;
        measuring_ = true;
        t.start = t_start_ = steady::now();
        last_rx_ = last_ack_ = t.start;
        for (auto* c : pubs) {
            c->active = true;
            if (!paced_) produce(*c);
        }
        if (paced_) {
            timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
            itimerspec its{};
            its.it_interval.tv_nsec = 100'000; // 100 us: ~2 messages per tick at 20k/s
            its.it_value.tv_nsec = 100'000;
            timerfd_settime(timer_fd_, 0, &its, nullptr);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.ptr = &timer_tag_;
            epoll_ctl(ep_, EPOLL_CTL_ADD, timer_fd_, &ev);
        }
        auto produce_end = t.start + std::chrono::duration_cast<steady::duration>(
                                         std::chrono::duration<double>(produce_s));
        while (steady::now() < produce_end) poll_once(5);

        t.stop = steady::now();
        if (on_stop_) on_stop_();
        for (auto* c : pubs) {
            c->active = false;
            c->acked_at_stop = c->acked_count;
        }
        if (paced_) epoll_ctl(ep_, EPOLL_CTL_DEL, timer_fd_, nullptr);
        auto quiet = std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.quiet));
        auto drain_limit = t.stop + std::chrono::duration_cast<steady::duration>(
                                        std::chrono::duration<double>(s_.max_drain));
        for (;;) {
            auto now = steady::now();
            bool flushed = std::all_of(pubs.begin(), pubs.end(), [](connection* c) {
                return c->state == phase::closed || (c->out_off == c->out.size() && c->inflight == 0);
            });
            auto last = std::max({last_rx_, last_ack_, t.stop});
            if (flushed && now - last >= quiet) break;
            if (now > drain_limit) {
                t.drain_timeout = true;
                break;
            }
            poll_once(10);
        }
        t.end = std::max({last_rx_, last_ack_});
        measuring_ = false;
        cpu1_ = self_cpu_s();
        broker_cpu1_ = s_.broker_pid ? read_cpu_s(s_.broker_pid) : -1;
        broker_wb1_ = s_.broker_pid ? read_write_bytes(s_.broker_pid) : -1;
        upstream_cpu1_ = s_.upstream_pid ? read_cpu_s(s_.upstream_pid) : -1;
        t_end_ = steady::now();
        return t;
    }

    struct sub_totals {
        std::uint64_t unique = 0, duplicates = 0, reordered = 0;
    };
    sub_totals sum_subscribers() {
        sub_totals s;
        for (auto* c : of(role::subscriber))
            for (auto& t : c->tracks) {
                s.unique += t.unique;
                s.duplicates += t.duplicates;
                s.reordered += t.reordered;
            }
        return s;
    }

    std::uint64_t sent_messages() {
        std::uint64_t sent = 0;
        for (auto* c : of(role::publisher)) sent += c->publish_bytes / c->packet_size;
        return sent;
    }

    void print_common(const run_times& t) {
        double wall = seconds(t_end_ - t_start_);
        std::printf("\"duration_s\":%.3f,\"drain_s\":%.3f,\"drain_timeout\":%s,", seconds(t.stop - t.start),
                    seconds(t_end_ - t.stop), t.drain_timeout ? "true" : "false");
        std::printf("\"loadgen_cpu_pct\":%.1f,", 100.0 * (cpu1_ - cpu0_) / wall);
        if (broker_cpu0_ >= 0 && broker_cpu1_ >= 0)
            std::printf("\"broker_cpu_pct\":%.1f,", 100.0 * (broker_cpu1_ - broker_cpu0_) / wall);
        if (upstream_cpu0_ >= 0 && upstream_cpu1_ >= 0)
            std::printf("\"upstream_cpu_pct\":%.1f,", 100.0 * (upstream_cpu1_ - upstream_cpu0_) / wall);
        std::printf("\"disconnects\":%llu,\"protocol_errors\":%llu,\"bad_payloads\":%llu}\n",
                    static_cast<unsigned long long>(totals_.disconnects),
                    static_cast<unsigned long long>(totals_.protocol_errors),
                    static_cast<unsigned long long>(totals_.bad_payloads));
        std::fflush(stdout);
    }

    // ---- scenarios ----

    int run_throughput() {
        if (s_.scenario == "fanout") s_.publishers = 1;
        if (s_.scenario != "fanout") s_.subscribers = 1;
        setup(s_.subscribers, s_.publishers);
        std::fprintf(stderr, "loadgen: %s: %d publisher(s), %d subscriber(s), QoS %d, %.1f s\n",
                     s_.scenario.c_str(), s_.publishers, s_.subscribers, s_.qos, s_.duration);
        auto t = measure(s_.duration);

        auto sent = sent_messages();
        auto subs = sum_subscribers();
        std::uint64_t acked = 0, acked_not_delivered = 0;
        if (s_.qos > 0) {
            auto subscribers = of(role::subscriber);
            for (auto* p : of(role::publisher)) {
                acked += p->acked_count;
                for (std::uint64_t seq = 0; seq < p->next_seq; ++seq) {
                    if (!p->acked.test(seq)) continue;
                    for (auto* sc : subscribers)
                        if (!sc->tracks[static_cast<std::size_t>(p->index)].seen.test(seq)) ++acked_not_delivered;
                }
            }
        }
        double produce_s = seconds(t.stop - t.start);
        double rx_s = std::max(1e-9, seconds(t.end - t.start));
        auto expected = sent * static_cast<std::uint64_t>(s_.subscribers);
        std::printf("{\"scenario\":\"%s\",\"publishers\":%d,\"subscribers\":%d,\"qos\":%d,\"payload\":%d,",
                    s_.scenario.c_str(), s_.publishers, s_.subscribers, s_.qos, s_.payload);
        std::printf("\"sent\":%llu,\"sent_per_s\":%.0f,\"received\":%llu,\"received_per_s\":%.0f,",
                    static_cast<unsigned long long>(sent), static_cast<double>(sent) / produce_s,
                    static_cast<unsigned long long>(subs.unique), static_cast<double>(subs.unique) / rx_s);
        std::printf("\"delivered\":%.6f,\"lost\":%llu,\"reordered\":%llu,\"duplicates\":%llu,",
                    expected ? static_cast<double>(subs.unique) / static_cast<double>(expected) : 0.0,
                    static_cast<unsigned long long>(expected > subs.unique ? expected - subs.unique : 0),
                    static_cast<unsigned long long>(subs.reordered),
                    static_cast<unsigned long long>(subs.duplicates));
        if (s_.qos > 0)
            std::printf("\"window\":%d,\"acked\":%llu,\"acked_per_s\":%.0f,\"acked_not_delivered\":%llu,", s_.window,
                        static_cast<unsigned long long>(acked), static_cast<double>(acked) / produce_s,
                        static_cast<unsigned long long>(acked_not_delivered));
        print_common(t);
        return 0;
    }

    // QoS 1 readings from --devices connections, one subscriber on
    // d/+/telemetry. The rate counts the acks received while publishing;
    // `acked` also counts those of the drain (every reading in flight at the
    // deadline), which is what storage must hold afterwards.
    int run_telemetry() {
        s_.subscribers = 1;
        setup(1, s_.devices);
        std::fprintf(stderr, "loadgen: telemetry: %d devices, window %d, %d metrics per reading, %.1f s\n",
                     s_.devices, s_.window, telemetry_metrics, s_.duration);
        auto t = measure(s_.duration);

        auto sent = sent_messages();
        auto subs = sum_subscribers();
        std::uint64_t acked = 0, acked_at_stop = 0, acked_not_delivered = 0;
        auto* sub = of(role::subscriber).front();
        for (auto* p : of(role::publisher)) {
            acked += p->acked_count;
            acked_at_stop += p->acked_at_stop;
            const auto& seen = sub->tracks[static_cast<std::size_t>(p->index)].seen;
            for (std::uint64_t seq = 0; seq < p->next_seq; ++seq)
                if (p->acked.test(seq) && !seen.test(seq)) ++acked_not_delivered;
        }
        double produce_s = seconds(t.stop - t.start);
        double rx_s = std::max(1e-9, seconds(t.end - t.start));
        auto ratio = [](std::uint64_t a, std::uint64_t b) {
            return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
        };
        auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
        double acked_per_s = static_cast<double>(acked_at_stop) / produce_s;
        std::printf("{\"scenario\":\"telemetry\",\"devices\":%d,\"window\":%d,\"qos\":1,\"metrics_per_reading\":%d,"
                    "\"payload\":%d,",
                    s_.devices, s_.window, telemetry_metrics, s_.payload);
        std::printf("\"sent\":%llu,\"sent_per_s\":%.0f,\"acked\":%llu,\"acked_at_stop\":%llu,\"acked_per_s\":%.0f,"
                    "\"points_acked\":%llu,\"points_per_s\":%.0f,",
                    ull(sent), static_cast<double>(sent) / produce_s, ull(acked), ull(acked_at_stop), acked_per_s,
                    ull(acked * telemetry_metrics), acked_per_s * telemetry_metrics);
        std::printf("\"received\":%llu,\"received_per_s\":%.0f,\"delivered\":%.6f,\"delivered_of_acked\":%.6f,"
                    "\"acked_not_delivered\":%llu,\"lost\":%llu,\"reordered\":%llu,\"duplicates\":%llu,",
                    ull(subs.unique), static_cast<double>(subs.unique) / rx_s, ratio(subs.unique, sent),
                    ratio(acked - std::min(acked, acked_not_delivered), acked), ull(acked_not_delivered),
                    ull(sent > subs.unique ? sent - subs.unique : 0), ull(subs.reordered), ull(subs.duplicates));
        if (broker_wb0_ >= 0 && broker_wb1_ >= 0)
            std::printf("\"broker_write_bytes_start\":%lld,\"broker_write_bytes_end\":%lld,", broker_wb0_, broker_wb1_);
        print_common(t);
        return 0;
    }

    // ---- bridge scenarios ----

    // Publishes the warm-up reading (QoS 0) through the broker under test
    // once a second until the upstream subscriber saw one: the bridge is
    // connected and forwarding. Returns the seconds it took.
    double await_bridge() {
        auto* pub = of(role::publisher).front();
        auto t0 = steady::now();
        auto next = t0;
        auto limit = std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.bridge_timeout));
        while (!warm_seen_) {
            auto now = steady::now();
            if (now - t0 > limit) die("the bridge forwarded no warm-up reading within " +
                                      std::to_string(static_cast<int>(s_.bridge_timeout)) + " s");
            if (now >= next && pub->state == phase::ready && pub->out_off == pub->out.size()) {
                pub->out.clear();
                pub->out_off = 0;
                proto::publish p;
                p.topic = warmup_topic;
                proto::encode_publish_header(p, warmup_payload.size(), version_, pub->out);
                pub->out.append(warmup_payload);
                flush(*pub);
                next = now + std::chrono::seconds(1);
            }
            poll_once(10);
        }
        return seconds(steady::now() - t0);
    }

    // The telemetry load into the broker under test while its bridge is
    // connected; the subscriber on the upstream counts what the bridge
    // delivered there.
    int run_bridge_forward() {
        s_.subscribers = 1;
        setup(1, s_.publishers);
        double up_s = await_bridge();
        std::fprintf(stderr, "loadgen: bridge_forward: bridge up after %.2f s; %d devices, window %d, %.1f s\n", up_s,
                     s_.publishers, s_.window, s_.duration);
        std::uint64_t at_stop = 0;
        on_stop_ = [&] { at_stop = sum_subscribers().unique; };
        auto t = measure(s_.duration);

        auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
        auto subs = sum_subscribers();
        std::uint64_t acked = 0, acked_at_stop = 0, acked_not_delivered = 0;
        auto* sub = of(role::subscriber).front();
        for (auto* p : of(role::publisher)) {
            acked += p->acked_count;
            acked_at_stop += p->acked_at_stop;
            const auto& seen = sub->tracks[static_cast<std::size_t>(p->index)].seen;
            for (std::uint64_t seq = 0; seq < p->next_seq; ++seq)
                if (p->acked.test(seq) && !seen.test(seq)) ++acked_not_delivered;
        }
        auto sent = sent_messages();
        double produce_s = seconds(t.stop - t.start);
        double fwd_s = any_rx_ ? std::max(1e-9, seconds(last_rx_ - t.start)) : 0.0;
        std::printf("{\"scenario\":\"bridge_forward\",\"devices\":%d,\"window\":%d,\"qos\":1,\"sub_qos\":%d,"
                    "\"payload\":%d,\"bridge_up_s\":%.3f,",
                    s_.publishers, s_.window, s_.sub_qos, s_.payload, up_s);
        std::printf("\"sent\":%llu,\"sent_per_s\":%.0f,\"acked\":%llu,\"acked_at_stop\":%llu,\"acked_per_s\":%.0f,",
                    ull(sent), static_cast<double>(sent) / produce_s, ull(acked), ull(acked_at_stop),
                    static_cast<double>(acked_at_stop) / produce_s);
        std::printf("\"forwarded\":%llu,\"forwarded_per_s\":%.0f,\"forwarded_at_stop\":%llu,"
                    "\"forwarded_while_publishing_per_s\":%.0f,\"lag_after_stop_s\":%.3f,",
                    ull(subs.unique), fwd_s > 0 ? static_cast<double>(subs.unique) / fwd_s : 0.0, ull(at_stop),
                    static_cast<double>(at_stop) / produce_s,
                    any_rx_ && last_rx_ > t.stop ? seconds(last_rx_ - t.stop) : 0.0);
        std::printf("\"delivered_of_acked\":%.6f,\"acked_not_delivered\":%llu,\"lost\":%llu,\"reordered\":%llu,"
                    "\"duplicates\":%llu,",
                    acked ? static_cast<double>(acked - std::min(acked, acked_not_delivered)) / static_cast<double>(acked)
                          : 0.0,
                    ull(acked_not_delivered), ull(sent > subs.unique ? sent - subs.unique : 0), ull(subs.reordered),
                    ull(subs.duplicates));
        print_common(t);
        return 0;
    }

    // The subscriber's persistent session on the upstream, and a bridge
    // that is up: then the subscriber leaves (DISCONNECT) and run.sh stops
    // the upstream.
    int run_bridge_prepare() {
        if (s_.client_id.empty()) die("bridge_prepare needs --client-id");
        s_.subscribers = 1;
        setup(1, 1);
        double up_s = await_bridge();
        auto* sub = of(role::subscriber).front();
        proto::encode(proto::packet{proto::disconnect{}}, version_, sub->out);
        flush(*sub);
        loop_until([&] { return sub->state == phase::closed || sub->out_off == sub->out.size(); }, 2);
        for (auto& c : conns_) close_conn(*c); // before the upstream closes it: not a lost connection
        std::printf("{\"scenario\":\"bridge_prepare\",\"bridge_up_s\":%.3f,\"client_id\":\"%s\"}\n", up_s,
                    s_.client_id.c_str());
        std::fflush(stdout);
        return 0;
    }

    // --count readings spread over --devices connections, QoS 1, every one
    // acknowledged: with the upstream down, the bridge queues them.
    int run_bridge_fill() {
        setup(0, s_.publishers);
        auto pubs = publishers_ = of(role::publisher);
        auto n = static_cast<std::uint64_t>(pubs.size());
        for (std::size_t i = 0; i < pubs.size(); ++i) pubs[i]->quota = s_.count / n + (i < s_.count % n ? 1 : 0);
        std::fprintf(stderr, "loadgen: bridge_fill: %llu readings over %d devices, window %d\n",
                     static_cast<unsigned long long>(s_.count), s_.publishers, s_.window);
        cpu0_ = self_cpu_s();
        broker_cpu0_ = s_.broker_pid ? read_cpu_s(s_.broker_pid) : -1;
        measuring_ = true;
        auto t0 = t_start_ = steady::now();
        for (auto* c : pubs) {
            c->active = true;
            produce(*c);
        }
        auto all_acked = [&] {
            return std::all_of(pubs.begin(), pubs.end(), [](connection* c) {
                return c->state == phase::closed || c->acked_count >= c->quota;
            });
        };
        bool ok = loop_until(all_acked, s_.max_drain);
        auto t1 = t_end_ = steady::now();
        measuring_ = false;
        cpu1_ = self_cpu_s();
        broker_cpu1_ = s_.broker_pid ? read_cpu_s(s_.broker_pid) : -1;
        std::uint64_t acked = 0;
        for (auto* c : pubs) acked += c->acked_count;
        double wall = std::max(1e-9, seconds(t1 - t0));
        std::printf("{\"scenario\":\"bridge_fill\",\"devices\":%d,\"window\":%d,\"count\":%llu,\"fill_acked\":%llu,"
                    "\"fill_s\":%.3f,\"fill_per_s\":%.0f,\"fill_timed_out\":%s,\"fill_loadgen_cpu_pct\":%.1f,",
                    s_.publishers, s_.window, static_cast<unsigned long long>(s_.count),
                    static_cast<unsigned long long>(acked), wall, static_cast<double>(acked) / wall,
                    ok ? "false" : "true", 100.0 * (cpu1_ - cpu0_) / wall);
        if (broker_cpu0_ >= 0 && broker_cpu1_ >= 0)
            std::printf("\"fill_broker_cpu_pct\":%.1f,", 100.0 * (broker_cpu1_ - broker_cpu0_) / wall);
        std::printf("\"fill_disconnects\":%llu}\n", static_cast<unsigned long long>(totals_.disconnects));
        std::fflush(stdout);
        return ok && acked == s_.count ? 0 : 2;
    }

    // A blocking connect to the subscriber port, retried every millisecond
    // until the upstream listens (or --bridge-timeout): the connected socket
    // and when the connect succeeded.
    std::pair<int, steady::time_point> connect_when_listening() {
        auto t0 = steady::now();
        auto limit = std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.bridge_timeout));
        for (;;) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
            if (::connect(fd, reinterpret_cast<const sockaddr*>(&sub_addr_), sizeof sub_addr_) == 0)
                return {fd, steady::now()};
            int err = errno;
            ::close(fd);
            if (err != ECONNREFUSED && err != EINTR) die(std::string("connect to the upstream: ") + std::strerror(err));
            if (steady::now() - t0 > limit) die("the upstream did not listen within the time allowed");
            ::usleep(1000);
        }
    }

    // The pid run.sh wrote for the upstream it is starting (0: none yet).
    int upstream_pid_from_file() const {
        std::ifstream f(s_.upstream_pid_file);
        int pid = 0;
        f >> pid;
        return pid;
    }

    // Started before the upstream: resumes the persistent session as soon
    // as the upstream listens and counts until --count readings arrived.
    int run_bridge_collect() {
        if (s_.client_id.empty()) die("bridge_collect needs --client-id");
        s_.subscribers = 1;
        setup_fatal_ = true;
        auto [fd, opened] = connect_when_listening();
        int up_pid = 0;
        if (!s_.upstream_pid_file.empty())
            for (int i = 0; i < 100 && (up_pid = upstream_pid_from_file()) == 0; ++i) ::usleep(10000);
        cpu0_ = self_cpu_s();
        broker_cpu0_ = s_.broker_pid ? read_cpu_s(s_.broker_pid) : -1;
        upstream_cpu0_ = up_pid ? read_cpu_s(up_pid) : -1;
        collect_up_pid_ = up_pid;
        t_start_ = opened;
        auto& sub = open(role::subscriber, 0, fd);
        init_role(sub);
        auto quiet = std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.quiet));
        auto limit = opened + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s_.max_drain));
        bool timed_out = false;
        for (;;) {
            auto now = steady::now();
            if (sum_subscribers().unique >= s_.count) break;
            if (any_rx_ && now - last_rx_ >= quiet) break;
            if (now > limit) {
                timed_out = true;
                break;
            }
            poll_once(10);
        }
        auto t_end = t_end_ = steady::now();
        cpu1_ = self_cpu_s();
        broker_cpu1_ = s_.broker_pid ? read_cpu_s(s_.broker_pid) : -1;
        upstream_cpu1_ = up_pid ? read_cpu_s(up_pid) : -1;
        auto subs = sum_subscribers();
        auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
        // Lost: sequence numbers bridge_fill published (the same split of
        // --count over --devices) that never arrived.
        std::uint64_t lost = 0;
        auto n = static_cast<std::uint64_t>(s_.publishers);
        for (std::uint64_t d = 0; d < n; ++d) {
            std::uint64_t quota = s_.count / n + (d < s_.count % n ? 1 : 0);
            const auto& seen = sub.tracks[d].seen;
            for (std::uint64_t seq = 0; seq < quota; ++seq)
                if (!seen.test(seq)) ++lost;
        }
        double first_s = any_rx_ ? seconds(first_rx_ - opened) : 0.0;
        double last_s = any_rx_ ? seconds(last_rx_ - opened) : 0.0;
        double wall = std::max(1e-9, seconds(t_end - opened));
        std::printf("{\"scenario\":\"bridge_collect\",\"count\":%llu,\"devices\":%d,\"session_present\":%s,",
                    ull(s_.count), s_.publishers, sub.session_present ? "true" : "false");
        std::printf("\"drained\":%llu,\"lost\":%llu,\"duplicates\":%llu,\"reordered\":%llu,\"in_order\":%s,"
                    "\"all_arrived\":%s,\"drain_timeout\":%s,",
                    ull(subs.unique), ull(lost), ull(subs.duplicates), ull(subs.reordered),
                    subs.reordered == 0 ? "true" : "false", lost == 0 ? "true" : "false",
                    timed_out ? "true" : "false");
        std::printf("\"first_after_start_s\":%.3f,\"last_after_start_s\":%.3f,\"drain_per_s\":%.0f,"
                    "\"drain_from_start_per_s\":%.0f,",
                    first_s, last_s,
                    last_s > first_s ? static_cast<double>(subs.unique) / (last_s - first_s) : 0.0,
                    last_s > 0 ? static_cast<double>(subs.unique) / last_s : 0.0);
        std::printf("\"loadgen_cpu_pct\":%.1f,", 100.0 * (cpu1_ - cpu0_) / wall);
        if (broker_cpu0_ >= 0 && broker_cpu1_ >= 0)
            std::printf("\"broker_cpu_pct\":%.1f,", 100.0 * (broker_cpu1_ - broker_cpu0_) / wall);
        if (upstream_cpu0_ >= 0 && upstream_cpu1_ >= 0)
            std::printf("\"upstream_cpu_pct\":%.1f,", 100.0 * (upstream_cpu1_ - upstream_cpu0_) / wall);
        // From the first arrival to the end (the drain, without the reconnect).
        double drain_wall = any_rx_ ? std::max(1e-9, seconds(t_end - first_rx_)) : 0.0;
        if (drain_wall > 0 && broker_cpu_first_ >= 0 && broker_cpu1_ >= 0)
            std::printf("\"broker_cpu_pct_drain\":%.1f,", 100.0 * (broker_cpu1_ - broker_cpu_first_) / drain_wall);
        if (drain_wall > 0 && upstream_cpu_first_ >= 0 && upstream_cpu1_ >= 0)
            std::printf("\"upstream_cpu_pct_drain\":%.1f,", 100.0 * (upstream_cpu1_ - upstream_cpu_first_) / drain_wall);
        std::printf("\"disconnects\":%llu,\"protocol_errors\":%llu,\"bad_payloads\":%llu}\n", ull(totals_.disconnects),
                    ull(totals_.protocol_errors), ull(totals_.bad_payloads));
        std::fflush(stdout);
        return 0;
    }

    int run_latency() {
        s_.publishers = 1;
        s_.subscribers = 1;
        paced_ = true;
        setup(1, 1);
        std::fprintf(stderr, "loadgen: latency: %.0f msg/s, %.1f s warm-up + %.1f s\n", s_.rate, s_.warmup,
                     s_.duration);
        // The window is set before start; stamps are steady-clock ns.
        auto start_ns = now_ns();
        window_begin_ns_ = start_ns + static_cast<std::uint64_t>(s_.warmup * 1e9);
        window_end_ns_ = start_ns + static_cast<std::uint64_t>((s_.warmup + s_.duration) * 1e9);
        latencies_ns_.reserve(static_cast<std::size_t>(s_.rate * (s_.duration + 1)));
        auto t = measure(s_.warmup + s_.duration);

        auto sent = sent_messages();
        auto subs = sum_subscribers();
        std::vector<std::uint64_t>& v = latencies_ns_;
        std::sort(v.begin(), v.end());
        auto pct = [&](double q) -> double {
            if (v.empty()) return 0;
            auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
            return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1000.0;
        };
        double produce_s = seconds(t.stop - t.start);
        std::printf("{\"scenario\":\"latency\",\"rate\":%.0f,\"payload\":%d,\"sent\":%llu,\"sent_per_s\":%.0f,",
                    s_.rate, s_.payload, static_cast<unsigned long long>(sent), static_cast<double>(sent) / produce_s);
        std::printf("\"received\":%llu,\"delivered\":%.6f,\"reordered\":%llu,\"samples\":%zu,",
                    static_cast<unsigned long long>(subs.unique),
                    sent ? static_cast<double>(subs.unique) / static_cast<double>(sent) : 0.0,
                    static_cast<unsigned long long>(subs.reordered), v.size());
        std::printf("\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,", pct(0.50), pct(0.99),
                    pct(0.999), v.empty() ? 0.0 : static_cast<double>(v.back()) / 1000.0);
        print_common(t);
        return 0;
    }

    // ---- rules scenarios ----

    // Counters of pulsegate's /metrics, later minus earlier, as JSON members
    // (nothing when --http-port is not given or the scrape failed).
    void print_pg_deltas(const std::map<std::string, double, std::less<>>& a,
                         const std::map<std::string, double, std::less<>>& b) {
        if (b.empty()) return;
        auto delta = [&](std::string_view name) {
            auto j = b.find(name);
            if (j == b.end()) return -1.0;
            auto i = a.find(name);
            return j->second - (i == a.end() ? 0.0 : i->second);
        };
        std::printf("\"pg_readings\":%.0f,\"pg_rejected\":%.0f,\"pg_rules_messages\":%.0f,\"pg_rules_dropped\":%.0f,"
                    "\"pg_rules_evaluations\":%.0f,\"pg_alerts_opened\":%.0f,\"pg_alerts_closed\":%.0f,",
                    delta("pulsegate_ingest_readings_total"), delta("pulsegate_ingest_rejected_total"),
                    delta("pulsegate_rules_messages_total"),
                    delta("pulsegate_rules_dropped_total"), delta("pulsegate_rules_evaluations_total"),
                    delta("pulsegate_alerts_opened_total"), delta("pulsegate_alerts_closed_total"));
    }

    std::map<std::string, double, std::less<>> scrape() {
        if (s_.http_port == 0) return {};
        auto m = scrape_metrics(s_.host, s_.http_port);
        if (m.empty()) std::fprintf(stderr, "loadgen: could not read /metrics on port %d\n", s_.http_port);
        return m;
    }

    // After a run: pulsegate refreshes the engine's counters once a second.
    std::map<std::string, double, std::less<>> scrape_settled() {
        if (s_.http_port == 0) return {};
        loop_until([] { return false; }, 1.5);
        return scrape();
    }

    // One probe reading: even k breaches (1000000 + k/2), odd k clears (0).
    // A breach is stamped just before the write() that sends it.
    void send_probe(connection& c, std::uint64_t k) {
        char payload[32];
        bool breach = k % 2 == 0;
        if (breach)
            std::snprintf(payload, sizeof payload, "{\"probe\":%07llu}", 1000000ULL + k / 2);
        else
            std::snprintf(payload, sizeof payload, "{\"probe\":0.00000}");
        proto::publish p;
        p.topic = c.topic;
        if (c.out_off == c.out.size()) {
            c.out.clear();
            c.out_off = 0;
        }
        std::string_view body(payload);
        proto::encode_publish_header(p, body.size(), version_, c.out);
        c.out.append(body);
        if (breach) {
            probe_sent_ns_.push_back(now_ns());
            plain_rx_ns_.push_back(0);
            alert_rx_ns_.push_back(0);
        }
        flush(c);
    }

    // rules_latency, every 100 us: the background readings due by now, round
    // robin over the connections (one write per connection per tick), then
    // the probe's.
    void rules_tick() {
        double elapsed = seconds(steady::now() - t_start_);
        auto due = static_cast<std::uint64_t>(elapsed * s_.rate);
        dirty_.clear();
        while (bg_due_ < due && !background_.empty()) {
            auto* c = background_[bg_due_ % background_.size()];
            ++bg_due_;
            if (!c->active || c->state != phase::ready) continue;
            if (c->out_off == c->out.size()) {
                c->out.clear();
                c->out_off = 0;
            }
            // A connection with bytes still pending is flushed on EPOLLOUT.
            if (c->out.empty()) dirty_.push_back(c);
            append_publish(*c, 0);
        }
        for (auto* c : dirty_) flush(*c);
        auto* pc = probe_conn_;
        if (pc == nullptr || !pc->active || pc->state != phase::ready) return;
        auto probe_due = static_cast<std::uint64_t>(elapsed * 1000.0 / s_.probe_interval_ms) + 1;
        while (probe_next_ < probe_due) send_probe(*pc, probe_next_++);
    }

    // The number after `"key":` in a JSON text we know the shape of.
    static std::optional<double> number_after(std::string_view text, std::size_t at) {
        char buf[40];
        auto n = std::min(sizeof buf - 1, text.size() - at);
        std::memcpy(buf, text.data() + at, n);
        buf[n] = 0;
        char* end = nullptr;
        double v = std::strtod(buf, &end);
        if (end == buf) return std::nullopt;
        return v;
    }

    void on_rules_publish(connection& c, const proto::publish& p, steady::time_point now) {
        if (c.kind != role::subscriber) {
            ++totals_.bad_payloads;
            return;
        }
        last_rx_ = now;
        std::string_view text(p.payload.data(), p.payload.size());
        std::optional<double> v;
        bool alert = c.index == 1;
        if (!alert) {
            constexpr std::string_view prefix = R"({"probe":)";
            if (text.starts_with(prefix)) v = number_after(text, prefix.size());
        } else {
            if (text.find(R"("event":"alert.opened")") == std::string_view::npos) {
                ++alerts_other_rx_;
                return;
            }
            ++alerts_opened_rx_;
            // "value": the reading that opened the alert (not "last_value").
            for (auto at = text.find(R"("value":)"); at != std::string_view::npos;
                 at = text.find(R"("value":)", at + 1)) {
                if (at > 0 && (text[at - 1] == ',' || text[at - 1] == '{')) {
                    v = number_after(text, at + 8);
                    break;
                }
            }
        }
        if (!v) {
            ++totals_.bad_payloads;
            return;
        }
        if (*v < 1e6) return; // a clearing reading
        auto seq = static_cast<std::uint64_t>(std::llround(*v - 1e6));
        if (seq >= probe_sent_ns_.size()) {
            ++unmatched_;
            return;
        }
        auto& got = alert ? alert_rx_ns_[seq] : plain_rx_ns_[seq];
        if (got) return; // a duplicate (QoS 1 redelivery)
        auto sent = probe_sent_ns_[seq];
        auto rx = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
        got = std::max<std::uint64_t>(rx, 1);
        if (sent >= window_begin_ns_ && sent < window_end_ns_) (alert ? detect_ns_ : plain_ns_).push_back(rx > sent ? rx - sent : 0);
    }

    // QoS 1 readings at full speed from --publishers connections for
    // --devices devices; no subscriber. The rate counts the acks received
    // while publishing, as in the telemetry scenario.
    int run_rules_ingest() {
        setup(0, s_.publishers);
        std::fprintf(stderr, "loadgen: rules_ingest: %d devices over %d connections, window %d, %d of %d metrics "
                             "per reading, %.1f s\n",
                     s_.devices, s_.publishers, s_.window, s_.metrics_per_reading, s_.metrics, s_.duration);
        auto m0 = scrape();
        std::map<std::string, double, std::less<>> m_stop;
        on_stop_ = [&] { m_stop = scrape(); };
        auto t = measure(s_.duration);
        auto m1 = scrape_settled();

        auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
        std::uint64_t acked = 0, acked_at_stop = 0;
        for (auto* p : of(role::publisher)) {
            acked += p->acked_count;
            acked_at_stop += p->acked_at_stop;
        }
        double produce_s = seconds(t.stop - t.start);
        double acked_per_s = static_cast<double>(acked_at_stop) / produce_s;
        std::printf("{\"scenario\":\"rules_ingest\",\"devices\":%d,\"connections\":%d,\"window\":%d,\"qos\":1,"
                    "\"metrics\":%d,\"metrics_per_reading\":%d,\"payload\":%d,",
                    s_.devices, s_.publishers, s_.window, s_.metrics, s_.metrics_per_reading, s_.payload);
        std::printf("\"sent\":%llu,\"sent_per_s\":%.0f,\"acked\":%llu,\"acked_at_stop\":%llu,\"acked_per_s\":%.0f,"
                    "\"points_per_s\":%.0f,",
                    ull(sent_messages()), static_cast<double>(sent_messages()) / produce_s, ull(acked),
                    ull(acked_at_stop), acked_per_s, acked_per_s * s_.metrics_per_reading);
        if (!m1.empty() && !m_stop.empty()) {
            // Accepted: pulsegate's own count of readings taken by ingest
            // (stored and handed to the rules) while publishing. A reading
            // refused because the storage writer is behind is acknowledged
            // all the same in MQTT 3.1.1 (no reason code in PUBACK) and
            // counted as refused.
            auto during = [&](std::string_view name) {
                auto a = m0.find(name), b = m_stop.find(name);
                return (b == m_stop.end() ? 0.0 : b->second) - (a == m0.end() ? 0.0 : a->second);
            };
            double accepted = during("pulsegate_ingest_readings_total");
            // The engine's counters lag by up to a second: those of the
            // whole run (drain included), per reading accepted in it, times
            // the rate accepted while publishing.
            auto whole = [&](std::string_view name) { return m1[std::string(name)] - m0[std::string(name)]; };
            double readings = whole("pulsegate_ingest_readings_total");
            double per_reading = readings > 0 ? whole("pulsegate_rules_evaluations_total") / readings : 0.0;
            std::printf("\"accepted_per_s\":%.0f,\"refused_per_s\":%.0f,\"evaluations_per_s\":%.0f,"
                        "\"pg_refused\":%.0f,",
                        accepted / produce_s, during("pulsegate_ingest_overloaded_total") / produce_s,
                        per_reading * accepted / produce_s, whole("pulsegate_ingest_overloaded_total"));
        }
        print_pg_deltas(m0, m1);
        print_common(t);
        return 0;
    }

    int run_rules_latency() {
        paced_ = true;
        s_.publishers += 1; // the probe
        setup(s_.alerts ? 2 : 1, s_.publishers);
        for (auto* c : of(role::publisher)) {
            if (c->probe) probe_conn_ = c;
            else background_.push_back(c);
        }
        std::fprintf(stderr, "loadgen: rules_latency: %.0f readings/s from %d devices over %zu connections, probe "
                             "every %.0f ms, %.1f s warm-up + %.1f s%s\n",
                     s_.rate, s_.devices, background_.size(), s_.probe_interval_ms, s_.warmup, s_.duration,
                     s_.alerts ? ", alert events" : "");
        auto m0 = scrape();
        auto start_ns = now_ns();
        window_begin_ns_ = start_ns + static_cast<std::uint64_t>(s_.warmup * 1e9);
        window_end_ns_ = start_ns + static_cast<std::uint64_t>((s_.warmup + s_.duration) * 1e9);
        auto t = measure(s_.warmup + s_.duration);
        auto m1 = scrape_settled();

        std::uint64_t bg_sent = 0, breaches = 0, plain_missing = 0, detect_missing = 0;
        for (auto* c : background_) bg_sent += c->publish_bytes / c->packet_size;
        // The alert's lag behind the reading itself at the same subscriber
        // process: the engine's share (hand-over to the engine thread,
        // evaluation, event, back to a shard), without the common path.
        std::vector<std::uint64_t> lag_ns;
        for (std::size_t i = 0; i < probe_sent_ns_.size(); ++i) {
            if (probe_sent_ns_[i] < window_begin_ns_ || probe_sent_ns_[i] >= window_end_ns_) continue;
            ++breaches;
            if (!plain_rx_ns_[i]) ++plain_missing;
            if (!alert_rx_ns_[i]) ++detect_missing;
            if (plain_rx_ns_[i] && alert_rx_ns_[i])
                lag_ns.push_back(alert_rx_ns_[i] > plain_rx_ns_[i] ? alert_rx_ns_[i] - plain_rx_ns_[i] : 0);
        }
        auto lag = percentiles_us(lag_ns);
        if (!s_.samples_out.empty()) {
            // When each breach was sent (ms after the start) and how long its
            // reading and its alert took (us; empty: never arrived).
            std::ofstream f(s_.samples_out);
            f << "seq,sent_ms,in_window,plain_us,detect_us,sent_monotonic_ns\n";
            auto us = [&](std::uint64_t rx, std::uint64_t sent) {
                return rx ? std::to_string(static_cast<double>(rx - std::min(rx, sent)) / 1000.0) : std::string();
            };
            for (std::size_t i = 0; i < probe_sent_ns_.size(); ++i) {
                auto sent = probe_sent_ns_[i];
                bool in = sent >= window_begin_ns_ && sent < window_end_ns_;
                f << i << ',' << static_cast<double>(sent - window_begin_ns_ + static_cast<std::uint64_t>(s_.warmup * 1e9)) / 1e6
                  << ',' << (in ? 1 : 0) << ',' << us(plain_rx_ns_[i], sent) << ',' << us(alert_rx_ns_[i], sent) << ',' << sent << '\n';
            }
        }
        auto plain = percentiles_us(plain_ns_);
        auto detect = percentiles_us(detect_ns_);
        double produce_s = seconds(t.stop - t.start);
        auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
        std::printf("{\"scenario\":\"rules_latency\",\"rate\":%.0f,\"devices\":%d,\"connections\":%zu,"
                    "\"metrics_per_reading\":%d,\"probe_interval_ms\":%.1f,",
                    s_.rate, s_.devices, background_.size(), s_.metrics_per_reading, s_.probe_interval_ms);
        std::printf("\"bg_sent\":%llu,\"bg_sent_per_s\":%.0f,\"breaches\":%llu,", ull(bg_sent),
                    static_cast<double>(bg_sent) / produce_s, ull(breaches));
        std::printf("\"plain_samples\":%zu,\"plain_missing\":%llu,\"plain_p50_us\":%.1f,\"plain_p99_us\":%.1f,"
                    "\"plain_max_us\":%.1f,",
                    plain_ns_.size(), ull(plain_missing), plain.p50, plain.p99, plain.max);
        if (s_.alerts)
            std::printf("\"detect_samples\":%zu,\"detect_missing\":%llu,\"detect_p50_us\":%.1f,"
                        "\"detect_p99_us\":%.1f,\"detect_max_us\":%.1f,\"lag_p50_us\":%.1f,\"lag_p99_us\":%.1f,"
                        "\"lag_max_us\":%.1f,\"alerts_opened_rx\":%llu,\"alert_events_other_rx\":%llu,",
                        detect_ns_.size(), ull(detect_missing), detect.p50, detect.p99, detect.max, lag.p50, lag.p99,
                        lag.max,
                        ull(alerts_opened_rx_), ull(alerts_other_rx_));
        std::printf("\"unmatched\":%llu,", ull(unmatched_));
        print_pg_deltas(m0, m1);
        print_common(t);
        return 0;
    }

    int run_idle() {
        setup_fatal_ = false;
        long rss_before = s_.broker_pid ? read_rss_kb(s_.broker_pid) : 0;
        auto t0 = steady::now();
        bool ok = open_all(role::idle, s_.connections, 120);
        auto t1 = steady::now();
        // Let the broker finish whatever it does after CONNACK before measuring.
        loop_until([] { return false; }, s_.settle);
        long rss_after = s_.broker_pid ? read_rss_kb(s_.broker_pid) : 0;
        int connected = ready_;
        std::printf("{\"scenario\":\"idle\",\"connections\":%d,\"connected\":%d,\"failed\":%d,\"timed_out\":%s,",
                    s_.connections, connected, failed_setup_, ok ? "false" : "true");
        std::printf("\"connect_s\":%.3f,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"bytes_per_conn\":%.0f,",
                    seconds(t1 - t0), rss_before, rss_after,
                    connected > 0 ? static_cast<double>(rss_after - rss_before) * 1024.0 / connected : 0.0);
        std::printf("\"disconnects\":%llu}\n", static_cast<unsigned long long>(totals_.disconnects));
        std::fflush(stdout);
        // Close with RST: 10,000 sockets in TIME_WAIT help nobody.
        for (auto& c : conns_)
            if (c->fd >= 0) {
                linger lg{1, 0};
                setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
        return connected == s_.connections ? 0 : 2;
    }

    settings s_;
    proto::protocol_version version_;
    int ep_ = -1;
    sockaddr_in addr_{};
    std::string payload_;
    std::string run_id_;
    std::vector<std::unique_ptr<connection>> conns_;
    std::vector<connection*> publishers_;
    int connecting_ = 0;
    int ready_ = 0;
    int failed_setup_ = 0;
    bool setup_fatal_ = true;
    bool measuring_ = false;
    bool paced_ = false;
    int timer_fd_ = -1;
    char timer_tag_ = 0;
    totals totals_;
    steady::time_point t_start_, t_end_, last_rx_, last_ack_;
    std::uint64_t window_begin_ns_ = 0, window_end_ns_ = 0;
    std::vector<std::uint64_t> latencies_ns_;
    double cpu0_ = 0, cpu1_ = 0, broker_cpu0_ = -1, broker_cpu1_ = -1, upstream_cpu0_ = -1, upstream_cpu1_ = -1;
    long long broker_wb0_ = -1, broker_wb1_ = -1;
    // Telemetry scenario.
    bool telemetry_ = false;
    std::uint64_t base_ts_ = 0;              // epoch ms of sequence number 0
    std::vector<std::size_t> value_offsets_; // in payload_ (rules: each value's first digit)
    // Rules scenarios.
    bool rules_ = false;
    std::function<void()> on_stop_;          // measure(): right when publishing stops
    std::vector<std::size_t> name_offsets_;  // in payload_: each metric name's 3 digits
    std::vector<std::string> device_topics_; // by device index
    std::vector<connection*> background_;    // rules_latency: paced publishers
    std::vector<connection*> dirty_;
    connection* probe_conn_ = nullptr;
    std::uint64_t bg_due_ = 0;               // background readings scheduled so far
    std::uint64_t probe_next_ = 0;           // probe readings sent (even: breach, odd: clear)
    std::vector<std::uint64_t> probe_sent_ns_;          // by breach sequence: just before write()
    std::vector<std::uint64_t> plain_rx_ns_, alert_rx_ns_; // by breach sequence, 0: not (yet) received
    std::vector<std::uint64_t> plain_ns_, detect_ns_;   // latencies inside the window
    std::uint64_t alerts_opened_rx_ = 0, alerts_other_rx_ = 0, unmatched_ = 0;
    // Bridge scenarios.
    bool bridge_ = false;
    sockaddr_in sub_addr_{};  // subscribers: the upstream
    bool warm_seen_ = false;  // a warm-up reading arrived upstream
    bool any_rx_ = false;     // first_rx_ is set
    int collect_up_pid_ = 0;  // bridge_collect: the upstream's pid
    double broker_cpu_first_ = -1, upstream_cpu_first_ = -1; // at first_rx_
    steady::time_point first_rx_;
};

} // namespace
} // namespace pulsegate::bench

int main(int argc, char** argv) {
    pulsegate::bench::settings s;
    CLI::App app{"pulsegate-loadgen: MQTT load generator (one JSON line on stdout)"};
    app.add_option("--host", s.host, "broker IPv4 address");
    app.add_option("--port", s.port, "broker port")->required();
    app.add_option("--scenario", s.scenario,
                   "fanin | fanout | latency | idle | telemetry | rules_ingest | rules_latency | bridge_forward | "
                   "bridge_prepare | bridge_fill | bridge_collect")
        ->check(CLI::IsMember({"fanin", "fanout", "latency", "idle", "telemetry", "rules_ingest", "rules_latency",
                               "bridge_forward", "bridge_prepare", "bridge_fill", "bridge_collect"}));
    app.add_option("--publishers", s.publishers, "fanin: publisher connections; rules_*: device connections")
        ->check(CLI::Range(1, 10000));
    app.add_option("--subscribers", s.subscribers, "fanout: subscriber connections")->check(CLI::Range(1, 10000));
    app.add_option("--devices", s.devices,
                   "telemetry, bridge_*: device connections (QoS 1 JSON readings); rules_*: devices, spread over "
                   "--publishers")
        ->check(CLI::Range(1, 100000));
    app.add_option("--metrics", s.metrics, "rules_*: metric names m000 ... (at most 1000)")->check(CLI::Range(1, 1000));
    app.add_option("--metrics-per-reading", s.metrics_per_reading, "rules_*: metrics in each reading")
        ->check(CLI::Range(1, 64));
    app.add_option("--probe-interval-ms", s.probe_interval_ms,
                   "rules_latency: time between probe readings (breach, clear, breach, ...)")
        ->check(CLI::Range(1.0, 10000.0));
    app.add_flag("--alerts", s.alerts, "rules_latency: also subscribe to alerts/probe/# (pulsegate's alert events)");
    app.add_option("--samples-out", s.samples_out, "rules_latency: write every breach's latencies to this CSV file");
    app.add_option("--http-port", s.http_port, "pulsegate's HTTP port: read its counters from /metrics")
        ->check(CLI::Range(0, 65535));
    app.add_option("--qos", s.qos, "QoS of publishes and subscriptions")->check(CLI::Range(0, 1));
    app.add_option("--window", s.window, "QoS 1: unacknowledged publishes per publisher (or device)")
        ->check(CLI::Range(1, 65535));
    app.add_option("--payload", s.payload, "payload bytes (>= 20)")->check(CLI::Range(20, 1 << 20));
    app.add_option("--duration", s.duration, "seconds of publishing (latency: after warm-up)");
    app.add_option("--warmup", s.warmup, "latency, rules_latency: seconds before samples count");
    app.add_option("--rate", s.rate, "latency: messages per second; rules_latency: background readings per second");
    app.add_option("--connections", s.connections, "idle: connections to open")->check(CLI::Range(1, 60000));
    app.add_option("--max-connecting", s.max_connecting, "idle: connections in the handshake at once");
    app.add_option("--broker-pid", s.broker_pid, "read the broker's CPU time and RSS from /proc");
    app.add_option("--quiet", s.quiet, "drain until no message for this many seconds");
    app.add_option("--max-drain", s.max_drain, "give up draining after this many seconds");
    app.add_option("--settle", s.settle, "idle: seconds to wait after the last CONNACK before reading RSS");
    app.add_option("--mqtt", s.mqtt, "protocol version: 4 (3.1.1) or 5")->check(CLI::IsMember({4, 5}));
    app.add_option("--sub-port", s.sub_port, "bridge_*: the upstream broker's port (the subscriber connects there)");
    app.add_option("--sub-filter", s.sub_filter, "bridge_*: the upstream subscriber's filter");
    app.add_option("--sub-qos", s.sub_qos, "bridge_*: the upstream subscriber's QoS")->check(CLI::Range(0, 1));
    app.add_option("--client-id", s.client_id,
                   "bridge_prepare, bridge_collect: the upstream subscriber's client id (persistent session)");
    app.add_option("--count", s.count, "bridge_fill: readings to publish; bridge_collect: readings expected");
    app.add_option("--base-ts", s.base_ts, "bridge_*: epoch ms of sequence number 0 (the same for fill and collect)");
    app.add_option("--upstream-pid", s.upstream_pid, "bridge_forward: read the upstream's CPU time from /proc");
    app.add_option("--upstream-pid-file", s.upstream_pid_file,
                   "bridge_collect: the file run.sh writes the upstream's pid to when it starts it");
    app.add_option("--bridge-timeout", s.bridge_timeout,
                   "bridge_*: seconds to wait for the warm-up reading or for the upstream to listen");
    CLI11_PARSE(app, argc, argv);

    std::signal(SIGPIPE, SIG_IGN);
    pulsegate::bench::raise_fd_limit();
    pulsegate::bench::load_generator g(s);
    return g.run();
}
