// The message pool (message.hpp): messages and their buffers are reused, from
// whichever thread the last reference is dropped, within a bound.

#include "broker/message.hpp"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using namespace pulsegate::broker;

TEST_CASE("a released message comes back with its buffers' capacity") {
    message_pool pool;
    const message* first = nullptr;
    std::size_t capacity = 0;
    {
        auto m = pool.acquire();
        m->topic = "sensors/a/temperature/with/a/long/name";
        m->payload.assign(1000, 'x');
        m->qos = 1;
        m->retain = true;
        first = m.get();
        capacity = m->payload.capacity();
    }
    auto again = pool.acquire();
    CHECK(again.get() == first);
    CHECK(again->payload.empty());
    CHECK(again->topic.empty());
    CHECK(again->payload.capacity() >= capacity);
    CHECK(again->qos == 0);
    CHECK_FALSE(again->retain);
    CHECK_FALSE(again->expires_at);
}

TEST_CASE("a message shared by several owners returns once, when the last lets go") {
    message_pool pool;
    message_ptr a = pool.acquire();
    const message* raw = a.get();
    message_ptr b = a;
    a.reset();
    auto other = pool.acquire(); // must not be `raw`: b still holds it
    CHECK(other.get() != raw);
    b.reset();
    other.reset();
    auto x = pool.acquire();
    auto y = pool.acquire();
    CHECK((x.get() == raw || y.get() == raw));
}

TEST_CASE("messages released on other threads are reused by the owner") {
    message_pool pool;
    std::vector<message_ptr> held;
    std::vector<const message*> raw;
    for (int i = 0; i < 100; ++i) {
        held.push_back(pool.acquire());
        raw.push_back(held.back().get());
    }
    std::thread t([&] { held.clear(); });
    t.join();
    std::size_t reused = 0;
    std::vector<message_ptr> again;
    for (int i = 0; i < 100; ++i) {
        again.push_back(pool.acquire());
        if (std::find(raw.begin(), raw.end(), again.back().get()) != raw.end()) ++reused;
    }
    CHECK(reused == 100);
}

TEST_CASE("the pool keeps at most its bound of free messages") {
    message_pool pool(8);
    std::vector<message_ptr> held;
    std::vector<const message*> raw;
    for (int i = 0; i < 20; ++i) {
        held.push_back(pool.acquire());
        raw.push_back(held.back().get());
    }
    held.clear(); // 8 kept, 12 freed
    std::size_t reused = 0;
    for (int i = 0; i < 20; ++i) {
        held.push_back(pool.acquire());
        if (std::find(raw.begin(), raw.end(), held.back().get()) != raw.end()) ++reused;
    }
    // Freed addresses may be handed out again by the allocator, so only the
    // upper bound is certain... and the first 8 come from the pool.
    CHECK(reused >= 8);
}

TEST_CASE("messages outside any pool are deleted on release") {
    auto m = make_message();
    m->payload = "will";
    message_ptr shared = m;
    m.reset();
    CHECK(shared->payload == "will");
}
