#pragma once
// The SSRF guard (DESIGN.md, Delivery): integration destinations are
// customer input, so a host that is, or resolves to, a loopback, private,
// link-local, multicast, unspecified (or otherwise special) address is
// refused unless the operator allowed its range in
// `[delivery] allow_private_targets` (CIDR strings). resolve() returns the
// checked addresses, and a sender connects to one of those, never to the
// name again (no DNS rebinding between the check and the connection).

#include <boost/asio/ip/address.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::adapters {

struct cidr {
    boost::asio::ip::address network;
    unsigned prefix = 0;
    bool contains(const boost::asio::ip::address& a) const noexcept;
};

// "10.0.0.0/8", "::1/128", "127.0.0.1" (a single address). Error text names
// what is wrong.
boost::system::result<cidr> parse_cidr(std::string_view text, std::string* why = nullptr);

// Loopback, RFC 1918, CGNAT, link-local, multicast, unspecified,
// broadcast, documentation, ULA, IPv4-mapped forms of those, ...: anything
// that is not a public unicast address.
bool is_special_address(const boost::asio::ip::address& a) noexcept;

class target_guard {
public:
    target_guard() = default;
    explicit target_guard(std::vector<cidr> allowed) : allowed_(std::move(allowed)) {}

    // Whether `a` may be connected to.
    bool permitted(const boost::asio::ip::address& a) const noexcept;

    // Resolves `host` (a name, an IPv4 address or an IPv6 address, with or
    // without brackets) and checks every address it resolves to; refuses the
    // host if any of them is not permitted (error text names the host, the
    // address and how to allow it). Blocks on DNS: delivery workers and the
    // REST handlers only.
    boost::system::result<std::vector<boost::asio::ip::address>> resolve(std::string_view host,
                                                                          std::string* why) const;

private:
    std::vector<cidr> allowed_;
};

} // namespace pulsegate::adapters
