// Writes the seed corpus for decode_fuzz: one file per sample packet of
// test/unit/broker/codec_samples.hpp (every type, both versions, every
// property), plus a few short forms. Usage: make_corpus DIR
// The files are named <version>-<index>.bin; DIR must exist.

#include "broker/protocol/codec.hpp"
#include "test/unit/broker/codec_samples.hpp"

#include <cstdio>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    namespace p = pulsegate::broker::protocol;
    const std::string dir = argv[1];
    int written = 0;
    auto write = [&](const std::string& name, const std::string& bytes) {
        std::ofstream f(dir + "/" + name, std::ios::binary);
        f << bytes;
        if (!f) {
            std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
            std::exit(1);
        }
        ++written;
    };
    for (auto v : {p::protocol_version::v311, p::protocol_version::v5}) {
        const std::string tag = v == p::protocol_version::v5 ? "v5" : "v311";
        int i = 0;
        for (const auto& pk : codec_test::all_packets(v)) {
            std::string out;
            p::encode(pk, v, out);
            write(tag + "-" + std::to_string(i++) + ".bin", out);
        }
        // Short forms: empty acks, bare DISCONNECT/AUTH, minimal CONNECT.
        std::string out;
        p::encode(p::ack{p::packet_type::pubrel, 1, p::reason_code::success, {}}, v, out);
        p::encode(p::disconnect{}, v, out);
        p::connect c;
        c.version = v;
        p::encode(c, v, out);
        if (v == p::protocol_version::v5)
            p::encode(p::auth{}, v, out);
        write(tag + "-short.bin", out);
    }
    std::printf("wrote %d files to %s\n", written, dir.c_str());
    return 0;
}
