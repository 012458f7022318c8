#pragma once
// One interface for every integration type (DESIGN.md, Delivery): the
// delivery workers hand a sender an integration (its settings and its
// decrypted secrets) and one alert event, and get back what happened. A
// sender knows nothing of jobs, retries or the database: the outbox decides
// what an outcome means (engine/outbox.hpp).
//
// Threads: send() blocks (connect, TLS, SMTP dialogue, ...) and is called on
// a delivery worker thread, never on a broker shard; several workers may call
// the same sender at once for different jobs. It must return within the
// integration's timeout (plus a little for name resolution).
//
// Destinations are customer input: every sender connects only to addresses
// target_guard::resolve returned (SSRF guard), and follows no redirect.

#include "adapters/alert_message.hpp"
#include "adapters/target_guard.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>

namespace pulsegate::adapters {

enum class outcome {
    delivered, // the receiver acknowledged: never sent again
    retry,     // worth another attempt later (timeouts, 5xx, connection refused, ...)
    failed,    // will not work however often it is tried (4xx, bad address, auth refused): dead
};

struct send_result {
    outcome result = outcome::retry;
    std::string status; // the receiver's answer: HTTP status, SMTP reply code, "" when none
    std::string error;  // what went wrong, for the delivery log; empty when delivered. Never a secret.
};

// An integration as the workers see it.
struct integration_target {
    std::int64_t id = 0;
    std::string tenant;
    std::string name;
    std::string type;               // webhook | snmp | email | mqtt
    boost::json::object config;     // the non-secret settings, as the REST API shows them
    boost::json::object secrets;    // the secret settings, decrypted (never logged)
};

class sender {
public:
    virtual ~sender() = default;
    virtual send_result send(const integration_target& target, const alert_message& message) = 0;
};

} // namespace pulsegate::adapters
