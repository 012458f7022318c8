#pragma once
// The email integration (DESIGN.md, Delivery): one alert event becomes one
// SMTP message, sent with libcurl to the integration's server.
//
// Settings (integration_target::config, all JSON; secrets apart):
//   host              required; a name or an IP address (IPv6 with or without brackets)
//   security          "starttls" (default; STARTTLS is required, never optional),
//                     "tls" (implicit TLS, smtps) or "none" (plain text)
//   port              1..65535; default 587 for starttls, 465 for tls, 25 for none
//   username          optional; when given the sender authenticates (AUTH) with
//                     secrets.password, which is then required
//   from              required; a bare address ("alerts@example.com")
//   to, cc, bcc       arrays of bare addresses; at least one recipient overall,
//                     at most 100. Bcc addresses are RCPTs only, never a header.
//   subject_template  default "[{severity}] {alert_type} on {device_id}: {message}"
//   text_template     the text/plain part; default lists event, severity, kind,
//                     device, metric, value, threshold, message and timestamp
//   html_template     the text/html part (values HTML-escaped); default: the same as a table
//   timeout_ms        100..120000, default 10000: the whole SMTP dialogue
//   ca_file           optional path of a PEM CA to trust instead of the system store
//   insecure          bool, default false: skip certificate verification. For tests
//                     only: it lets anyone on the path read the password and the mail.
// Secrets (integration_target::secrets): password.
// Templates use render_template's names ({severity}, {device_id}, ...).
//
// The message is multipart/alternative (text/plain, text/html; UTF-8,
// quoted-printable) with From, To, Cc, Subject (RFC 2047 when not ASCII),
// Date, Message-ID, X-Pulsegate-Event and X-Pulsegate-Job (the outbox job id,
// the receiver's idempotency key). A test send gets "[test] " before its
// subject.
//
// SSRF guard: the host goes through target_guard::resolve; curl connects only
// to the addresses it returned (CURLOPT_RESOLVE), while the host name stays
// in the URL for certificate verification and SNI. No proxy, no redirect.
//
// Outcomes: delivered when the server accepted the data (250 after DATA).
// failed: settings that cannot work, a destination the guard refuses,
// authentication refused, a certificate that does not verify, a server
// without STARTTLS when it is required, and any 5xx reply (including every
// recipient refused; when only some are refused the others still get the
// message). retry: connection errors, timeouts, TLS handshake errors and 4xx
// replies. status is the last SMTP reply code ("" when none was read); error
// says what happened and what to check, and never contains the password.
//
// Threads: send() is safe to call from several threads at once (a curl easy
// handle per call; curl_global_init runs once).

#include "adapters/sender.hpp"

#include <boost/json/object.hpp>

#include <string>

namespace pulsegate::adapters {

// Checks an email integration's settings at create/update time. False with
// *why (when not null) naming the field and what to do, e.g. "config.port
// must be 1..65535". Never mentions the password's value. Does not resolve
// the host: the guard decides that at send time.
bool validate_email(const boost::json::object& config, const boost::json::object& secrets, std::string* why);

class email_sender final : public sender {
public:
    // Keeps a reference: `guard` must outlive the sender.
    explicit email_sender(const target_guard& guard);

    // Blocks for at most config.timeout_ms (plus name resolution).
    send_result send(const integration_target& target, const alert_message& message) override;

private:
    const target_guard& guard_;
};

} // namespace pulsegate::adapters
