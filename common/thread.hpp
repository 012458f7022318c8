#pragma once
// Names and scheduling hints for the daemon's threads, so `top -H`, `perf`
// and `ps -L` tell them apart, and the kernel knows which ones a message
// waits for. Header-only: storage/ uses it without linking common/.

#include <pthread.h>
#include <sched.h>

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

// Marks the calling thread as background work (the storage and alert
// writers): SCHED_BATCH, same nice level and CPU share, but waking it never
// preempts the thread that woke it. Without this a shard that hands a batch
// to a writer sharing its core could be switched out for the writer's whole
// commit before it delivers what it is holding (an alert event waited for
// the alert's database write: about 0.5 ms at the median on 2 cores). False
// where the policy does not exist or is refused; nothing else changes then.
inline bool mark_background_thread() noexcept {
#ifdef SCHED_BATCH
    sched_param p{};
    p.sched_priority = 0;
    return pthread_setschedparam(pthread_self(), SCHED_BATCH, &p) == 0;
#else
    return false;
#endif
}

} // namespace pulsegate::common
