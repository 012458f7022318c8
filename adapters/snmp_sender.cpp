#include "adapters/snmp_sender.hpp"

#include <boost/asio/ip/address.hpp>
#include <spdlog/spdlog.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#pragma GCC diagnostic pop

#include <array>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

namespace pulsegate::adapters {

namespace json = boost::json;

namespace {

// The OIDs of etc/PULSEGATE-MIB.txt, in one place. PLACEHOLDER enterprise
// number 58765: replace it here and in the MIB by pulsegate's registered
// IANA PEN before release.
namespace oids {
constexpr oid pulsegate[] = {1, 3, 6, 1, 4, 1, 58765};
constexpr oid notifications = 0; // pulsegate.0.N: the NOTIFICATION-TYPEs
constexpr oid alert_opened = 1;
constexpr oid alert_acknowledged = 2;
constexpr oid alert_escalated = 3;
constexpr oid alert_closed = 4;
constexpr oid alert_objects[] = {1, 1}; // pulsegate.1.1.N: pgAlertObjects
constexpr oid alert_id = 1;
constexpr oid alert_tenant = 2;
constexpr oid alert_device = 3;
constexpr oid alert_rule_name = 4;
constexpr oid alert_rule_id = 5;
constexpr oid alert_kind = 6;
constexpr oid alert_severity = 7;
constexpr oid alert_status = 8;
constexpr oid alert_metric = 9;
constexpr oid alert_value = 10;
constexpr oid alert_threshold = 11;
constexpr oid alert_message = 12;
constexpr oid alert_event_time = 13;
constexpr oid alert_escalation_level = 14;
constexpr oid alert_test = 15;
// SNMPv2-MIB
constexpr oid sys_up_time_0[] = {1, 3, 6, 1, 2, 1, 1, 3, 0};
constexpr oid snmp_trap_oid_0[] = {1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0};
} // namespace oids

constexpr std::size_t max_display_string = 255; // DisplayString SIZE (0..255)

struct snmp_settings {
    std::string host;
    unsigned port = 162;
    bool v3 = false;
    std::string user;
    bool sha256 = false;
    std::vector<unsigned char> engine_id; // empty: the default for the integration
    long timeout_ms = 5000;
    std::string community;
    std::string auth_password;
    std::string priv_password;
};

std::optional<std::int64_t> integer_of(const json::value& v) {
    if (v.is_int64())
        return v.get_int64();
    if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        return static_cast<std::int64_t>(v.get_uint64());
    return std::nullopt;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// RFC 3411 SnmpEngineID: 5..32 octets, not all zeros, not all 'ff'H.
std::optional<std::vector<unsigned char>> parse_engine_id(std::string_view hex) {
    if (hex.starts_with("0x") || hex.starts_with("0X"))
        hex.remove_prefix(2);
    if (hex.size() % 2 != 0 || hex.size() < 10 || hex.size() > 64)
        return std::nullopt;
    std::vector<unsigned char> out;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        out.push_back(static_cast<unsigned char>(hi * 16 + lo));
    }
    bool all_zero = true, all_ff = true;
    for (auto b : out) {
        all_zero = all_zero && b == 0x00;
        all_ff = all_ff && b == 0xff;
    }
    if (all_zero || all_ff)
        return std::nullopt;
    return out;
}

std::vector<unsigned char> default_engine_id(std::int64_t integration_id) {
    std::vector<unsigned char> id = {0x80, 0x00, 0x1f, 0x88, 0x04};
    const std::string text = "pulsegate" + std::to_string(integration_id);
    id.insert(id.end(), text.begin(), text.end());
    return id;
}

// Reads and checks the settings; nullopt with *why naming the field.
std::optional<snmp_settings> read_settings(const json::object& config, const json::object& secrets, std::string& why) {
    auto fail = [&](std::string msg) {
        why = std::move(msg);
        return std::optional<snmp_settings>();
    };
    auto text = [](const json::object& o, std::string_view key) -> std::optional<std::string> {
        const auto* v = o.if_contains(key);
        if (v == nullptr || !v->is_string())
            return std::nullopt;
        return std::string(v->get_string());
    };
    auto not_string = [](const json::object& o, std::string_view key) {
        const auto* v = o.if_contains(key);
        return v != nullptr && !v->is_string() && !v->is_null();
    };
    snmp_settings s;

    s.host = text(config, "host").value_or("");
    if (s.host.empty())
        return fail("config.host is required: the trap receiver's name or IP address");

    if (const auto* v = config.if_contains("port"); v != nullptr && !v->is_null()) {
        const auto p = integer_of(*v);
        if (!p || *p < 1 || *p > 65535)
            return fail("config.port must be an integer 1..65535 (the trap receiver's UDP port, usually 162)");
        s.port = static_cast<unsigned>(*p);
    }

    for (const char* key : {"version", "user", "auth_protocol", "priv_protocol", "engine_id"})
        if (not_string(config, key))
            return fail(std::string("config.") + key + " must be a string");
    const auto version = text(config, "version").value_or("v2c");
    if (version != "v2c" && version != "v3")
        return fail("config.version must be \"v2c\" or \"v3\"");
    s.v3 = version == "v3";

    if (const auto* v = config.if_contains("timeout_ms"); v != nullptr && !v->is_null()) {
        const auto t = integer_of(*v);
        if (!t || *t < 1 || *t > 120000)
            return fail("config.timeout_ms must be an integer 1..120000");
        s.timeout_ms = static_cast<long>(*t);
    }

    for (const char* key : {"community", "auth_password", "priv_password"})
        if (not_string(secrets, key))
            return fail(std::string("secrets.") + key + " must be a string");

    if (!s.v3) {
        s.community = text(secrets, "community").value_or("");
        if (s.community.empty())
            return fail("secrets.community is required for version v2c: the community the receiver accepts");
        return s;
    }

    s.user = text(config, "user").value_or("");
    if (s.user.empty() || s.user.size() > 32)
        return fail("config.user is required for version v3: the USM security name (1..32 characters) "
                    "the receiver knows");
    const auto auth = text(config, "auth_protocol").value_or("SHA");
    if (auth != "SHA" && auth != "SHA-256")
        return fail("config.auth_protocol must be \"SHA\" or \"SHA-256\"");
    s.sha256 = auth == "SHA-256";
    if (text(config, "priv_protocol").value_or("AES") != "AES")
        return fail("config.priv_protocol must be \"AES\" (AES-128), the only privacy protocol supported");
    if (const auto e = text(config, "engine_id"); e && !e->empty()) {
        auto id = parse_engine_id(*e);
        if (!id)
            return fail("config.engine_id must be 5..32 octets in hex (10..64 hex digits, optional 0x), "
                        "not all 00 or all ff; or leave it out for the default");
        s.engine_id = std::move(*id);
    }
    s.auth_password = text(secrets, "auth_password").value_or("");
    s.priv_password = text(secrets, "priv_password").value_or("");
    if (s.auth_password.size() < 8)
        return fail("secrets.auth_password is required for version v3 and must have at least 8 characters");
    if (s.priv_password.size() < 8)
        return fail("secrets.priv_password is required for version v3 and must have at least 8 characters");
    return s;
}

std::optional<oid> notification_for(std::string_view event) {
    if (event == "alert.opened")
        return oids::alert_opened;
    if (event == "alert.acknowledged")
        return oids::alert_acknowledged;
    if (event == "alert.escalated")
        return oids::alert_escalated;
    if (event == "alert.closed")
        return oids::alert_closed;
    return std::nullopt;
}

// Cuts to 255 octets without splitting a UTF-8 sequence.
std::string_view display_string(std::string_view s) {
    if (s.size() <= max_display_string)
        return s;
    std::size_t n = max_display_string;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
        --n;
    return s.substr(0, n);
}

// net-snmp keeps process-wide state without locks (see the header): every
// call into it after init holds this.
std::mutex library_mutex;
std::once_flag library_once;

int log_to_spdlog(int, int, void* serverarg, void*) {
    const auto* m = static_cast<const snmp_log_message*>(serverarg);
    if (m != nullptr && m->msg != nullptr) {
        std::string_view msg = m->msg;
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r'))
            msg.remove_suffix(1);
        // Debug only: the library's own chatter (missing MIB modules and the
        // like); every failure that matters comes back to send() as a code.
        spdlog::debug("net-snmp: {}", msg);
    }
    return 0;
}

void init_library() {
    // No snmp.conf, no persistent state under /var/lib/snmp, read or written.
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_READ_CONFIGS, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_LOAD_HOST_FILES, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_NO_TOKEN_WARNINGS, 1);
    // We send numeric OIDs: an empty MIB search path makes init_snmp find
    // no module (it logs that, to debug), instead of parsing the system's.
    netsnmp_set_mib_directory("");
    // A callback log handler replaces the library's stderr fallback.
    netsnmp_register_loghandler(NETSNMP_LOGHANDLER_CALLBACK, LOG_DEBUG);
    snmp_register_callback(SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_LOGGING, log_to_spdlog, nullptr);
    init_snmp("pulsegate");
}

// Removes the USM users for (engine ID, name): net-snmp keeps the keys of
// the first session that created one and would ignore changed passwords.
// usm_get_user finds it in the list usm_remove_user unlinks it from, so the
// removal cannot miss; what usm_remove_user returns is the new head of that
// list (null once it is empty), not whether it removed anything.
void forget_usm_user(const std::vector<unsigned char>& engine_id, const std::string& name) {
    for (int i = 0; i < 64; ++i) {
        auto* u = usm_get_user(engine_id.data(), engine_id.size(), name.c_str());
        if (u == nullptr)
            return;
        usm_remove_user(u);
        usm_free_user(u);
    }
}

std::string peername(const boost::asio::ip::address& a, unsigned port) {
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        return peername(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()), port);
    if (a.is_v6())
        return "udp6:[" + a.to_string() + "]:" + std::to_string(port);
    return "udp:" + a.to_string() + ":" + std::to_string(port);
}

send_result failed(std::string why) { return {outcome::failed, "", std::move(why)}; }

void add_string(netsnmp_pdu* pdu, std::span<const oid> name, std::string_view value) {
    const auto v = display_string(value);
    snmp_pdu_add_variable(pdu, name.data(), name.size(), ASN_OCTET_STR,
                          reinterpret_cast<const unsigned char*>(v.data()), v.size());
}

void add_unsigned(netsnmp_pdu* pdu, std::span<const oid> name, std::uint32_t value) {
    const u_long v = value;
    snmp_pdu_add_variable(pdu, name.data(), name.size(), ASN_UNSIGNED, reinterpret_cast<const unsigned char*>(&v),
                          sizeof v);
}

void add_integer(netsnmp_pdu* pdu, std::span<const oid> name, long value) {
    snmp_pdu_add_variable(pdu, name.data(), name.size(), ASN_INTEGER, reinterpret_cast<const unsigned char*>(&value),
                          sizeof value);
}

// pgAlertXxx.0
std::array<oid, 11> alert_object(oid column) {
    std::array<oid, 11> o{}; // o[10] = 0: the scalar's instance
    std::copy(std::begin(oids::pulsegate), std::end(oids::pulsegate), o.begin());
    o[7] = oids::alert_objects[0];
    o[8] = oids::alert_objects[1];
    o[9] = column;
    return o;
}

} // namespace

bool validate_snmp(const json::object& config, const json::object& secrets, std::string* why) {
    std::string w;
    const bool ok = read_settings(config, secrets, w).has_value();
    if (!ok && why != nullptr)
        *why = std::move(w);
    return ok;
}

std::string snmp_default_engine_id(std::int64_t integration_id) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    for (auto b : default_engine_id(integration_id)) {
        hex += digits[b >> 4];
        hex += digits[b & 0x0f];
    }
    return hex;
}

snmp_sender::snmp_sender(const target_guard& guard) : guard_(guard), created_(std::chrono::steady_clock::now()) {}

send_result snmp_sender::send(const integration_target& target, const alert_message& message) {
    std::string why;
    auto s = read_settings(target.config, target.secrets, why);
    if (!s)
        return failed(why);
    const auto trap = notification_for(message.event);
    if (!trap)
        return failed("PULSEGATE-MIB has no notification for event \"" + message.event + "\"");
    if (s->v3 && s->engine_id.empty()) {
        s->engine_id = default_engine_id(target.id);
        if (s->engine_id.size() > 32)
            return failed("the integration id is too long for the default SNMPv3 engine ID: set config.engine_id");
    }
    const auto addresses = guard_.resolve(s->host, &why);
    if (!addresses)
        return failed(why);
    std::string peer = peername(addresses->front(), s->port);

    std::call_once(library_once, init_library);

    netsnmp_session session;
    snmp_sess_init(&session);
    session.peername = peer.data();
    session.timeout = s->timeout_ms * 1000L;
    session.retries = 0;
    if (s->v3) {
        session.version = SNMP_VERSION_3;
        session.securityModel = SNMP_SEC_MODEL_USM;
        session.securityLevel = SNMP_SEC_LEVEL_AUTHPRIV;
        session.securityName = s->user.data();
        session.securityNameLen = s->user.size();
        session.securityAuthProto = s->sha256 ? usmHMAC192SHA256AuthProtocol : usmHMACSHA1AuthProtocol;
        session.securityAuthProtoLen = USM_AUTH_PROTO_SHA_LEN;
        session.securityPrivProto = usmAESPrivProtocol;
        session.securityPrivProtoLen = USM_PRIV_PROTO_AES_LEN;
        session.securityAuthKeyLen = USM_AUTH_KU_LEN;
        session.securityPrivKeyLen = USM_PRIV_KU_LEN;
        // Ku from each password, hashed with the auth protocol (RFC 3414
        // A.2; RFC 7860 for SHA-256); the library localizes both to the
        // engine ID when the session opens.
        if (generate_Ku(session.securityAuthProto, static_cast<u_int>(session.securityAuthProtoLen),
                        reinterpret_cast<const u_char*>(s->auth_password.data()), s->auth_password.size(),
                        session.securityAuthKey, &session.securityAuthKeyLen) != SNMPERR_SUCCESS ||
            generate_Ku(session.securityAuthProto, static_cast<u_int>(session.securityAuthProtoLen),
                        reinterpret_cast<const u_char*>(s->priv_password.data()), s->priv_password.size(),
                        session.securityPrivKey, &session.securityPrivKeyLen) != SNMPERR_SUCCESS)
            return failed("cannot derive the SNMPv3 keys from the passwords (auth_protocol " +
                          std::string(s->sha256 ? "SHA-256" : "SHA") + ")");
        // We are the authoritative engine for our own traps: no discovery.
        session.securityEngineID = s->engine_id.data();
        session.securityEngineIDLen = s->engine_id.size();
        session.contextEngineID = s->engine_id.data();
        session.contextEngineIDLen = s->engine_id.size();
        session.flags |= SNMP_FLAGS_DONT_PROBE;
    } else {
        session.version = SNMP_VERSION_2c;
        session.community = reinterpret_cast<u_char*>(s->community.data());
        session.community_len = s->community.size();
    }

    netsnmp_pdu* pdu = snmp_pdu_create(SNMP_MSG_TRAP2);
    const auto up = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - created_);
    const u_long ticks = static_cast<u_long>(static_cast<std::uint32_t>(up.count() / 10)); // TimeTicks wrap at 2^32
    snmp_pdu_add_variable(pdu, oids::sys_up_time_0, std::size(oids::sys_up_time_0), ASN_TIMETICKS,
                          reinterpret_cast<const unsigned char*>(&ticks), sizeof ticks);
    std::array<oid, 9> trap_oid{};
    std::copy(std::begin(oids::pulsegate), std::end(oids::pulsegate), trap_oid.begin());
    trap_oid[7] = oids::notifications;
    trap_oid[8] = *trap;
    snmp_pdu_add_variable(pdu, oids::snmp_trap_oid_0, std::size(oids::snmp_trap_oid_0), ASN_OBJECT_ID,
                          reinterpret_cast<const unsigned char*>(trap_oid.data()), sizeof trap_oid);
    // Ids are SQLite rowids: an edge instance stays far below 2^32 (Unsigned32 in the MIB).
    add_unsigned(pdu, alert_object(oids::alert_id), static_cast<std::uint32_t>(message.alert_id));
    add_string(pdu, alert_object(oids::alert_tenant), message.tenant);
    add_string(pdu, alert_object(oids::alert_device), message.device);
    add_string(pdu, alert_object(oids::alert_rule_name), message.rule_name);
    add_unsigned(pdu, alert_object(oids::alert_rule_id), static_cast<std::uint32_t>(message.rule_id));
    add_string(pdu, alert_object(oids::alert_kind), message.kind);
    add_string(pdu, alert_object(oids::alert_severity), message.severity);
    add_string(pdu, alert_object(oids::alert_status), message.status);
    add_string(pdu, alert_object(oids::alert_metric), message.metric);
    add_string(pdu, alert_object(oids::alert_value), format_value(message.value));
    add_string(pdu, alert_object(oids::alert_threshold), format_value(message.threshold));
    add_string(pdu, alert_object(oids::alert_message), message.message);
    add_string(pdu, alert_object(oids::alert_event_time), message.at);
    add_unsigned(pdu, alert_object(oids::alert_escalation_level),
                 static_cast<std::uint32_t>(std::max<std::int64_t>(0, message.escalation_level)));
    add_integer(pdu, alert_object(oids::alert_test), message.test ? 1 : 2); // TruthValue

    std::lock_guard lock(library_mutex);
    if (s->v3) {
        forget_usm_user(s->engine_id, s->user);
        // snmpEngineBoots 1, snmpEngineTime from a fixed epoch: see the header.
        constexpr std::time_t epoch_2020 = 1577836800;
        const auto now = std::max<std::time_t>(std::time(nullptr) - epoch_2020, 0);
        set_enginetime(s->engine_id.data(), static_cast<u_int>(s->engine_id.size()), 1,
                       static_cast<u_int>(now % 0x7fffffff), TRUE);
    }
    void* handle = snmp_sess_open(&session);
    if (handle == nullptr) {
        snmp_free_pdu(pdu);
        std::string err = "cannot open an SNMP session to " + peer + ": " + snmp_api_errstring(session.s_snmp_errno);
        if (session.s_errno != 0)
            err += " (" + std::generic_category().message(session.s_errno) + ")";
        if (s->v3)
            forget_usm_user(s->engine_id, s->user);
        return {outcome::retry, "", std::move(err)};
    }
    send_result r{outcome::delivered, "sent", ""};
    if (snmp_sess_send(handle, pdu) == 0) {
        int lib_err = 0, sys_err = 0;
        char* text = nullptr;
        snmp_sess_error(handle, &sys_err, &lib_err, &text);
        r = {outcome::retry, "", "cannot send the trap to " + peer + ": " + (text != nullptr ? text : "unknown error")};
        SNMP_FREE(text);
        snmp_free_pdu(pdu);
    }
    snmp_sess_close(handle);
    if (s->v3)
        forget_usm_user(s->engine_id, s->user); // the keys stay in memory no longer than the send
    return r;
}

} // namespace pulsegate::adapters
