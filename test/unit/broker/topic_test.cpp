// Topic names and filters: MQTT 5 §4.7 (syntax, matching, '$' topics) and
// §4.8.2 (shared subscriptions).

#include "broker/topic.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <string_view>

using namespace std::string_view_literals;
namespace topic = pulsegate::broker::topic;
using topic::invalid;

namespace {

struct case_ {
    std::string_view text;
    std::optional<invalid> expected;
};

std::string describe(const std::optional<invalid>& why) {
    return why ? std::string(topic::to_string(*why)) : std::string("valid");
}

} // namespace

TEST_CASE("check_name: valid and invalid names") {
    const case_ cases[] = {
        {"a", std::nullopt},
        {"sport/tennis/player1", std::nullopt},
        {"/", std::nullopt},               // two empty levels
        {"/finance", std::nullopt},
        {"a//b", std::nullopt},
        {"$SYS/broker/uptime", std::nullopt},
        {"$share/g/x", std::nullopt},      // no special meaning in a name
        {"caf\xc3\xa9/\xe2\x82\xac", std::nullopt},
        {" ", std::nullopt},
        {"", invalid::empty},
        {"a/+", invalid::wildcard_in_name},
        {"+", invalid::wildcard_in_name},
        {"a/#", invalid::wildcard_in_name},
        {"a#b", invalid::wildcard_in_name},
        {"a+b", invalid::wildcard_in_name},
        {"a\0b"sv, invalid::nul_character},
        {"\0"sv, invalid::nul_character},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        CHECK(describe(topic::check_name(c.text)) == describe(c.expected));
    }
}

TEST_CASE("check_filter: valid and invalid filters") {
    const case_ cases[] = {
        {"a", std::nullopt},
        {"#", std::nullopt},
        {"+", std::nullopt},
        {"+/+", std::nullopt},
        {"/+", std::nullopt},
        {"sport/#", std::nullopt},
        {"sport/+/player1", std::nullopt},
        {"+/tennis/#", std::nullopt},
        {"/", std::nullopt},
        {"a//b", std::nullopt},
        {"$SYS/#", std::nullopt},
        {"$share", std::nullopt},          // not "$share/": an ordinary filter
        {"$shared/g/x", std::nullopt},
        {"$share/g/x", std::nullopt},
        {"$share/group/sport/+/#", std::nullopt},
        {"$share/g/#", std::nullopt},
        {"$share/g//", std::nullopt},      // filter "/" is valid
        {"", invalid::empty},
        {"sport+", invalid::misplaced_wildcard},
        {"sport/tennis#", invalid::misplaced_wildcard},
        {"sport/#/ranking", invalid::misplaced_wildcard},
        {"#/", invalid::misplaced_wildcard},
        {"##", invalid::misplaced_wildcard},
        {"++", invalid::misplaced_wildcard},
        {"a/+b/c", invalid::misplaced_wildcard},
        {"a/b+", invalid::misplaced_wildcard},
        {"a\0/#"sv, invalid::nul_character},
        {"$share/", invalid::bad_shared},
        {"$share//x", invalid::bad_shared},    // empty group
        {"$share/g", invalid::bad_shared},     // no filter
        {"$share/g/", invalid::bad_shared},    // empty filter
        {"$share/g+/x", invalid::bad_shared},
        {"$share/#/x", invalid::bad_shared},
        {"$share/+/x", invalid::bad_shared},
        {"$share/a#b/x", invalid::bad_shared},
        {"$share/g/a#", invalid::misplaced_wildcard}, // group fine, filter not
        {"$share/g/\0"sv, invalid::nul_character},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        CHECK(describe(topic::check_filter(c.text)) == describe(c.expected));
    }
}

TEST_CASE("length and level limits") {
    const topic::limits lim{.max_length = 8, .max_levels = 3};

    CHECK_FALSE(topic::check_name("12345678", lim));
    CHECK(topic::check_name("123456789", lim) == invalid::too_long);
    CHECK_FALSE(topic::check_filter("1234567#"sv.substr(0, 7), lim));
    CHECK(topic::check_filter("1234/+/#/", lim) == invalid::too_long);

    CHECK_FALSE(topic::check_name("a/b/c", lim));
    CHECK(topic::check_name("a/b/c/d", lim) == invalid::too_many_levels);
    CHECK(topic::check_name("///", lim) == invalid::too_many_levels);
    CHECK_FALSE(topic::check_filter("a/+/#", lim));
    CHECK(topic::check_filter("a/+/b/#", lim) == invalid::too_many_levels);

    // Defaults: 65535 bytes, 128 levels.
    CHECK_FALSE(topic::check_name(std::string(65535, 'a')));
    CHECK(topic::check_name(std::string(65536, 'a')) == invalid::too_long);
    std::string levels(127, '/'); // 128 levels
    CHECK_FALSE(topic::check_name(levels));
    CHECK_FALSE(topic::check_filter(levels));
    levels += '/';
    CHECK(topic::check_name(levels) == invalid::too_many_levels);
    CHECK(topic::check_filter(levels) == invalid::too_many_levels);
}

TEST_CASE("to_string names every reason") {
    for (auto why : {invalid::empty, invalid::too_long, invalid::too_many_levels, invalid::nul_character,
                     invalid::wildcard_in_name, invalid::misplaced_wildcard, invalid::bad_shared}) {
        CHECK_FALSE(topic::to_string(why).empty());
    }
    CHECK(topic::to_string(invalid::bad_shared) != topic::to_string(invalid::empty));
}

TEST_CASE("parse_shared") {
    SUBCASE("valid") {
        const auto s = topic::parse_shared("$share/consumer1/sport/tennis/+");
        REQUIRE(s);
        CHECK(s->group == "consumer1");
        CHECK(s->filter == "sport/tennis/+");

        const auto h = topic::parse_shared("$share/g/#");
        REQUIRE(h);
        CHECK(h->group == "g");
        CHECK(h->filter == "#");

        const auto slash = topic::parse_shared("$share/g//a");
        REQUIRE(slash);
        CHECK(slash->filter == "/a");
    }
    SUBCASE("not shared or malformed") {
        for (auto f : {"sport/#"sv, "$share"sv, "$SHARE/g/x"sv, "$shared/g/x"sv, "$share/"sv, "$share//x"sv,
                       "$share/g"sv, "$share/g/"sv, "$share/+/x"sv, "$share/#/x"sv, "$share/g#/x"sv,
                       "x/$share/g/x"sv}) {
            CAPTURE(f);
            CHECK_FALSE(topic::parse_shared(f));
        }
    }
}

TEST_CASE("has_wildcard") {
    CHECK_FALSE(topic::has_wildcard("a/b"));
    CHECK_FALSE(topic::has_wildcard("$SYS/x"));
    CHECK(topic::has_wildcard("a/+"));
    CHECK(topic::has_wildcard("#"));
    CHECK(topic::has_wildcard("$share/g/a/#"));
}

TEST_CASE("matches: MQTT 5 §4.7 examples and edge cases") {
    struct m {
        std::string_view filter, name;
        bool expected;
    };
    const m cases[] = {
        // exact
        {"a", "a", true},
        {"a", "b", false},
        {"a/b", "a", false},
        {"a", "a/b", false},
        {"a/b", "a/b/", false},
        {"a/b/", "a/b/", true},
        {"a//b", "a//b", true},
        {"a//b", "a/b", false},
        // '#'
        {"sport/tennis/player1/#", "sport/tennis/player1", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
        {"sport/#", "sport", true},
        {"sport/#", "sports", false},
        {"sport/#", "sport/", true},
        {"#", "a", true},
        {"#", "a/b/c", true},
        {"#", "/", true},
        {"#", "/a", true},
        {"/#", "/a", true},
        {"/#", "a", false},
        {"a/#", "b/a", false},
        // '+'
        {"sport/tennis/+", "sport/tennis/player1", true},
        {"sport/tennis/+", "sport/tennis/player2", true},
        {"sport/tennis/+", "sport/tennis/player1/ranking", false},
        {"sport/tennis/+", "sport/tennis", false},
        {"sport/tennis/+", "sport/tennis/", true},   // '+' matches an empty level
        {"sport/+", "sport", false},
        {"sport/+", "sport/", true},
        {"+", "a", true},
        {"+", "a/b", false},
        {"+", "/finance", false},
        {"+/+", "/finance", true},
        {"/+", "/finance", true},
        {"+/+", "a/b", true},
        {"+/+", "a", false},
        {"+/b/+", "a/b/c", true},
        {"+/b/+", "a/x/c", false},
        {"+/#", "a", true},
        {"+/#", "a/b/c", true},
        {"a/+/#", "a", false},
        {"a/+/#", "a/b", true},
        {"+/+/+", "//", true},
        // '$' topics
        {"#", "$SYS", false},
        {"#", "$SYS/x", false},
        {"+/x", "$SYS/x", false},
        {"+", "$SYS", false},
        {"+/#", "$SYS/x", false},
        {"$SYS/#", "$SYS/x", true},
        {"$SYS/#", "$SYS", true},
        {"$SYS/+", "$SYS/x", true},
        {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
        {"$SYS/x", "$SYS/x", true},
        {"a/+", "a/$b", true},      // '$' only matters in the first level
        {"a/#", "a/$b/c", true},
        {"+/$b", "a/$b", true},
        {"#", "a$", true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.filter);
        CAPTURE(c.name);
        CHECK(topic::matches(c.filter, c.name) == c.expected);
    }
}
