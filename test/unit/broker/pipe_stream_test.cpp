// broker::stream_pipe (pipe_stream.hpp): the stream of MQTT over WebSocket.
// The carrier side is driven from the test thread; the broker side's
// completions run on an io_context the test polls.

#include "broker/pipe_stream.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

using namespace pulsegate::broker;
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

struct outcome {
    error_code ec;
    std::size_t n = 0;
};

struct fixture {
    asio::io_context ctx;
    std::shared_ptr<stream_pipe> pipe = stream_pipe::create(8, "10.0.0.1:5000");
    std::unique_ptr<stream> s = pipe->make_stream(ctx);
    int notified = 0;

    fixture() { pipe->set_notify([this] { ++notified; }); }

    // Starts a read into `buf`; the outcome is set when it completes.
    std::optional<outcome>& read(std::span<std::uint8_t> buf) {
        last_read.reset();
        s->async_read(buf, [this](error_code ec, std::size_t n) { last_read = outcome{ec, n}; });
        return last_read;
    }
    std::optional<outcome>& write(std::string_view bytes) {
        last_write.reset();
        out_buf[0] = asio::buffer(bytes.data(), bytes.size() / 2);
        out_buf[1] = asio::buffer(bytes.data() + bytes.size() / 2, bytes.size() - bytes.size() / 2);
        s->async_write(out_buf, [this](error_code ec, std::size_t n) { last_write = outcome{ec, n}; });
        return last_write;
    }
    void run() {
        ctx.restart();
        ctx.poll();
    }

    std::optional<outcome> last_read, last_write;
    std::array<asio::const_buffer, 2> out_buf;
};

std::string text(std::span<const std::uint8_t> b, std::size_t n) { return {reinterpret_cast<const char*>(b.data()), n}; }

} // namespace

TEST_CASE("bytes pushed by the carrier are read in order, never more than the buffer") {
    fixture f;
    std::array<std::uint8_t, 4> buf{};
    auto& r = f.read(buf);
    f.run();
    CHECK_FALSE(r); // nothing yet: the read waits
    f.pipe->push("abcdef");
    CHECK_FALSE(r); // completes on the stream's executor, not in push()
    f.run();
    REQUIRE(r);
    CHECK_FALSE(r->ec);
    CHECK(text(buf, r->n) == "abcd");
    auto& r2 = f.read(buf);
    f.run();
    REQUIRE(r2);
    CHECK(text(buf, r2->n) == "ef");
    CHECK(f.s->remote_address() == "10.0.0.1:5000");
}

TEST_CASE("the carrier is paused past the inbound limit and notified when there is room") {
    fixture f;
    f.pipe->push("0123456789"); // 10 > limit 8
    CHECK_FALSE(f.pipe->wants_more());
    const int before = f.notified;
    std::array<std::uint8_t, 1> one{};
    f.read(one);
    f.run();
    CHECK(f.notified == before); // 9 still waiting
    CHECK_FALSE(f.pipe->wants_more());
    std::array<std::uint8_t, 4> four{};
    auto& r = f.read(four);
    f.run();
    REQUIRE(r);
    CHECK(text(four, r->n) == "1234");
    CHECK(f.notified == before + 1); // 5 left: room again
    CHECK(f.pipe->wants_more());
}

TEST_CASE("a write completes when the carrier takes its bytes, and the carrier is told") {
    fixture f;
    CHECK_FALSE(f.pipe->take_outgoing());
    auto& w = f.write("CONNACK!");
    CHECK(f.notified == 1);
    f.run();
    CHECK_FALSE(w); // not taken yet: a slow carrier slows the writer
    auto bytes = f.pipe->take_outgoing();
    REQUIRE(bytes);
    CHECK(*bytes == "CONNACK!");
    f.run();
    REQUIRE(w);
    CHECK_FALSE(w->ec);
    CHECK(w->n == 8);
    CHECK_FALSE(f.pipe->take_outgoing());
}

TEST_CASE("closing from the broker aborts a pending read and lets the carrier close after sending") {
    fixture f;
    std::array<std::uint8_t, 4> buf{};
    auto& r = f.read(buf);
    f.write("bye");
    auto bytes = f.pipe->take_outgoing();
    CHECK(bytes == "bye");
    CHECK_FALSE(f.pipe->closing());
    f.s->close();
    CHECK(f.pipe->closing());
    f.run();
    REQUIRE(r);
    CHECK(r->ec == asio::error::operation_aborted);
    f.pipe->push("late"); // ignored
    auto& r2 = f.read(buf);
    f.run();
    REQUIRE(r2);
    CHECK(r2->ec == asio::error::operation_aborted);
}

TEST_CASE("a write not yet taken when the broker closes is not sent") {
    fixture f;
    auto& w = f.write("DISCONNECT");
    f.s->close();
    CHECK(f.pipe->closing());
    CHECK_FALSE(f.pipe->take_outgoing());
    f.run();
    REQUIRE(w);
    CHECK(w->ec == asio::error::operation_aborted);
}

TEST_CASE("the carrier's end is read as EOF after what it sent, and fails writes") {
    fixture f;
    f.pipe->push("xy");
    f.pipe->carrier_closed();
    std::array<std::uint8_t, 4> buf{};
    auto& r = f.read(buf);
    f.run();
    REQUIRE(r);
    CHECK(text(buf, r->n) == "xy");
    auto& r2 = f.read(buf);
    f.run();
    REQUIRE(r2);
    CHECK(r2->ec == asio::error::eof);
    auto& w = f.write("PUBLISH");
    f.run();
    REQUIRE(w);
    CHECK(w->ec == asio::error::broken_pipe);
}

TEST_CASE("a waiting read sees the carrier's end") {
    fixture f;
    std::array<std::uint8_t, 4> buf{};
    auto& r = f.read(buf);
    f.run();
    CHECK_FALSE(r);
    f.pipe->carrier_closed();
    f.run();
    REQUIRE(r);
    CHECK(r->ec == asio::error::eof);
}

TEST_CASE("a rebound stream carries on with the same pipe on another io_context") {
    fixture f;
    f.pipe->push("abc");
    asio::io_context other;
    auto moved = f.s->rebind(other);
    REQUIRE(moved);
    f.s.reset(); // the old stream does not close the pipe
    std::array<std::uint8_t, 8> buf{};
    std::optional<outcome> r;
    moved->async_read(buf, [&](error_code ec, std::size_t n) { r = outcome{ec, n}; });
    other.poll();
    REQUIRE(r);
    CHECK(text(buf, r->n) == "abc");
    CHECK_FALSE(f.pipe->closing());
    moved.reset(); // destroying the live stream closes the pipe
    CHECK(f.pipe->closing());
}
