#include "daemon/service_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace pulsegate::daemon {

boost::system::error_code notify_service(std::string_view state) {
    const char* env = std::getenv("NOTIFY_SOCKET");
    if (env == nullptr || *env == '\0') return {};
    const std::string_view name = env;

    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (name.size() >= sizeof addr.sun_path || (name.front() != '/' && name.front() != '@'))
        return make_error_code(boost::system::errc::invalid_argument);
    std::memcpy(addr.sun_path, name.data(), name.size());
    if (name.front() == '@') addr.sun_path[0] = '\0';  // the abstract namespace
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());

    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return {errno, boost::system::system_category()};
    boost::system::error_code ec;
    if (::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len) < 0)
        ec.assign(errno, boost::system::system_category());
    ::close(fd);
    return ec;
}

} // namespace pulsegate::daemon
