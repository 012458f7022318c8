#pragma once
// The `mqtt` integration (DESIGN.md, Delivery): publishes each alert event,
// the event JSON exactly as the engine made it, to a customer's external
// MQTT broker with Eclipse Paho C++ (MQTT 3.1.1, clean session).
//
// Settings (config, as the REST API shows them; secrets decrypted):
//   url             required; mqtt://host[:1883] or mqtts://host[:8883]
//                   (host: a name, an IPv4 address or [IPv6]); nothing else
//                   (no user info, path or query).
//   username        optional.
//   client_id       optional; default "pulsegate-alerts-<integration id>".
//                   Two integrations with the same client id on one broker
//                   take each other's session over, so keep them distinct.
//   topic_template  default "pulsegate/{tenant}/alerts/{device_id}/{event}",
//                   rendered with render_template per event; the result must
//                   be a topic name (non-empty, no + or #, no NUL, at most
//                   65535 bytes), else that event fails.
//   qos             0, 1 or 2; default 1.
//   retain          default false.
//   timeout_ms      connect and publish-acknowledgement timeout; default
//                   5000, 1000..120000. Paho C 1.3.11's network thread
//                   notices that a new TCP connection is established only
//                   on its next 1 s poll round while other connections are
//                   open, so a connect can take up to about 2 s: keep it at
//                   3000 or more.
//   ca_file         mqtts only: trust this CA (PEM) instead of the system's.
//   insecure        mqtts only: skip certificate and name verification
//                   (tests, lab brokers); default false.
//   secrets.password optional; needs a username.
//
// Outcomes of send():
//   delivered  PUBACK (qos 1, status "puback"), PUBCOMP (qos 2, "pubcomp")
//              or written to the socket (qos 0, "sent") within timeout_ms.
//   failed     invalid settings, a topic template that renders to no valid
//              topic, a destination the SSRF guard refuses (its text), or a
//              CONNACK refusing the client (bad user name or password, not
//              authorised, identifier rejected, protocol): status is
//              "connack <code> (<reason>)".
//   retry      cannot connect (refused, TLS, timeout, broker unavailable),
//              inside the reconnect backoff window, publish timed out or the
//              connection dropped before the acknowledgement. A message that
//              timed out may still reach the broker: delivery is at least
//              once, as everywhere in the outbox.
//
// Connections: one per integration id, kept between jobs and reused; it is
// rebuilt when the url, credentials, client id or TLS settings change, and
// re-established on the next send after the broker dropped it. After a
// failed connect, sends return retry at once until the backoff has passed
// (first initial_backoff, doubling to max_backoff, reset by a successful
// connect), so a dead broker is not hammered by every queued job. Entries
// of deleted integrations stay (idle, disconnected or connected) until the
// sender is destroyed.
//
// SSRF guard: the host is checked with target_guard::resolve before every
// connect, and for mqtt:// and insecure mqtts:// the connection goes to the
// first checked address itself. Paho (1.3 C library underneath) offers no way
// to verify a certificate against a name other than the one in the server
// URI, so a verified mqtts:// connection is opened by name, only after every
// address the name resolved to passed the guard. A DNS answer that changes
// between the check and Paho's own lookup could then point elsewhere, but
// the TLS handshake (chain and host name) has to succeed before a byte of
// MQTT is sent, so a rebound name reaches nothing that lacks a certificate
// for that very name.
//
// Threads: send() may be called from several delivery workers at once, also
// for the same integration: the cache has its own mutex, and each connection
// one mutex held while (re)connecting; publishes run concurrently on the
// shared Paho client. Never called on a broker shard (blocks up to
// timeout_ms for the connect plus timeout_ms for the acknowledgement).

#include "adapters/sender.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace pulsegate::adapters {

// Checks an mqtt integration's settings at create/update time; false with
// *why naming the field and what to do.
bool validate_mqtt(const boost::json::object& config, const boost::json::object& secrets, std::string* why);

struct mqtt_sender_options {
    std::chrono::milliseconds initial_backoff{1000}; // after the first failed connect
    std::chrono::milliseconds max_backoff{60000};    // the doubling stops here
};

namespace detail {
struct mqtt_connection;
}

class mqtt_sender final : public sender {
public:
    // Keeps a reference to `guard`, which must outlive the sender.
    explicit mqtt_sender(const target_guard& guard);
    mqtt_sender(const target_guard& guard, mqtt_sender_options options);
    // Disconnects every cached connection (waits briefly for each).
    ~mqtt_sender() override;

    mqtt_sender(const mqtt_sender&) = delete;
    mqtt_sender& operator=(const mqtt_sender&) = delete;

    send_result send(const integration_target& target, const alert_message& message) override;

private:
    std::shared_ptr<detail::mqtt_connection> connection_for(std::int64_t integration_id);

    const target_guard& guard_;
    mqtt_sender_options options_;
    std::mutex mutex_; // guards connections_ (the map, not the entries)
    std::map<std::int64_t, std::shared_ptr<detail::mqtt_connection>> connections_;
};

} // namespace pulsegate::adapters
