#pragma once
// What the REST layer tells the rest of the daemon when an identity changes,
// so that MQTT follows at once: the daemon forgets cached credential
// verdicts and disconnects the clients concerned (DESIGN.md: rotating a
// secret, disabling or deleting a device or tenant, revoking a token
// disconnects its clients). Called after the change is committed, on an
// HTTP thread; implementations must not block for long.

#include <optional>
#include <string_view>

namespace pulsegate::webui {

class identity_hooks {
public:
    virtual ~identity_hooks() = default;

    // A device's secret was rotated, or it was disabled, enabled or removed.
    virtual void device_changed(std::string_view tenant, std::string_view device) = 0;
    // An API token was revoked (tenant none: an operator token).
    virtual void token_revoked(const std::optional<std::string_view>& tenant, std::string_view public_id) = 0;
    // A tenant was disabled, enabled or removed.
    virtual void tenant_changed(std::string_view tenant) = 0;
    // A user was disabled, removed or got a new password.
    virtual void user_changed(std::string_view name) = 0;
};

} // namespace pulsegate::webui
