#pragma once
// systemd's readiness protocol (sd_notify(3)) without libsystemd: one
// datagram of newline-separated KEY=VALUE assignments to the AF_UNIX socket
// named by $NOTIFY_SOCKET, a path or "@name" for the abstract namespace.
// With the unit's Type=notify, `systemctl start` returns once the
// listeners are open, and `systemctl reload` once the reload is done.

#include <boost/system/error_code.hpp>

#include <string_view>

namespace pulsegate::daemon {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") to the service manager.
// Nothing to do, and no error, when $NOTIFY_SOCKET is unset: not started by
// systemd, or not with Type=notify. A failure is the caller's to log: the
// service manager then times the start out and says so.
boost::system::error_code notify_service(std::string_view state);

} // namespace pulsegate::daemon
