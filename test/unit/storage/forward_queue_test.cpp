// forward_queue: the bridge's store-and-forward queue. Order and contents
// survive a reopen; remove_through, the count bound (oldest evicted), the age
// bound, a map too small for a batch, and a queue of an unknown format.
// Real LMDB files in temporary directories.

#include "storage/forward_queue.hpp"

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"
#include "test/unit/storage/lmdb_format.hpp"


#include <string>
#include <vector>

using namespace pulsegate::storage;

namespace {

forward_queue_options options(const pulsegate::test::temp_dir& d, std::uint64_t max_messages = 1000) {
    return {.dir = d.path, .max_messages = max_messages, .max_bytes = 16u << 20, .sync = false};
}

std::vector<std::string> payloads(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i <= to; ++i) out.push_back("p" + std::to_string(i));
    return out;
}

push_result push(forward_queue& q, const std::vector<std::string>& bodies, std::int64_t queued_ms = 1000) {
    std::vector<forward_item> items;
    for (const auto& b : bodies) items.push_back({"site/t/a/d/s1/telemetry", b, queued_ms, 1, false});
    auto r = q.push(items);
    REQUIRE(r.has_value());
    return *r;
}

std::vector<std::string> contents(const forward_queue& q, std::uint64_t from = 0, std::size_t max = 100000) {
    std::vector<queued_message> got;
    REQUIRE_FALSE(q.read(from, max, got));
    std::vector<std::string> out;
    for (const auto& m : got) out.push_back(m.payload);
    return out;
}

} // namespace

TEST_CASE("messages come back in order with their topic, QoS, retain flag and time, also after a reopen") {
    pulsegate::test::temp_dir d("pg-fq");
    {
        forward_queue q(options(d));
        CHECK(q.size() == 0);
        CHECK(q.oldest_ms() == 0);
        std::vector<forward_item> items{{"a/b", "one", 100, 1, false}, {"c", "", 200, 0, true}, {"d/e", "three", 300, 2, false}};
        auto r = q.push(items);
        REQUIRE(r.has_value());
        CHECK(r->appended == 3);
        CHECK(r->evicted == 0);
        CHECK(q.size() == 3);
        CHECK(q.oldest_ms() == 100);
    }
    forward_queue q(options(d));
    CHECK(q.size() == 3);
    CHECK(q.oldest_ms() == 100);
    std::vector<queued_message> got;
    REQUIRE_FALSE(q.read(0, 10, got));
    REQUIRE(got.size() == 3);
    CHECK(got[0].topic == "a/b");
    CHECK(got[0].payload == "one");
    CHECK(got[0].qos == 1);
    CHECK_FALSE(got[0].retain);
    CHECK(got[0].queued_ms == 100);
    CHECK(got[1].payload.empty());
    CHECK(got[1].retain);
    CHECK(got[1].qos == 0);
    CHECK(got[2].qos == 2);
    CHECK(got[0].seq < got[1].seq);
    CHECK(got[1].seq < got[2].seq);
    // New messages continue the sequence after a reopen.
    push(q, {"four"});
    REQUIRE_FALSE(q.read(got[2].seq + 1, 10, got));
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "four");
}

TEST_CASE("remove_through removes the acknowledged prefix only") {
    pulsegate::test::temp_dir d("pg-fq");
    forward_queue q(options(d));
    push(q, payloads(1, 10));
    std::vector<queued_message> got;
    REQUIRE_FALSE(q.read(0, 4, got));
    REQUIRE(got.size() == 4);
    CHECK_FALSE(q.remove_through(got[3].seq));
    CHECK(q.size() == 6);
    CHECK(contents(q) == payloads(5, 10));
    // Removing what is already gone changes nothing.
    CHECK_FALSE(q.remove_through(got[1].seq));
    CHECK(q.size() == 6);
}

TEST_CASE("beyond max_messages the oldest give way, counted as evicted") {
    pulsegate::test::temp_dir d("pg-fq");
    forward_queue q(options(d, 100));
    CHECK(push(q, payloads(1, 60)).evicted == 0);
    auto r = push(q, payloads(61, 250));
    CHECK(r.appended == 190);
    CHECK(r.evicted == 150);
    CHECK(q.size() == 100);
    CHECK(contents(q) == payloads(151, 250));
}

TEST_CASE("drop_older_than drops the messages queued before the cutoff") {
    pulsegate::test::temp_dir d("pg-fq");
    forward_queue q(options(d));
    push(q, payloads(1, 5), 1000);
    push(q, payloads(6, 8), 5000);
    auto none = q.drop_older_than(1000);
    REQUIRE(none.has_value());
    CHECK(*none == 0);
    auto dropped = q.drop_older_than(4000);
    REQUIRE(dropped.has_value());
    CHECK(*dropped == 5);
    CHECK(q.size() == 3);
    CHECK(q.oldest_ms() == 5000);
    CHECK(contents(q) == payloads(6, 8));
}

TEST_CASE("a batch that does not fit the map evicts the oldest, and what still cannot fit is refused") {
    pulsegate::test::temp_dir d("pg-fq");
    forward_queue q({.dir = d.path, .max_messages = 1000000, .max_bytes = 1u << 20, .sync = false});
    const std::string big(100 * 1024, 'x');
    std::size_t stored = 0;
    std::uint64_t evicted = 0;
    for (int i = 0; i < 30; ++i) {
        std::vector<forward_item> one{{"t", big, i, 1, false}};
        auto r = q.push(one);
        REQUIRE(r.has_value());
        stored += r->appended;
        evicted += r->evicted;
    }
    CHECK(stored == 30);       // the newest always found room ...
    CHECK(evicted > 0);        // ... by evicting the oldest
    CHECK(q.size() == 30 - evicted);
    // A single message larger than the whole map cannot be stored.
    const std::string huge(2u << 20, 'y');
    std::vector<forward_item> one{{"t", huge, 99, 1, false}};
    auto r = q.push(one);
    REQUIRE(r.has_value());
    CHECK(r->appended == 0);
    CHECK(r->refused == 1);
}

TEST_CASE("a queue written in another format is refused with a message naming the directory") {
    pulsegate::test::temp_dir d("pg-fq");
    { forward_queue q(options(d)); }
    // Rewrite the format record as a future version would.
    pulsegate::test::set_lmdb_format(d.path, 2);
    try {
        forward_queue q(options(d));
        FAIL("opened a queue of format 2");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        CHECK(what.find(d.path.string()) != std::string::npos);
        CHECK(what.find("format 2") != std::string::npos);
    }
}
