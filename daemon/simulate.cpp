#include "daemon/simulate.hpp"

#include "common/thread.hpp"
#include "daemon/config.hpp"
#include "daemon/log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/throw_exception.hpp>

#include <fmt/format.h>
#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <fstream>
#include <functional>
#include <queue>
#include <stdexcept>

namespace pulsegate::daemon {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds first_backoff{1000};
constexpr milliseconds max_backoff{30000};
// How often connections are checked against the schedule (silence starts
// and ends, reconnects): the resolution of the silent device's timing.
constexpr milliseconds maintain_every{200};
constexpr milliseconds disconnect_timeout{2000};

std::string_view connack_reason(int rc) {
    switch (rc) {
    case 1: return "unacceptable protocol version";
    case 2: return "identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorised";
    default: return "refused";
    }
}

bool is_auth_refusal(int rc) { return rc == 4 || rc == 5; }

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

} // namespace

void throw_exception_from_error(const simulate_error& e, const boost::source_location& loc) {
    boost::throw_exception(std::runtime_error(e.message), loc);
}

// One device: its client and what Paho's threads tell the fleet thread.
// The callbacks only store into atomics; everything else is the fleet
// thread's.
struct fleet::device_state final : mqtt::callback, mqtt::iaction_listener {
    device_state(sim_device d, const fleet_options& o, std::uint32_t index)
        : def(std::move(d)), topic(o.topic_prefix + "d/" + def.id + "/telemetry"),
          gen(def.kind, def.role, o.schedule, o.seed, index) {}

    // mqtt::callback (Paho threads).
    void connected(const std::string&) override { up.store(true); }
    void connection_lost(const std::string&) override { up.store(false); }
    void delivery_complete(mqtt::delivery_token_ptr) override { acked.fetch_add(1, std::memory_order_relaxed); }
    // mqtt::iaction_listener of connect() (Paho threads).
    void on_success(const mqtt::token&) override {
        // Paho C++ 1.2 may report one connect's success twice: count the
        // attempt once.
        if (pending.exchange(false)) connects.fetch_add(1, std::memory_order_relaxed);
        ever_connected.store(true);
        up.store(true);
    }
    void on_failure(const mqtt::token& t) override {
        const int rc = t.get_return_code();
        last_rc.store(rc);
        if (is_auth_refusal(rc))
            refusals.fetch_add(1, std::memory_order_relaxed);
        else
            failures.fetch_add(1, std::memory_order_relaxed);
        pending.store(false);
    }

    sim_device def;
    std::string topic;
    telemetry_generator gen;
    std::unique_ptr<mqtt::async_client> client; // destroyed before the callbacks it calls

    std::atomic<bool> up{false};      // connected
    std::atomic<bool> pending{false}; // a connect is under way
    std::atomic<bool> ever_connected{false};
    std::atomic<int> last_rc{0};
    std::atomic<std::uint64_t> acked{0}, connects{0}, refusals{0}, failures{0};

    // Fleet thread only.
    steady::time_point next_attempt{};
    milliseconds backoff{0};
    std::uint64_t refusals_logged = 0;
    bool silenced = false;
};

fleet::fleet(fleet_options opts) : opts_(std::move(opts)) {}

fleet::~fleet() {
    stop();
    join();
}

void fleet::start() {
    devices_.reserve(opts_.devices.size());
    std::uint32_t index = 0;
    for (auto& d : opts_.devices) {
        auto s = std::make_unique<device_state>(d, opts_, index++);
        // No persistence: a simulator has nothing worth keeping across runs.
        s->client = std::make_unique<mqtt::async_client>(opts_.server_uri, s->def.id, nullptr);
        s->client->set_callback(*s);
        devices_.push_back(std::move(s));
    }
    // The secrets live in the device states now; the options keep none.
    for (auto& d : opts_.devices) d.password.clear();
    reported_at_ = steady::now();
    thread_ = std::thread([this] { run(); });
}

void fleet::stop() {
    {
        std::lock_guard lock(mutex_);
        stop_requested_ = true;
    }
    wake_.notify_all();
}

void fleet::join() {
    if (thread_.joinable()) thread_.join();
}

fleet_stats fleet::stats() const {
    fleet_stats s;
    s.published = published_.load(std::memory_order_relaxed);
    s.failed = failed_.load(std::memory_order_relaxed);
    s.skipped = skipped_.load(std::memory_order_relaxed);
    s.devices = devices_.size();
    for (const auto& d : devices_) {
        s.acknowledged += d->acked.load(std::memory_order_relaxed);
        s.connects += d->connects.load(std::memory_order_relaxed);
        const auto refusals = d->refusals.load(std::memory_order_relaxed);
        s.refused += refusals;
        if (d->up.load()) ++s.connected;
        if (refusals > 0 && !d->ever_connected.load()) ++s.refused_devices;
    }
    return s;
}

void fleet::report(steady::time_point now) {
    const auto s = stats();
    const double secs = std::chrono::duration<double>(now - reported_at_).count();
    const auto rate = [secs](std::uint64_t n) { return secs > 0 ? static_cast<double>(n) / secs : 0.0; };
    spdlog::info("simulate: fleet report published={} rate_per_s={:.1f} acknowledged={} ack_rate_per_s={:.1f} "
                 "failed={} skipped={} connected={} devices={}",
                 s.published, rate(s.published - reported_published_), s.acknowledged,
                 rate(s.acknowledged - reported_acked_), s.failed, s.skipped, s.connected, s.devices);
    reported_published_ = s.published;
    reported_acked_ = s.acknowledged;
    reported_at_ = now;
}

void fleet::run() {
    common::name_this_thread("pg-simulate");
    const auto started = steady::now();
    const auto period = std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(1.0 / opts_.rate));
    const auto n = devices_.size();

    mqtt::connect_options base;
    base.set_clean_session(true);
    base.set_mqtt_version(MQTTVERSION_3_1_1); // no silent fallback to 3.1 (a second CONNECT)
    base.set_keep_alive_interval(30);
    base.set_connect_timeout(10);

    // Readings due, earliest first; devices start spread over one period.
    using due_entry = std::pair<steady::time_point, std::size_t>;
    std::priority_queue<due_entry, std::vector<due_entry>, std::greater<>> due;
    for (std::size_t i = 0; i < n; ++i)
        due.emplace(started + period * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(std::max<std::size_t>(n, 1)), i);

    auto next_maintain = started;
    bool unreachable_logged = false;
    auto next_report = started + opts_.report_every;

    auto maintain = [&](steady::time_point now) {
        const auto elapsed = std::chrono::duration_cast<milliseconds>(now - started);
        for (auto& dp : devices_) {
            auto& d = *dp;
            if (const auto refusals = d.refusals.load(); refusals > d.refusals_logged) {
                if (d.refusals_logged == 0)
                    spdlog::warn("simulate: the broker refused a device, check its credentials (pulsegate: user name "
                                 "{{tenant}}/{{device}} and the device secret) device={} rc={} reason={}",
                                 d.def.id, d.last_rc.load(), logfmt_value(connack_reason(d.last_rc.load())));
                d.refusals_logged = refusals;
            }
            if (!unreachable_logged && d.failures.load() > 0 && !d.ever_connected.load()) {
                // Once per fleet: every device would say the same.
                unreachable_logged = true;
                spdlog::warn("simulate: cannot connect, is the broker running there? The devices keep trying, with a "
                             "back-off up to 30 s server={} rc={}",
                             opts_.server_uri, d.last_rc.load());
            }
            if (d.gen.silent(elapsed)) {
                if (!d.silenced) {
                    d.silenced = true;
                    spdlog::info("simulate: device goes silent device={} for_s={}", d.def.id,
                                 std::chrono::duration_cast<std::chrono::seconds>(opts_.schedule.silent_for).count());
                }
                if (d.up.load()) {
                    d.up.store(false);
                    try {
                        d.client->disconnect();
                    } catch (const mqtt::exception& e) {
                        // Already gone: as silent as asked.
                        spdlog::debug("simulate: disconnect failed device={} error=\"{}\"", d.def.id, e.what());
                    }
                }
                continue;
            }
            if (d.silenced) {
                d.silenced = false;
                d.next_attempt = now;
                d.backoff = milliseconds(0);
                spdlog::info("simulate: device reports again device={}", d.def.id);
            }
            if (d.up.load()) {
                d.backoff = milliseconds(0);
                continue;
            }
            if (d.pending.load() || now < d.next_attempt) continue;
            auto opts = base;
            if (!d.def.username.empty()) {
                opts.set_user_name(d.def.username);
                opts.set_password(d.def.password);
            }
            d.backoff = d.backoff.count() == 0 ? first_backoff : std::min(d.backoff * 2, max_backoff);
            d.next_attempt = now + d.backoff;
            d.pending.store(true);
            try {
                d.client->connect(opts, nullptr, d);
            } catch (const mqtt::exception& e) {
                // Paho refuses while a disconnect is still under way, for
                // one: try again after the back-off.
                d.pending.store(false);
                spdlog::debug("simulate: connect failed device={} error=\"{}\"", d.def.id, e.what());
            }
        }
    };

    for (;;) {
        const auto now = steady::now();
        if (now >= next_maintain) {
            maintain(now);
            next_maintain = now + maintain_every;
        }
        const auto elapsed = std::chrono::duration_cast<milliseconds>(now - started);
        const auto wall_ms =
            std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        while (!due.empty() && due.top().first <= now) {
            auto [at, i] = due.top();
            due.pop();
            auto& d = *devices_[i];
            if (!d.gen.silent(elapsed)) {
                if (!d.up.load()) {
                    skipped_.fetch_add(1, std::memory_order_relaxed);
                } else {
                    const auto payload = d.gen.sample(elapsed, wall_ms).to_json();
                    try {
                        d.client->publish(d.topic, payload.data(), payload.size(), opts_.qos, false);
                        published_.fetch_add(1, std::memory_order_relaxed);
                    } catch (const mqtt::exception& e) {
                        // The connection went away under us or the in-flight
                        // window is full: counted, and the schedule goes on.
                        failed_.fetch_add(1, std::memory_order_relaxed);
                        spdlog::debug("simulate: publish failed device={} error=\"{}\"", d.def.id, e.what());
                    }
                }
            }
            at += period;
            // Fallen behind by more than a period (a stalled machine): skip
            // ahead rather than publish a burst of stale readings.
            if (at + period < now) at = now + period;
            due.emplace(at, i);
        }
        if (opts_.report_every.count() > 0 && now >= next_report) {
            report(now);
            next_report = now + opts_.report_every;
        }
        auto wake_at = next_maintain;
        if (!due.empty()) wake_at = std::min(wake_at, due.top().first);
        if (opts_.report_every.count() > 0) wake_at = std::min(wake_at, next_report);
        std::unique_lock lock(mutex_);
        if (wake_.wait_until(lock, wake_at, [this] { return stop_requested_; })) break;
    }

    // Every connected device says goodbye; a broker that does not answer in
    // time sees dropped sockets instead.
    std::vector<mqtt::token_ptr> goodbyes;
    for (auto& d : devices_) {
        if (!d->up.load() && !d->pending.load()) continue;
        try {
            goodbyes.push_back(d->client->disconnect(static_cast<int>(disconnect_timeout.count())));
        } catch (const mqtt::exception& e) {
            spdlog::debug("simulate: disconnect failed device={} error=\"{}\"", d->def.id, e.what());
        }
        d->up.store(false);
    }
    const auto deadline = steady::now() + disconnect_timeout;
    for (auto& t : goodbyes) {
        try {
            t->wait_until(deadline);
        } catch (const mqtt::exception& e) {
            spdlog::debug("simulate: disconnect did not complete error=\"{}\"", e.what());
        }
    }
}

// ---- `pulsegate simulate` ---------------------------------------------------

simulate_result<std::string> paho_uri(std::string_view url) {
    std::string_view rest;
    for (std::string_view scheme : {"mqtt://", "tcp://"})
        if (url.starts_with(scheme)) rest = url.substr(scheme.size());
    if (rest.empty())
        return simulate_error{"--url must be mqtt://host[:port] (or tcp://host[:port]); got \"" + std::string(url) +
                              "\" (TLS and WebSocket are not supported by simulate)"};
    if (rest.ends_with('/')) rest.remove_suffix(1);
    std::string_view host = rest;
    std::string_view port = "1883";
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) return simulate_error{"--url: unclosed '[' in \"" + std::string(url) + "\""};
        host = rest.substr(0, close + 1);
        const auto after = rest.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) return simulate_error{"--url: expected :port after the IPv6 address"};
            port = after.substr(1);
        }
    } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (host.empty() || host.find('/') != std::string_view::npos || ec != std::errc() ||
        end != port.data() + port.size() || value == 0 || value > 65535)
        return simulate_error{"--url must be mqtt://host[:port] with a port 1..65535; got \"" + std::string(url) +
                              "\""};
    // In place: a string would also construct the error type (C++20
    // parenthesised aggregate initialisation), so it does not convert.
    return simulate_result<std::string>(boost::system::in_place_value,
                                        "tcp://" + std::string(host) + ":" + std::to_string(value));
}

simulate_result<std::vector<std::pair<std::string, std::string>>> read_credentials(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return simulate_error{"cannot read --credentials " + file.string()};
    std::vector<std::pair<std::string, std::string>> out;
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        const auto comma = line.find(',', first);
        auto device = comma == std::string::npos ? std::string() : line.substr(first, comma - first);
        auto secret = comma == std::string::npos ? std::string() : line.substr(comma + 1);
        auto trim = [](std::string& s) {
            const auto b = s.find_first_not_of(" \t");
            const auto e = s.find_last_not_of(" \t");
            s = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
        };
        trim(device);
        trim(secret);
        if (device.empty() || secret.empty() || device.find_first_of("/+# \t") != std::string::npos)
            return simulate_error{file.string() + ":" + std::to_string(n) +
                                  ": expected \"device,secret\" (a device id without '/', '+', '#' or spaces)"};
        out.emplace_back(std::move(device), std::move(secret));
    }
    if (out.empty()) return simulate_error{"--credentials " + file.string() + " lists no device (lines device,secret)"};
    return out;
}

simulate_result<fleet_options> make_fleet_options(const simulate_options& opts) {
    auto uri = paho_uri(opts.url);
    if (!uri) return uri.error();
    if (!(opts.rate > 0) || opts.rate > 1000) return simulate_error{"--rate must be more than 0 and at most 1000"};
    if (opts.devices == 0) return simulate_error{"--devices must be at least 1"};
    if (opts.qos != 0 && opts.qos != 1) return simulate_error{"--qos must be 0 or 1"};
    if (opts.breach_every < min_breach_every)
        return simulate_error{"--breach-every-s must be at least " + std::to_string(min_breach_every.count())};

    fleet_options f;
    f.server_uri = *uri;
    f.rate = opts.rate;
    f.qos = opts.qos;
    f.topic_prefix = opts.topic_prefix;
    f.schedule = make_schedule(opts.breach_every, opts.silent_after);
    f.seed = opts.seed != 0 ? opts.seed
                            : static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    f.report_every = opts.report_every;

    std::vector<std::pair<std::string, std::string>> creds;
    if (opts.credentials) {
        auto c = read_credentials(*opts.credentials);
        if (!c) return c.error();
        if (c->size() < opts.devices)
            return simulate_error{"--devices " + std::to_string(opts.devices) + " but --credentials " +
                                  opts.credentials->string() + " lists only " + std::to_string(c->size()) +
                                  " devices; lower --devices or add lines"};
        creds = std::move(*c);
    }
    // A mix of kinds; with incidents, the first device is the breacher (a
    // boiler) and the last the one that goes silent.
    static constexpr device_kind cycle[] = {device_kind::room, device_kind::freezer, device_kind::meter,
                                            device_kind::room};
    const auto n = opts.devices;
    for (std::size_t i = 0; i < n; ++i) {
        sim_device d;
        if (opts.credentials) {
            d.id = creds[i].first;
            d.username = replace_all(replace_all(opts.username_format, "{tenant}", opts.tenant), "{device}", d.id);
            d.password = creds[i].second;
        } else {
            d.id = fmt::format("{}{:03}", opts.device_prefix, i + 1);
        }
        d.kind = cycle[i % std::size(cycle)];
        if (opts.incidents && i == 0) {
            d.kind = device_kind::boiler;
            d.role = device_role::breacher;
        } else if (opts.incidents && n >= 3 && i + 1 == n) {
            d.kind = device_kind::room;
            d.role = device_role::goes_silent;
        }
        f.devices.push_back(std::move(d));
    }
    return f;
}

int run_simulate(const simulate_options& opts) {
    init_logging(log_config{});
    auto f = make_fleet_options(opts);
    if (!f) {
        spdlog::error("simulate: {}", f.error().message);
        return 1;
    }
    const auto uri = f->server_uri;
    const auto devices = f->devices.size();
    const bool anonymous = !opts.credentials;
    fleet sim(std::move(*f));
    try {
        sim.start();
    } catch (const mqtt::exception& e) {
        spdlog::error("simulate: cannot create MQTT clients for {}: {}", uri, e.what());
        return 1;
    }
    spdlog::info("simulate: started server={} devices={} rate_per_device={} qos={} auth={} tenant={}", uri, devices,
                 opts.rate, opts.qos, anonymous ? "anonymous" : "credentials", logfmt_value(opts.tenant));

    asio::io_context io;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer deadline(io);
    asio::steady_timer check(io);
    int rc = 0;
    // Stop the loop rather than cancel its waits: a timer that has already
    // expired is not cancelled (its handler still runs, with success), and
    // the check re-arms itself. Every whole --duration is a multiple of the
    // check's period, so cancelling left simulate running, deaf to SIGTERM,
    // about one run in ten.
    auto finish = [&] { io.stop(); };
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        spdlog::info("simulate: stopping signal={}", sig == SIGINT ? "SIGINT" : "SIGTERM");
        finish();
    });
    if (opts.duration.count() > 0) {
        deadline.expires_after(opts.duration);
        deadline.async_wait([&](const boost::system::error_code& ec) {
            if (ec) return;
            spdlog::info("simulate: duration reached duration_s={}", opts.duration.count());
            finish();
        });
    }
    std::function<void()> watch = [&] {
        check.expires_after(milliseconds(500));
        check.async_wait([&](const boost::system::error_code& ec) {
            if (ec) return;
            const auto s = sim.stats();
            if (s.refused_devices == s.devices) {
                spdlog::error("simulate: the broker refused every device (bad user name or password, or not "
                              "authorised); {}",
                              anonymous ? "it needs credentials: pass --credentials FILE with lines device,secret "
                                          "(pulsegate: POST /api/v1/devices answers each device's secret), or "
                                          "enable [auth] allow_anonymous"
                                        : "check --credentials, --tenant and --username-format");
                rc = 1;
                finish();
                return;
            }
            watch();
        });
    };
    watch();
    io.run();
    sim.stop();
    sim.join();
    const auto s = sim.stats();
    spdlog::info("simulate: stopped published={} acknowledged={} failed={} skipped={} connects={}", s.published,
                 s.acknowledged, s.failed, s.skipped, s.connects);
    return rc;
}

} // namespace pulsegate::daemon
