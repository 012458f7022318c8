// broker::make_tcp_stream (stream.hpp) over real loopback sockets: several
// streams of one io_context read into one shared buffer, as the connections
// of a shard do, and each must see exactly the bytes its peer wrote, in
// order: when one epoll round finds several of them ready, when a read fills
// the buffer and the rest is read in a later step, and when a stream stops
// reading for a while and starts again.

#include "broker/stream.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

using namespace pulsegate::broker;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

struct reader {
    std::unique_ptr<stream> s;
    std::vector<std::uint8_t> got;
    bool paused = false;
    bool reading = false;
    error_code error;
};

struct fixture {
    asio::io_context ctx;
    std::vector<std::uint8_t> scratch = std::vector<std::uint8_t>(4096); // shared, as shard::scratch
    std::vector<reader> readers;
    std::vector<tcp::socket> peers;
    std::vector<std::vector<std::uint8_t>> sent;

    explicit fixture(int n) {
        tcp::acceptor acc(ctx, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
        readers.resize(static_cast<std::size_t>(n));
        sent.resize(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
            peers.emplace_back(ctx);
            peers.back().connect(acc.local_endpoint());
            readers[static_cast<std::size_t>(i)].s = make_tcp_stream(acc.accept());
        }
        for (std::size_t i = 0; i < readers.size(); ++i) start(i);
    }

    void start(std::size_t i) {
        auto& r = readers[i];
        r.reading = true;
        r.s->async_read(scratch, [this, i](error_code ec, std::size_t n) {
            auto& r = readers[i];
            r.reading = false;
            if (ec) {
                r.error = ec;
                return;
            }
            r.got.insert(r.got.end(), scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(n));
            // Whatever lands in the shared buffer later must not be ours.
            std::fill(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(n), std::uint8_t{0xEE});
            if (!r.paused) start(i);
        });
    }

    void resume(std::size_t i) {
        readers[i].paused = false;
        if (!readers[i].reading) start(i);
    }

    // Peer `i` writes `n` bytes that name the stream and count on.
    void write(std::size_t i, std::size_t n) {
        std::vector<std::uint8_t> chunk(n);
        for (auto& b : chunk) {
            b = static_cast<std::uint8_t>((sent[i].size() * 7 + i) % 251);
            sent[i].push_back(b);
        }
        asio::write(peers[i], asio::buffer(chunk));
    }

    bool all_arrived() const {
        for (std::size_t i = 0; i < readers.size(); ++i)
            if (readers[i].got.size() < sent[i].size()) return false;
        return true;
    }

    // Runs the io_context until every written byte was read (or 10 s).
    void drain() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!all_arrived() && std::chrono::steady_clock::now() < deadline)
            ctx.run_one_for(std::chrono::milliseconds(10));
        ctx.poll();
    }
};

} // namespace

TEST_CASE("streams sharing one read buffer each get exactly their bytes, in bursts, in pieces, paused or not") {
    fixture f(6);
    std::mt19937 rng(42);
    auto size_of = [&] {
        switch (rng() % 4) {
        case 0: return std::size_t{1} + rng() % 16;      // a ping
        case 1: return std::size_t{40} + rng() % 400;    // a reading
        case 2: return std::size_t{1500} + rng() % 2000; // around a TCP segment
        default: return std::size_t{4000} + rng() % 9000; // over the shared buffer
        }
    };
    for (int round = 0; round < 300; ++round) {
        // Several peers write before the reader runs, so that one epoll
        // round finds several streams ready.
        const auto writers = 1 + rng() % 4;
        for (unsigned w = 0; w < writers; ++w) f.write(rng() % f.readers.size(), size_of());
        // Stream 0 sometimes stops reading for a while; its data waits in
        // the socket and is read when it starts again.
        if (round % 10 == 3) f.readers[0].paused = true;
        if (round % 10 == 7) f.resume(0);
        if (!f.readers[0].paused) f.drain();
        else
            for (int i = 0; i < 5; ++i) f.ctx.poll();
    }
    f.resume(0);
    f.drain();

    for (std::size_t i = 0; i < f.readers.size(); ++i) {
        CAPTURE(i);
        CHECK_FALSE(f.readers[i].error);
        REQUIRE(f.readers[i].got.size() == f.sent[i].size());
        CHECK(f.readers[i].got == f.sent[i]);
    }
}

TEST_CASE("a stream reports the peer's close after its last bytes") {
    fixture f(1);
    for (int i = 0; i < 5; ++i) {
        f.write(0, 100);
        f.drain();
    }
    f.write(0, 100);
    f.peers[0].close();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!f.readers[0].error && std::chrono::steady_clock::now() < deadline)
        f.ctx.run_one_for(std::chrono::milliseconds(10));
    CHECK(f.readers[0].got == f.sent[0]);
    CHECK(f.readers[0].error == asio::error::eof);
}
