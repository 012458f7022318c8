#pragma once
// Webhook integrations (DESIGN.md, Delivery): an HTTP or HTTPS POST of the
// alert event as JSON, through Beast.
//
// config: {"url": "https://hooks.example/alerts" (http or https),
//          "format": "pulsegate" (default) | "alertmanager",
//          "headers": {"X-Team": "ops"} (extra request headers),
//          "timeout_ms": 5000 (100..60000, the whole exchange),
//          "ca_file": "/etc/ssl/my-ca.pem" (https: trust this CA instead of the system's),
//          "insecure": false (https: skip certificate verification; for tests only)}
// secrets: {"secret": "..."}: when set, X-Pulsegate-Signature: sha256=<hex
//          HMAC-SHA256 of the body keyed with it>.
//
// Body, format pulsegate: {"event", "tenant", "at", "alert": {...},
// "sent_at"} (engine/alert_event.hpp plus the send time). Format
// alertmanager: the Prometheus Alertmanager webhook (version 4) JSON with
// one alert, so receivers built for Alertmanager work unchanged.
// Headers: Content-Type: application/json, X-Pulsegate-Event (the event),
// Idempotency-Key and X-Pulsegate-Delivery (the job id; "test-..." for a
// test send), X-Pulsegate-Signature when a secret is set.
//
// Outcome: 2xx delivered; 408, 429 and 5xx retry; other 4xx failed (dead,
// no retry); 3xx failed (redirects are not followed); timeouts and
// connection errors retry; a certificate that does not verify failed.

#include "adapters/sender.hpp"

#include <boost/json/object.hpp>

#include <memory>
#include <string>

namespace pulsegate::adapters {

bool validate_webhook(const boost::json::object& config, const boost::json::object& secrets, std::string* why);

// The body for `format` ("pulsegate" or "alertmanager").
std::string webhook_body(const alert_message& m, std::string_view format, std::string_view receiver,
                         std::int64_t now_ms);
// "sha256=<64 hex>" of `body` keyed with `secret`.
std::string webhook_signature(std::string_view secret, std::string_view body);

class webhook_sender final : public sender {
public:
    explicit webhook_sender(const target_guard& guard);
    ~webhook_sender() override;
    send_result send(const integration_target& target, const alert_message& message) override;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace pulsegate::adapters
