#pragma once
// Everything the broker takes from configuration. The daemon fills it from
// the [mqtt] and [auth] sections; tests fill it directly.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pulsegate::common {
class tls_source;
}

namespace pulsegate::broker {

struct options {
    // "host:port" or "[v6]:port"; port 0 picks a free port (see
    // server::local_endpoints). Several listeners allowed.
    std::vector<std::string> listen{"0.0.0.0:1883"};
    // MQTT over TLS listeners, the same forms; used only with `tls`.
    std::vector<std::string> tls_listen{};
    // Where the TLS listeners take their certificate (reloaded on SIGHUP);
    // null: no TLS listener. Must outlive the server.
    const common::tls_source* tls = nullptr;

    // Shards (threads each owning a part of the broker state); 0 = one per core.
    unsigned shards = 0;

    // >0: cap on a client's keep alive, sent to v5 clients as Server Keep Alive.
    std::uint16_t max_keepalive = 0;
    // Receive Maximum advertised in the v5 CONNACK: QoS 1/2 publishes a client
    // may have unacknowledged towards us. Exceeding it: DISCONNECT 0x93.
    std::uint16_t receive_maximum = 65535;
    // Topic Alias Maximum advertised in the v5 CONNACK (client -> broker).
    std::uint16_t topic_alias_maximum = 10;
    // Largest packet accepted (and advertised in the v5 CONNACK).
    std::uint32_t max_packet_size = 1048576;
    // Outbound QoS 1/2 window per session, further capped by the client's own
    // Receive Maximum.
    std::uint16_t max_inflight = 1000;
    // Messages queued for an offline or slow session beyond the inflight
    // window. QoS 1/2 beyond this bound are refused at the publisher (v5 PUBACK
    // 0x97 quota exceeded) rather than accepted and dropped later.
    std::size_t max_queued_messages = 1000;
    // Per-client publish rates (token buckets holding `publish_burst_s`
    // seconds of the rate); 0 = no limit. A client past either is
    // disconnected (v5: DISCONNECT 0x96 message rate too high) and counted.
    std::uint32_t max_publish_rate = 0;       // PUBLISH packets per second
    std::uint64_t max_publish_byte_rate = 0;  // payload bytes per second
    std::uint32_t publish_burst_s = 5;
    // Per-tenant quotas over all of a tenant's clients (0: none), unless the
    // authenticator sets the tenant's own in client_identity: connections at
    // once (beyond: CONNACK 0x97, 3.1.1 0x03) and PUBLISH packets per second
    // (beyond: the publish is refused, v5 0x97; bucket of publish_burst_s).
    std::uint32_t tenant_max_connections = 0;
    std::uint32_t tenant_max_publish_rate = 0;
    // Concurrent client connections; 0 = unlimited. Beyond: CONNACK 0x97.
    std::size_t max_connections = 0;
    // Topic levels accepted in names and filters.
    std::size_t max_topic_levels = 128;
    // A client that has not completed CONNECT within this time is closed.
    std::chrono::milliseconds connect_timeout{10000};
    // Upper bound for a v5 client's Session Expiry Interval (seconds).
    std::uint32_t max_session_expiry = 0xFFFFFFFFu;

    // Anonymous (no user name) clients: refused unless allowed; when allowed
    // they live in `anonymous_tenant`'s topic tree.
    bool allow_anonymous = false;
    std::string anonymous_tenant = "default";

    // How often $SYS/broker/... statistics are published; 0 disables them.
    std::chrono::seconds sys_interval{10};
};

} // namespace pulsegate::broker
