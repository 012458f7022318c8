#pragma once
// The broker's authentication and authorisation port. The identity issue
// fills it (devices, integrators, operators); without one, every client is
// anonymous and options::allow_anonymous decides.

#include "broker/protocol/packet.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace pulsegate::broker {

// Who a connected client is. Decided once at CONNECT and fixed for the
// connection. A non-empty tenant mounts the client in `t/{tenant}/`: every
// topic and filter it names is inside that tree.
enum class client_kind : unsigned char { anonymous, device, integrator, operator_ };

struct client_identity {
    std::string tenant;    // empty: operator / unmounted, sees internal names
    std::string principal; // user name, "{tenant}/{device}", or "anonymous"
    bool anonymous = true;
    client_kind kind = client_kind::anonymous;
    std::string device; // kind == device: its id
    // Which credential let it in, when several may share a principal (an
    // integrator's API token id), so that revoking one disconnects only its
    // clients. Not persisted: a resumed session authenticates again.
    std::string credential;
    // The tenant's own quotas, when the authenticator knows them (0: the
    // server's options::tenant_max_connections / tenant_max_publish_rate).
    std::uint32_t tenant_max_connections = 0;
    std::uint32_t tenant_max_publish_rate = 0;
};

// What CONNECT presented, for the authenticator.
struct connect_info {
    std::string_view client_id;
    std::optional<std::string_view> username;
    std::optional<std::string_view> password;
    protocol::protocol_version version = protocol::protocol_version::v5;
    std::string_view remote_address;
    // "tenant/device" named by a verified TLS client certificate, or empty.
    std::string_view certificate;
};

// The identity, or the reason code to refuse the connection with
// (bad_user_name_or_password, not_authorized, banned, ...).
using auth_result = std::variant<client_identity, protocol::reason_code>;

// How a deferred authentication reports back: complete() exactly once, from
// any thread. The broker resumes the CONNECT on its shard; a connection that
// is gone by then ignores the answer.
class auth_completion {
public:
    virtual ~auth_completion() = default;
    virtual void complete(auth_result r) = 0;
};

// Called on a shard thread, which must never block on disk, network or an
// expensive hash (argon2): an implementation answers at once from memory (a
// cache, anonymous rules) or returns nullopt and later calls done->complete
// from a worker. A CONNECT whose answer does not come within the connect
// timeout is refused (0x88 server unavailable).
class authenticator {
public:
    virtual ~authenticator() = default;

    // `info`'s views are valid only during the call: a deferred answer must
    // copy what it needs.
    virtual std::optional<auth_result> authenticate(const connect_info& info,
                                                    std::shared_ptr<auth_completion> done) = 0;

    // Topics and filters are in the client's own namespace (before mounting).
    virtual bool may_publish(const client_identity& who, std::string_view topic) = 0;
    virtual bool may_subscribe(const client_identity& who, std::string_view filter) = 0;

    // Told of every publish, will or subscription the broker refused a
    // client as not authorised (by may_* or by its own `$` rules), with the
    // topic or filter the client wrote. On a shard thread: must not block.
    virtual void denied(const client_identity& who, std::string_view topic_or_filter, bool subscribe) {
        (void)who, (void)topic_or_filter, (void)subscribe;
    }
};

} // namespace pulsegate::broker
