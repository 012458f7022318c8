// subscription_trie: insert/replace/erase/pruning, matching of '+', '#',
// empty levels and '$' topics, and a randomized cross-check against
// topic::matches.

#include "broker/subscription_trie.hpp"
#include "broker/topic.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

// Counts heap allocations, to prove match() makes none.
namespace {
std::size_t allocations = 0;
}
[[gnu::noinline]] void* operator new(std::size_t n) {
    ++allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
// Not inlined: GCC 12 would then pair the inlined free() with the opaque
// operator new and warn (-Wmismatched-new-delete).
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace topic = pulsegate::broker::topic;
using trie = pulsegate::broker::subscription_trie<int, std::string>;

namespace {

// (key, value) pairs matched by `name`, sorted.
std::vector<std::pair<int, std::string>> matched(const trie& t, std::string_view name) {
    std::vector<std::pair<int, std::string>> out;
    t.match(name, [&](const int& k, const std::string& v) { out.emplace_back(k, v); });
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<int> matched_keys(const trie& t, std::string_view name) {
    std::vector<int> out;
    t.match(name, [&](const int& k, const std::string&) { out.push_back(k); });
    std::sort(out.begin(), out.end());
    return out;
}

using kv = std::vector<std::pair<int, std::string>>;

} // namespace

TEST_CASE("insert, replace, find, size") {
    trie t;
    CHECK(t.empty());
    CHECK(t.insert("a/b", 1, "one"));
    CHECK(t.insert("a/b", 2, "two"));
    CHECK(t.insert("a/+", 1, "plus"));
    CHECK(t.insert("a/#", 1, "hash"));
    CHECK(t.size() == 4);

    // Same (filter, key): replaced, not added.
    CHECK_FALSE(t.insert("a/b", 1, "uno"));
    CHECK(t.size() == 4);
    REQUIRE(t.find("a/b", 1));
    CHECK(*t.find("a/b", 1) == "uno");
    CHECK(*t.find("a/+", 1) == "plus");
    CHECK(*t.find("a/#", 1) == "hash");
    CHECK_FALSE(t.find("a/b", 3));
    CHECK_FALSE(t.find("a/c", 1));
    CHECK_FALSE(t.find("a", 1));       // node exists, no subscription
    CHECK_FALSE(t.find("+/b", 1));
    CHECK_FALSE(t.find("#", 1));

    CHECK(matched(t, "a/b") == kv{{1, "hash"}, {1, "plus"}, {1, "uno"}, {2, "two"}});
}

TEST_CASE("erase prunes empty nodes") {
    trie t;
    CHECK(t.node_count() == 0);
    t.insert("a/b/c", 1, "x");
    CHECK(t.node_count() == 3);
    t.insert("a/b", 2, "y");
    t.insert("a/+/c/#", 3, "z");
    t.insert("#", 4, "all");
    CHECK(t.node_count() == 5); // a, a/b, a/b/c, a/+, a/+/c
    CHECK(t.size() == 4);

    CHECK_FALSE(t.erase("a/b/c", 2));   // wrong key
    CHECK_FALSE(t.erase("a/x", 1));     // no such path
    CHECK_FALSE(t.erase("a/+", 3));     // node exists, no subscription there
    CHECK_FALSE(t.erase("a/+/c", 3));   // subscribed as a/+/c/#, not a/+/c
    CHECK(t.size() == 4);

    CHECK(t.erase("a/b/c", 1));
    CHECK_FALSE(t.erase("a/b/c", 1));
    CHECK(t.node_count() == 4);         // a/b stays: it has key 2
    CHECK(t.erase("a/+/c/#", 3));
    CHECK(t.node_count() == 2);         // a, a/b
    CHECK(t.erase("a/b", 2));
    CHECK(t.node_count() == 0);
    CHECK(t.size() == 1);
    CHECK(t.erase("#", 4));
    CHECK(t.empty());
    CHECK(matched(t, "a/b").empty());
}

TEST_CASE("clear") {
    trie t;
    t.insert("a/b", 1, "x");
    t.insert("+/#", 2, "y");
    t.clear();
    CHECK(t.empty());
    CHECK(t.node_count() == 0);
    CHECK(matched(t, "a/b").empty());
    CHECK(t.insert("a/b", 1, "x"));
}

TEST_CASE("match: wildcards, empty levels, '$' topics") {
    trie t;
    t.insert("sport/tennis/player1", 1, "");
    t.insert("sport/tennis/+", 2, "");
    t.insert("sport/#", 3, "");
    t.insert("#", 4, "");
    t.insert("+/+", 5, "");
    t.insert("+", 6, "");
    t.insert("/+", 7, "");
    t.insert("$SYS/#", 8, "");
    t.insert("$SYS/+", 9, "");
    t.insert("+/#", 10, "");
    t.insert("a//b", 11, "");
    t.insert("a/+/b", 12, "");

    CHECK(matched_keys(t, "sport/tennis/player1") == std::vector{1, 2, 3, 4, 10});
    CHECK(matched_keys(t, "sport/tennis") == std::vector{3, 4, 5, 10});
    CHECK(matched_keys(t, "sport") == std::vector{3, 4, 6, 10});      // "sport/#" matches "sport"
    CHECK(matched_keys(t, "sport/") == std::vector{3, 4, 5, 10});
    CHECK(matched_keys(t, "/finance") == std::vector{4, 5, 7, 10});  // '+' matches the empty level
    CHECK(matched_keys(t, "/") == std::vector{4, 5, 7, 10});
    CHECK(matched_keys(t, "a//b") == std::vector{4, 10, 11, 12});
    CHECK(matched_keys(t, "$SYS") == std::vector{8});
    CHECK(matched_keys(t, "$SYS/x") == std::vector{8, 9});
    CHECK(matched_keys(t, "$SYS/x/y") == std::vector{8});
    CHECK(matched_keys(t, "$other/x").empty());
    CHECK(matched_keys(t, "x/$SYS") == std::vector{4, 5, 10});        // '$' only counts first
}

TEST_CASE("match and topic::matches do not allocate") {
    trie t;
    // Levels longer than the small-string buffer, so a temporary std::string
    // per lookup would allocate.
    const std::string a(40, 'a'), b(40, 'b');
    t.insert(a + "/" + b, 1, "");
    t.insert(a + "/+", 2, "");
    t.insert(a + "/#", 3, "");
    t.insert("#", 4, "");
    t.insert("+/" + b, 5, "");
    const std::string name = a + "/" + b;
    const std::string other = "$SYS/" + a + "/" + b;

    const auto before = allocations;
    int visits = 0;
    t.match(name, [&](const int&, const std::string&) { ++visits; });
    t.match(other, [&](const int&, const std::string&) { ++visits; });
    const bool m = topic::matches("+/#", name) && topic::matches("$SYS/+/" + b, other);
    CHECK(allocations == before + 1); // the "$SYS/+/" + b argument above
    CHECK(visits == 5);
    CHECK(m);
}

TEST_CASE("a key subscribed with overlapping filters is visited once per filter") {
    trie t;
    t.insert("a/#", 1, "h");
    t.insert("a/+", 1, "p");
    t.insert("a/b", 1, "e");
    CHECK(matched(t, "a/b") == kv{{1, "e"}, {1, "h"}, {1, "p"}});
}

TEST_CASE("for_each lists every filter") {
    trie t;
    const std::set<std::pair<std::string, int>> expected{
        // "/", "/#" and "/a" start with an empty level: their paths must not
        // be confused with the root's.
        {"#", 1}, {"+", 2}, {"/", 3}, {"/#", 4}, {"a", 5}, {"a/#", 6}, {"+/+/#", 7},
        {"/a", 9}, {"a//+", 10}, {"a", 11}, {"//", 12}};
    for (const auto& [f, k] : expected) t.insert(f, k, f);
    std::set<std::pair<std::string, int>> seen;
    t.for_each([&](std::string_view filter, const int& k, const std::string& v) {
        CHECK(filter == v);
        seen.emplace(std::string(filter), k);
    });
    CHECK(seen == expected);
}

TEST_CASE("a custom Hash and a move-only value") {
    struct id {
        std::uint64_t v;
        bool operator==(const id&) const = default;
    };
    struct id_hash {
        std::size_t operator()(const id& i) const noexcept { return std::hash<std::uint64_t>{}(i.v); }
    };
    pulsegate::broker::subscription_trie<id, std::unique_ptr<int>, id_hash> t;
    CHECK(t.insert("x/+", id{7}, std::make_unique<int>(1)));
    CHECK_FALSE(t.insert("x/+", id{7}, std::make_unique<int>(2)));
    int sum = 0;
    t.match("x/y", [&](const id& k, const std::unique_ptr<int>& v) { sum += static_cast<int>(k.v) * *v; });
    CHECK(sum == 14);
    auto moved = std::move(t);
    CHECK(moved.size() == 1);
    CHECK(t.empty()); // NOLINT(bugprone-use-after-move): documented state
    CHECK(t.node_count() == 0);
    t = std::move(moved);
    CHECK(t.size() == 1);
    CHECK(**t.find("x/+", id{7}) == 2);
}

TEST_CASE("randomized cross-check of match against topic::matches") {
    std::mt19937 rng(20240611u);
    const std::vector<std::string> name_levels{"a", "b", "c", "", "$SYS", "$x", "a$"};
    const std::vector<std::string> filter_levels{"a", "b", "c", "", "$SYS", "$x", "+", "+", "+"};

    auto pick = [&](const std::vector<std::string>& from) {
        return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)];
    };
    auto random_levels = [&](const std::vector<std::string>& from, int max_levels) {
        const int n = std::uniform_int_distribution<int>(1, max_levels)(rng);
        std::string s;
        for (int i = 0; i < n; ++i) {
            if (i) s += '/';
            s += pick(from);
        }
        return s.empty() ? std::string("a") : s; // "" is not a valid name or filter
    };
    auto random_filter = [&] {
        if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) return std::string("#");
        std::string f = random_levels(filter_levels, 4);
        if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) f += "/#";
        return f;
    };

    trie t;
    std::map<std::pair<std::string, int>, std::string> model; // (filter, key) -> value
    for (int i = 0; i < 600; ++i) {
        const auto f = random_filter();
        CAPTURE(f);
        REQUIRE_FALSE(topic::check_filter(f));
        const int key = std::uniform_int_distribution<int>(0, 20)(rng);
        const std::string value = std::to_string(i);
        const bool is_new = model.insert_or_assign({f, key}, value).second;
        CHECK(t.insert(f, key, value) == is_new);
    }
    CHECK(t.size() == model.size());

    // Returns how many (name, subscription) matches were compared, so the
    // test can tell it did not pass vacuously.
    auto cross_check = [&](int names) {
        std::size_t compared = 0;
        std::size_t dollar_names = 0;
        for (int i = 0; i < names; ++i) {
            const auto name = random_levels(name_levels, 5);
            REQUIRE_FALSE(topic::check_name(name));
            kv expected;
            for (const auto& [fk, v] : model)
                if (topic::matches(fk.first, name)) expected.emplace_back(fk.second, v);
            std::sort(expected.begin(), expected.end());
            CAPTURE(name);
            CHECK(matched(t, name) == expected);
            compared += expected.size();
            dollar_names += name.front() == '$';
        }
        CHECK(compared > static_cast<std::size_t>(names));
        CHECK(dollar_names > 0);
        return compared;
    };
    cross_check(3000);

    // Erase about half, then check again, then erase the rest: all pruned.
    std::vector<std::pair<std::string, int>> keys;
    for (const auto& [fk, v] : model) keys.push_back(fk);
    std::shuffle(keys.begin(), keys.end(), rng);
    for (std::size_t i = 0; i < keys.size() / 2; ++i) {
        CHECK(t.erase(keys[i].first, keys[i].second));
        CHECK_FALSE(t.erase(keys[i].first, keys[i].second));
        model.erase(keys[i]);
    }
    CHECK(t.size() == model.size());
    cross_check(3000);

    std::set<std::pair<std::string, int>> listed;
    t.for_each([&](std::string_view f, const int& k, const std::string&) { listed.emplace(std::string(f), k); });
    std::set<std::pair<std::string, int>> remaining;
    for (const auto& [fk, v] : model) remaining.insert(fk);
    CHECK(listed == remaining);

    for (std::size_t i = keys.size() / 2; i < keys.size(); ++i) CHECK(t.erase(keys[i].first, keys[i].second));
    CHECK(t.empty());
    CHECK(t.node_count() == 0);
}
