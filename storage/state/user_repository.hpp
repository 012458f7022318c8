#pragma once
// Users of the web UI and REST API. Operators (operator_admin, operator)
// have no tenant; tenant users (tenant_admin, tenant_viewer) exactly one.
// Login names are unique across the instance (login takes no tenant).
// Passwords arrive already hashed (argon2id, libsodium crypto_pwhash_str);
// this layer never sees a password.
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

enum class user_role {
    operator_admin,
    operator_, // "operator" (a C++ keyword)
    tenant_admin,
    tenant_viewer,
};

std::string_view to_string(user_role r) noexcept;
std::optional<user_role> parse_user_role(std::string_view s) noexcept;
constexpr bool is_operator_role(user_role r) noexcept {
    return r == user_role::operator_admin || r == user_role::operator_;
}

struct new_user {
    std::optional<std::string> tenant; // none for operator roles
    std::string name;
    user_role role = user_role::tenant_viewer;
    std::string password_hash;
    std::int64_t created_at_ms = 0;
};

struct user {
    std::int64_t id = 0;
    std::optional<std::string> tenant;
    std::string name;
    user_role role = user_role::tenant_viewer;
    std::string password_hash;
    std::int64_t created_at_ms = 0;
    bool disabled = false;
    std::optional<std::int64_t> last_login_at_ms;

    friend bool operator==(const user&, const user&) = default;
};

// PATCH semantics: fields left empty keep their value.
struct user_update {
    std::optional<std::string> password_hash{}; // non-empty when set
    std::optional<bool> disabled{};
};

class user_repository {
public:
    explicit user_repository(database& db) noexcept : db_(&db) {}

    // The new user's id. Errors: invalid_argument (empty name or hash, a
    // tenant given to an operator role or missing for a tenant role),
    // constraint_violation (the tenant does not exist), already_exists
    // (the name is taken).
    state_result<std::int64_t> create(const new_user& u);
    state_result<std::optional<user>> get(std::int64_t id) const;
    state_result<std::optional<user>> get_by_name(std::string_view name) const;
    // Every user (operators first, then by tenant and name).
    state_result<std::vector<user>> list() const;
    // The users of one tenant, by name.
    state_result<std::vector<user>> list_in_tenant(std::string_view tenant) const;
    // Enabled operator_admin users; `init` creates the first one.
    state_result<std::int64_t> count_operator_admins() const;
    // Sets last_login_at; not_found if there is no such user.
    state_result<void> record_login(std::int64_t id, std::int64_t at_ms);

    // The instance must keep an enabled operator_admin (nobody could manage
    // it otherwise): update and remove refuse, with constraint_violation,
    // a change that would leave none. The check and the change share one
    // transaction.

    // Both fields in one transaction. Errors: invalid_argument (an empty
    // hash), not_found, constraint_violation (see above).
    state_result<void> update(std::int64_t id, const user_update& u);
    // A new hash for the same password (rehash at login) or a new password.
    state_result<void> set_password_hash(std::int64_t id, std::string_view password_hash) {
        return update(id, {.password_hash = std::string(password_hash)});
    }
    state_result<void> set_disabled(std::int64_t id, bool disabled) { return update(id, {.disabled = disabled}); }
    // Deletes the user with its web sessions; API tokens it created stay
    // (created_by becomes null). Errors: not_found, constraint_violation.
    state_result<void> remove(std::int64_t id);

private:
    database* db_;
};

} // namespace pulsegate::storage::state
