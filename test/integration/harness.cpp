#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <doctest/doctest.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

extern char** environ;

namespace pulsegate::itest {

namespace fs = std::filesystem;

// ------------------------------------------------- failure bookkeeping ----

namespace {

std::atomic<bool> g_test_failed{false};

// Listens to doctest so the broker can print its log only for failed tests.
struct failure_listener : doctest::IReporter {
    explicit failure_listener(doctest::ContextOptions const&) {}
    void report_query(doctest::QueryData const&) override {}
    void test_run_start() override {}
    void test_run_end(doctest::TestRunStats const&) override {}
    void test_case_start(doctest::TestCaseData const&) override { g_test_failed = false; }
    void test_case_reenter(doctest::TestCaseData const&) override {}
    void test_case_end(doctest::CurrentTestCaseStats const&) override {}
    void test_case_exception(doctest::TestCaseException const&) override { g_test_failed = true; }
    void subcase_start(doctest::SubcaseSignature const&) override {}
    void subcase_end() override {}
    void log_assert(doctest::AssertData const& ad) override {
        if (ad.m_failed) g_test_failed = true;
    }
    void log_message(doctest::MessageData const& md) override {
        if ((md.m_severity & doctest::assertType::is_warn) == 0) g_test_failed = true;  // FAIL_CHECK, FAIL
    }
    void test_case_skipped(doctest::TestCaseData const&) override {}
};

} // namespace

REGISTER_LISTENER("pulsegate_failure_listener", 1, failure_listener);

bool current_test_failed() { return g_test_failed || std::uncaught_exceptions() > 0; }

// --------------------------------------------------------------- broker ---

broker_kind selected_broker() {
    char const* b = std::getenv("PULSEGATE_TEST_BROKER");
    return b != nullptr && std::string_view{b} == "mosquitto" ? broker_kind::mosquitto
                                                              : broker_kind::pulsegate;
}

std::string pulsegate_binary() {
    if (char const* p = std::getenv("PULSEGATE_BIN"); p != nullptr && *p != '\0') return p;
#ifdef MESON_BUILD_ROOT
    return std::string{MESON_BUILD_ROOT} + "/daemon/pulsegate";
#else
    return "pulsegate";
#endif
}

namespace {

std::uint16_t pick_free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("bind/getsockname failed");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

int tcp_connect(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

std::string read_file(std::string const& path) {
    std::ifstream in{path, std::ios::binary};
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Waits for pid to exit; true (and *status) if it did within timeout.
bool wait_pid(int pid, ms timeout, int* status) {
    auto deadline = steady::now() + timeout;
    auto nap = 1ms;
    for (;;) {
        int r = ::waitpid(pid, status, WNOHANG);
        if (r == pid) return true;
        if (r < 0) return true;  // already reaped
        if (steady::now() >= deadline) return false;
        // Polling a child's exit: there is no fd to wait on, so back off.
        std::this_thread::sleep_for(nap);
        nap = std::min(nap * 2, ms{50});
    }
}

} // namespace

broker_process::broker_process(broker_options opts) : opts_(std::move(opts)) {
    std::string tmpl = (fs::temp_directory_path() / "pulsegate-itest-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    fs::create_directories(dir_ + "/data");
    config_path_ = dir_ + (is_mosquitto() ? "/mosquitto.conf" : "/pulsegate.toml");
    log_path_ = dir_ + "/broker.log";
    port_ = pick_free_port();
    write_config();
    if (is_pulsegate() && opts_.admin_password) init_admin();
    start();
}

void broker_process::init_admin() {
    const std::string pw_file = dir_ + "/admin-password";
    {
        std::ofstream f{pw_file};
        f << *opts_.admin_password << "\n";
    }
    // argon2id hashing on a loaded machine: a generous deadline.
    auto r = run_process({pulsegate_binary(), "init", "--data-dir", data_dir(), "--admin-password-file",
                          pw_file},
                         60s);
    if (r.exit_code != 0) {
        std::cerr << "---- pulsegate init failed (exit " << (r.exit_code ? *r.exit_code : -1)
                  << "):\n" << r.output << "----\n";
        throw std::runtime_error("pulsegate init failed");
    }
}

std::uint16_t free_tcp_port() { return pick_free_port(); }

// The daemon opens HTTP just after the MQTT listener that start() waits
// for: waiting for the line keeps a loaded machine from failing here.
std::uint16_t broker_process::http_port() const { return wait_port("http", 15s); }

std::uint16_t broker_process::wait_http_port(ms timeout) const { return wait_port("http", timeout); }

std::uint16_t broker_process::wait_port(std::string_view proto, ms timeout) const {
    const std::string marker = "proto=" + std::string(proto) + " addr=127.0.0.1:";
    const auto deadline = steady::now() + timeout;
    auto nap = 2ms;
    for (;;) {
        const auto log = log_text();
        const auto at = log.find(marker, start_log_offset_);
        // Only a complete line: the port's digits may still be on their way.
        if (at != std::string::npos && log.find('\n', at) != std::string::npos)
            return static_cast<std::uint16_t>(std::stoi(log.substr(at + marker.size())));
        if (steady::now() >= deadline)
            throw std::runtime_error("the broker log has no \"listening " + marker + "\" line since the last start");
        // The log is a file: nothing to wait on but time.
        std::this_thread::sleep_for(nap);
        nap = std::min(nap * 2, ms{50});
    }
}

broker_process::~broker_process() {
    stop();
    if (current_test_failed()) {
        std::cerr << "---- broker log (" << log_path_ << ") ----\n"
                  << log_text() << "---- end of broker log ----\n";
    } else {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
}

std::string broker_process::uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

std::string broker_process::log_text() const { return read_file(log_path_); }

void broker_process::write_config() {
    std::ofstream f{config_path_};
    auto const& o = opts_;
    if (is_mosquitto()) {
        f << "listener " << port_ << " 127.0.0.1\n";
        // Listener-scoped options come right after their listener.
        if (o.max_connections) f << "max_connections " << *o.max_connections << "\n";
        if (o.topic_alias_maximum) f << "max_topic_alias " << *o.topic_alias_maximum << "\n";
        f << "allow_anonymous " << (o.allow_anonymous ? "true" : "false") << "\n";
        f << "persistence false\n";
        f << "log_dest stderr\nlog_type all\nconnection_messages true\n";
        if (o.max_packet_size) f << "max_packet_size " << *o.max_packet_size << "\n";
        if (o.max_queued_messages) f << "max_queued_messages " << *o.max_queued_messages << "\n";
        if (o.receive_maximum)
            f << "max_inflight_messages " << *o.receive_maximum << "\n";
        else if (o.max_inflight)
            f << "max_inflight_messages " << *o.max_inflight << "\n";
        if (o.max_keepalive) f << "max_keepalive " << *o.max_keepalive << "\n";
        if (o.sys_interval_s) f << "sys_interval " << *o.sys_interval_s << "\n";
        return;
    }
    f << "[mqtt]\n";
    f << "listen = \"127.0.0.1:" << port_ << "\"\n";
    f << "shards = 2\n";
    if (o.max_packet_size) f << "max_packet_size = " << *o.max_packet_size << "\n";
    if (o.max_queued_messages) f << "max_queued_messages = " << *o.max_queued_messages << "\n";
    if (o.max_inflight) f << "max_inflight = " << *o.max_inflight << "\n";
    if (o.receive_maximum) f << "receive_maximum = " << *o.receive_maximum << "\n";
    if (o.topic_alias_maximum) f << "topic_alias_maximum = " << *o.topic_alias_maximum << "\n";
    if (o.max_keepalive) f << "max_keepalive = " << *o.max_keepalive << "\n";
    if (o.max_connections) f << "max_connections = " << *o.max_connections << "\n";
    if (o.connect_timeout_ms) f << "connect_timeout_ms = " << *o.connect_timeout_ms << "\n";
    if (o.sys_interval_s) f << "sys_interval_s = " << *o.sys_interval_s << "\n";
    f << o.mqtt_toml << "\n";
    f << "\n[http]\nlisten = \"127.0.0.1:0\"\n" << o.http_toml << "\n";
    if (!o.tls_toml.empty()) f << "\n[tls]\n" << o.tls_toml << "\n";
    f << "\n[auth]\n";
    f << "allow_anonymous = " << (o.allow_anonymous ? "true" : "false") << "\n";
    f << "anonymous_tenant = \"" << o.anonymous_tenant << "\"\n";
    f << "\n[storage]\n";
    f << "data_dir = \"" << data_dir() << "\"\n";
    f << o.storage_toml << "\n";
    if (!o.rules_toml.empty()) f << "\n[rules]\n" << o.rules_toml << "\n";
    if (!o.delivery_toml.empty()) f << "\n[delivery]\n" << o.delivery_toml << "\n";
    f << "\n[log]\n";
    f << "level = \"debug\"\n";
    f << o.extra_toml << "\n";
}

void broker_process::start() {
    auto const log_offset = log_text().size();  // restart() appends to the log
    start_log_offset_ = log_offset;
    std::vector<std::string> argv;
    if (is_mosquitto()) {
        argv = {"/usr/sbin/mosquitto", "-c", config_path_};
    } else {
        argv = {pulsegate_binary(), "serve", "--config", config_path_};
        argv.insert(argv.end(), opts_.serve_args.begin(), opts_.serve_args.end());
    }
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        throw std::runtime_error("cannot start broker " + argv[0] + ": " + std::strerror(rc) +
                                 (is_pulsegate() ? " (set PULSEGATE_BIN or "
                                                   "PULSEGATE_TEST_BROKER=mosquitto)"
                                                 : ""));
    }
    pid_ = pid;

    auto deadline = steady::now() + 15s;
    auto nap = 2ms;
    for (;;) {
        if (is_mosquitto()) {
            // mosquitto logs "... running" once its listeners are open. Any
            // probe connection would upset 2.0.11's max_connections count
            // (a disconnected client is subtracted twice).
            if (log_text().find(" running", log_offset) != std::string::npos) return;
        } else if (int fd = tcp_connect(port_); fd >= 0) {
            // Ready. Finish with a full MQTT exchange and wait for the broker
            // to close the connection, so the probe no longer counts against
            // max_connections when the test starts.
            auto send_all = [fd](std::string const& bytes) {
                return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
                       static_cast<ssize_t>(bytes.size());
            };
            if (send_all(raw::connect_packet(raw::spec(4, "", true)))) {
                pollfd pfd{fd, POLLIN, 0};
                char tmp[64];
                if (::poll(&pfd, 1, 5000) > 0 && ::recv(fd, tmp, sizeof tmp, 0) > 0 &&
                    send_all(raw::disconnect_packet(4))) {
                    while (::poll(&pfd, 1, 5000) > 0 && ::recv(fd, tmp, sizeof tmp, 0) > 0) {
                    }
                }
            }
            ::close(fd);
            return;
        }
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            pid_ = -1;
            std::cerr << "---- broker exited during startup (status " << st << "); log:\n"
                      << log_text() << "---- config:\n" << read_file(config_path_) << "----\n";
            throw std::runtime_error("broker exited during startup");
        }
        if (steady::now() >= deadline) {
            std::cerr << "---- broker not accepting on port " << port_ << " after 15 s; log:\n"
                      << log_text() << "----\n";
            kill9();
            throw std::runtime_error("broker did not start");
        }
        // Nothing to wait on until the listener exists: poll with back-off.
        std::this_thread::sleep_for(nap);
        nap = std::min(nap * 2, ms{100});
    }
}

int broker_process::stop() {
    if (!running()) return 0;
    ::kill(pid_, SIGTERM);
    int st = 0;
    const bool stopped = wait_pid(pid_, 10s, &st);
    if (!stopped) {
        ::kill(pid_, SIGKILL);
        wait_pid(pid_, 10s, &st);
    }
    pid_ = -1;
    // A clean shutdown is part of every test: a sanitizer's report at exit
    // (a leak, a use after free while stopping) shows only as the status.
    if (!stopped) {
        FAIL_CHECK("the broker did not stop within 10 s of SIGTERM (killed); its log follows");
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        const auto how = WIFEXITED(st) ? "exit status " + std::to_string(WEXITSTATUS(st))
                                       : "signal " + std::to_string(WTERMSIG(st));
        FAIL_CHECK("the broker's shutdown failed: " << how
                                                    << " after SIGTERM (a crash or a sanitizer report); its log follows");
    }
    return st;
}

void broker_process::kill9() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    wait_pid(pid_, 10s, &st);
    pid_ = -1;
}

void broker_process::restart() {
    stop();
    {
        std::ofstream f{log_path_, std::ios::app};
        f << "==== restart ====\n";
    }
    start();
}

// ---------------------------------------------------------------- bytes ---

std::string from_hex(std::string_view hex) {
    std::string out;
    int hi = -1;
    for (char c : hex) {
        int v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        else continue;
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<char>(hi << 4 | v));
            hi = -1;
        }
    }
    return out;
}

std::string to_hex(std::string_view bytes) {
    static char const* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        if (!out.empty()) out.push_back(' ');
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

namespace raw {

std::optional<packet> take_packet(std::string& buf) {
    if (buf.size() < 2) return std::nullopt;
    std::uint32_t len = 0, mul = 1;
    std::size_t i = 1;
    bool complete = false;
    for (; i < buf.size() && i < 5; ++i) {
        auto b = static_cast<std::uint8_t>(buf[i]);
        len += (b & 0x7Fu) * mul;
        mul *= 128;
        if ((b & 0x80) == 0) {
            complete = true;
            break;
        }
    }
    if (!complete || buf.size() < i + 1 + len) return std::nullopt;
    packet p;
    p.type = static_cast<std::uint8_t>(buf[0]) >> 4;
    p.flags = static_cast<std::uint8_t>(buf[0]) & 0x0F;
    p.body = buf.substr(i + 1, len);
    buf.erase(0, i + 1 + len);
    return p;
}

std::string varint(std::uint32_t v) {
    std::string out;
    do {
        std::uint8_t b = v % 128;
        v /= 128;
        if (v > 0) b |= 0x80;
        out.push_back(static_cast<char>(b));
    } while (v > 0);
    return out;
}

std::string u16(std::uint16_t v) {
    return {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)};
}

std::string u32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xFF),
            static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}

std::string str(std::string_view s) {
    return u16(static_cast<std::uint16_t>(s.size())) + std::string{s};
}

props& props::byte(std::uint8_t id, std::uint8_t v) {
    b_.push_back(static_cast<char>(id));
    b_.push_back(static_cast<char>(v));
    return *this;
}
props& props::two(std::uint8_t id, std::uint16_t v) {
    b_.push_back(static_cast<char>(id));
    b_ += u16(v);
    return *this;
}
props& props::four(std::uint8_t id, std::uint32_t v) {
    b_.push_back(static_cast<char>(id));
    b_ += u32(v);
    return *this;
}
props& props::var(std::uint8_t id, std::uint32_t v) {
    b_.push_back(static_cast<char>(id));
    b_ += varint(v);
    return *this;
}
props& props::text(std::uint8_t id, std::string_view v) {
    b_.push_back(static_cast<char>(id));
    b_ += str(v);
    return *this;
}
props& props::user(std::string_view k, std::string_view v) {
    b_.push_back(static_cast<char>(prop::user_property));
    b_ += str(k);
    b_ += str(v);
    return *this;
}

namespace {

std::string fixed(std::uint8_t first, std::string const& body) {
    return std::string(1, static_cast<char>(first)) +
           varint(static_cast<std::uint32_t>(body.size())) + body;
}

// Sequential reader over a packet body; throws on underrun.
struct reader {
    std::string_view s;
    std::size_t pos = 0;
    void need(std::size_t n) const {
        if (pos + n > s.size()) throw std::runtime_error("packet too short: " + to_hex(s));
    }
    std::uint8_t byte() {
        need(1);
        return static_cast<std::uint8_t>(s[pos++]);
    }
    std::uint16_t two() {
        std::uint16_t hi = byte();
        return static_cast<std::uint16_t>(hi << 8 | byte());
    }
    std::uint32_t four() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v = v << 8 | byte();
        return v;
    }
    std::uint32_t var() {
        std::uint32_t v = 0, mul = 1;
        for (int i = 0; i < 4; ++i) {
            std::uint8_t b = byte();
            v += (b & 0x7Fu) * mul;
            if ((b & 0x80) == 0) return v;
            mul *= 128;
        }
        throw std::runtime_error("bad varint");
    }
    std::string text() {
        std::size_t n = two();
        need(n);
        std::string out{s.substr(pos, n)};
        pos += n;
        return out;
    }
    std::string_view rest() const { return s.substr(pos); }
    bool done() const { return pos >= s.size(); }
    property_list props() {
        std::uint32_t n = var();
        need(n);
        auto out = parse_properties(s.substr(pos, n));
        pos += n;
        return out;
    }
};

} // namespace

bool property_list::has(std::uint8_t id) const {
    for (auto const& [k, v] : items)
        if (k == id) return true;
    return false;
}

std::optional<std::uint32_t> property_list::integer(std::uint8_t id) const {
    auto all = integers(id);
    if (all.empty()) return std::nullopt;
    return all.front();
}

std::vector<std::uint32_t> property_list::integers(std::uint8_t id) const {
    std::vector<std::uint32_t> out;
    for (auto const& [k, v] : items) {
        if (k != id) continue;
        reader r{v};
        if (k == prop::subscription_id) {
            out.push_back(r.var());
        } else {
            std::uint32_t x = 0;
            for (unsigned char c : v) x = x << 8 | c;
            out.push_back(x);
        }
    }
    return out;
}

std::optional<std::string> property_list::text(std::uint8_t id) const {
    for (auto const& [k, v] : items) {
        if (k != id) continue;
        reader r{v};
        return r.text();
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> property_list::user() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto const& [k, v] : items) {
        if (k != prop::user_property) continue;
        reader r{v};
        auto key = r.text();
        out.emplace_back(key, r.text());
    }
    return out;
}

property_list parse_properties(std::string_view bytes) {
    property_list out;
    reader r{bytes};
    while (!r.done()) {
        std::uint8_t id = r.byte();
        std::size_t start = r.pos;
        switch (id) {
        case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
            r.byte();
            break;
        case 0x13: case 0x21: case 0x22: case 0x23:
            r.two();
            break;
        case 0x02: case 0x11: case 0x18: case 0x27:
            r.four();
            break;
        case 0x0B:
            r.var();
            break;
        case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1A:
        case 0x1C: case 0x1F:
            r.text();
            break;
        case 0x26:
            r.text();
            r.text();
            break;
        default:
            throw std::runtime_error("unknown property id " + std::to_string(id));
        }
        out.items.emplace_back(id, std::string{bytes.substr(start, r.pos - start)});
    }
    return out;
}

connect_spec spec(std::uint8_t version, std::string client_id, bool clean,
                  std::uint16_t keep_alive) {
    connect_spec c;
    c.version = version;
    c.client_id = std::move(client_id);
    c.clean = clean;
    c.keep_alive = keep_alive;
    return c;
}

std::string connect_packet(connect_spec const& c) {
    std::string vh = str("MQTT");
    vh.push_back(static_cast<char>(c.version));
    std::uint8_t flags = c.clean ? 0x02 : 0x00;
    if (c.will) {
        flags |= 0x04 | static_cast<std::uint8_t>(c.will->qos << 3);
        if (c.will->retain) flags |= 0x20;
    }
    if (c.password) flags |= 0x40;
    if (c.username) flags |= 0x80;
    vh.push_back(static_cast<char>(flags));
    vh += u16(c.keep_alive);
    if (c.version == 5) vh += c.properties.encoded();
    std::string pl = str(c.client_id);
    if (c.will) {
        if (c.version == 5) pl += c.will->properties.encoded();
        pl += str(c.will->topic);
        pl += str(c.will->payload);
    }
    if (c.username) pl += str(*c.username);
    if (c.password) pl += str(*c.password);
    return fixed(0x10, vh + pl);
}

std::string publish_packet(std::uint8_t version, std::string_view topic, std::string_view payload,
                           std::uint8_t qos, std::uint16_t packet_id, bool retain, bool dup,
                           props const& p) {
    std::uint8_t first = static_cast<std::uint8_t>(0x30 | qos << 1);
    if (retain) first |= 0x01;
    if (dup) first |= 0x08;
    std::string body = str(topic);
    if (qos > 0) body += u16(packet_id);
    if (version == 5) body += p.encoded();
    body += payload;
    return fixed(first, body);
}

std::string subscribe_packet(std::uint8_t version, std::uint16_t packet_id,
                             std::vector<std::pair<std::string, std::uint8_t>> const& filters,
                             props const& p) {
    std::string body = u16(packet_id);
    if (version == 5) body += p.encoded();
    for (auto const& [f, o] : filters) {
        body += str(f);
        body.push_back(static_cast<char>(o));
    }
    return fixed(0x82, body);
}

std::string unsubscribe_packet(std::uint8_t version, std::uint16_t packet_id,
                               std::vector<std::string> const& filters) {
    std::string body = u16(packet_id);
    if (version == 5) body += varint(0);
    for (auto const& f : filters) body += str(f);
    return fixed(0xA2, body);
}

std::string ack_packet(packet_type type, std::uint16_t packet_id, std::uint8_t reason) {
    std::uint8_t first = static_cast<std::uint8_t>(type << 4);
    if (type == pubrel) first |= 0x02;
    std::string body = u16(packet_id);
    if (reason != 0) body.push_back(static_cast<char>(reason));
    return fixed(first, body);
}

std::string pingreq_packet() { return from_hex("c0 00"); }

std::string disconnect_packet(std::uint8_t version, std::uint8_t reason, props const& p) {
    if (version != 5 || (reason == 0 && p.bytes().empty())) return from_hex("e0 00");
    std::string body(1, static_cast<char>(reason));
    if (!p.bytes().empty()) body += p.encoded();
    return fixed(0xE0, body);
}

std::string packet::describe() const {
    static char const* names[] = {"?", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
                                  "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE",
                                  "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"};
    return std::string{names[type & 15]} + " flags=" + std::to_string(flags) + " [" +
           to_hex(body) + "]";
}

connack_view parse_connack(packet const& p, std::uint8_t version) {
    if (p.type != connack) throw std::runtime_error("expected CONNACK, got " + p.describe());
    reader r{p.body};
    connack_view v;
    v.session_present = (r.byte() & 1) != 0;
    v.reason = r.byte();
    if (version == 5 && !r.done()) v.props = r.props();
    return v;
}

publish_view parse_publish(packet const& p, std::uint8_t version) {
    if (p.type != publish) throw std::runtime_error("expected PUBLISH, got " + p.describe());
    publish_view v;
    v.qos = (p.flags >> 1) & 3;
    v.retain = (p.flags & 1) != 0;
    v.dup = (p.flags & 8) != 0;
    reader r{p.body};
    v.topic = r.text();
    if (v.qos > 0) v.packet_id = r.two();
    if (version == 5) v.props = r.props();
    v.payload = std::string{r.rest()};
    return v;
}

ack_view parse_ack(packet const& p, std::uint8_t version) {
    ack_view v;
    reader r{p.body};
    if (p.type == disconnect) {
        if (!r.done()) v.reason = r.byte();
        if (!r.done()) v.props = r.props();
        return v;
    }
    v.packet_id = r.two();
    if (p.type == suback || p.type == unsuback) {
        if (version == 5) v.props = r.props();
        while (!r.done()) v.reasons.push_back(r.byte());
        return v;
    }
    if (!r.done()) v.reason = r.byte();
    if (version == 5 && !r.done()) v.props = r.props();
    return v;
}

} // namespace raw

// ----------------------------------------------------------- raw client ---

raw_client::raw_client(std::uint16_t port) {
    fd_ = tcp_connect(port);
    if (fd_ < 0) throw std::runtime_error("raw_client: connect to port " + std::to_string(port) +
                                          " failed: " + std::strerror(errno));
}

raw_client::~raw_client() { close(); }

void raw_client::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    closed_ = true;
}

bool raw_client::send(std::string_view bytes) {
    if (fd_ < 0) return false;
    if (!bytes.empty() && static_cast<std::uint8_t>(bytes[0]) >> 4 == raw::connect &&
        bytes.size() > 8) {
        // Remember the protocol level for parsing replies (CONNECT: fixed
        // header, length, "MQTT" string, level).
        std::size_t i = 1;
        while (i < bytes.size() && (static_cast<std::uint8_t>(bytes[i]) & 0x80)) ++i;
        std::size_t lvl = i + 1 + 6;
        if (lvl < bytes.size()) version_ = static_cast<std::uint8_t>(bytes[lvl]);
    }
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::optional<raw::packet> raw_client::read(ms timeout) {
    auto deadline = steady::now() + timeout;
    for (;;) {
        if (auto p = raw::take_packet(buf_)) return p;
        if (fd_ < 0 || closed_) return std::nullopt;
        auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd pfd{fd_, POLLIN, 0};
        int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return std::nullopt;
        char tmp[65536];
        ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            closed_ = true;  // EOF or reset; buffered bytes may still parse above
            if (buf_.size() < 2) return std::nullopt;
            continue;
        }
        buf_.append(tmp, static_cast<std::size_t>(n));
    }
}

std::optional<raw::packet> raw_client::read_type(std::uint8_t type, ms timeout) {
    auto deadline = steady::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
        if (left.count() < 0) left = ms{0};
        auto p = read(left);
        if (!p) return std::nullopt;
        if (p->type == type) return p;
        skipped_.push_back(std::move(*p));
    }
}

bool raw_client::wait_closed(ms timeout) {
    auto deadline = steady::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
        if (left.count() < 0) left = ms{0};
        auto p = read(left);
        if (p) {
            skipped_.push_back(std::move(*p));
            continue;
        }
        if (closed_) return true;
        if (steady::now() >= deadline) return false;
    }
}

std::optional<raw::connack_view> raw_client::handshake(raw::connect_spec const& c) {
    version_ = c.version;
    if (!send(raw::connect_packet(c))) return std::nullopt;
    auto p = read();
    if (!p) return std::nullopt;
    return raw::parse_connack(*p, c.version);
}

// -------------------------------------------------------- message queue ---

void message_queue::push(message m) {
    {
        std::lock_guard lk{mu_};
        q_.push_back(std::move(m));
    }
    cv_.notify_all();
}

std::optional<message> message_queue::pop(ms timeout) {
    std::unique_lock lk{mu_};
    if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty(); })) return std::nullopt;
    message m = std::move(q_.front());
    q_.pop_front();
    return m;
}

std::optional<std::vector<message>> message_queue::pop_until_topic(std::string_view topic,
                                                                   ms timeout) {
    auto deadline = steady::now() + timeout;
    std::vector<message> before;
    for (;;) {
        auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
        if (left.count() < 0) return std::nullopt;
        auto m = pop(left);
        if (!m) return std::nullopt;
        if (m->topic == topic) return before;
        before.push_back(std::move(*m));
    }
}

std::optional<std::vector<message>> message_queue::collect_until_sentinel(std::string_view topic,
                                                                         ms timeout) {
    auto before = pop_until_topic(topic, timeout);
    if (!before) return before;
    while (auto m = pop(quiet_window)) before->push_back(std::move(*m));
    return before;
}

std::vector<message> message_queue::pop_n(std::size_t n, ms timeout) {
    auto deadline = steady::now() + timeout;
    std::vector<message> out;
    while (out.size() < n) {
        auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
        if (left.count() < 0) break;
        auto m = pop(left);
        if (!m) break;
        out.push_back(std::move(*m));
    }
    return out;
}

std::size_t message_queue::size() const {
    std::lock_guard lk{mu_};
    return q_.size();
}

// ---------------------------------------------------------------- paho ----

paho_client::paho_client(broker_process const& b, std::string client_id, int version)
    : paho_client(b.uri(), std::move(client_id), version) {}

paho_client::paho_client(std::string const& server_uri, std::string client_id, int version)
    : version_(version),
      cli_(server_uri, client_id, mqtt::create_options(version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1),
           nullptr) {
    cli_.set_message_callback([this](mqtt::const_message_ptr m) {
        message out;
        out.topic = m->get_topic();
        out.payload = m->get_payload_str();
        out.qos = m->get_qos();
        out.retain = m->is_retained();
        auto const& props = m->get_properties();
        // Paho C++ 1.2 has no iteration over properties; read by index.
        auto n = props.count(mqtt::property::USER_PROPERTY);
        for (std::size_t i = 0; i < n; ++i) {
            auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
            out.user_properties.emplace_back(std::get<0>(kv), std::get<1>(kv));
        }
        auto ns = props.count(mqtt::property::SUBSCRIPTION_IDENTIFIER);
        for (std::size_t i = 0; i < ns; ++i)
            out.subscription_ids.push_back(
                mqtt::get<int>(props, mqtt::property::SUBSCRIPTION_IDENTIFIER, i));
        q_.push(std::move(out));
    });
}

paho_client::~paho_client() {
    try {
        if (cli_.is_connected()) cli_.disconnect()->wait_for(event_timeout);
    } catch (std::exception const& e) {
        // A destructor cannot report; the test has already asserted what it needs.
        std::cerr << "paho_client: disconnect in destructor failed: " << e.what() << "\n";
    }
}

bool paho_client::connect(bool clean, mqtt::properties props) {
    auto b = mqtt::connect_options_builder().mqtt_version(version_ == 5 ? MQTTVERSION_5
                                                                        : MQTTVERSION_3_1_1);
    if (version_ == 5) b.clean_start(clean).properties(std::move(props));
    else b.clean_session(clean);
    b.keep_alive_interval(std::chrono::seconds{60}).automatic_reconnect(false);
    return connect(b.finalize());
}

bool paho_client::connect(mqtt::connect_options opts) {
    auto tok = cli_.connect(std::move(opts));
    if (!tok->wait_for(event_timeout)) throw std::runtime_error("paho connect timed out");
    return tok->get_connect_response().is_session_present();
}

void paho_client::subscribe(std::string const& filter, int qos, mqtt::subscribe_options so,
                            mqtt::properties props) {
    auto tok = version_ == 5 ? cli_.subscribe(filter, qos, so, props) : cli_.subscribe(filter, qos);
    if (!tok->wait_for(event_timeout)) throw std::runtime_error("paho subscribe timed out");
}

void paho_client::unsubscribe(std::string const& filter) {
    if (!cli_.unsubscribe(filter)->wait_for(event_timeout))
        throw std::runtime_error("paho unsubscribe timed out");
}

void paho_client::publish(std::string const& topic, std::string const& payload, int qos,
                          bool retain, mqtt::properties props) {
    auto msg = mqtt::make_message(topic, payload, qos, retain);
    if (version_ == 5) msg->set_properties(std::move(props));
    if (!cli_.publish(msg)->wait_for(event_timeout))
        throw std::runtime_error("paho publish timed out");
}

void paho_client::disconnect() {
    if (!cli_.disconnect()->wait_for(event_timeout))
        throw std::runtime_error("paho disconnect timed out");
}

// ------------------------------------------------------------ mosquitto ---

namespace {
struct mosq_lib {
    mosq_lib() { mosquitto_lib_init(); }
    ~mosq_lib() { mosquitto_lib_cleanup(); }
};
void ensure_mosq_lib() { static mosq_lib lib; }
} // namespace

mosq_client::mosq_client(std::string client_id, int version, bool clean) : version_(version) {
    ensure_mosq_lib();
    m_ = mosquitto_new(client_id.empty() ? nullptr : client_id.c_str(), clean, this);
    if (m_ == nullptr) throw std::runtime_error("mosquitto_new failed");
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION,
                         version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_connect_v5_callback_set(m_, [](::mosquitto* m, void* u, int rc, int f,
                                             mosquitto_property const* p) {
        on_connect(m, u, rc, f, p);
    });
    mosquitto_subscribe_v5_callback_set(m_, [](::mosquitto* m, void* u, int mid, int n,
                                               int const* q, mosquitto_property const* p) {
        on_subscribe(m, u, mid, n, q, p);
    });
    mosquitto_publish_v5_callback_set(m_, [](::mosquitto* m, void* u, int mid, int rc,
                                             mosquitto_property const* p) {
        on_publish(m, u, mid, rc, p);
    });
    mosquitto_message_v5_callback_set(m_, [](::mosquitto* m, void* u,
                                             ::mosquitto_message const* msg,
                                             mosquitto_property const* p) {
        on_message(m, u, msg, p);
    });
}

mosq_client::~mosq_client() {
    if (loop_started_) {
        mosquitto_disconnect(m_);
        mosquitto_loop_stop(m_, false);
    }
    mosquitto_destroy(m_);
}

void mosq_client::on_connect(::mosquitto*, void* u, int rc, int, void const*) {
    auto* self = static_cast<mosq_client*>(u);
    {
        std::lock_guard lk{self->mu_};
        self->connack_ = rc;
    }
    self->cv_.notify_all();
}

void mosq_client::on_subscribe(::mosquitto*, void* u, int mid, int n, int const* q, void const*) {
    auto* self = static_cast<mosq_client*>(u);
    {
        std::lock_guard lk{self->mu_};
        self->suback_[mid] = n > 0 ? q[0] : -1;
    }
    self->cv_.notify_all();
}

void mosq_client::on_publish(::mosquitto*, void* u, int mid, int, void const*) {
    auto* self = static_cast<mosq_client*>(u);
    {
        std::lock_guard lk{self->mu_};
        self->published_[mid] = true;
    }
    self->cv_.notify_all();
}

void mosq_client::on_message(::mosquitto*, void* u, ::mosquitto_message const* msg,
                             void const* vp) {
    auto* self = static_cast<mosq_client*>(u);
    message out;
    out.topic = msg->topic;
    out.payload.assign(static_cast<char const*>(msg->payload),
                       static_cast<std::size_t>(msg->payloadlen));
    out.qos = msg->qos;
    out.retain = msg->retain;
    auto const* props = static_cast<mosquitto_property const*>(vp);
    for (auto const* p = props; p != nullptr; p = mosquitto_property_next(p)) {
        int id = mosquitto_property_identifier(p);
        if (id == MQTT_PROP_USER_PROPERTY) {
            char* k = nullptr;
            char* v = nullptr;
            mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &k, &v, false);
            out.user_properties.emplace_back(k ? k : "", v ? v : "");
            std::free(k);
            std::free(v);
        } else if (id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
            std::uint32_t sid = 0;
            mosquitto_property_read_varint(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &sid, false);
            out.subscription_ids.push_back(sid);
        }
    }
    self->q_.push(std::move(out));
}

bool mosq_client::wait_event(std::function<bool()> const& pred, ms timeout) {
    std::unique_lock lk{mu_};
    return cv_.wait_for(lk, timeout, pred);
}

void mosq_client::credentials(std::string const& user, std::string const& password) {
    if (mosquitto_username_pw_set(m_, user.c_str(), password.c_str()) != MOSQ_ERR_SUCCESS)
        throw std::runtime_error("mosquitto_username_pw_set failed");
}

int mosq_client::connect(std::uint16_t port, int keep_alive) {
    {
        std::lock_guard lk{mu_};
        connack_ = -1;
    }
    if (mosquitto_connect(m_, "127.0.0.1", port, keep_alive) != MOSQ_ERR_SUCCESS) return -1;
    if (!loop_started_) {
        mosquitto_loop_start(m_);
        loop_started_ = true;
    }
    if (!wait_event([&] { return connack_ >= 0; })) return -1;
    std::lock_guard lk{mu_};
    return connack_;
}

int mosq_client::subscribe(std::string const& filter, int qos, int options) {
    int mid = 0;
    int rc = version_ == 5
                 ? mosquitto_subscribe_v5(m_, &mid, filter.c_str(), qos, options, nullptr)
                 : mosquitto_subscribe(m_, &mid, filter.c_str(), qos);
    if (rc != MOSQ_ERR_SUCCESS) throw std::runtime_error("mosquitto_subscribe failed");
    if (!wait_event([&] { return suback_.count(mid) > 0; }))
        throw std::runtime_error("no SUBACK for " + filter);
    std::lock_guard lk{mu_};
    return suback_[mid];
}

void mosq_client::publish(std::string const& topic, std::string const& payload, int qos,
                          bool retain) {
    int mid = 0;
    int rc = mosquitto_publish(m_, &mid, topic.c_str(), static_cast<int>(payload.size()),
                               payload.data(), qos, retain);
    if (rc != MOSQ_ERR_SUCCESS)
        throw std::runtime_error(std::string{"mosquitto_publish failed: "} + mosquitto_strerror(rc));
    if (!wait_event([&] { return published_.count(mid) > 0; }))
        throw std::runtime_error("publish not completed on " + topic);
}

bool mosq_client::publish_many(std::string const& topic, std::vector<std::string> const& payloads,
                               int qos, ms timeout) {
    std::vector<int> mids;
    mids.reserve(payloads.size());
    for (auto const& pl : payloads) {
        int mid = 0;
        int rc = mosquitto_publish(m_, &mid, topic.c_str(), static_cast<int>(pl.size()), pl.data(),
                                   qos, false);
        if (rc != MOSQ_ERR_SUCCESS)
            throw std::runtime_error(std::string{"mosquitto_publish failed: "} +
                                     mosquitto_strerror(rc));
        mids.push_back(mid);
    }
    return wait_event(
        [&] {
            for (int mid : mids)
                if (published_.count(mid) == 0) return false;
            return true;
        },
        timeout);
}

void mosq_client::disconnect() {
    mosquitto_disconnect(m_);
    if (loop_started_) {
        mosquitto_loop_stop(m_, false);
        loop_started_ = false;
    }
}

void mosq_client::will(std::string const& topic, std::string const& payload, int qos,
                       bool retain) {
    mosquitto_will_set(m_, topic.c_str(), static_cast<int>(payload.size()), payload.data(), qos,
                       retain);
}

// ----------------------------------------------------------------- HTTP ----

namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

// Decodes a chunked body; nullopt if it is incomplete or malformed.
std::optional<std::string> dechunk(std::string_view in) {
    std::string out;
    for (;;) {
        const auto eol = in.find("\r\n");
        if (eol == std::string_view::npos) return std::nullopt;
        std::size_t n = 0;
        try {
            n = std::stoul(std::string{in.substr(0, eol)}, nullptr, 16);  // ignores ";ext"
        } catch (std::exception const&) {
            return std::nullopt;
        }
        in.remove_prefix(eol + 2);
        if (n == 0) return out;  // trailers ignored
        if (in.size() < n + 2) return std::nullopt;
        out.append(in.substr(0, n));
        in.remove_prefix(n + 2);
    }
}

} // namespace

std::optional<std::string> http_response::header(std::string_view name) const {
    for (auto const& [k, v] : headers)
        if (iequals(k, name)) return v;
    return std::nullopt;
}

std::string http_response::describe() const {
    return "HTTP " + std::to_string(status) + " " + body;
}

http_response http_request(std::uint16_t port, std::string_view method, std::string_view target,
                           http_headers const& headers, std::string_view body, ms timeout) {
    http_response res;
    const int fd = tcp_connect(port);
    if (fd < 0) return res;
    std::string req;
    req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
    req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\nConnection: close\r\n";
    for (auto const& [k, v] : headers) req += k + ": " + v + "\r\n";
    if (!body.empty() || (method != "GET" && method != "HEAD"))
        req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n";
    req.append(body);

    const auto deadline = steady::now() + timeout;
    std::string_view left{req};
    while (!left.empty()) {
        const auto n = ::send(fd, left.data(), left.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // the server may answer early (e.g. 413) and close
        left.remove_prefix(static_cast<std::size_t>(n));
    }
    std::string raw;
    for (;;) {
        const auto wait = std::chrono::duration_cast<ms>(deadline - steady::now());
        if (wait.count() <= 0) break;
        pollfd pfd{fd, POLLIN, 0};
        const int r = ::poll(&pfd, 1, static_cast<int>(wait.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        char tmp[16384];
        const auto n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        raw.append(tmp, static_cast<std::size_t>(n));
    }
    ::close(fd);

    const auto head_end = raw.find("\r\n\r\n");
    if (head_end == std::string::npos || !raw.starts_with("HTTP/1.")) return res;
    std::string_view head{raw.data(), head_end};
    auto line_end = head.find("\r\n");
    const auto status_line = head.substr(0, line_end);
    const auto sp = status_line.find(' ');
    if (sp == std::string_view::npos) return res;
    int status = 0;
    try {
        status = std::stoi(std::string{status_line.substr(sp + 1, 3)});
    } catch (std::exception const&) {
        return res;
    }
    while (line_end != std::string_view::npos) {
        head.remove_prefix(line_end + 2);
        line_end = head.find("\r\n");
        const auto line = head.substr(0, line_end);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        auto value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        res.headers.emplace_back(std::string{line.substr(0, colon)}, std::string{value});
    }
    std::string_view rest{raw};
    rest.remove_prefix(head_end + 4);
    if (auto te = res.header("Transfer-Encoding"); te && iequals(*te, "chunked")) {
        auto decoded = dechunk(rest);
        if (!decoded) return http_response{};
        res.body = std::move(*decoded);
    } else if (auto cl = res.header("Content-Length")) {
        const auto n = std::stoul(*cl);
        if (rest.size() < n) return http_response{};
        res.body.assign(rest.substr(0, n));
    } else {
        res.body.assign(rest);
    }
    res.status = status;
    return res;
}

http_response rest_session::call(std::string_view method, std::string_view target,
                                 std::string_view body) const {
    http_headers h;
    if (!cookie.empty()) h.emplace_back("Cookie", cookie);
    if (!csrf.empty()) h.emplace_back("X-CSRF-Token", csrf);
    if (!bearer.empty()) h.emplace_back("Authorization", "Bearer " + bearer);
    if (!body.empty()) h.emplace_back("Content-Type", "application/json");
    return http_request(port, method, target, h, body);
}

rest_session rest_login(std::uint16_t port, std::string_view user, std::string_view password) {
    const std::string body =
        "{\"username\":" + json_quote(user) + ",\"password\":" + json_quote(password) + "}";
    auto res = http_request(port, "POST", "/api/v1/auth/login", {{"Content-Type", "application/json"}}, body);
    auto fail = [&](std::string_view why) {
        return std::runtime_error("login as " + std::string{user} + ": " + std::string{why} + ": " +
                                  res.describe());
    };
    if (res.status != 200) throw fail("not 200");
    auto v = parse_json(res.body);
    if (!v || (*v)["csrf_token"].str().empty()) throw fail("no csrf_token");
    auto set_cookie = res.header("Set-Cookie");
    if (!set_cookie) throw fail("no Set-Cookie");
    rest_session s;
    s.port = port;
    s.csrf = (*v)["csrf_token"].str();
    s.cookie = set_cookie->substr(0, set_cookie->find(';'));
    return s;
}

// ----------------------------------------------------------------- JSON ----

namespace {
json_value const& json_null() {
    static json_value const v;
    return v;
}
} // namespace

json_value const& json_value::operator[](std::string_view key) const {
    if (kind_ != kind::object) return json_null();
    for (std::size_t i = 0; i < keys_.size(); ++i)
        if (keys_[i] == key) return items_[i];
    return json_null();
}

json_value const& json_value::operator[](std::size_t index) const {
    if (kind_ != kind::array || index >= items_.size()) return json_null();
    return items_[index];
}

bool json_value::contains(std::string_view key) const {
    if (kind_ != kind::object) return false;
    for (auto const& k : keys_)
        if (k == key) return true;
    return false;
}

std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                out += buf;
            } else {
                out.push_back(c);
            }
        }
    }
    return out + "\"";
}

std::string json_value::dump() const {
    switch (kind_) {
    case kind::null: return "null";
    case kind::boolean: return boolean_ ? "true" : "false";
    case kind::number: {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", number_);
        return buf;
    }
    case kind::string: return json_quote(text_);
    case kind::array: {
        std::string out = "[";
        for (std::size_t i = 0; i < items_.size(); ++i) out += (i ? "," : "") + items_[i].dump();
        return out + "]";
    }
    case kind::object: {
        std::string out = "{";
        for (std::size_t i = 0; i < items_.size(); ++i)
            out += (i ? "," : "") + json_quote(keys_[i]) + ":" + items_[i].dump();
        return out + "}";
    }
    }
    return "null";
}

// Recursive descent over RFC 8259; depth-limited so a hostile body cannot
// overflow the stack.
class json_parser {
public:
    explicit json_parser(std::string_view s) : s_(s) {}

    std::optional<json_value> document() {
        json_value v;
        if (!value(v, 0)) return std::nullopt;
        ws();
        if (pos_ != s_.size()) return std::nullopt;
        return v;
    }

private:
    void ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
            ++pos_;
    }
    bool literal(std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }
    static void utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | cp >> 6));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | cp >> 12));
            out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | cp >> 18));
            out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }
    bool hex4(std::uint32_t& v) {
        if (pos_ + 4 > s_.size()) return false;
        v = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = s_[pos_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
            else return false;
        }
        return true;
    }
    bool string(std::string& out) {
        if (pos_ >= s_.size() || s_[pos_] != '"') return false;
        ++pos_;
        while (pos_ < s_.size()) {
            const char c = s_[pos_++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return false;
            if (c != '\\') {
                out.push_back(c);
                continue;
            }
            if (pos_ >= s_.size()) return false;
            switch (s_[pos_++]) {
            case '"': out.push_back('"'); break;
            case '\\': out.push_back('\\'); break;
            case '/': out.push_back('/'); break;
            case 'b': out.push_back('\b'); break;
            case 'f': out.push_back('\f'); break;
            case 'n': out.push_back('\n'); break;
            case 'r': out.push_back('\r'); break;
            case 't': out.push_back('\t'); break;
            case 'u': {
                std::uint32_t cp = 0;
                if (!hex4(cp)) return false;
                if (cp >= 0xD800 && cp < 0xDC00) {
                    std::uint32_t lo = 0;
                    if (!literal("\\u") || !hex4(lo) || lo < 0xDC00 || lo >= 0xE000) return false;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                utf8(out, cp);
                break;
            }
            default: return false;
            }
        }
        return false;
    }
    bool number(double& out) {
        const std::size_t start = pos_;
        if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
        const auto digits = [&] {
            const std::size_t from = pos_;
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
            return pos_ > from;
        };
        if (!digits()) return false;
        if (pos_ < s_.size() && s_[pos_] == '.') {
            ++pos_;
            if (!digits()) return false;
        }
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            ++pos_;
            if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
            if (!digits()) return false;
        }
        out = std::strtod(std::string{s_.substr(start, pos_ - start)}.c_str(), nullptr);
        return true;
    }
    bool value(json_value& v, int depth) {
        if (depth > 64) return false;
        ws();
        if (pos_ >= s_.size()) return false;
        const char c = s_[pos_];
        if (c == '{') {
            ++pos_;
            v.kind_ = json_value::kind::object;
            ws();
            if (pos_ < s_.size() && s_[pos_] == '}') {
                ++pos_;
                return true;
            }
            for (;;) {
                ws();
                std::string key;
                if (!string(key)) return false;
                ws();
                if (pos_ >= s_.size() || s_[pos_++] != ':') return false;
                json_value item;
                if (!value(item, depth + 1)) return false;
                v.keys_.push_back(std::move(key));
                v.items_.push_back(std::move(item));
                ws();
                if (pos_ >= s_.size()) return false;
                if (s_[pos_] == ',') {
                    ++pos_;
                    continue;
                }
                if (s_[pos_++] != '}') return false;
                return true;
            }
        }
        if (c == '[') {
            ++pos_;
            v.kind_ = json_value::kind::array;
            ws();
            if (pos_ < s_.size() && s_[pos_] == ']') {
                ++pos_;
                return true;
            }
            for (;;) {
                json_value item;
                if (!value(item, depth + 1)) return false;
                v.items_.push_back(std::move(item));
                ws();
                if (pos_ >= s_.size()) return false;
                if (s_[pos_] == ',') {
                    ++pos_;
                    continue;
                }
                if (s_[pos_++] != ']') return false;
                return true;
            }
        }
        if (c == '"') {
            v.kind_ = json_value::kind::string;
            return string(v.text_);
        }
        if (literal("true")) {
            v.kind_ = json_value::kind::boolean;
            v.boolean_ = true;
            return true;
        }
        if (literal("false")) {
            v.kind_ = json_value::kind::boolean;
            return true;
        }
        if (literal("null")) return true;
        v.kind_ = json_value::kind::number;
        return number(v.number_);
    }

    std::string_view s_;
    std::size_t pos_ = 0;
};

std::optional<json_value> parse_json(std::string_view text) { return json_parser{text}.document(); }

// ------------------------------------------------------- child process ----

child_process::child_process(std::vector<std::string> argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
    }
    pid_ = pid;
    fd_ = fds[0];
}

child_process::~child_process() {
    kill();
    if (fd_ >= 0) ::close(fd_);
}

void child_process::terminate() {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGTERM);
        int st = 0;
        if (!wait_pid(pid_, 10s, &st)) {
            ::kill(pid_, SIGKILL);
            wait_pid(pid_, 10s, &st);
        }
        status_ = st;
    }
}

void child_process::send_signal(int sig) {
    if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

void child_process::kill() {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        wait_pid(pid_, 10s, &st);
        status_ = -1;
    }
}

bool child_process::pump(steady::time_point deadline) {
    if (fd_ < 0) return false;
    auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
    if (left.count() < 0) left = ms{0};
    pollfd pfd{fd_, POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r <= 0) return true;
    char tmp[4096];
    ssize_t n = ::read(fd_, tmp, sizeof tmp);
    if (n <= 0) {
        ::close(fd_);
        fd_ = -1;
        return false;
    }
    out_.append(tmp, static_cast<std::size_t>(n));
    return true;
}

bool child_process::read_until(std::string_view needle, ms timeout) {
    auto deadline = steady::now() + timeout;
    while (out_.find(needle) == std::string::npos) {
        if (steady::now() >= deadline) return false;
        if (!pump(deadline)) return out_.find(needle) != std::string::npos;
    }
    return true;
}

std::optional<int> child_process::wait(ms timeout) {
    auto deadline = steady::now() + timeout;
    while (fd_ >= 0 && steady::now() < deadline) pump(deadline);
    if (status_) return status_;
    int st = 0;
    auto left = std::chrono::duration_cast<ms>(deadline - steady::now());
    if (left.count() < 0) left = ms{0};
    if (!wait_pid(pid_, left, &st)) return std::nullopt;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
}

process_result run_process(std::vector<std::string> argv, ms timeout) {
    child_process p{std::move(argv)};
    process_result r;
    r.exit_code = p.wait(timeout);
    if (!r.exit_code) p.kill();
    r.output = p.output();
    return r;
}

std::size_t occurrences(std::string const& haystack, std::string_view needle) {
    std::size_t n = 0;
    for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
    return n;
}

} // namespace pulsegate::itest
