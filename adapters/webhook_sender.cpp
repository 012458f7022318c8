#include "adapters/webhook_sender.hpp"
#include "common/json_text.hpp"

#include "common/time.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <set>

namespace pulsegate::adapters {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr std::int64_t default_timeout_ms = 5000;
constexpr std::size_t max_response_body = 64 * 1024;

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string text_or(const json::object& o, std::string_view key, std::string_view fallback = {}) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string(fallback);
}

bool fail(std::string* why, std::string text) {
    if (why)
        *why = std::move(text);
    return false;
}

// Headers pulsegate sets itself, or that would change the framing.
bool reserved_header(std::string_view name) {
    std::string lower(name);
    for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    static const std::set<std::string, std::less<>> reserved = {
        "host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade",
        "idempotency-key", "expect", "trailer", "keep-alive", "proxy-connection"};
    return reserved.contains(lower) || lower.starts_with("x-pulsegate-");
}

bool token_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string fingerprint(const alert_message& m) {
    // 16 hex digits of BLAKE2b over what identifies the alert (like
    // Alertmanager's label fingerprint).
    const std::string id = m.tenant + "/" + m.device + "/" + std::to_string(m.rule_id) + "/" + std::to_string(m.alert_id);
    std::array<unsigned char, 8> h{};
    crypto_generichash(h.data(), h.size(), reinterpret_cast<const unsigned char*>(id.data()), id.size(), nullptr, 0);
    std::array<char, 17> hex{};
    sodium_bin2hex(hex.data(), hex.size(), h.data(), h.size());
    return std::string(hex.data(), 16);
}

std::string alertmanager_body(const alert_message& m, std::string_view receiver) {
    const bool resolved = m.status == "closed";
    json::object labels;
    labels["alertname"] = m.rule_name.empty() ? (m.kind.empty() ? "pulsegate" : m.kind) : m.rule_name;
    labels["severity"] = m.severity;
    labels["device"] = m.device;
    labels["tenant"] = m.tenant;
    labels["kind"] = m.kind;
    labels["rule_id"] = std::to_string(m.rule_id);
    if (!m.metric.empty())
        labels["metric"] = m.metric;
    for (const auto& [k, v] : m.labels)
        if (!labels.contains(k))
            labels[k] = v;
    json::object annotations;
    annotations["summary"] = m.message;
    annotations["description"] = m.message;
    if (m.value)
        annotations["value"] = format_value(m.value);
    if (m.threshold)
        annotations["threshold"] = format_value(m.threshold);
    annotations["event"] = m.event;
    annotations["alert_id"] = std::to_string(m.alert_id);
    json::object alert;
    alert["status"] = resolved ? "resolved" : "firing";
    alert["labels"] = labels;
    alert["annotations"] = annotations;
    alert["startsAt"] = m.opened_at.empty() ? m.at : m.opened_at;
    alert["endsAt"] = resolved && !m.closed_at.empty() ? m.closed_at : "0001-01-01T00:00:00Z";
    alert["generatorURL"] = "";
    alert["fingerprint"] = fingerprint(m);
    json::object group_labels;
    group_labels["alertname"] = labels["alertname"];
    json::object o;
    o["version"] = "4";
    o["groupKey"] = "{}:{alertname=" + common::to_json_text(labels["alertname"]) + ",device=\"" + m.device + "\"}";
    o["truncatedAlerts"] = 0;
    o["status"] = resolved ? "resolved" : "firing";
    o["receiver"] = receiver;
    o["groupLabels"] = std::move(group_labels);
    o["commonLabels"] = std::move(labels);
    o["commonAnnotations"] = std::move(annotations);
    o["externalURL"] = "";
    json::array alerts;
    alerts.push_back(std::move(alert));
    o["alerts"] = std::move(alerts);
    return common::to_json_text(o);
}

struct exchange_result {
    beast::error_code ec;
    std::string stage; // connect, tls, write, read
    unsigned status = 0;
    std::string body_start;
};

} // namespace

bool validate_webhook(const json::object& config, const json::object& secrets, std::string* why) {
    const auto* url = config.if_contains("url");
    if (url == nullptr || !url->is_string() || url->get_string().empty())
        return fail(why, "config.url is required: the http:// or https:// address to POST alerts to");
    auto u = boost::urls::parse_absolute_uri(std::string_view(url->get_string()));
    if (!u || (u->scheme() != "http" && u->scheme() != "https"))
        return fail(why, "config.url must be an http:// or https:// URL, e.g. \"https://hooks.example.com/alerts\"");
    if (u->encoded_host().empty())
        return fail(why, "config.url has no host");
    if (u->has_userinfo())
        return fail(why, "config.url must not carry a user name or password; use config.headers "
                         "(e.g. Authorization) or secrets.secret");
    if (u->has_port() && (u->port_number() == 0))
        return fail(why, "config.url has an invalid port (1..65535)");
    if (const auto* f = config.if_contains("format"); f != nullptr && !f->is_null()) {
        if (!f->is_string() || (f->get_string() != "pulsegate" && f->get_string() != "alertmanager"))
            return fail(why, "config.format must be \"pulsegate\" or \"alertmanager\"");
    }
    if (const auto* h = config.if_contains("headers"); h != nullptr && !h->is_null()) {
        if (!h->is_object())
            return fail(why, "config.headers must be an object of header names to string values");
        for (const auto& [k, v] : h->get_object()) {
            const std::string_view name(k);
            if (name.empty() || !std::all_of(name.begin(), name.end(), token_char))
                return fail(why, "config.headers: \"" + std::string(name) + "\" is not a valid header name");
            if (reserved_header(name))
                return fail(why, "config.headers." + std::string(name) + " is set by pulsegate and cannot be overridden");
            if (!v.is_string())
                return fail(why, "config.headers." + std::string(name) + " must be a string");
            const std::string_view val(v.get_string());
            if (val.find_first_of("\r\n") != std::string_view::npos || val.find('\0') != std::string_view::npos)
                return fail(why, "config.headers." + std::string(name) + " must not contain line breaks");
        }
    }
    if (const auto* t = config.if_contains("timeout_ms"); t != nullptr && !t->is_null()) {
        if (!t->is_int64() || t->get_int64() < 100 || t->get_int64() > 60000)
            return fail(why, "config.timeout_ms must be an integer from 100 to 60000");
    }
    if (const auto* c = config.if_contains("ca_file"); c != nullptr && !c->is_null() && !c->is_string())
        return fail(why, "config.ca_file must be the path of a PEM file");
    if (const auto* i = config.if_contains("insecure"); i != nullptr && !i->is_null() && !i->is_bool())
        return fail(why, "config.insecure must be true or false");
    if (const auto* s = secrets.if_contains("secret"); s != nullptr && !s->is_null() && !s->is_string())
        return fail(why, "secrets.secret must be a string");
    for (const auto& [k, v] : secrets) {
        (void)v;
        if (k != "secret")
            return fail(why, "secrets." + std::string(k) + " is not a webhook secret; the only one is secrets.secret");
    }
    return true;
}

std::string webhook_signature(std::string_view secret, std::string_view body) {
    std::array<unsigned char, crypto_auth_hmacsha256_BYTES> mac{};
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
    crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(body.data()), body.size());
    crypto_auth_hmacsha256_final(&st, mac.data());
    std::array<char, crypto_auth_hmacsha256_BYTES * 2 + 1> hex{};
    sodium_bin2hex(hex.data(), hex.size(), mac.data(), mac.size());
    return "sha256=" + std::string(hex.data(), crypto_auth_hmacsha256_BYTES * 2);
}

std::string webhook_body(const alert_message& m, std::string_view format, std::string_view receiver,
                         std::int64_t sent_ms) {
    if (format == "alertmanager")
        return alertmanager_body(m, receiver);
    boost::system::error_code ec;
    auto v = json::parse(m.payload, ec);
    if (ec || !v.is_object())
        return m.payload;
    v.get_object()["sent_at"] = common::rfc3339(sent_ms);
    return common::to_json_text(v);
}

struct webhook_sender::impl {
    const target_guard& guard;
    std::mutex mu;
    std::map<std::pair<std::string, bool>, std::shared_ptr<asio::ssl::context>> contexts;

    explicit impl(const target_guard& g) : guard(g) {}

    // One TLS context per (CA file, insecure), built once: loading the
    // system's CA store costs milliseconds.
    std::shared_ptr<asio::ssl::context> context_for(const std::string& ca_file, bool insecure, std::string& why) {
        std::lock_guard l(mu);
        auto& c = contexts[{ca_file, insecure}];
        if (c)
            return c;
        auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
        ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
        boost::system::error_code ec;
        if (insecure) {
            ctx->set_verify_mode(asio::ssl::verify_none);
        } else {
            ctx->set_verify_mode(asio::ssl::verify_peer);
            if (ca_file.empty())
                ctx->set_default_verify_paths(ec);
            else
                ctx->load_verify_file(ca_file, ec);
            if (ec) {
                why = ca_file.empty() ? "cannot load the system's CA certificates: " + ec.message()
                                      : "cannot load config.ca_file " + ca_file + ": " + ec.message();
                return nullptr;
            }
        }
        c = ctx;
        return c;
    }
};

webhook_sender::webhook_sender(const target_guard& guard) : impl_(std::make_unique<impl>(guard)) {}
webhook_sender::~webhook_sender() = default;

namespace {

template <class Stream>
asio::awaitable<void> post(Stream& stream, beast::tcp_stream& tcp_layer, http::request<http::string_body>& req,
                           std::chrono::steady_clock::time_point deadline, exchange_result& out) {
    using asio::as_tuple;
    using asio::use_awaitable;
    tcp_layer.expires_at(deadline);
    out.stage = "write";
    auto [wec, wn] = co_await http::async_write(stream, req, as_tuple(use_awaitable));
    (void)wn;
    if (wec) {
        out.ec = wec;
        co_return;
    }
    out.stage = "read";
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_response_body);
    auto [rec, rn] = co_await http::async_read(stream, buf, parser, as_tuple(use_awaitable));
    (void)rn;
    // A body larger than we care to read still has its status.
    if (rec && !(rec == http::error::body_limit && parser.is_header_done())) {
        out.ec = rec;
        co_return;
    }
    out.status = parser.get().result_int();
    out.body_start = parser.get().body().substr(0, 200);
    out.ec = {};
}

} // namespace

send_result webhook_sender::send(const integration_target& target, const alert_message& message) {
    std::string why;
    if (!validate_webhook(target.config, target.secrets, &why))
        return {outcome::failed, "", why};
    const std::string url = text_or(target.config, "url");
    auto u = boost::urls::parse_absolute_uri(url);
    const bool tls = u->scheme() == "https";
    std::string host(u->host_address());
    if (u->host_type() == boost::urls::host_type::ipv6)
        host = "[" + host + "]";
    const std::uint16_t port = u->has_port() ? u->port_number() : (tls ? 443 : 80);
    auto addrs = impl_->guard.resolve(host, &why);
    if (!addrs)
        return {outcome::failed, "", why};

    const auto timeout = std::chrono::milliseconds(
        target.config.contains("timeout_ms") && target.config.at("timeout_ms").is_int64()
            ? target.config.at("timeout_ms").get_int64()
            : default_timeout_ms);
    const std::string format = text_or(target.config, "format", "pulsegate");
    const std::string body = webhook_body(message, format, target.name, now_ms());

    std::string path(u->encoded_path());
    if (path.empty())
        path = "/";
    if (u->has_query())
        path += "?" + std::string(u->encoded_query());
    http::request<http::string_body> req{http::verb::post, path, 11};
    const bool default_port = u->has_port() ? false : true;
    req.set(http::field::host, default_port ? host : host + ":" + std::to_string(port));
    req.set(http::field::user_agent, "pulsegate/" PULSEGATE_VERSION);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::connection, "close");
    if (const auto* h = target.config.if_contains("headers"); h != nullptr && h->is_object())
        for (const auto& [k, v] : h->get_object())
            req.set(std::string_view(k), std::string_view(v.get_string()));
    const std::string delivery = message.test ? "test-" + std::to_string(now_ms()) : std::to_string(message.job_id);
    req.set("X-Pulsegate-Event", message.event);
    req.set("X-Pulsegate-Delivery", delivery);
    req.set("Idempotency-Key", delivery);
    if (message.test)
        req.set("X-Pulsegate-Test", "true");
    if (const auto secret = text_or(target.secrets, "secret"); !secret.empty())
        req.set("X-Pulsegate-Signature", webhook_signature(secret, body));
    req.body() = body;
    req.prepare_payload();

    std::shared_ptr<asio::ssl::context> ctx;
    if (tls) {
        const bool insecure = target.config.contains("insecure") && target.config.at("insecure").is_bool() &&
                              target.config.at("insecure").get_bool();
        ctx = impl_->context_for(text_or(target.config, "ca_file"), insecure, why);
        if (!ctx)
            return {outcome::failed, "", why};
    }

    asio::io_context ioc;
    std::vector<tcp::endpoint> endpoints;
    for (const auto& a : *addrs)
        endpoints.emplace_back(a, port);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    exchange_result out;
    const std::string sni = u->host_type() == boost::urls::host_type::name ? std::string(u->host_address()) : "";
    const std::string verify_name(u->host_address());

    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            using asio::as_tuple;
            using asio::use_awaitable;
            beast::tcp_stream stream(ioc);
            stream.expires_at(deadline);
            out.stage = "connect";
            auto [cec, ep] = co_await stream.async_connect(endpoints, as_tuple(use_awaitable));
            (void)ep;
            if (cec) {
                out.ec = cec;
                co_return;
            }
            if (!tls) {
                co_await post(stream, stream, req, deadline, out);
                beast::error_code ignored;
                stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
                co_return;
            }
            beast::ssl_stream<beast::tcp_stream> ssl(std::move(stream), *ctx);
            if (!sni.empty())
                SSL_set_tlsext_host_name(ssl.native_handle(), sni.c_str());
            ssl.set_verify_callback(asio::ssl::host_name_verification(verify_name));
            out.stage = "tls";
            beast::get_lowest_layer(ssl).expires_at(deadline);
            auto [hec] = co_await ssl.async_handshake(asio::ssl::stream_base::client, as_tuple(use_awaitable));
            if (hec) {
                out.ec = hec;
                co_return;
            }
            co_await post(ssl, beast::get_lowest_layer(ssl), req, deadline, out);
        },
        asio::detached);
    ioc.run();

    if (out.ec) {
        const std::string where = url.substr(0, url.find('?'));
        if (out.ec == beast::error::timeout)
            return {outcome::retry, "", "no answer from " + where + " within " + std::to_string(timeout.count()) +
                                            " ms (" + out.stage + ")"};
        if (out.stage == "tls" && out.ec.category() == asio::error::get_ssl_category() &&
            ERR_GET_REASON(static_cast<unsigned long>(out.ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED)
            return {outcome::failed, "",
                    "the TLS certificate of " + where +
                        " does not verify; fix the receiver's certificate, or set config.ca_file to the CA that "
                        "signed it"};
        return {outcome::retry, "", out.stage + " " + where + ": " + out.ec.message()};
    }
    const auto code = std::to_string(out.status);
    if (out.status >= 200 && out.status < 300)
        return {outcome::delivered, code, ""};
    std::string detail = out.body_start.empty() ? "" : ": " + out.body_start;
    if (out.status == 408 || out.status == 429 || out.status >= 500)
        return {outcome::retry, code, "the receiver answered " + code + detail};
    if (out.status >= 300 && out.status < 400)
        return {outcome::failed, code, "the receiver answered " + code + " (a redirect); redirects are not followed: "
                                                                          "set config.url to the final address"};
    return {outcome::failed, code, "the receiver refused the alert with " + code + detail};
}

} // namespace pulsegate::adapters
