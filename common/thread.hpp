#pragma once
// Names and scheduling hints for the daemon's threads, so `top -H`, `perf`
// and `ps -L` tell them apart, and the kernel knows which ones a message
// waits for. Header-only: storage/ uses it without linking common/.

#include <pthread.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

namespace pulsegate::common {

// Names the calling thread (Linux keeps 15 characters: "pg-shard-0").
inline void name_this_thread(std::string_view name) noexcept {
    std::array<char, 16> buf{};
    const auto n = std::min(name.size(), buf.size() - 1);
    std::memcpy(buf.data(), name.data(), n);
    pthread_setname_np(pthread_self(), buf.data());
}

} // namespace pulsegate::common
