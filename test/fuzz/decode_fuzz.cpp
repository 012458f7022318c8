// libFuzzer target for the MQTT codec (broker/protocol/codec.hpp).
//
// Build (clang, its own build dir) and run for about a minute:
//
//   cd /work/main
//   CXX=clang++ meson setup build-fuzz -Dfuzz=true
//   ninja -C build-fuzz test/fuzz/decode_fuzz test/fuzz/make_corpus
//   mkdir -p build-fuzz/corpus
//   ./build-fuzz/test/fuzz/make_corpus build-fuzz/corpus        # fresh seeds
//   ./build-fuzz/test/fuzz/decode_fuzz -max_total_time=60 -max_len=4096 \
//       build-fuzz/corpus test/fuzz/corpus
//
// (test/fuzz/corpus holds the same seeds, checked in; libFuzzer writes new
// inputs to the first directory only.) A crash leaves crash-<sha1> in the
// working directory; replay it with `./build-fuzz/test/fuzz/decode_fuzz crash-...`.
//
// What it checks, for every input: frame() on the bytes; decode_connect() and
// decode() for both versions on each framed packet and on the raw input read
// as "first byte + body". Whenever decode succeeds the packet is encoded again
// and must decode to an equal packet, and a PUBLISH's encode_publish_header()
// + payload must equal encode(). ASan/UBSan catch reads out of bounds.

#include "broker/protocol/codec.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

namespace {

namespace p = pulsegate::broker::protocol;

constexpr std::uint32_t max_size = 268'435'455 + 5;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "decode_fuzz: %s\n", what);
    std::abort();
}

std::span<const std::uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Decodes one whole encoded packet of `wire` again.
p::decode_result<p::packet> redecode(const std::string& wire, p::protocol_version v) {
    auto f = p::frame(bytes(wire), max_size);
    if (!f || !*f || (*f)->total_size() != wire.size())
        fail("re-encoded packet does not frame");
    return p::decode((*f)->first_byte, bytes(wire).subspan((*f)->header_size), v);
}

void check_packet(std::uint8_t first_byte, std::span<const std::uint8_t> body) {
    for (auto v : {p::protocol_version::v311, p::protocol_version::v5}) {
        auto r = p::decode(first_byte, body, v);
        if (!r)
            continue;
        std::string wire;
        p::encode(*r, v, wire);
        auto again = redecode(wire, v);
        if (!again)
            fail("re-encoded packet does not decode");
        if (!(*again == *r))
            fail("re-encoded packet decodes to a different packet");
        if (const auto* pb = std::get_if<p::publish>(&*r)) {
            std::string header;
            p::encode_publish_header(*pb, pb->payload.size(), v, header);
            header += pb->payload;
            if (header != wire)
                fail("encode_publish_header + payload != encode");
        }
    }
    auto c = p::decode_connect(first_byte, body);
    if (c) {
        std::string wire;
        p::encode(*c, c->version, wire);
        auto again = redecode(wire, c->version);
        if (!again || !(*again == p::packet{*c}))
            fail("re-encoded CONNECT differs");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> buf(data, size);
    // As a stream of framed packets, with a small and a large size limit.
    for (std::uint32_t limit : {std::uint32_t{64}, max_size}) {
        auto rest = buf;
        while (true) {
            auto f = p::frame(rest, limit);
            if (!f || !*f || (*f)->total_size() > rest.size())
                break;
            if ((*f)->total_size() > limit)
                fail("frame() passed a packet above the limit");
            check_packet((*f)->first_byte, rest.subspan((*f)->header_size, (*f)->remaining_length));
            rest = rest.subspan((*f)->total_size());
        }
    }
    // As first byte + body, so the decoders see bodies of any length without
    // the fuzzer having to get the remaining length right.
    if (size > 0)
        check_packet(data[0], buf.subspan(1));
    return 0;
}
