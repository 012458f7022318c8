#include "broker/message.hpp"

namespace pulsegate::broker {

void intrusive_ptr_release(const message* m) noexcept {
    if (m->refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    auto* mm = const_cast<message*>(m);
    if (mm->pool_ != nullptr) mm->pool_->give_back(mm);
    else delete mm;
}

message_pool::~message_pool() {
    // Messages still referenced elsewhere must not outlive their pool (the
    // broker destroys its shards' data before the pools).
    auto free_list = [](message* m) {
        while (m != nullptr) {
            auto* next = m->next_free_;
            delete m;
            m = next;
        }
    };
    free_list(local_);
    free_list(returned_.exchange(nullptr, std::memory_order_acquire));
}

mutable_message_ptr message_pool::acquire() {
    if (local_ == nullptr) local_ = returned_.exchange(nullptr, std::memory_order_acquire);
    message* m = local_;
    if (m != nullptr) {
        local_ = m->next_free_;
        m->next_free_ = nullptr;
        free_count_.fetch_sub(1, std::memory_order_relaxed);
    } else {
        m = new message();
        m->pool_ = this;
    }
    return mutable_message_ptr(m);
}

void message_pool::give_back(message* m) noexcept {
    // Keep the buffers (that is the point) unless they grew unusually large.
    m->topic.clear();
    m->payload.clear();
    m->forwarded_props.clear();
    for (auto* b : {&m->topic, &m->payload, &m->forwarded_props})
        if (b->capacity() > max_kept_capacity) std::string().swap(*b);
    m->expires_at.reset();
    m->publisher_session = 0;
    m->origin_shard = 0;
    m->from_tap = 0;
    m->retain_seq = 0;
    for (unsigned i = 0; i < message::shared_slots; ++i) {
        m->shared_state_[i].store(0, std::memory_order_relaxed);
        if (m->shared_[i].capacity() > max_kept_capacity) std::string().swap(m->shared_[i]);
    }
    m->qos = 0;
    m->retain = false;
    if (free_count_.fetch_add(1, std::memory_order_relaxed) >= max_free_) {
        free_count_.fetch_sub(1, std::memory_order_relaxed);
        delete m;
        return;
    }
    message* head = returned_.load(std::memory_order_relaxed);
    do {
        m->next_free_ = head;
    } while (!returned_.compare_exchange_weak(head, m, std::memory_order_release, std::memory_order_relaxed));
}

} // namespace pulsegate::broker
