// 08: shared subscriptions $share/{group}/{filter}: load spread among
// members, no duplicates, coexistence with plain subscriptions, members
// leaving (MQTT 5.0 §4.8.2).
#include <doctest/doctest.h>

#include <memory>
#include <set>

#include "harness.hpp"

using namespace pulsegate::itest;

namespace {

// Pops messages from several queues until `total` arrived (or timeout);
// returns the payloads per queue.
std::vector<std::vector<std::string>> collect(std::vector<mosq_client*> const& members,
                                              std::size_t total, ms timeout = 30s) {
    std::vector<std::vector<std::string>> out(members.size());
    std::size_t got = 0;
    auto deadline = steady::now() + timeout;
    while (got < total && steady::now() < deadline) {
        bool any = false;
        for (std::size_t i = 0; i < members.size(); ++i) {
            while (auto m = members[i]->messages().pop(0ms)) {
                out[i].push_back(m->payload);
                ++got;
                any = true;
            }
        }
        if (!any) {
            // Block on one queue briefly; all are re-checked right after.
            if (auto m = members[got % members.size()]->messages().pop(20ms)) {
                out[got % members.size()].push_back(m->payload);
                ++got;
            }
        }
    }
    return out;
}

} // namespace

TEST_CASE("shared subscription spreads messages over the members, each exactly once") {
    broker_process b;
    for (int v : {5, 4}) {
        CAPTURE(v);
        std::vector<std::unique_ptr<mosq_client>> owned;
        std::vector<mosq_client*> members;
        for (int i = 0; i < 3; ++i) {
            owned.push_back(std::make_unique<mosq_client>(
                "share-" + std::to_string(v) + "-" + std::to_string(i), v));
            REQUIRE(owned.back()->connect(b.port()) == 0);
            REQUIRE(owned.back()->subscribe("$share/workers/jobs/#", 1) == 1);
            members.push_back(owned.back().get());
        }
        mosq_client pub{"share-pub", 5};
        REQUIRE(pub.connect(b.port()) == 0);
        constexpr int n = 300;
        std::vector<std::string> payloads;
        for (int i = 0; i < n; ++i) payloads.push_back(std::to_string(i));
        REQUIRE(pub.publish_many("jobs/a", payloads, 1));
        auto per = collect(members, n);
        std::multiset<std::string> all;
        for (std::size_t i = 0; i < per.size(); ++i) {
            CAPTURE(i);
            MESSAGE("member " << i << " got " << per[i].size());
            // Round robin or random: each member gets a fair share.
            CHECK(per[i].size() >= n / 3 / 2);
            all.insert(per[i].begin(), per[i].end());
        }
        CHECK(all.size() == std::size_t{n});
        CHECK(std::set<std::string>(all.begin(), all.end()).size() == std::size_t{n});
        // Nothing trails in afterwards.
        for (auto* m : members) CHECK_FALSE(m->messages().pop(quiet_window));
    }
}

TEST_CASE("shared and non-shared subscriptions together") {
    broker_process b;
    mosq_client s1{"mix-s1", 5}, s2{"mix-s2", 5}, plain{"mix-plain", 5}, other{"mix-other", 5};
    for (auto* c : {&s1, &s2, &plain, &other}) REQUIRE(c->connect(b.port()) == 0);
    REQUIRE(s1.subscribe("$share/g1/mix/#", 1) == 1);
    REQUIRE(s2.subscribe("$share/g1/mix/#", 1) == 1);
    REQUIRE(plain.subscribe("mix/#", 1) == 1);
    // A second group gets its own copy.
    REQUIRE(other.subscribe("$share/g2/mix/+", 1) == 1);
    mosq_client pub{"mix-pub", 5};
    REQUIRE(pub.connect(b.port()) == 0);
    constexpr int n = 50;
    std::vector<std::string> payloads;
    for (int i = 0; i < n; ++i) payloads.push_back(std::to_string(i));
    REQUIRE(pub.publish_many("mix/t", payloads, 1));
    auto plain_got = plain.messages().pop_n(n);
    CHECK(plain_got.size() == std::size_t{n});
    auto other_got = other.messages().pop_n(n);
    CHECK(other_got.size() == std::size_t{n});
    auto group = collect({&s1, &s2}, n);
    CHECK(group[0].size() + group[1].size() == std::size_t{n});
    CHECK_FALSE(s1.messages().pop(quiet_window));
    CHECK_FALSE(s2.messages().pop(0ms));
}

TEST_CASE("a member leaving: the rest of the group gets everything") {
    broker_process b;
    mosq_client a{"leave-a", 5}, c{"leave-c", 5};
    REQUIRE(a.connect(b.port()) == 0);
    REQUIRE(c.connect(b.port()) == 0);
    REQUIRE(a.subscribe("$share/grp/leave/t", 1) == 1);
    REQUIRE(c.subscribe("$share/grp/leave/t", 1) == 1);
    {
        mosq_client gone{"leave-gone", 5};
        REQUIRE(gone.connect(b.port()) == 0);
        REQUIRE(gone.subscribe("$share/grp/leave/t", 1) == 1);
        gone.disconnect();
    }
    mosq_client pub{"leave-pub", 5};
    REQUIRE(pub.connect(b.port()) == 0);
    constexpr int n = 60;
    std::vector<std::string> payloads;
    for (int i = 0; i < n; ++i) payloads.push_back(std::to_string(i));
    REQUIRE(pub.publish_many("leave/t", payloads, 1));
    auto got = collect({&a, &c}, n);
    CHECK(got[0].size() + got[1].size() == std::size_t{n});
    CHECK(!got[0].empty());
    CHECK(!got[1].empty());
}
