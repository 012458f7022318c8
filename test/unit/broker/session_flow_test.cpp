// QoS 1 and QoS 2 state machines of a session, both directions, packet by
// packet: a real connection and shard driven through an in-memory stream
// (no sockets, no threads: the test runs the shard's io_context itself).

#include "broker/core.hpp"
#include "broker/protocol/codec.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <deque>
#include <thread>

using namespace pulsegate::broker;
namespace p = pulsegate::broker::protocol;
namespace asio = boost::asio;

namespace {

// The test's side of an in-memory connection: what it sends and what the
// broker wrote. Shared with the stream, so it outlives a closed connection.
struct memory_peer {
    std::string inbox, written;
    bool closed = false;
    std::string take() { return std::exchange(written, {}); }
};

// A stream whose peer is the test: bytes fed to the peer are read by the
// connection; what the connection writes lands in peer->written.
class memory_stream final : public stream {
public:
    memory_stream(asio::io_context& ctx, std::shared_ptr<memory_peer> peer) : ctx_(ctx), peer_(std::move(peer)) {}

    void feed(const std::string& bytes) {
        peer_->inbox += bytes;
        deliver();
    }

    void async_read(std::span<std::uint8_t> into, io_handler h) override {
        into_ = into;
        // (emplace: Boost 1.81's any_completion_handler move-assignment
        // recurses forever; move-construction is fine.)
        pending_.emplace(std::move(h));
        deliver();
    }
    void async_write(std::span<const asio::const_buffer> bufs, io_handler h) override {
        std::size_t n = 0;
        for (const auto& b : bufs) {
            peer_->written.append(static_cast<const char*>(b.data()), b.size());
            n += b.size();
        }
        asio::post(ctx_, [h = std::move(h), n]() mutable { std::move(h)(boost::system::error_code{}, n); });
    }
    void close() override {
        peer_->closed = true;
        if (pending_) {
            asio::post(ctx_, [h = std::move(*pending_)]() mutable {
                std::move(h)(asio::error::operation_aborted, std::size_t{0});
            });
            pending_.reset();
        }
    }
    std::unique_ptr<stream> rebind(asio::io_context&) override { return nullptr; }
    asio::any_io_executor get_executor() override { return ctx_.get_executor(); }
    std::string remote_address() const override { return "memory"; }

private:
    void deliver() {
        if (!pending_ || peer_->inbox.empty()) return;
        io_handler h(std::move(*pending_));
        pending_.reset();
        asio::post(ctx_, [this, h = std::move(h)]() mutable {
            const auto n = std::min(peer_->inbox.size(), into_.size());
            std::memcpy(into_.data(), peer_->inbox.data(), n);
            peer_->inbox.erase(0, n);
            std::move(h)(boost::system::error_code{}, n);
        });
    }

    asio::io_context& ctx_;
    std::shared_ptr<memory_peer> peer_;
    std::span<std::uint8_t> into_;
    std::optional<io_handler> pending_;
};

// A connected test client: its peer state and the stream (valid while the
// connection lives).
struct client {
    std::shared_ptr<memory_peer> peer;
    memory_stream* stream = nullptr;
};

// One shard with no thread; connections attached through memory streams.
struct fixture {
    detail::core core{make_options(), nullptr, nullptr, nullptr};
    detail::shard* sh = nullptr;

    static options make_options() {
        options o;
        o.shards = 1;
        o.allow_anonymous = true;
        o.sys_interval = std::chrono::seconds(0);
        o.receive_maximum = 4;
        return o;
    }
    fixture() {
        core.pools.push_back(std::make_unique<message_pool>());
        core.shards.reserve(1);
        core.shards.push_back(std::make_unique<detail::shard>(core, 0));
        sh = core.shards[0].get();
    }
    ~fixture() {
        sh->shutdown();
        run_ready();
    }

    // Runs every handler that is ready (the io_context stops whenever it runs
    // out of work, hence the restart).
    void run_ready() {
        sh->ioc.restart();
        sh->ioc.poll();
    }

    // A connection whose CONNECT (with credentials) is sent but not checked.
    client& open(const std::string& id, std::string_view user, std::string_view password) {
        auto peer = std::make_shared<memory_peer>();
        auto st = std::make_unique<memory_stream>(sh->ioc, peer);
        auto& ref = clients_.emplace_back(client{peer, st.get()});
        core.connection_count.fetch_add(1);
        auto c = std::make_shared<detail::connection>(*sh, std::move(st), core.next_id.fetch_add(1));
        asio::co_spawn(sh->ioc, [c]() { return c->run(); }, asio::detached);
        p::connect pk;
        pk.version = p::protocol_version::v5;
        pk.client_id = id;
        pk.username = user;
        pk.password = password;
        ref.stream->feed(encode(pk));
        return ref;
    }

    client& connect(const std::string& id, std::uint16_t receive_max = 65535) {
        auto peer = std::make_shared<memory_peer>();
        auto st = std::make_unique<memory_stream>(sh->ioc, peer);
        auto& ref = clients_.emplace_back(client{peer, st.get()});
        core.connection_count.fetch_add(1);
        auto c = std::make_shared<detail::connection>(*sh, std::move(st), core.next_id.fetch_add(1));
        asio::co_spawn(sh->ioc, [c]() { return c->run(); }, asio::detached);
        p::connect pk;
        pk.version = p::protocol_version::v5;
        pk.client_id = id;
        pk.props.receive_maximum = receive_max;
        ref.stream->feed(encode(pk));
        run_ready();
        auto got = packets(ref);
        REQUIRE(got.size() == 1);
        REQUIRE(std::holds_alternative<p::connack>(got[0]));
        REQUIRE(std::get<p::connack>(got[0]).code == p::reason_code::success);
        return ref;
    }

    static std::string encode(const p::packet& pk) {
        std::string out;
        p::encode(pk, p::protocol_version::v5, out);
        return out;
    }

    // Everything the connection wrote since last asked, decoded.
    std::vector<p::packet> packets(client& c) {
        run_ready();
        bytes_ = c.peer->take();
        std::vector<p::packet> out;
        std::span<const std::uint8_t> data(reinterpret_cast<const std::uint8_t*>(bytes_.data()), bytes_.size());
        while (!data.empty()) {
            auto f = p::frame(data, 1 << 20);
            if (!f.has_value()) {
                std::string hex;
                for (auto b : data) hex += fmt::format("{:02x} ", b);
                FAIL("unframeable output: " << hex);
            }
            REQUIRE(f->has_value());
            const auto h = **f;
            auto body = data.subspan(h.header_size, h.remaining_length);
            if (h.type() == p::packet_type::connack) {
                p::connack ack;
                ack.code = static_cast<p::reason_code>(body[1]);
                out.emplace_back(ack);
            } else {
                auto pk = p::decode(h.first_byte, body, p::protocol_version::v5);
                REQUIRE_MESSAGE(pk.has_value(), (pk.has_value() ? "" : std::string(pk.error().detail)));
                out.push_back(*pk);
            }
            data = data.subspan(h.total_size());
        }
        return out;
    }

    void send(client& c, const p::packet& pk) {
        REQUIRE_FALSE(c.peer->closed);
        c.stream->feed(encode(pk));
        run_ready();
    }

    std::string bytes_; // backing store of the last decoded packets' views
    std::deque<client> clients_;
};

p::publish make_publish(std::string_view topic, std::uint8_t qos, std::uint16_t id, std::string_view payload = "x") {
    p::publish pub;
    pub.topic = topic;
    pub.qos = qos;
    pub.packet_id = id;
    pub.payload = payload;
    return pub;
}

p::ack ack_of(p::packet_type t, std::uint16_t id) { return p::ack{t, id, p::reason_code::success, {}}; }

const p::ack& as_ack(const p::packet& pk, p::packet_type t) {
    REQUIRE(std::holds_alternative<p::ack>(pk));
    const auto& a = std::get<p::ack>(pk);
    REQUIRE(a.type == t);
    return a;
}

} // namespace

TEST_CASE("QoS 1 from a client: PUBLISH -> PUBACK with the same packet id") {
    fixture f;
    auto& c = f.connect("pub");
    f.send(c, make_publish("a/b", 1, 10));
    auto got = f.packets(c);
    REQUIRE(got.size() == 1);
    CHECK(as_ack(got[0], p::packet_type::puback).packet_id == 10);
}

TEST_CASE("QoS 2 from a client: PUBREC, a resend is not routed again, PUBREL -> PUBCOMP") {
    fixture f;
    auto& sub = f.connect("sub");
    p::subscribe s;
    s.packet_id = 1;
    s.entries.push_back({"a/#", 2});
    f.send(sub, s);
    REQUIRE(f.packets(sub).size() == 1); // SUBACK

    auto& c = f.connect("pub");
    f.send(c, make_publish("a/b", 2, 11));
    auto got = f.packets(c);
    REQUIRE(got.size() == 1);
    CHECK(as_ack(got[0], p::packet_type::pubrec).packet_id == 11);

    auto dup = make_publish("a/b", 2, 11);
    dup.dup = true;
    f.send(c, dup);
    got = f.packets(c);
    REQUIRE(got.size() == 1); // PUBREC again, nothing routed
    CHECK(as_ack(got[0], p::packet_type::pubrec).packet_id == 11);

    f.send(c, ack_of(p::packet_type::pubrel, 11));
    got = f.packets(c);
    REQUIRE(got.size() == 1);
    CHECK(as_ack(got[0], p::packet_type::pubcomp).code == p::reason_code::success);

    // A PUBREL for an id that is not in flight: PUBCOMP 0x92.
    f.send(c, ack_of(p::packet_type::pubrel, 99));
    got = f.packets(c);
    REQUIRE(got.size() == 1);
    CHECK(as_ack(got[0], p::packet_type::pubcomp).code == p::reason_code::packet_identifier_not_found);

    // The subscriber got the message exactly once.
    auto delivered = f.packets(sub);
    REQUIRE(delivered.size() == 1);
    CHECK(std::holds_alternative<p::publish>(delivered[0]));
}

TEST_CASE("QoS 1 to a client: the window is its Receive Maximum, PUBACK frees a slot") {
    fixture f;
    auto& sub = f.connect("sub", 2);
    p::subscribe s;
    s.packet_id = 1;
    s.entries.push_back({"q/#", 1});
    f.send(sub, s);
    REQUIRE(f.packets(sub).size() == 1);

    auto& pub = f.connect("pub");
    for (std::uint16_t i = 1; i <= 3; ++i) f.send(pub, make_publish("q/t", 1, i, std::to_string(i)));
    REQUIRE(f.packets(pub).size() == 3); // PUBACKs

    auto got = f.packets(sub);
    REQUIRE(got.size() == 2); // the window
    const auto first = std::get<p::publish>(got[0]);
    CHECK(first.qos == 1);
    CHECK(first.payload == "1");
    const auto first_id = first.packet_id;
    CHECK(std::get<p::publish>(got[1]).payload == "2");

    f.send(sub, ack_of(p::packet_type::puback, first_id));
    got = f.packets(sub);
    REQUIRE(got.size() == 1);
    CHECK(std::get<p::publish>(got[0]).payload == "3");
}

TEST_CASE("QoS 2 to a client: PUBLISH -> PUBREC -> PUBREL -> PUBCOMP frees the slot") {
    fixture f;
    auto& sub = f.connect("sub", 1);
    p::subscribe s;
    s.packet_id = 1;
    s.entries.push_back({"q2/#", 2});
    f.send(sub, s);
    REQUIRE(f.packets(sub).size() == 1);

    auto& pub = f.connect("pub");
    f.send(pub, make_publish("q2/t", 2, 5, "one"));
    f.send(pub, make_publish("q2/t", 2, 6, "two"));
    auto got = f.packets(sub);
    REQUIRE(got.size() == 1);
    const auto id = std::get<p::publish>(got[0]).packet_id;
    CHECK(std::get<p::publish>(got[0]).qos == 2);

    f.send(sub, ack_of(p::packet_type::pubrec, id));
    got = f.packets(sub);
    REQUIRE(got.size() == 1);
    CHECK(as_ack(got[0], p::packet_type::pubrel).packet_id == id);

    // The slot is still taken until PUBCOMP.
    f.send(sub, ack_of(p::packet_type::pubcomp, id));
    got = f.packets(sub);
    REQUIRE(got.size() == 1);
    CHECK(std::get<p::publish>(got[0]).payload == "two");

    // A PUBREC for an unknown id is answered with PUBREL 0x92.
    f.send(sub, ack_of(p::packet_type::pubrec, 4242));
    got = f.packets(sub);
    REQUIRE(got.size() == 1);
    CHECK(as_ack(got[0], p::packet_type::pubrel).code == p::reason_code::packet_identifier_not_found);
}

TEST_CASE("exceeding the broker's Receive Maximum ends the connection with 0x93") {
    fixture f;
    auto& pub = f.connect("pub");
    // Five QoS 2 publishes never released: the broker's receive maximum is 4.
    for (std::uint16_t i = 1; i <= 5; ++i) f.send(pub, make_publish("r/t", 2, i));
    auto got = f.packets(pub);
    REQUIRE(!got.empty());
    REQUIRE(std::holds_alternative<p::disconnect>(got.back()));
    CHECK(std::get<p::disconnect>(got.back()).code == p::reason_code::receive_maximum_exceeded);
}

namespace {

// Answers like an identity service would: at once, or from a worker thread
// after "hashing" (the shard must not wait for it).
struct deferring_authenticator final : authenticator {
    bool defer = true;
    std::vector<std::thread> workers;
    ~deferring_authenticator() override {
        for (auto& t : workers) t.join();
    }
    std::optional<auth_result> authenticate(const connect_info& info, std::shared_ptr<auth_completion> done) override {
        auto answer = [user = std::string(info.username.value_or("")),
                       ok = info.password.value_or("") == "secret"]() -> auth_result {
            if (!ok) return p::reason_code::bad_user_name_or_password;
            return client_identity{"acme", user, false, client_kind::device, user.substr(5), {}};
        };
        if (!defer) return answer();
        workers.emplace_back([done, answer] {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            done->complete(answer());
        });
        return std::nullopt;
    }
    bool may_publish(const client_identity&, std::string_view) override { return true; }
    bool may_subscribe(const client_identity&, std::string_view) override { return true; }
};

// Polls the shard until the client got a packet (or 5 s passed).
std::vector<p::packet> await_packets(fixture& f, client& c) {
    for (int i = 0; i < 500; ++i) {
        auto got = f.packets(c);
        if (!got.empty()) return got;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {};
}

} // namespace

TEST_CASE("a deferred authentication resumes the CONNECT on its shard; a refusal answers CONNACK 0x86") {
    for (bool defer : {true, false}) {
        CAPTURE(defer);
        fixture f;
        deferring_authenticator auth;
        auth.defer = defer;
        f.core.auth = &auth;

        auto& good = f.open("dev-1", "acme/dev-1", "secret");
        auto got = await_packets(f, good);
        REQUIRE(got.size() == 1);
        REQUIRE(std::holds_alternative<p::connack>(got[0]));
        CHECK(std::get<p::connack>(got[0]).code == p::reason_code::success);
        REQUIRE(f.sh->sessions.size() == 1);
        const auto& s = *f.sh->sessions.begin()->second;
        CHECK(s.identity.tenant == "acme");
        CHECK(s.mount == "t/acme/");

        auto& bad = f.open("dev-2", "acme/dev-2", "wrong");
        got = await_packets(f, bad);
        REQUIRE(got.size() == 1);
        REQUIRE(std::holds_alternative<p::connack>(got[0]));
        CHECK(std::get<p::connack>(got[0]).code == p::reason_code::bad_user_name_or_password);
        CHECK(f.sh->sessions.size() == 1);
    }
}
