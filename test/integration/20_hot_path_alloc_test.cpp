// The QoS 0 hot path allocates nothing per message in steady state
// (DESIGN.md, Threads and performance), with and without telemetry ingest
// (JSON decoding and the append to storage) and the rules engine (every
// reading evaluated against threshold rules, liveness for a heartbeat rule). An in-process broker on loopback, a
// raw publisher and a raw subscriber whose loops allocate nothing, and a
// global operator new that counts: after a warm-up, 20,000 more messages
// through the broker must cost far fewer than one allocation each (batches
// between shards and socket reads still allocate now and then).

#include "broker/options.hpp"
#include "broker/server.hpp"
#include "daemon/ingest.hpp"
#include "engine/rules_engine.hpp"
#include "storage/lmdb_store.hpp"
#include "storage/state/database.hpp"
#include "storage/state/rule_repository.hpp"
#include "storage/state/tenant_repository.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {
std::atomic<std::uint64_t> allocations{0};
}

void* operator new(std::size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

int connect_to(unsigned short port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

void send_all(int fd, const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        const auto n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        REQUIRE(n > 0);
        off += static_cast<std::size_t>(n);
    }
}

// Reads exactly n bytes (fails the test on timeout).
void read_exact(int fd, char* buf, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        const auto r = ::recv(fd, buf + got, n - got, 0);
        REQUIRE(r > 0);
        got += static_cast<std::size_t>(r);
    }
}

// MQTT 3.1.1 packets, written out by hand.
std::string connect_packet(const std::string& id) {
    std::string body = std::string("\x00\x04MQTT\x04\x02\x00\x3c", 10);
    body += static_cast<char>(id.size() >> 8);
    body += static_cast<char>(id.size() & 0xff);
    body += id;
    return std::string(1, '\x10') + static_cast<char>(body.size()) + body;
}

// A subscriber on `filter` and a publisher sending QoS 0 PUBLISHes of
// `topic` / `payload` (both shorter than 128 bytes in all) in bursts of 500;
// after two warm-up rounds (pools, buffers and queues reach their sizes),
// the allocations of one more round of `per_round` messages. `after_round`
// runs at the end of every round.
std::uint64_t allocations_per_round(unsigned short port, const std::string& filter, const std::string& topic,
                                    const std::string& payload, std::size_t per_round,
                                    const std::function<void()>& after_round = {}) {
    char ack[4];
    int sub = connect_to(port);
    send_all(sub, connect_packet("sub"));
    read_exact(sub, ack, 4);
    // SUBSCRIBE id 1, `filter` QoS 0 -> SUBACK (5 bytes).
    std::string subscribe = std::string("\x82", 1) + static_cast<char>(2 + 2 + filter.size() + 1) +
                            std::string("\x00\x01\x00", 3) + static_cast<char>(filter.size()) + filter +
                            std::string(1, '\0');
    send_all(sub, subscribe);
    char suback[5];
    read_exact(sub, suback, 5);
    REQUIRE(suback[0] == '\x90');

    int pub = connect_to(port);
    send_all(pub, connect_packet("pub"));
    read_exact(pub, ack, 4);

    const std::string one = std::string("\x30", 1) + static_cast<char>(2 + topic.size() + payload.size()) +
                            static_cast<char>(0) + static_cast<char>(topic.size()) + topic + payload;
    const std::size_t batch = 500;
    std::string burst;
    for (std::size_t i = 0; i < batch; ++i) burst += one;
    std::vector<char> sink(one.size() * batch);
    auto round = [&] {
        for (std::size_t sent = 0; sent < per_round; sent += batch) {
            send_all(pub, burst);
            read_exact(sub, sink.data(), sink.size());
        }
        if (after_round) after_round();
    };
    round();
    round();
    const auto before = allocations.load();
    round();
    const auto used = allocations.load() - before;
    ::close(pub);
    ::close(sub);
    return used;
}

} // namespace

TEST_CASE("steady-state QoS 0 fan-in allocates (almost) nothing per message") {
    for (unsigned shards : {1u, 2u}) {
        CAPTURE(shards);
        pulsegate::broker::options o;
        o.listen = {"127.0.0.1:0"};
        o.shards = shards;
        o.allow_anonymous = true;
        o.sys_interval = std::chrono::seconds(0);
        o.max_queued_messages = 100000;
        pulsegate::broker::server srv(o);
        srv.start();
        const auto port = srv.local_endpoints().at(0).port();
        // topic "t/x", 100-byte payload
        const std::size_t per_round = 20000;
        const auto used = allocations_per_round(port, "t/#", "t/x", std::string(100, 'p'), per_round);
        MESSAGE("allocations for ", per_round, " messages with ", shards, " shard(s): ", used);
        CHECK(used < per_round / 20);
        srv.stop();
        srv.join();
    }
}

TEST_CASE("steady-state telemetry ingest (decode + append to storage) allocates (almost) nothing per reading") {
    namespace fs = std::filesystem;
    const auto dir = fs::temp_directory_path() / ("pg-hotpath-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    {
        pulsegate::storage::lmdb_options so;
        so.dir = dir;
        so.sync_on_commit = false; // the durability of this test is not the point
        pulsegate::storage::lmdb_store store(so);
        pulsegate::daemon::ingest ingest(store, {}, false);
        store.start();

        pulsegate::broker::options o;
        o.listen = {"127.0.0.1:0"};
        o.shards = 2;
        o.allow_anonymous = true;
        o.sys_interval = std::chrono::seconds(0);
        o.max_queued_messages = 100000;
        pulsegate::broker::server srv(o, nullptr, &ingest);
        ingest.attach(srv);
        srv.start();
        const auto port = srv.local_endpoints().at(0).port();
        const std::size_t per_round = 20000;
        const auto used =
            allocations_per_round(port, "d/#", "d/dev1/telemetry",
                                  R"({"temp_c":21.5,"hum":40,"door_open":false,"co2":-4.25e2})", per_round,
                                  [&] { store.flush(); });
        MESSAGE("allocations for ", per_round, " readings: ", used);
        CHECK(used < per_round / 20);
        CHECK(ingest.stats().readings >= 3 * per_round);
        CHECK(ingest.stats().rejected == 0);
        srv.stop();
        srv.join();
        store.stop();
    }
    fs::remove_all(dir);
}

TEST_CASE("steady-state ingest with the rules engine evaluating every reading allocates (almost) nothing") {
    namespace fs = std::filesystem;
    namespace st = pulsegate::storage::state;
    const auto dir = fs::temp_directory_path() / ("pg-hotpath-rules-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    {
        auto db = st::database::open({.file = dir / "state.db"});
        REQUIRE(db);
        REQUIRE(st::tenant_repository(**db).create({.id = "default", .name = "Default"}));
        // Three threshold rules on two of the reading's metrics (never
        // breached: the steady state is "nothing changes") and a heartbeat.
        auto rule = [](std::string name, std::string metric, double value) {
            st::rule_record r;
            r.tenant = "default";
            r.name = std::move(name);
            r.metric = std::move(metric);
            r.op = st::compare_op::gt;
            r.value = value;
            return r;
        };
        st::rule_repository rules(**db);
        REQUIRE(rules.create(rule("hot", "temp_c", 80)));
        REQUIRE(rules.create(rule("very hot", "temp_c", 120)));
        REQUIRE(rules.create(rule("humid", "hum", 95)));
        st::rule_record hb;
        hb.tenant = "default";
        hb.name = "alive";
        hb.kind = st::rule_kind::heartbeat;
        hb.interval_s = 60;
        hb.missed = 3;
        REQUIRE(rules.create(hb));

        pulsegate::engine::rules_engine engine(**db, {.queue_capacity = 1 << 16});
        engine.start();
        pulsegate::storage::lmdb_options so;
        so.dir = dir / "telemetry";
        so.sync_on_commit = false;
        pulsegate::storage::lmdb_store store(so);
        pulsegate::daemon::ingest ingest(store, {}, false);
        store.start();

        pulsegate::broker::options o;
        o.listen = {"127.0.0.1:0"};
        o.shards = 2;
        o.allow_anonymous = true;
        o.sys_interval = std::chrono::seconds(0);
        o.max_queued_messages = 100000;
        pulsegate::broker::server srv(o, nullptr, &ingest);
        ingest.attach(srv, &engine);
        srv.start();
        const auto port = srv.local_endpoints().at(0).port();
        const std::size_t per_round = 20000;
        const auto used =
            allocations_per_round(port, "d/#", "d/dev1/telemetry",
                                  R"({"temp_c":21.5,"hum":40,"door_open":false,"co2":-4.25e2})", per_round,
                                  [&] { store.flush(); });
        MESSAGE("allocations for ", per_round, " readings with 4 rules: ", used);
        CHECK(used < per_round / 20);
        srv.stop();
        srv.join();
        engine.stop();
        const auto s = engine.stats();
        CHECK(s.queued >= 3 * per_round);
        CHECK(s.dropped == 0);
        CHECK(s.eval.evaluations >= 3 * 3 * per_round); // three threshold rules per reading
        CHECK(s.eval.opened == 0);
        store.stop();
    }
    fs::remove_all(dir);
}
