#pragma once
// A FIFO over one growable circular buffer. Unlike std::deque it allocates
// nothing until the first push and nothing in steady state (push/pop cycles
// reuse the buffer; it only grows, by doubling), which is what a session
// queue on the hot path needs. Not thread safe.

#include <cassert>
#include <cstddef>
#include <memory>
#include <utility>

namespace pulsegate::broker {

template <class T>
class ring_queue {
public:
    ring_queue() = default;
    ring_queue(ring_queue&& o) noexcept
        : buf_(std::move(o.buf_)), cap_(std::exchange(o.cap_, 0)), head_(std::exchange(o.head_, 0)),
          size_(std::exchange(o.size_, 0)) {}
    ring_queue& operator=(ring_queue&& o) noexcept {
        clear();
        buf_ = std::move(o.buf_);
        cap_ = std::exchange(o.cap_, 0);
        head_ = std::exchange(o.head_, 0);
        size_ = std::exchange(o.size_, 0);
        return *this;
    }
    ~ring_queue() { clear(); }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    T& operator[](std::size_t i) noexcept {
        assert(i < size_);
        return slot(i);
    }
    const T& operator[](std::size_t i) const noexcept {
        assert(i < size_);
        return const_cast<ring_queue*>(this)->slot(i);
    }
    T& front() noexcept { return (*this)[0]; }
    T& back() noexcept { return (*this)[size_ - 1]; }

    void push_back(T&& v) {
        if (size_ == cap_) grow();
        ::new (static_cast<void*>(&slot(size_))) T(std::move(v));
        ++size_;
    }

    T pop_front() {
        assert(size_ > 0);
        T& f = slot(0);
        T v = std::move(f);
        f.~T();
        head_ = (head_ + 1) % cap_;
        --size_;
        return v;
    }

    T pop_back() {
        assert(size_ > 0);
        T& b = slot(size_ - 1);
        T v = std::move(b);
        b.~T();
        --size_;
        return v;
    }

    // Removes element i, keeping the order of the others.
    void erase(std::size_t i) {
        assert(i < size_);
        for (std::size_t j = i; j > 0; --j) slot(j) = std::move(slot(j - 1));
        slot(0).~T();
        head_ = (head_ + 1) % cap_;
        --size_;
    }

    void clear() noexcept {
        while (size_ > 0) {
            slot(0).~T();
            head_ = (head_ + 1) % cap_;
            --size_;
        }
        head_ = 0;
    }

private:
    T& slot(std::size_t i) noexcept { return *std::launder(reinterpret_cast<T*>(buf_.get()) + (head_ + i) % cap_); }

    void grow() {
        const std::size_t cap = cap_ == 0 ? 8 : cap_ * 2;
        std::unique_ptr<storage[]> nb(new storage[cap]);
        T* dst = reinterpret_cast<T*>(nb.get());
        for (std::size_t i = 0; i < size_; ++i) {
            ::new (static_cast<void*>(dst + i)) T(std::move(slot(i)));
            slot(i).~T();
        }
        buf_ = std::move(nb);
        cap_ = cap;
        head_ = 0;
    }

    struct alignas(T) storage {
        unsigned char bytes[sizeof(T)];
    };
    std::unique_ptr<storage[]> buf_;
    std::size_t cap_ = 0;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

} // namespace pulsegate::broker
