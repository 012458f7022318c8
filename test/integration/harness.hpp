#pragma once
// Harness for the integration suite: a broker started as a child process
// (pulsegate, or Debian's mosquitto as the reference), real MQTT clients
// (Paho C++, libmosquitto, mosquitto_pub/sub) and a raw-socket client that
// sends and reads exact bytes.
//
// Broker selection (at run time, per process):
//   PULSEGATE_TEST_BROKER=mosquitto  -> /usr/sbin/mosquitto -c FILE
//   otherwise                        -> $PULSEGATE_BIN serve --config FILE,
//                                       or MESON_BUILD_ROOT/daemon/pulsegate
// Every test must pass against mosquitto 2.0.11 unless it says why not and is
// made conditional with is_mosquitto().
//
// Nothing here sleeps a fixed time to wait for an event: every wait is on a
// condition with a deadline. The one bounded "quiet window" (quiet_window)
// is used only after a sentinel proved that the path is flushed.
//
// Thread safety: broker_process, raw_client and child_process belong to the
// test thread. paho_client and mosq_client deliver messages from library
// threads into a message_queue, which is the only shared object.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <mqtt/async_client.h>

struct mosquitto;
struct mosquitto_message;

namespace pulsegate::itest {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

// How long tests wait for something that must happen: generous, because the
// suite runs on a loaded 2-core machine. Waiting for it costs nothing when
// the event comes.
inline constexpr ms event_timeout{5000};
// How long a test watches for something that must NOT happen, after a
// sentinel published later on the same path has already arrived.
inline constexpr ms quiet_window{300};

// ---------------------------------------------------------------- broker ---

enum class broker_kind { pulsegate, mosquitto };
broker_kind selected_broker();
inline bool is_mosquitto() { return selected_broker() == broker_kind::mosquitto; }
inline bool is_pulsegate() { return selected_broker() == broker_kind::pulsegate; }

// Settings translated to both brokers' configs. Unset optionals leave the
// broker default (the key is not written).
struct broker_options {
    bool allow_anonymous = true;
    // pulsegate only: tenant tree anonymous clients are mounted in; "" means
    // the unmounted root tree (needed to see $SYS).
    std::string anonymous_tenant = "default";
    std::optional<std::uint32_t> max_packet_size;
    std::optional<std::uint32_t> max_queued_messages;
    // Outbound QoS 1/2 window per session (mosquitto: max_inflight_messages).
    std::optional<std::uint16_t> max_inflight;
    // Inbound Receive Maximum advertised in the v5 CONNACK. mosquitto has no
    // separate key: it advertises max_inflight_messages, so this maps there
    // (and wins over max_inflight when both are set).
    std::optional<std::uint16_t> receive_maximum;
    std::optional<std::uint16_t> topic_alias_maximum;  // mosquitto: max_topic_alias
    std::optional<std::uint16_t> max_keepalive;
    std::optional<std::uint32_t> max_connections;
    // pulsegate only (mosquitto 2.0 has no such setting).
    std::optional<std::uint32_t> connect_timeout_ms;
    std::optional<std::uint32_t> sys_interval_s;
    // pulsegate only: extra `key = value` lines for [storage].
    std::string storage_toml;
    // pulsegate only: `key = value` lines for [rules] (e.g.
    // "heartbeat_grace_s = 0"); empty: the section is not written.
    std::string rules_toml;
    // pulsegate only: more `key = value` lines for [http] (listen is
    // 127.0.0.1:0), and lines for [tls] (section not written when empty).
    std::string http_toml;
    // pulsegate only: more `key = value` lines for [mqtt].
    std::string mqtt_toml;
    std::string tls_toml;
    // pulsegate only: `key = value` lines for [delivery] (e.g.
    // "allow_private_targets = [\"127.0.0.0/8\"]").
    std::string delivery_toml;
    // pulsegate only: when set, `pulsegate init --admin-password-file` runs
    // before the first start, so the operator_admin `admin` has this
    // password (at least 8 characters). Unset: `serve` initialises the data
    // dir itself with a generated password nobody reads.
    std::optional<std::string> admin_password;
    // pulsegate only: appended to the file as is (e.g. [[bridge]] tables).
    std::string extra_toml;
    // pulsegate only: more arguments after `serve --config FILE` (e.g.
    // "--demo"), at every start.
    std::vector<std::string> serve_args;
};

// The daemon binary: $PULSEGATE_BIN, else MESON_BUILD_ROOT/daemon/pulsegate.
std::string pulsegate_binary();

// A broker child process on 127.0.0.1:<free port> with its config, data and
// log in a fresh temp dir (removed on destruction unless the test failed).
// Construction throws std::runtime_error (after printing the log) when the
// broker does not accept connections within 15 s.
// On destruction: SIGTERM, wait up to 10 s, SIGKILL; the broker log goes to
// stderr when the current doctest test case has a failed assertion.
class broker_process {
public:
    explicit broker_process(broker_options opts = {});
    ~broker_process();
    broker_process(broker_process const&) = delete;
    broker_process& operator=(broker_process const&) = delete;

    std::uint16_t port() const { return port_; }
    broker_options const& options() const { return opts_; }
    // "tcp://127.0.0.1:PORT" for Paho.
    std::string uri() const;
    std::string const& dir() const { return dir_; }
    // pulsegate: [storage] data_dir.
    std::string data_dir() const { return dir_ + "/data"; }
    // pulsegate: the HTTP port of the last start, from the daemon's log line
    // "listening proto=http addr=127.0.0.1:PORT", waiting up to 15 s for it;
    // throws std::runtime_error when none comes.
    std::uint16_t http_port() const;
    // The same port, waiting up to `timeout` for the line of the last start
    // (the daemon opens HTTP just after the MQTT listener that start() waits
    // for); throws std::runtime_error when none comes.
    std::uint16_t wait_http_port(ms timeout = 15s) const;
    // Any listener's port from its "listening proto=PROTO addr=127.0.0.1:PORT"
    // line of the last start ("mqtts", "https", ...), waiting like wait_http_port.
    std::uint16_t wait_port(std::string_view proto, ms timeout = 15s) const;

    // SIGTERM and wait for exit (clean shutdown); returns the wait status.
    // Anything but exit status 0 within 10 s fails the current test: that is
    // how a sanitizer's report at shutdown reaches it. The destructor stops.
    int stop();
    // SIGKILL: no chance to flush anything.
    void kill9();
    // stop() if running, then start again on the same port and data dir.
    void restart();
    bool running() const { return pid_ > 0; }
    int pid() const { return pid_; }
    std::string log_text() const;

private:
    void start();
    void write_config();
    void init_admin();  // opts_.admin_password: `pulsegate init` before the first start

    broker_options opts_;
    std::string dir_;
    std::string config_path_;
    std::string log_path_;
    std::uint16_t port_ = 0;
    int pid_ = -1;
    std::size_t start_log_offset_ = 0;  // log size when the last start began
};

// True when the current doctest test case has a failed assertion so far.
bool current_test_failed();

// ---------------------------------------------------------------- bytes ----

// Hex string (spaces ignored) to bytes, and bytes to "0a 1b ..." for messages.
std::string from_hex(std::string_view hex);
std::string to_hex(std::string_view bytes);

namespace raw {

enum packet_type : std::uint8_t {
    connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp,
    subscribe, suback, unsubscribe, unsuback, pingreq, pingresp, disconnect, auth
};

std::string varint(std::uint32_t v);
std::string u16(std::uint16_t v);
std::string u32(std::uint32_t v);
std::string str(std::string_view s);  // 2-byte length + bytes

// MQTT v5 property list builder (bytes without the length prefix).
class props {
public:
    props& byte(std::uint8_t id, std::uint8_t v);
    props& two(std::uint8_t id, std::uint16_t v);
    props& four(std::uint8_t id, std::uint32_t v);
    props& var(std::uint8_t id, std::uint32_t v);
    props& text(std::uint8_t id, std::string_view v);  // string or binary
    props& user(std::string_view k, std::string_view v);
    std::string const& bytes() const { return b_; }
    // varint length + bytes, as it goes on the wire.
    std::string encoded() const { return varint(static_cast<std::uint32_t>(b_.size())) + b_; }

private:
    std::string b_;
};

// Property ids used by the tests.
namespace prop {
inline constexpr std::uint8_t payload_format = 0x01, message_expiry = 0x02,
    content_type = 0x03, response_topic = 0x08, correlation_data = 0x09,
    subscription_id = 0x0B, session_expiry = 0x11, assigned_client_id = 0x12,
    server_keep_alive = 0x13, request_problem_info = 0x17, will_delay = 0x18,
    reason_string = 0x1F, receive_maximum = 0x21, topic_alias_maximum = 0x22,
    topic_alias = 0x23, maximum_qos = 0x24, user_property = 0x26,
    maximum_packet_size = 0x27;
}

// Parsed v5 property list. Values keep their wire form; accessors decode.
struct property_list {
    std::vector<std::pair<std::uint8_t, std::string>> items;  // in wire order
    bool has(std::uint8_t id) const;
    std::optional<std::uint32_t> integer(std::uint8_t id) const;  // byte/2/4/varint
    std::vector<std::uint32_t> integers(std::uint8_t id) const;   // every occurrence
    std::optional<std::string> text(std::uint8_t id) const;       // string/binary
    std::vector<std::pair<std::string, std::string>> user() const;
};

struct will_spec {
    std::string topic;
    std::string payload;
    std::uint8_t qos = 0;
    bool retain = false;
    props properties;  // v5 only
};

struct connect_spec {
    std::uint8_t version = 4;  // 4 = 3.1.1, 5 = 5.0
    std::string client_id;
    bool clean = true;
    std::uint16_t keep_alive = 60;
    props properties;  // v5 only
    std::optional<will_spec> will;
    std::optional<std::string> username;
    std::optional<std::string> password;
};

// Shorthand for the common case.
connect_spec spec(std::uint8_t version, std::string client_id, bool clean = true,
                  std::uint16_t keep_alive = 60);

std::string connect_packet(connect_spec const& c);
// props is ignored for version 4; for version 5 an empty list is written.
std::string publish_packet(std::uint8_t version, std::string_view topic,
                           std::string_view payload, std::uint8_t qos = 0,
                           std::uint16_t packet_id = 0, bool retain = false,
                           bool dup = false, props const& p = {});
// filters: (filter, subscription options byte: qos | nl<<2 | rap<<3 | rh<<4)
std::string subscribe_packet(std::uint8_t version, std::uint16_t packet_id,
                             std::vector<std::pair<std::string, std::uint8_t>> const& filters,
                             props const& p = {});
std::string unsubscribe_packet(std::uint8_t version, std::uint16_t packet_id,
                               std::vector<std::string> const& filters);
// PUBACK/PUBREC/PUBREL/PUBCOMP; reason code written only when non-zero (v5).
std::string ack_packet(packet_type type, std::uint16_t packet_id, std::uint8_t reason = 0);
std::string pingreq_packet();
std::string disconnect_packet(std::uint8_t version, std::uint8_t reason = 0,
                              props const& p = {});

// One packet as read off the socket.
struct packet {
    std::uint8_t type = 0;
    std::uint8_t flags = 0;
    std::string body;  // variable header + payload
    std::string describe() const;
};

// The first whole packet of `buf` (removed from it), or none yet.
std::optional<packet> take_packet(std::string& buf);

struct connack_view {
    bool session_present = false;
    std::uint8_t reason = 0;  // 3.1.1 return code or v5 reason code
    property_list props;
};
struct publish_view {
    std::string topic;
    std::string payload;
    std::uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    std::uint16_t packet_id = 0;
    property_list props;
};
struct ack_view {  // PUBACK..PUBCOMP, UNSUBACK/SUBACK ids, DISCONNECT reason
    std::uint16_t packet_id = 0;
    std::uint8_t reason = 0;
    std::vector<std::uint8_t> reasons;  // SUBACK/UNSUBACK payload
    property_list props;
};

// Parsers throw std::runtime_error on malformed input (a test bug or a
// broker bug; either way the test fails loudly).
connack_view parse_connack(packet const& p, std::uint8_t version);
publish_view parse_publish(packet const& p, std::uint8_t version);
ack_view parse_ack(packet const& p, std::uint8_t version);
property_list parse_properties(std::string_view bytes);

} // namespace raw

// A blocking TCP client speaking exact bytes, for protocol-level tests.
class raw_client {
public:
    explicit raw_client(std::uint16_t port);
    ~raw_client();
    raw_client(raw_client const&) = delete;
    raw_client& operator=(raw_client const&) = delete;

    // Sends everything; false if the peer closed.
    bool send(std::string_view bytes);
    // Next packet, or nullopt on timeout or when the connection is closed
    // (see closed()).
    std::optional<raw::packet> read(ms timeout = event_timeout);
    // Next packet of `type`, keeping the skipped ones in skipped().
    std::optional<raw::packet> read_type(std::uint8_t type, ms timeout = event_timeout);
    // Waits for the broker to close the connection; packets read meanwhile
    // are kept in skipped(). True if closed within the timeout.
    bool wait_closed(ms timeout = event_timeout);
    bool closed() const { return closed_; }
    std::vector<raw::packet>& skipped() { return skipped_; }
    // Close without DISCONNECT (the broker sees EOF: abnormal disconnect).
    void close();

    // Connect with `c` and return the CONNACK (nullopt if none came).
    std::optional<raw::connack_view> handshake(raw::connect_spec const& c);
    std::uint8_t version() const { return version_; }

private:
    int fd_ = -1;
    bool closed_ = false;
    std::uint8_t version_ = 4;
    std::string buf_;
    std::vector<raw::packet> skipped_;
};

// ------------------------------------------------------ real MQTT clients --

struct message {
    std::string topic;
    std::string payload;
    int qos = 0;
    bool retain = false;
    std::vector<std::pair<std::string, std::string>> user_properties;
    std::vector<std::uint32_t> subscription_ids;
};

// Thread-safe FIFO filled by client callbacks.
class message_queue {
public:
    void push(message m);
    std::optional<message> pop(ms timeout = event_timeout);
    // Pops until a message on `topic` arrives; returns every message popped
    // before it, or nullopt on timeout (popped messages are then lost).
    std::optional<std::vector<message>> pop_until_topic(std::string_view topic,
                                                        ms timeout = event_timeout);
    // Like pop_until_topic, but also keeps what arrives within quiet_window
    // after the sentinel (a QoS 2 message may reach the application after a
    // later QoS 0/1 one: libmosquitto delivers it on PUBREL). The sentinel
    // itself is not returned.
    std::optional<std::vector<message>> collect_until_sentinel(std::string_view topic,
                                                               ms timeout = event_timeout);
    // Waits for n messages (or timeout) and returns what arrived.
    std::vector<message> pop_n(std::size_t n, ms timeout = event_timeout);
    std::size_t size() const;

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<message> q_;
};

// A free TCP port on 127.0.0.1 (for servers the test starts itself).
std::uint16_t free_tcp_port();

// Paho C++ async_client used synchronously: every call waits for its token
// (event_timeout) and throws mqtt::exception on failure.
class paho_client {
public:
    paho_client(broker_process const& b, std::string client_id, int version = 4);
    // To another address: "ws://127.0.0.1:PORT/mqtt", "ssl://...".
    paho_client(std::string const& server_uri, std::string client_id, int version = 4);
    ~paho_client();

    mqtt::async_client& raw() { return cli_; }
    // Returns session present. clean = clean session (v3) / clean start (v5).
    bool connect(bool clean = true, mqtt::properties props = {});
    bool connect(mqtt::connect_options opts);
    void subscribe(std::string const& filter, int qos,
                   mqtt::subscribe_options so = {}, mqtt::properties props = {});
    void unsubscribe(std::string const& filter);
    void publish(std::string const& topic, std::string const& payload, int qos = 0,
                 bool retain = false, mqtt::properties props = {});
    void disconnect();
    bool connected() { return cli_.is_connected(); }
    message_queue& messages() { return q_; }
    int version() const { return version_; }

private:
    int version_;
    mqtt::async_client cli_;
    message_queue q_;
};

// libmosquitto client with its own network thread (mosquitto_loop_start).
class mosq_client {
public:
    mosq_client(std::string client_id, int version = 4, bool clean = true);
    ~mosq_client();
    mosq_client(mosq_client const&) = delete;
    mosq_client& operator=(mosq_client const&) = delete;

    // User name and password of the following connect()s.
    void credentials(std::string const& user, std::string const& password);
    // Returns the CONNACK reason (0 = accepted), or -1 if none came.
    int connect(std::uint16_t port, int keep_alive = 60);
    // Waits for SUBACK; returns the granted QoS / reason.
    int subscribe(std::string const& filter, int qos, int options = 0);
    // Waits until the QoS 1/2 handshake completes (QoS 0: until written).
    void publish(std::string const& topic, std::string const& payload, int qos = 0,
                 bool retain = false);
    // Publishes all payloads back to back (libmosquitto queues them) and
    // waits until every one completed its QoS handshake. Returns false on
    // timeout.
    bool publish_many(std::string const& topic, std::vector<std::string> const& payloads,
                      int qos, ms timeout = 60s);
    void disconnect();
    void will(std::string const& topic, std::string const& payload, int qos, bool retain);
    message_queue& messages() { return q_; }
    ::mosquitto* handle() { return m_; }

private:
    static void on_connect(::mosquitto*, void*, int, int, void const*);
    static void on_subscribe(::mosquitto*, void*, int, int, int const*, void const*);
    static void on_publish(::mosquitto*, void*, int, int, void const*);
    static void on_message(::mosquitto*, void*, ::mosquitto_message const*, void const*);
    bool wait_event(std::function<bool()> const& pred, ms timeout = event_timeout);

    ::mosquitto* m_ = nullptr;
    int version_;
    message_queue q_;
    std::mutex mu_;
    std::condition_variable cv_;
    int connack_ = -1;
    std::map<int, int> suback_;  // mid -> first granted qos
    std::map<int, bool> published_;
    bool loop_started_ = false;
};

// ------------------------------------------------------------------ HTTP --

// One HTTP/1.1 exchange on 127.0.0.1 with Connection: close, for the
// daemon's REST API. Headers are kept in order; names compare
// case-insensitively. A chunked body is decoded.
struct http_response {
    int status = 0;  // 0: no (complete) response within the timeout
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    // The first header called `name`, or nullopt.
    std::optional<std::string> header(std::string_view name) const;
    // "HTTP 404 {...body...}", for failure messages.
    std::string describe() const;
};

using http_headers = std::vector<std::pair<std::string, std::string>>;

// Sends `method target` with `headers` (Host, Connection and, when there is
// a body or the method is not GET/HEAD, Content-Length are added) and reads
// the whole response. Argon2 logins on a loaded machine can be slow, hence
// the longer default timeout.
http_response http_request(std::uint16_t port, std::string_view method, std::string_view target,
                           http_headers const& headers = {}, std::string_view body = {},
                           ms timeout = 30s);
inline http_response http_get(std::uint16_t port, std::string_view target,
                              http_headers const& headers = {}) {
    return http_request(port, "GET", target, headers);
}

// REST API of the daemon as one caller: a web session (cookie + CSRF token,
// from rest_login) or an API token (bearer). Every call is one
// http_request; Content-Type: application/json is sent with a body.
struct rest_session {
    std::uint16_t port = 0;
    std::string cookie;  // "pulsegate_session=..."
    std::string csrf;    // sent as X-CSRF-Token with the cookie
    std::string bearer;  // API token

    http_response call(std::string_view method, std::string_view target, std::string_view body = {}) const;
    http_response get(std::string_view target) const { return call("GET", target); }
    http_response post(std::string_view target, std::string_view body = {}) const {
        return call("POST", target, body);
    }
    http_response put(std::string_view target, std::string_view body) const { return call("PUT", target, body); }
    http_response patch(std::string_view target, std::string_view body) const {
        return call("PATCH", target, body);
    }
    http_response del(std::string_view target) const { return call("DELETE", target); }
};

// POST /api/v1/auth/login; throws std::runtime_error (naming the answer)
// unless it is 200 with a csrf_token and a session cookie.
rest_session rest_login(std::uint16_t port, std::string_view user, std::string_view password);

// ------------------------------------------------------------------ JSON --

// A parsed JSON document, for reading REST responses in tests. Looking up a
// missing member or element yields a null value (never throws), so chains
// like v["user"]["role"].str() are safe; a failed check then names the value.
class json_value {
public:
    enum class kind { null, boolean, number, string, array, object };

    kind type() const { return kind_; }
    bool is_null() const { return kind_ == kind::null; }
    bool is_object() const { return kind_ == kind::object; }
    bool is_array() const { return kind_ == kind::array; }
    bool is_string() const { return kind_ == kind::string; }
    bool is_number() const { return kind_ == kind::number; }
    bool is_bool() const { return kind_ == kind::boolean; }

    // Object member / array element; null when absent or of another kind.
    json_value const& operator[](std::string_view key) const;
    json_value const& operator[](std::size_t index) const;
    bool contains(std::string_view key) const;
    // Array elements or object members (0 for scalars).
    std::size_t size() const { return items_.size(); }
    // Array elements, or object values in document order.
    std::vector<json_value> const& items() const { return items_; }
    std::vector<std::string> const& keys() const { return keys_; }  // object only

    std::string const& str() const { return text_; }  // "" unless a string
    double num() const { return number_; }            // 0 unless a number
    bool boolean() const { return boolean_; }          // false unless a bool
    // Compact JSON text (numbers as %.17g), for messages.
    std::string dump() const;

private:
    friend class json_parser;
    kind kind_ = kind::null;
    bool boolean_ = false;
    double number_ = 0;
    std::string text_;
    std::vector<std::string> keys_;
    std::vector<json_value> items_;
};

// nullopt when `text` is not one complete JSON value.
std::optional<json_value> parse_json(std::string_view text);
// The JSON text quoted as a string literal ("a\"b"), for building bodies.
std::string json_quote(std::string_view s);

// ------------------------------------------------------ child processes ---

// A child process with stdout+stderr captured through a pipe.
class child_process {
public:
    explicit child_process(std::vector<std::string> argv);
    ~child_process();  // SIGKILL if still running
    child_process(child_process const&) = delete;
    child_process& operator=(child_process const&) = delete;

    // Reads output until it contains `needle` (true) or timeout/EOF (false).
    bool read_until(std::string_view needle, ms timeout = event_timeout);
    // Waits for exit, reading output meanwhile; nullopt on timeout.
    std::optional<int> wait(ms timeout = event_timeout);
    std::string const& output() const { return out_; }
    void kill();
    // SIGTERM and wait for exit (up to 10 s, then SIGKILL).
    void terminate();
    // Sends `sig` and returns at once (wait() for the exit).
    void send_signal(int sig);

private:
    bool pump(steady::time_point deadline);  // false on EOF
    int pid_ = -1;
    int fd_ = -1;
    std::optional<int> status_;
    std::string out_;
};

struct process_result {
    std::optional<int> exit_code;  // nullopt: killed after timeout
    std::string output;
};
process_result run_process(std::vector<std::string> argv, ms timeout = event_timeout);

// How many times `needle` occurs in `haystack` (a log, an output).
std::size_t occurrences(std::string const& haystack, std::string_view needle);

} // namespace pulsegate::itest
