#pragma once
// Names and scheduling hints for the daemon's threads, so `top -H`, `perf`
// and `ps -L` tell them apart, and the kernel knows which ones a message
// waits for. Header-only: storage/ uses it without linking common/.

#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
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

// Whether a thread of this process that goes SCHED_IDLE may come back.
// Linux lets an unprivileged thread leave SCHED_IDLE only if RLIMIT_NICE
// allows its nice level, or with CAP_SYS_NICE; without either, a writer
// made idle would stay idle and could starve behind busy shards.
inline bool may_leave_sched_idle() noexcept {
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, 0);
    rlimit r{};
    if (errno == 0 && getrlimit(RLIMIT_NICE, &r) == 0 &&
        (r.rlim_cur == RLIM_INFINITY || r.rlim_cur >= static_cast<rlim_t>(20 - nice)))
        return true;
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    std::array<__user_cap_data_struct, 2> caps{};
    if (syscall(SYS_capget, &header, caps.data()) != 0) return false;
    return (caps[0].effective & (1u << CAP_SYS_NICE)) != 0;
}

// Switches a background thread (see mark_background_thread) between
// SCHED_IDLE, where any thread waking on its CPU preempts it at once, and
// SCHED_BATCH, its full share of the CPU. False if refused.
inline bool set_background_idle(pthread_t t, bool idle) noexcept {
#if defined(SCHED_IDLE) && defined(SCHED_BATCH)
    sched_param p{};
    p.sched_priority = 0;
    return pthread_setschedparam(t, idle ? SCHED_IDLE : SCHED_BATCH, &p) == 0;
#else
    (void)t;
    (void)idle;
    return false;
#endif
}

} // namespace pulsegate::common
