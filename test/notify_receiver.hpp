#pragma once
// The service manager's end of sd_notify(3) for tests: an AF_UNIX datagram
// socket bound to a path or an abstract name, whose datagrams are read with
// a deadline.

#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace pulsegate::test {

class notify_receiver {
public:
    // `name`: a file path, or "@name" for the abstract namespace; the value
    // to put in $NOTIFY_SOCKET.
    explicit notify_receiver(std::string name) : name_(std::move(name)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error("socket(AF_UNIX) failed");
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (name_.size() >= sizeof addr.sun_path) throw std::runtime_error("socket name too long: " + name_);
        std::memcpy(addr.sun_path, name_.data(), name_.size());
        if (name_.front() == '@') addr.sun_path[0] = '\0';
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
            ::close(fd_);
            throw std::runtime_error("cannot bind " + name_ + ": " + std::strerror(errno));
        }
    }
    ~notify_receiver() {
        ::close(fd_);
        if (name_.front() == '/') ::unlink(name_.c_str());
    }
    notify_receiver(const notify_receiver&) = delete;
    notify_receiver& operator=(const notify_receiver&) = delete;

    const std::string& name() const { return name_; }

    // The next datagram, or nullopt when none comes within `timeout`.
    std::optional<std::string> receive(std::chrono::milliseconds timeout = std::chrono::seconds(15)) const {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
        char buf[4096];
        const auto n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0) return std::nullopt;
        return std::string(buf, static_cast<std::size_t>(n));
    }

private:
    std::string name_;
    int fd_ = -1;
};

} // namespace pulsegate::test
