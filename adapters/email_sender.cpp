#include "adapters/email_sender.hpp"

#include "adapters/digest_text.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <random>
#include <string_view>
#include <vector>

namespace pulsegate::adapters {

namespace json = boost::json;

namespace {

constexpr std::string_view default_subject = "[{severity}] {alert_type} on {device_id}: {message}";

constexpr std::string_view default_text = "Event:     {event}\n"
                                          "Severity:  {severity}\n"
                                          "Kind:      {alert_type}\n"
                                          "Device:    {device_id}\n"
                                          "Metric:    {metric}\n"
                                          "Value:     {value}\n"
                                          "Threshold: {threshold}\n"
                                          "Message:   {message}\n"
                                          "Time:      {timestamp}\n"
                                          "Rule:      {rule}\n"
                                          "Alert:     #{alert_id} ({status}), tenant {tenant}\n";

constexpr std::string_view default_html =
    "<!DOCTYPE html>\n"
    "<html><body style=\"font-family: sans-serif\">\n"
    "<h2>[{severity}] {alert_type} on {device_id}</h2>\n"
    "<p>{message}</p>\n"
    "<table cellpadding=\"4\">\n"
    "<tr><th align=\"left\">Event</th><td>{event}</td></tr>\n"
    "<tr><th align=\"left\">Severity</th><td>{severity}</td></tr>\n"
    "<tr><th align=\"left\">Kind</th><td>{alert_type}</td></tr>\n"
    "<tr><th align=\"left\">Device</th><td>{device_id}</td></tr>\n"
    "<tr><th align=\"left\">Metric</th><td>{metric}</td></tr>\n"
    "<tr><th align=\"left\">Value</th><td>{value}</td></tr>\n"
    "<tr><th align=\"left\">Threshold</th><td>{threshold}</td></tr>\n"
    "<tr><th align=\"left\">Time</th><td>{timestamp}</td></tr>\n"
    "<tr><th align=\"left\">Rule</th><td>{rule}</td></tr>\n"
    "<tr><th align=\"left\">Alert</th><td>#{alert_id} ({status}), tenant {tenant}</td></tr>\n"
    "</table>\n"
    "</body></html>\n";

constexpr std::size_t max_recipients = 100;

enum class security { none, starttls, tls };

struct settings {
    std::string host; // without brackets
    bool host_is_ipv6 = false;
    unsigned port = 0;
    security sec = security::starttls;
    std::string username;
    std::string password;
    std::string from;
    std::vector<std::string> to, cc, bcc;
    std::string subject_template, text_template, html_template;
    long timeout_ms = 10000;
    std::string ca_file;
    bool insecure = false;
};

bool refuse(std::string* why, std::string text) {
    if (why != nullptr)
        *why = std::move(text);
    return false;
}

// A bare address: local@domain, printable ASCII, none of the characters that
// would need quoting or could smuggle a header or an SMTP parameter.
bool plain_address(std::string_view a) {
    if (a.size() < 3 || a.size() > 254)
        return false;
    const auto at = a.find('@');
    if (at == 0 || at == std::string_view::npos || at + 1 == a.size() || a.find('@', at + 1) != std::string_view::npos)
        return false;
    return std::all_of(a.begin(), a.end(), [](char c) {
        return c > ' ' && c < 127 && std::strchr("<>()[],;:\\\"", c) == nullptr;
    });
}

bool valid_hostname(std::string_view h) {
    if (h.empty() || h.size() > 253)
        return false;
    return std::all_of(h.begin(), h.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == '_';
    });
}

// Reads an optional string setting; false (with *why) when present but not a string.
bool read_string(const json::object& o, std::string_view section, std::string_view key, std::string& out,
                 std::string* why) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || v->is_null())
        return true;
    if (!v->is_string())
        return refuse(why, std::string(section) + "." + std::string(key) + " must be a string");
    out = std::string(v->get_string());
    return true;
}

bool read_int(const json::object& o, std::string_view key, std::int64_t lo, std::int64_t hi, std::int64_t& out,
              std::string* why) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || v->is_null())
        return true;
    const auto range = "config." + std::string(key) + " must be an integer " + std::to_string(lo) + ".." +
                       std::to_string(hi);
    std::int64_t n = 0;
    if (v->is_int64())
        n = v->get_int64();
    else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(hi))
        n = static_cast<std::int64_t>(v->get_uint64());
    else if (v->is_uint64())
        return refuse(why, range);
    else
        return refuse(why, range + " (got " + json::serialize(*v) + ")");
    if (n < lo || n > hi)
        return refuse(why, range + " (got " + std::to_string(n) + ")");
    out = n;
    return true;
}

bool read_addresses(const json::object& o, std::string_view key, std::vector<std::string>& out, std::string* why) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || v->is_null())
        return true;
    const auto name = "config." + std::string(key);
    if (!v->is_array())
        return refuse(why, name + " must be an array of addresses, like [\"ops@example.com\"]");
    for (const auto& e : v->get_array()) {
        if (!e.is_string() || !plain_address(e.get_string()))
            return refuse(why, name + " holds " + json::serialize(e) +
                                   ", which is not a plain address: write each as \"name@example.com\"");
        out.emplace_back(e.get_string());
    }
    return true;
}

boost::system::result<settings> parse_settings(const json::object& config, const json::object& secrets,
                                               std::string* why) {
    const auto bad = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
    settings s;

    if (!read_string(config, "config", "host", s.host, why))
        return bad;
    if (s.host.size() >= 2 && s.host.front() == '[' && s.host.back() == ']')
        s.host = s.host.substr(1, s.host.size() - 2);
    if (s.host.empty()) {
        refuse(why, "config.host is required: the SMTP server's name or address, like \"smtp.example.com\"");
        return bad;
    }
    if (s.host.find(':') != std::string::npos) {
        boost::system::error_code ec;
        const auto a = boost::asio::ip::make_address(s.host, ec);
        if (ec || !a.is_v6()) {
            refuse(why, "config.host is not a host name or IP address: give a name like \"smtp.example.com\" "
                        "(the port goes in config.port)");
            return bad;
        }
        s.host_is_ipv6 = true;
    } else if (!valid_hostname(s.host)) {
        refuse(why, "config.host is not a host name or IP address: give a name like \"smtp.example.com\"");
        return bad;
    }

    std::string sec = "starttls";
    if (!read_string(config, "config", "security", sec, why))
        return bad;
    if (sec == "starttls")
        s.sec = security::starttls;
    else if (sec == "tls")
        s.sec = security::tls;
    else if (sec == "none")
        s.sec = security::none;
    else {
        refuse(why, "config.security must be \"starttls\" (port 587), \"tls\" (implicit TLS, port 465) or "
                    "\"none\" (port 25)");
        return bad;
    }
    std::int64_t port = s.sec == security::starttls ? 587 : s.sec == security::tls ? 465 : 25;
    if (!read_int(config, "port", 1, 65535, port, why))
        return bad;
    s.port = static_cast<unsigned>(port);

    if (!read_string(config, "config", "username", s.username, why) ||
        !read_string(secrets, "secrets", "password", s.password, why))
        return bad;
    if (!s.username.empty() && s.password.empty()) {
        refuse(why, "secrets.password is required when config.username is set (leave config.username out for a "
                    "server without AUTH)");
        return bad;
    }
    if (s.username.find_first_of("\r\n") != std::string::npos) {
        refuse(why, "config.username must be one line");
        return bad;
    }

    if (!read_string(config, "config", "from", s.from, why))
        return bad;
    if (s.from.empty()) {
        refuse(why, "config.from is required: the sender address, like \"alerts@example.com\"");
        return bad;
    }
    if (!plain_address(s.from)) {
        refuse(why, "config.from is not a plain address: write it as \"alerts@example.com\"");
        return bad;
    }
    if (!read_addresses(config, "to", s.to, why) || !read_addresses(config, "cc", s.cc, why) ||
        !read_addresses(config, "bcc", s.bcc, why))
        return bad;
    const auto recipients = s.to.size() + s.cc.size() + s.bcc.size();
    if (recipients == 0) {
        refuse(why, "config.to, config.cc and config.bcc hold no recipient: give at least one address");
        return bad;
    }
    if (recipients > max_recipients) {
        refuse(why, "config.to, config.cc and config.bcc hold " + std::to_string(recipients) +
                        " recipients; at most " + std::to_string(max_recipients) + " (use a mailing list)");
        return bad;
    }

    s.subject_template = default_subject;
    s.text_template = default_text;
    s.html_template = default_html;
    if (!read_string(config, "config", "subject_template", s.subject_template, why) ||
        !read_string(config, "config", "text_template", s.text_template, why) ||
        !read_string(config, "config", "html_template", s.html_template, why))
        return bad;

    std::int64_t timeout = s.timeout_ms;
    if (!read_int(config, "timeout_ms", 100, 120000, timeout, why))
        return bad;
    s.timeout_ms = static_cast<long>(timeout);

    if (!read_string(config, "config", "ca_file", s.ca_file, why))
        return bad;
    if (const auto* v = config.if_contains("insecure"); v != nullptr && !v->is_null()) {
        if (!v->is_bool()) {
            refuse(why, "config.insecure must be true or false (true skips certificate checks: tests only)");
            return bad;
        }
        s.insecure = v->get_bool();
    }
    return s;
}

// ---- message text ---------------------------------------------------------

std::string base64(std::string_view in) {
    static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const auto n = static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16 |
                       static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8 |
                       static_cast<unsigned char>(in[i + 2]);
        out += table[n >> 18 & 63];
        out += table[n >> 12 & 63];
        out += table[n >> 6 & 63];
        out += table[n & 63];
    }
    if (i < in.size()) {
        auto n = static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16;
        if (i + 1 < in.size())
            n |= static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8;
        out += table[n >> 18 & 63];
        out += table[n >> 12 & 63];
        out += i + 1 < in.size() ? table[n >> 6 & 63] : '=';
        out += '=';
    }
    return out;
}

// Control characters (CR and LF above all: header injection) become spaces.
std::string one_line(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (static_cast<unsigned char>(c) < ' ' || c == 127)
            c = ' ';
    return out;
}

// RFC 2047: ASCII text stays as is; anything else becomes UTF-8 "B" encoded
// words of at most 75 characters, folded, never splitting a UTF-8 sequence.
std::string header_text(std::string_view s) {
    const bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return c >= ' ' && c < 127; });
    if (ascii && s.size() <= 900)
        return std::string(s);
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
        std::size_t n = std::min<std::size_t>(42, s.size() - i);
        while (n > 1 && i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80)
            --n;
        if (!out.empty())
            out += "\r\n ";
        out += "=?UTF-8?B?" + base64(s.substr(i, n)) + "?=";
        i += n;
    }
    return out;
}

// Quoted-printable (RFC 2045) with CRLF line ends and soft breaks before 76
// columns. Its output never holds "=_", which the boundary starts with.
std::string quoted_printable(std::string_view text) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find('\n', start);
        const bool last = end == std::string_view::npos;
        if (last)
            end = text.size();
        auto line = text.substr(start, end - start);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        std::size_t column = 0;
        for (std::size_t k = 0; k < line.size(); ++k) {
            const auto c = static_cast<unsigned char>(line[k]);
            const bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && k + 1 < line.size());
            const std::size_t width = literal ? 1 : 3;
            if (column + width > 75) {
                out += "=\r\n";
                column = 0;
            }
            if (literal) {
                out += static_cast<char>(c);
            } else {
                out += '=';
                out += hex[c >> 4];
                out += hex[c & 15];
            }
            column += width;
        }
        if (last)
            break;
        out += "\r\n";
        start = end + 1;
    }
    return out;
}

std::string random_hex(std::size_t bytes) {
    thread_local std::mt19937_64 engine{std::random_device{}()};
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < bytes; ++i) {
        const auto b = static_cast<unsigned>(engine() & 0xFF);
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

std::string rfc5322_date() {
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
                  months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

std::string address_list(const std::vector<std::string>& addresses) {
    std::string out;
    for (const auto& a : addresses) {
        if (!out.empty())
            out += ",\r\n ";
        out += a;
    }
    return out;
}

std::string build_message(const settings& s, const alert_message& m) {
    // A digest has no alert for the templates: it has its own text.
    std::optional<digest_text> digest;
    if (m.event == "digest")
        if (auto d = render_digest(m.payload))
            digest = std::move(*d);
    auto subject = digest ? digest->subject : render_template(s.subject_template, m);
    if (m.test)
        subject = "[test] " + subject;
    const auto boundary = "=_pulsegate_" + random_hex(12);
    const auto domain = s.from.substr(s.from.find('@') + 1);

    std::string out;
    out += "From: " + s.from + "\r\n";
    out += "To: " + (s.to.empty() ? std::string("undisclosed-recipients:;") : address_list(s.to)) + "\r\n";
    if (!s.cc.empty())
        out += "Cc: " + address_list(s.cc) + "\r\n";
    out += "Subject: " + header_text(one_line(subject)) + "\r\n";
    out += "Date: " + rfc5322_date() + "\r\n";
    out += "Message-ID: <pulsegate." + std::to_string(m.job_id) + "." + random_hex(8) + "@" + domain + ">\r\n";
    out += "MIME-Version: 1.0\r\n";
    out += "X-Pulsegate-Event: " + header_text(one_line(m.event)) + "\r\n";
    out += "X-Pulsegate-Job: " + std::to_string(m.job_id) + "\r\n";
    out += "Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n";
    out += "\r\nThis is a multipart message in MIME format.\r\n";
    const auto part = [&](std::string_view type, const std::string& body) {
        out += "\r\n--" + boundary + "\r\n";
        out += "Content-Type: " + std::string(type) + "; charset=utf-8\r\n";
        out += "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
        out += quoted_printable(body);
    };
    part("text/plain", digest ? digest->text : render_template(s.text_template, m));
    part("text/html", digest ? digest->html : render_template(s.html_template, m, true));
    out += "\r\n--" + boundary + "--\r\n";
    return out;
}

// ---- curl -----------------------------------------------------------------

struct upload {
    std::string_view data;
    std::size_t pos = 0;
};

std::size_t read_upload(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto* u = static_cast<upload*>(user);
    const auto n = std::min(size * count, u->data.size() - u->pos);
    std::memcpy(buffer, u->data.data() + u->pos, n);
    u->pos += n;
    return n;
}

struct easy_deleter {
    void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
struct slist_deleter {
    void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using easy_ptr = std::unique_ptr<CURL, easy_deleter>;
using slist_ptr = std::unique_ptr<curl_slist, slist_deleter>;

// Appends to a list; false when curl could not allocate.
bool append(slist_ptr& list, const std::string& item) {
    auto* grown = curl_slist_append(list.get(), item.c_str());
    if (grown == nullptr)
        return false;
    (void)list.release(); // `grown` is the same list, now one longer
    list.reset(grown);
    return true;
}

void global_init() {
    static std::once_flag once;
    // Nothing to do when it fails: curl_easy_init then fails and send() says so.
    std::call_once(once, [] { (void)curl_global_init(CURL_GLOBAL_DEFAULT); });
}

send_result classify(CURLcode rc, long code, const char* errbuf, const settings& s) {
    send_result r;
    r.status = code > 0 ? std::to_string(code) : std::string();
    if (rc == CURLE_OK) {
        r.result = outcome::delivered;
        return r;
    }
    const auto where = s.host + ":" + std::to_string(s.port);
    const auto detail = " (" + std::string(errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc)) + ")";
    const auto fail = [&](outcome o, std::string text) {
        r.result = o;
        r.error = std::move(text);
        return r;
    };
    switch (rc) {
    case CURLE_LOGIN_DENIED:
        return fail(outcome::failed, "authentication refused by SMTP server " + where + detail +
                                         ": check config.username and secrets.password");
    case CURLE_PEER_FAILED_VERIFICATION:
        return fail(outcome::failed, "the TLS certificate of " + where + " does not verify" + detail +
                                         ": fix the server's certificate or set config.ca_file to the CA that "
                                         "signed it");
    case CURLE_SSL_CACERT_BADFILE:
        return fail(outcome::failed, "config.ca_file cannot be used" + detail + ": give a readable PEM file");
    case CURLE_USE_SSL_FAILED:
        return fail(outcome::failed, "SMTP server " + where + " does not offer STARTTLS" + detail +
                                         ": use security \"tls\" if the port speaks TLS at once");
    case CURLE_COULDNT_CONNECT:
        return fail(outcome::retry, "cannot connect to SMTP server " + where + detail);
    case CURLE_OPERATION_TIMEDOUT:
        return fail(outcome::retry, "SMTP server " + where + " did not finish within " +
                                        std::to_string(s.timeout_ms) + " ms" + detail);
    case CURLE_SSL_CONNECT_ERROR:
        return fail(outcome::retry, "TLS handshake with " + where + " failed" + detail +
                                        ": check that config.security matches what the port speaks");
    default: break;
    }
    if (code >= 500 && code < 600)
        return fail(outcome::failed, "SMTP server " + where + " refused the message with " + r.status + detail +
                                         ": a permanent error; check config.from and the recipients");
    if (code >= 400 && code < 500)
        return fail(outcome::retry, "SMTP server " + where + " answered " + r.status + ", a temporary error" +
                                        detail);
    return fail(outcome::retry, "SMTP dialogue with " + where + " failed" + detail);
}

} // namespace

bool validate_email(const json::object& config, const json::object& secrets, std::string* why) {
    return parse_settings(config, secrets, why).has_value();
}

email_sender::email_sender(const target_guard& guard) : guard_(guard) {
    global_init();
}

send_result email_sender::send(const integration_target& target, const alert_message& message) {
    send_result r;
    r.result = outcome::failed;
    auto s = parse_settings(target.config, target.secrets, &r.error);
    if (!s)
        return r;
    auto addresses = guard_.resolve(s->host, &r.error);
    if (!addresses)
        return r;
    r.error.clear();

    const auto text = build_message(*s, message);
    upload body{text};
    char errbuf[CURL_ERROR_SIZE] = {};
    const auto url_host = s->host_is_ipv6 ? "[" + s->host + "]" : s->host;
    const auto url = std::string(s->sec == security::tls ? "smtps://" : "smtp://") + url_host + ":" +
                     std::to_string(s->port);

    // The checked addresses, so curl never asks DNS again (no rebinding).
    // An IPv6 literal needs no entry: curl does not resolve it.
    slist_ptr resolve, rcpt;
    bool lists_ok = true;
    if (!s->host_is_ipv6) {
        auto entry = s->host + ":" + std::to_string(s->port) + ":";
        for (std::size_t i = 0; i < addresses->size(); ++i) {
            const auto& a = (*addresses)[i];
            entry += (i > 0 ? "," : "") + (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string());
        }
        lists_ok = append(resolve, entry);
    }
    for (const auto* list : {&s->to, &s->cc, &s->bcc})
        for (const auto& a : *list)
            lists_ok = lists_ok && append(rcpt, "<" + a + ">");

    global_init();
    easy_ptr h(curl_easy_init());
    if (!h || !lists_ok) {
        r.result = outcome::retry;
        r.error = "cannot set up libcurl (out of memory?)";
        return r;
    }
    CURLcode set = CURLE_OK;
    const auto opt = [&](CURLoption o, auto v) {
        if (set == CURLE_OK)
            set = curl_easy_setopt(h.get(), o, v);
    };
    opt(CURLOPT_ERRORBUFFER, errbuf);
    opt(CURLOPT_NOSIGNAL, 1L);
    opt(CURLOPT_URL, url.c_str());
    opt(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    opt(CURLOPT_FOLLOWLOCATION, 0L);
    opt(CURLOPT_PROXY, ""); // never through a proxy from the environment
    opt(CURLOPT_FORBID_REUSE, 1L);
    if (resolve)
        opt(CURLOPT_RESOLVE, resolve.get());
    opt(CURLOPT_USE_SSL, static_cast<long>(s->sec == security::starttls ? CURLUSESSL_ALL : CURLUSESSL_NONE));
    opt(CURLOPT_MAIL_FROM, ("<" + s->from + ">").c_str());
    opt(CURLOPT_MAIL_RCPT, rcpt.get());
    // Some refused recipients must not cost the others their alert; curl
    // still fails when every one is refused.
    opt(CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
    opt(CURLOPT_UPLOAD, 1L);
    opt(CURLOPT_READFUNCTION, &read_upload);
    opt(CURLOPT_READDATA, &body);
    opt(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(text.size()));
    opt(CURLOPT_TIMEOUT_MS, s->timeout_ms);
    if (!s->username.empty()) {
        opt(CURLOPT_USERNAME, s->username.c_str());
        opt(CURLOPT_PASSWORD, s->password.c_str());
    }
    if (!s->ca_file.empty())
        opt(CURLOPT_CAINFO, s->ca_file.c_str());
    if (s->insecure) {
        opt(CURLOPT_SSL_VERIFYPEER, 0L);
        opt(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (set != CURLE_OK) {
        r.result = outcome::failed;
        r.error = std::string("libcurl refused a setting: ") + curl_easy_strerror(set);
        return r;
    }

    const auto rc = curl_easy_perform(h.get());
    long code = 0;
    if (curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
        code = 0; // no reply code known: status stays ""
    return classify(rc, code, errbuf, *s);
}

} // namespace pulsegate::adapters
