#include "adapters/target_guard.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <charconv>

namespace pulsegate::adapters {

namespace ip = boost::asio::ip;

namespace {

// The first `prefix` bits of two byte strings agree.
template <std::size_t N>
bool same_prefix(const std::array<unsigned char, N>& a, const std::array<unsigned char, N>& b, unsigned prefix) {
    for (std::size_t i = 0; i < N && prefix > 0; ++i) {
        const unsigned bits = prefix >= 8 ? 8 : prefix;
        const auto mask = static_cast<unsigned char>(0xFF << (8 - bits));
        if ((a[i] & mask) != (b[i] & mask))
            return false;
        prefix -= bits;
    }
    return true;
}

bool in_v4(const ip::address_v4& a, const char* net, unsigned prefix) {
    return same_prefix(a.to_bytes(), ip::make_address_v4(net).to_bytes(), prefix);
}

bool in_v6(const ip::address_v6& a, const char* net, unsigned prefix) {
    return same_prefix(a.to_bytes(), ip::make_address_v6(net).to_bytes(), prefix);
}

bool special_v4(const ip::address_v4& a) {
    static constexpr std::pair<const char*, unsigned> ranges[] = {
        {"0.0.0.0", 8},       // "this network", unspecified
        {"10.0.0.0", 8},      // private
        {"100.64.0.0", 10},   // carrier-grade NAT
        {"127.0.0.0", 8},     // loopback
        {"169.254.0.0", 16},  // link-local (cloud metadata lives here)
        {"172.16.0.0", 12},   // private
        {"192.0.0.0", 24},    // IETF protocol assignments
        {"192.0.2.0", 24},    // documentation
        {"192.168.0.0", 16},  // private
        {"198.18.0.0", 15},   // benchmarking
        {"198.51.100.0", 24}, // documentation
        {"203.0.113.0", 24},  // documentation
        {"224.0.0.0", 4},     // multicast
        {"240.0.0.0", 4},     // reserved, broadcast
    };
    for (const auto& [net, prefix] : ranges)
        if (in_v4(a, net, prefix))
            return true;
    return false;
}

} // namespace

bool cidr::contains(const ip::address& a) const noexcept {
    if (a.is_v4() && network.is_v4())
        return same_prefix(a.to_v4().to_bytes(), network.to_v4().to_bytes(), prefix);
    if (a.is_v6() && network.is_v6())
        return same_prefix(a.to_v6().to_bytes(), network.to_v6().to_bytes(), prefix);
    // An IPv4-mapped IPv6 address is its IPv4 address.
    if (a.is_v6() && network.is_v4() && a.to_v6().is_v4_mapped())
        return contains(ip::make_address_v4(ip::v4_mapped, a.to_v6()));
    return false;
}

boost::system::result<cidr> parse_cidr(std::string_view text, std::string* why) {
    const auto fail = [&](std::string msg) -> boost::system::result<cidr> {
        if (why)
            *why = std::move(msg);
        return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
    };
    const auto slash = text.find('/');
    const std::string addr(text.substr(0, slash));
    boost::system::error_code ec;
    const auto a = ip::make_address(addr, ec);
    if (ec)
        return fail("\"" + std::string(text) + "\" is not an address range: write it as CIDR, e.g. \"10.0.0.0/8\" "
                    "or \"::1/128\"");
    const unsigned max = a.is_v4() ? 32 : 128;
    unsigned prefix = max;
    if (slash != std::string_view::npos) {
        const auto p = text.substr(slash + 1);
        const auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), prefix);
        if (err != std::errc{} || end != p.data() + p.size() || p.empty() || prefix > max)
            return fail("\"" + std::string(text) + "\": the prefix length after '/' must be 0.." +
                        std::to_string(max));
    }
    return cidr{a, prefix};
}

bool is_special_address(const ip::address& a) noexcept {
    if (a.is_v4())
        return special_v4(a.to_v4());
    const auto v6 = a.to_v6();
    if (v6.is_v4_mapped())
        return special_v4(ip::make_address_v4(ip::v4_mapped, v6));
    static constexpr std::pair<const char*, unsigned> ranges[] = {
        {"::", 128},          // unspecified
        {"::1", 128},         // loopback
        {"::", 96},           // IPv4-compatible (deprecated)
        {"64:ff9b::", 96},    // NAT64: an IPv4 address in disguise
        {"64:ff9b:1::", 48},  // local-use NAT64
        {"100::", 64},        // discard-only
        {"2001::", 23},       // IETF protocol assignments
        {"2001:db8::", 32},   // documentation
        {"2002::", 16},       // 6to4: an IPv4 address in disguise
        {"fc00::", 7},        // unique local
        {"fe80::", 10},       // link-local
        {"fec0::", 10},       // site-local (deprecated)
        {"ff00::", 8},        // multicast
    };
    for (const auto& [net, prefix] : ranges)
        if (in_v6(v6, net, prefix))
            return true;
    return false;
}

bool target_guard::permitted(const ip::address& a) const noexcept {
    if (!is_special_address(a))
        return true;
    for (const auto& c : allowed_)
        if (c.contains(a))
            return true;
    return false;
}

boost::system::result<std::vector<ip::address>> target_guard::resolve(std::string_view host, std::string* why) const {
    const auto fail = [&](std::string msg, boost::system::error_code ec) -> boost::system::result<std::vector<ip::address>> {
        if (why)
            *why = std::move(msg);
        return ec;
    };
    std::string h(host);
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
        h = h.substr(1, h.size() - 2);
    if (h.empty())
        return fail("no host given", boost::system::errc::make_error_code(boost::system::errc::invalid_argument));
    std::vector<ip::address> out;
    boost::system::error_code ec;
    if (auto literal = ip::make_address(h, ec); !ec) {
        out.push_back(literal);
    } else {
        boost::asio::io_context ctx;
        ip::tcp::resolver r(ctx);
        auto results = r.resolve(h, "", ec);
        if (ec)
            return fail("cannot resolve \"" + h + "\": " + ec.message(), ec);
        for (const auto& e : results) {
            const auto a = e.endpoint().address();
            if (std::find(out.begin(), out.end(), a) == out.end())
                out.push_back(a);
        }
        if (out.empty())
            return fail("\"" + h + "\" resolves to no address",
                        boost::system::errc::make_error_code(boost::system::errc::address_not_available));
    }
    for (const auto& a : out)
        if (!permitted(a))
            return fail("destination \"" + h + "\" " + (a.to_string() == h ? "is" : "resolves to " + a.to_string() + ", which is") +
                            " a loopback, private, link-local, multicast or otherwise non-public address; "
                            "the operator can allow its range in [delivery] allow_private_targets "
                            "(e.g. \"" + a.to_string() + (a.is_v4() ? "/32" : "/128") + "\")",
                        boost::system::errc::make_error_code(boost::system::errc::permission_denied));
    return out;
}

} // namespace pulsegate::adapters
