// The session's queue bound and acknowledgement holds (session.hpp): what a
// QoS 1/2 publisher's PUBACK waits for, and what an offline session refuses.

#include "broker/session.hpp"

#include <doctest/doctest.h>

using namespace pulsegate::broker;

namespace {

message_ptr msg(std::uint8_t qos) {
    auto m = make_message();
    m->topic = "a/b";
    m->payload = "x";
    m->qos = qos;
    return m;
}

delivery make_delivery(std::uint8_t qos, const ticket_ptr& t) {
    delivery d;
    d.msg = msg(qos);
    d.qos = qos;
    d.hold = t;
    return d;
}

// The session only compares `conn` with null; an address it never touches
// marks it online.
detail::connection* fake_connection() {
    static char storage;
    return reinterpret_cast<detail::connection*>(&storage);
}

} // namespace

TEST_CASE("within the bound a queued delivery holds nothing") {
    session s("c", 1);
    s.conn = fake_connection();
    auto t = std::make_shared<ack_ticket>();
    REQUIRE(s.enqueue(make_delivery(1, t), 2));
    CHECK(t->holds.load() == 1); // only the publisher's own hold
    CHECK_FALSE(s.queue.front().hold);
}

TEST_CASE("beyond the bound an online session holds the publisher's ack until the entry is inside") {
    session s("c", 1);
    s.conn = fake_connection();
    const std::size_t bound = 2;
    auto t1 = std::make_shared<ack_ticket>();
    auto t2 = std::make_shared<ack_ticket>();
    auto t3 = std::make_shared<ack_ticket>();
    REQUIRE(s.enqueue(make_delivery(1, t1), bound));
    REQUIRE(s.enqueue(make_delivery(1, t2), bound));
    REQUIRE(s.enqueue(make_delivery(1, t3), bound)); // third: beyond the bound
    CHECK(t3->holds.load() == 2);
    CHECK(s.queue.size() == 3);

    std::vector<ticket_ptr> released;
    auto d = s.pop_front(bound, released);
    CHECK(d.msg);
    // The third entry moved to index 1, inside the bound: its hold is released.
    REQUIRE(released.size() == 1);
    CHECK(released.front() == t3);
}

TEST_CASE("an offline session with a full queue refuses QoS 1 and QoS 0") {
    session s("c", 1);
    REQUIRE(s.enqueue(make_delivery(1, nullptr), 1));
    auto t = std::make_shared<ack_ticket>();
    CHECK_FALSE(s.enqueue(make_delivery(1, t), 1));
    CHECK(t->holds.load() == 1); // no hold taken
    CHECK_FALSE(s.enqueue(make_delivery(0, nullptr), 1));
    CHECK(s.queue.size() == 1);
}

TEST_CASE("an online session drops QoS 0 beyond the bound rather than holding anything") {
    session s("c", 1);
    s.conn = fake_connection();
    REQUIRE(s.enqueue(make_delivery(0, nullptr), 1));
    CHECK_FALSE(s.enqueue(make_delivery(0, nullptr), 1));
    CHECK(s.queue.size() == 1);
}

TEST_CASE("packet identifiers skip 0 and identifiers still in flight") {
    session s("c", 1);
    std::uint16_t first = s.next_packet_id();
    CHECK(first == 1);
    s.inflight.push_back({delivery{}, 2, false});
    CHECK(s.next_packet_id() == 3);
    // Wrap around: 65535 is followed by 1, and 1 is skipped while in flight.
    s.inflight.push_back({delivery{}, 1, false});
    for (int i = 0; i < 65531; ++i) s.next_packet_id();
    CHECK(s.next_packet_id() == 65535);
    CHECK(s.next_packet_id() == 3); // wraps past 0 and the in-flight 1 and 2
}

TEST_CASE("acknowledgements find and erase in-flight messages by packet id") {
    session s("c", 1);
    s.inflight.push_back({delivery{}, 7, false});
    s.inflight.push_back({delivery{}, 9, true});
    REQUIRE(s.find_inflight(9) != nullptr);
    CHECK(s.find_inflight(9)->released);
    CHECK(s.find_inflight(8) == nullptr);
    CHECK(s.erase_inflight(7));
    CHECK_FALSE(s.erase_inflight(7));
    CHECK(s.inflight.size() == 1);
}

TEST_CASE("QoS 2 packet ids received are remembered until released") {
    session s("c", 1);
    s.inbound_qos2.push_back(5);
    CHECK(s.has_inbound_qos2(5));
    CHECK_FALSE(s.has_inbound_qos2(6));
}
