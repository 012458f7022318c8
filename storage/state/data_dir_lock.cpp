#include "storage/state/data_dir_lock.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace pulsegate::storage::state {

namespace {

// The pid the holder wrote, "" when unreadable or empty.
std::string holder_pid(int fd) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return {};
    std::string s(buf, static_cast<std::size_t>(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    for (char c : s)
        if (c < '0' || c > '9')
            return {};
    return s;
}

} // namespace

state_result<data_dir_lock> data_dir_lock::try_acquire(const std::filesystem::path& data_dir) {
    auto file = data_dir / "pulsegate.lock";
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return make_state_error(state_errc::io_error,
                                "cannot open lock file " + file.string() + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        if (err == EWOULDBLOCK) {
            const auto pid = holder_pid(fd);
            ::close(fd);
            return make_state_error(state_errc::data_dir_in_use,
                                    "data dir " + data_dir.string() + " is in use by another pulsegate process" +
                                        (pid.empty() ? std::string() : " (pid " + pid + ")") +
                                        ": stop it first (it holds " + file.string() + ")");
        }
        ::close(fd);
        return make_state_error(state_errc::io_error, "cannot lock " + file.string() + ": " + std::strerror(err));
    }
    // Best effort: the pid only improves the refusal message of others.
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) == 0) {
        [[maybe_unused]] const ssize_t n = ::pwrite(fd, pid.data(), pid.size(), 0);
    }
    return data_dir_lock(fd, std::move(file));
}

data_dir_lock::data_dir_lock(data_dir_lock&& o) noexcept : fd_(std::exchange(o.fd_, -1)), file_(std::move(o.file_)) {}

data_dir_lock& data_dir_lock::operator=(data_dir_lock&& o) noexcept {
    if (this != &o) {
        release();
        fd_ = std::exchange(o.fd_, -1);
        file_ = std::move(o.file_);
    }
    return *this;
}

data_dir_lock::~data_dir_lock() { release(); }

void data_dir_lock::release() noexcept {
    if (fd_ >= 0) {
        // Clear the pid while still holding the lock, so that nobody later
        // names a process that is gone; closing releases the flock.
        [[maybe_unused]] const int rc = ::ftruncate(fd_, 0);
        ::close(fd_);
        fd_ = -1;
    }
}

} // namespace pulsegate::storage::state
