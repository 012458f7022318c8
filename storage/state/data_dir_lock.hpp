#pragma once
// Exclusive use of a data dir: an flock(2) on `<data_dir>/pulsegate.lock`.
// `serve` holds it for its whole life; `restore` (which replaces the files
// under a daemon's feet otherwise) and `init` take it and refuse when it is
// held. The holder writes its pid into the file so that the refusal can name
// the process. The kernel drops the lock when the process dies, so a crash
// never leaves a stale lock (the file itself stays, harmlessly).
//
// flock locks belong to the open file description: two data_dir_lock
// objects in one process exclude each other too.

#include "storage/state/error.hpp"

#include <filesystem>

namespace pulsegate::storage::state {

class data_dir_lock {
public:
    // Non-blocking. Errors: data_dir_in_use (names the dir and, when known,
    // the holder's pid), io_error (cannot create the lock file; the data
    // dir must exist).
    static state_result<data_dir_lock> try_acquire(const std::filesystem::path& data_dir);

    data_dir_lock(data_dir_lock&& o) noexcept;
    data_dir_lock& operator=(data_dir_lock&& o) noexcept;
    data_dir_lock(const data_dir_lock&) = delete;
    data_dir_lock& operator=(const data_dir_lock&) = delete;
    ~data_dir_lock(); // releases

    const std::filesystem::path& file() const noexcept { return file_; }

private:
    data_dir_lock(int fd, std::filesystem::path file) noexcept : fd_(fd), file_(std::move(file)) {}
    void release() noexcept;

    int fd_ = -1;
    std::filesystem::path file_;
};

} // namespace pulsegate::storage::state
