#include "adapters/target_guard.hpp"

#include <doctest/doctest.h>

using namespace pulsegate::adapters;
namespace ip = boost::asio::ip;

TEST_CASE("special addresses are recognised, public ones are not") {
    for (const char* a : {"127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "0.0.0.0",
                          "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1",
                          "ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "64:ff9b::a00:1"})
        CHECK_MESSAGE(is_special_address(ip::make_address(a)), a);
    for (const char* a : {"8.8.8.8", "1.1.1.1", "172.32.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"})
        CHECK_MESSAGE(!is_special_address(ip::make_address(a)), a);
}

TEST_CASE("parse_cidr accepts ranges and single addresses, and names what is wrong") {
    std::string why;
    auto c = parse_cidr("10.0.0.0/8", &why);
    REQUIRE(c.has_value());
    CHECK(c->contains(ip::make_address("10.200.3.4")));
    CHECK(!c->contains(ip::make_address("11.0.0.1")));
    CHECK(c->contains(ip::make_address("::ffff:10.0.0.9")));
    auto one = parse_cidr("127.0.0.1");
    REQUIRE(one.has_value());
    CHECK(one->prefix == 32);
    auto v6 = parse_cidr("::1/128");
    REQUIRE(v6.has_value());
    CHECK(v6->contains(ip::make_address("::1")));
    CHECK(!parse_cidr("10.0.0.0/33", &why).has_value());
    CHECK(why.find("0..32") != std::string::npos);
    CHECK(!parse_cidr("example.com/8", &why).has_value());
    CHECK(why.find("CIDR") != std::string::npos);
    CHECK(!parse_cidr("10.0.0.0/", &why).has_value());
}

TEST_CASE("the guard refuses non-public destinations unless their range is allowed") {
    target_guard strict;
    std::string why;
    for (const char* h : {"127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "::1", "localhost"}) {
        CHECK_MESSAGE(!strict.resolve(h, &why).has_value(), h);
        CHECK(why.find("allow_private_targets") != std::string::npos);
    }
    // A public literal needs no DNS and passes.
    auto pub = strict.resolve("8.8.8.8", &why);
    REQUIRE(pub.has_value());
    CHECK(pub->front() == ip::make_address("8.8.8.8"));

    target_guard loopback({*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")});
    CHECK(loopback.resolve("127.0.0.1", &why).has_value());
    CHECK(loopback.resolve("[::1]", &why).has_value());
    CHECK(!loopback.resolve("10.0.0.1", &why).has_value());
    // localhost resolves to loopback addresses only, all of which are allowed.
    auto lh = loopback.resolve("localhost", &why);
    REQUIRE_MESSAGE(lh.has_value(), why);
    for (const auto& a : *lh) CHECK(a.is_loopback());
    CHECK(!strict.resolve("", &why).has_value());
    CHECK(!strict.resolve("no-such-host.invalid", &why).has_value());
    CHECK(why.find("cannot resolve") != std::string::npos);
}
