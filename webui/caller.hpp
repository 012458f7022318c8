#pragma once
// Who made a REST request, as the auth layer (webui/auth.hpp) established it
// from a session cookie or a Bearer token, and what a route demands of them.
//
// Roles (DESIGN.md, Web UI and REST API): operators (operator_admin,
// operator) have no tenant and use /api/v1/operator/...; tenant users
// (tenant_admin, tenant_viewer) and tenant API tokens have exactly one
// tenant, the only one their requests ever touch. A tenant API token acts
// with tenant_admin rights; an operator token (tenant none) with operator.

#include "storage/state/user_repository.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace pulsegate::webui {

struct caller {
    enum class method { session, token };
    method via = method::session;
    std::optional<std::int64_t> user_id; // session: the user; token: its creator, if any
    std::string name;                    // the user name, or the token's public id
    storage::state::user_role role = storage::state::user_role::tenant_viewer;
    std::optional<std::string> tenant;   // none: an operator
    std::string remote;                  // the client's address, for audit entries

    bool is_operator() const noexcept { return storage::state::is_operator_role(role); }
    // For the audit log: "user:alice" or "token:<public id>".
    std::string actor() const { return (via == method::session ? "user:" : "token:") + name; }
};

// What a route requires. Failing it answers 403 forbidden (the caller is
// known but may not do this), never 404.
enum class access {
    tenant_read,    // tenant_admin, tenant_viewer, tenant tokens
    tenant_write,   // tenant_admin, tenant tokens (viewers: 403)
    operator_read,  // operator_admin, operator
    operator_write, // operator_admin
};

} // namespace pulsegate::webui
