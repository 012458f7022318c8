#pragma once
// API tokens: the REST API's Bearer credential and the MQTT password of an
// integrator ({tenant}/api). A token "pgt_<public id>_<secret>" is shown
// once; what is stored is its public id (which finds the row and names the
// token in the UI and the REST API) and the keyed digest of the whole token
// (engine/identity.hpp). tenant none: an operator's token.
//
// Tenant scoping: get, list and revoke take the tenant (none = operator
// tokens), and a token of another tenant behaves as if it did not exist.
// find_by_public_id alone is unscoped: it serves authentication, where the
// token itself says which row it is; the caller then checks the digest, the
// expiry and that the row's tenant is the one the client claims.
//
// Revoking deletes the row (the audit log keeps the history). Expired
// tokens stay listed, so that users see why a client stopped working, until
// remove_expired.
//
// Thread safety: as database (any thread; blocking).

#include "storage/state/database.hpp"
#include "storage/state/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage::state {

struct new_api_token {
    std::optional<std::string> tenant; // none: an operator token
    std::string public_id;
    std::string name;
    std::string token_hash; // credential_digest of the whole token text
    std::optional<std::int64_t> expires_at_ms;
    std::optional<std::int64_t> created_by; // user id; none when made by the CLI
    std::int64_t created_at_ms = 0;
};

struct api_token {
    std::int64_t id = 0; // internal row id
    std::optional<std::string> tenant;
    std::string public_id;
    std::string name;
    std::string token_hash;
    std::optional<std::int64_t> created_by;
    std::int64_t created_at_ms = 0;
    std::optional<std::int64_t> last_used_at_ms;
    std::optional<std::int64_t> expires_at_ms;

    // Usable at now_ms: no expiry, or one still ahead.
    bool active_at(std::int64_t now_ms) const noexcept { return !expires_at_ms || now_ms < *expires_at_ms; }
    friend bool operator==(const api_token&, const api_token&) = default;
};

class api_token_repository {
public:
    explicit api_token_repository(database& db) noexcept : db_(&db) {}

    // The new row's id. Errors: invalid_argument (empty public id, name or
    // hash), constraint_violation (unknown tenant or creating user),
    // already_exists (the public id or the hash is taken: generate another).
    state_result<std::int64_t> create(const new_api_token& t);
    // Unscoped, for authentication (see above).
    state_result<std::optional<api_token>> find_by_public_id(std::string_view public_id) const;
    state_result<std::optional<api_token>> get(const std::optional<std::string>& tenant,
                                               std::string_view public_id) const;
    // The tenant's tokens (none: the operator tokens), oldest first.
    state_result<std::vector<api_token>> list(const std::optional<std::string>& tenant) const;
    // Deletes the token; not_found if the tenant has no such token.
    state_result<void> revoke(const std::optional<std::string>& tenant, std::string_view public_id);
    // Sets last_used_at (never backwards); not_found if the token is gone.
    state_result<void> touch_last_used(std::string_view public_id, std::int64_t at_ms);
    // Deletes tokens whose expiry is at or before now_ms; returns how many.
    state_result<std::int64_t> remove_expired(std::int64_t now_ms);

private:
    database* db_;
};

} // namespace pulsegate::storage::state
