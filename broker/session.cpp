#include "broker/session.hpp"

namespace pulsegate::broker {

bool session::enqueue(delivery&& d, std::size_t max_queued, bool force) {
    if (force) {
        d.hold.reset();
    } else if (queue.size() >= max_queued) {
        if (conn == nullptr || d.qos == 0) return false;
        if (d.hold) d.hold->holds.fetch_add(1, std::memory_order_relaxed);
    } else {
        d.hold.reset();
    }
    queue.push_back(std::move(d));
    return true;
}

delivery session::pop_front(std::size_t max_queued, std::vector<ticket_ptr>& to_release) {
    delivery d = queue.pop_front();
    if (d.hold) to_release.push_back(std::move(d.hold));
    // The entry now at index max_queued - 1 has just come inside the bound.
    if (max_queued > 0 && queue.size() >= max_queued) {
        auto& entered = queue[max_queued - 1];
        if (entered.hold) to_release.push_back(std::move(entered.hold));
    }
    return d;
}

void session::trim_to_bound(std::size_t max_queued, std::vector<ticket_ptr>& to_release) {
    while (queue.size() > max_queued) {
        delivery d = queue.pop_back();
        if (d.hold) {
            d.hold->refused.store(true, std::memory_order_relaxed);
            to_release.push_back(std::move(d.hold));
        }
    }
}

std::uint16_t session::next_packet_id() noexcept {
    // Skips 0 and ids still in flight (the window is far below 65535).
    for (;;) {
        if (++last_packet_id_ == 0) last_packet_id_ = 1;
        if (find_inflight(last_packet_id_) == nullptr) return last_packet_id_;
    }
}

inflight_message* session::find_inflight(std::uint16_t packet_id) noexcept {
    // Acknowledgements mostly arrive in send order: the match is near the front.
    for (std::size_t i = 0; i < inflight.size(); ++i)
        if (inflight[i].packet_id == packet_id) return &inflight[i];
    return nullptr;
}

bool session::erase_inflight(std::uint16_t packet_id) noexcept {
    for (std::size_t i = 0; i < inflight.size(); ++i) {
        if (inflight[i].packet_id == packet_id) {
            inflight.erase(i);
            return true;
        }
    }
    return false;
}

} // namespace pulsegate::broker
