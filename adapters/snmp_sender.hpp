#pragma once
// The snmp integration (DESIGN.md, Delivery): one alert event becomes one
// SNMPv2-Trap PDU, sent with net-snmp as SNMPv2c (community) or SNMPv3 (USM
// authPriv). The notification and object OIDs are those of
// etc/PULSEGATE-MIB.txt, which receivers load to read the traps.
//
// Settings (integration_target::config, all JSON; secrets apart):
//   host           required; a name or an IP address (IPv6 with or without brackets)
//   port           1..65535, default 162
//   version        "v2c" (default) or "v3"
//   user           v3: the USM security name (1..32 characters), required
//   auth_protocol  v3: "SHA" (HMAC-SHA-96, default) or "SHA-256" (HMAC-192-SHA-256)
//   priv_protocol  v3: "AES" (AES-128-CFB, the default and the only one)
//   engine_id      v3: the sender's authoritative snmpEngineID as hex (5..32
//                  octets, optional "0x"); default snmp_default_engine_id(id)
//   timeout_ms     1..120000, default 5000: bounds the hand-off to the socket
// Secrets (integration_target::secrets): community (v2c, required);
// auth_password and priv_password (v3, required, at least 8 characters as
// USM requires).
//
// The PDU: sysUpTime.0 (centiseconds since this sender was made),
// snmpTrapOID.0 = pgAlertOpened / pgAlertAcknowledged / pgAlertEscalated /
// pgAlertClosed for alert.opened / .acknowledged / .escalated / .closed, then
// pgAlertId.0, pgAlertTenant.0, pgAlertDevice.0, pgAlertRuleName.0,
// pgAlertRuleId.0, pgAlertKind.0, pgAlertSeverity.0, pgAlertStatus.0,
// pgAlertMetric.0, pgAlertValue.0, pgAlertThreshold.0 (numbers as
// format_value writes them: SMIv2 has no floating point), pgAlertMessage.0
// (cut to 255 octets at a character boundary), pgAlertEventTime.0 (RFC 3339),
// pgAlertEscalationLevel.0 and pgAlertTest.0 (true(1) for a test send, which
// uses the same notification as the real event).
//
// SNMPv3: for a trap the sender is the authoritative engine, so the receiver
// must know our engine ID and the user with the same passwords, e.g. for
// snmptrapd: `createUser -e 0x<engine_id> <user> SHA <auth_password> AES
// <priv_password>` and `authUser log <user>`. Keys come from the passwords
// (generate_Ku) localized to that engine ID. snmpEngineBoots is 1 and
// snmpEngineTime the seconds since 2020-01-01 UTC by the wall clock, so the
// time a receiver has cached only moves forward, across restarts too.
//
// SSRF guard: the host goes through target_guard::resolve and the trap goes
// to the first address it returned ("udp:a.b.c.d:port" or
// "udp6:[v6]:port"), never to the name.
//
// Outcomes: traps are unacknowledged UDP, fire and forget. A PDU handed to
// the socket is `delivered` (status "sent") even if nobody listens or the
// receiver drops it (wrong community, unknown user or engine ID): nothing
// tells the sender, and trying again would not change that. failed: settings
// that cannot work (validate_snmp's checks, keys that cannot be made), a
// destination the guard refuses, an event the MIB has no notification for.
// retry: socket and session errors. error never contains the community or
// a password.
//
// Threads: send() may be called from several threads at once. Each call
// opens its own single session (snmp_sess_open / snmp_sess_send /
// snmp_sess_close); the calls into net-snmp are serialized by one lock,
// because the library has no locks of its own and keeps process-wide state
// (the USM user list, the engine-time cache, statistics). A send holds it
// for microseconds: nothing waits for an answer. net-snmp is initialized
// once per process, reading and writing no configuration or persistent
// file, loading no MIB, and logging through spdlog (debug) only.

#include "adapters/sender.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace pulsegate::adapters {

// Checks an snmp integration's settings at create/update time. False with
// *why (when not null) naming the field and what to do, e.g. "secrets.community
// is required for version v2c". Never mentions a secret's value. Does not
// resolve the host: the guard decides that at send time.
bool validate_snmp(const boost::json::object& config, const boost::json::object& secrets, std::string* why);

// The engine ID (hex, without "0x") an SNMPv3 integration uses when its
// config has no engine_id: 80001f8804 (RFC 3411 format 4, text, under the
// net-snmp enterprise prefix, as net-snmp's own generated IDs) followed by
// the ASCII of "pulsegate" and the integration id in decimal. Stable for the
// life of the integration; the UI shows it so the receiver can be set up.
// Ids of 19 digits would exceed the 32-octet limit: such an integration
// needs an explicit engine_id.
std::string snmp_default_engine_id(std::int64_t integration_id);

class snmp_sender final : public sender {
public:
    // Keeps a reference: `guard` must outlive the sender. sysUpTime counts
    // from here.
    explicit snmp_sender(const target_guard& guard);

    // Blocks only for name resolution and key derivation (a few ms for v3).
    send_result send(const integration_target& target, const alert_message& message) override;

private:
    const target_guard& guard_;
    std::chrono::steady_clock::time_point created_;
};

} // namespace pulsegate::adapters
