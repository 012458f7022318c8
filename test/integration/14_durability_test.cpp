// 14: durability. Nothing acknowledged is lost when the daemon is killed
// with SIGKILL at an arbitrary moment: telemetry readings whose PUBACK
// arrived, messages queued for a persistent session, retained messages,
// session subscriptions and expiry. And a full store is refused, reported,
// and survived.
//
// What is on disk is checked by opening the daemon's LMDB environment with
// the storage library after the daemon has stopped.
#include <doctest/doctest.h>

#include <mqtt/async_client.h>

#include <atomic>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "harness.hpp"
#include "storage/lmdb_store.hpp"

using namespace pulsegate::itest;
namespace r = pulsegate::itest::raw;
namespace st = pulsegate::storage;

namespace {

constexpr std::int64_t base_ts = 1'700'000'000'000;

std::string reading(std::int64_t ts, std::int64_t seq) {
    return "{\"ts\":" + std::to_string(ts) + ",\"metrics\":{\"seq\":" + std::to_string(seq) + ",\"ok\":true}}";
}

// Every point of one series, read from the daemon's data dir (daemon stopped).
std::vector<st::point> stored_points(broker_process const& b, std::string const& tenant, std::string const& device,
                                     std::string const& metric) {
    st::lmdb_options o;
    o.dir = b.data_dir() + "/telemetry";
    st::lmdb_store store(o);
    auto res = store.query({{tenant, device, metric}, 0, std::numeric_limits<std::int64_t>::max() / 2, 1'000'000});
    REQUIRE(res.has_value());
    CHECK(res->source == st::resolution::raw);
    return res->points;
}

// Publishes `n` QoS 1 readings with Paho C++ (a window of 64 in flight)
// until done or the connection drops; returns the sequence numbers whose
// PUBACK arrived. `on_acked(count)` runs after each acknowledgement.
// (Paho buffers at most 100 unfinished publishes by default: the window stays below.)
std::set<std::int64_t> publish_readings(broker_process const& b, std::string const& client_id, std::string const& topic,
                                        std::int64_t first_seq, std::int64_t n,
                                        std::function<void(std::size_t)> const& on_acked) {
    mqtt::async_client cli(b.uri(), client_id, mqtt::create_options(MQTTVERSION_5));
    auto opts = mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).max_inflight(64)
                    .automatic_reconnect(false).finalize();
    cli.connect(opts)->wait();
    std::set<std::int64_t> acked;
    std::deque<std::pair<std::int64_t, mqtt::delivery_token_ptr>> window;
    auto settle_front = [&]() -> bool {
        auto [seq, tok] = window.front();
        window.pop_front();
        try {
            // Once the connection is gone a token still incomplete never was
            // acknowledged (Paho handles every PUBACK it read before it
            // reports the loss), and Paho may keep it pending for a
            // reconnect that never comes: do not wait for it.
            for (int i = 0; i < 200 && !tok->is_complete() && cli.is_connected(); ++i)
                tok->wait_for(std::chrono::milliseconds(100));
            if (!tok->is_complete() || tok->get_return_code() != 0) return false;
            if (tok->get_reason_code() >= 0x80) return false;
        } catch (const mqtt::exception&) {
            return false;
        }
        acked.insert(seq);
        on_acked(acked.size());
        return true;
    };
    bool alive = true;
    for (std::int64_t i = 0; i < n && alive; ++i) {
        const auto seq = first_seq + i;
        try {
            window.emplace_back(seq, cli.publish(topic, reading(base_ts + seq, seq), 1, false));
        } catch (const mqtt::exception&) {
            alive = false;
            break;
        }
        if (window.size() >= 64) alive = settle_front();
    }
    while (!window.empty()) {
        if (!settle_front()) {
            // After a failure the rest cannot have been acknowledged either
            // (Paho completes tokens in order), but check each one anyway.
            continue;
        }
    }
    try {
        if (cli.is_connected()) cli.disconnect()->wait_for(std::chrono::seconds(5));
    } catch (const mqtt::exception&) {
    }
    return acked;
}

} // namespace

TEST_CASE("every acknowledged reading survives kill -9 exactly once") {
    if (is_mosquitto()) return; // pulsegate's store
    broker_process b;
    std::mt19937 rng(std::random_device{}());
    std::set<std::int64_t> all_acked;
    constexpr std::int64_t per_round = 6000;
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        const std::size_t kill_after = std::uniform_int_distribution<std::size_t>(200, per_round - 1000)(rng);
        CAPTURE(kill_after);
        std::atomic<bool> killed{false};
        std::thread killer;
        auto acked = publish_readings(b, "dur-dev-" + std::to_string(round), "d/dev1/telemetry", round * per_round,
                                      per_round, [&](std::size_t count) {
                                          if (count == kill_after && !killed.exchange(true))
                                              killer = std::thread([&] { b.kill9(); });
                                      });
        if (killer.joinable()) killer.join();
        CAPTURE(acked.size());
        REQUIRE(killed.load());
        CHECK(acked.size() >= kill_after);
        CHECK(acked.size() < static_cast<std::size_t>(per_round));
        all_acked.insert(acked.begin(), acked.end());
        // Recovery (journal replay) runs at start; then a clean stop.
        b.restart();
        b.stop();
        const auto points = stored_points(b, "default", "dev1", "seq");
        std::map<std::int64_t, int> seen;
        for (std::size_t i = 0; i < points.size(); ++i) {
            if (i > 0) CHECK(points[i].ts_ms > points[i - 1].ts_ms);
            CHECK(points[i].value == static_cast<double>(points[i].ts_ms - base_ts));
            ++seen[points[i].ts_ms - base_ts];
        }
        std::size_t missing = 0, duplicated = 0;
        for (auto seq : all_acked) {
            auto it = seen.find(seq);
            if (it == seen.end()) ++missing;
            else if (it->second != 1) ++duplicated;
        }
        CHECK(missing == 0);
        CHECK(duplicated == 0);
        const auto ok = stored_points(b, "default", "dev1", "ok");
        CHECK(ok.size() == points.size());
        b.restart();
    }
}

TEST_CASE("messages queued for a persistent session survive kill -9") {
    if (is_mosquitto()) return;
    broker_process b;
    const std::string sub_id = "dur-sub";
    {
        raw_client c{b.port()};
        auto s = r::spec(5, sub_id, true);
        s.properties.four(r::prop::session_expiry, 3600);
        REQUIRE(c.handshake(s));
        c.send(r::subscribe_packet(5, 1, {{"q/#", 1}}));
        REQUIRE(c.read_type(r::suback));
        c.send(r::disconnect_packet(5));
    }
    std::atomic<bool> killed{false};
    std::thread killer;
    constexpr std::int64_t n = 800; // below the default offline queue bound (1000)
    auto acked = publish_readings(b, "dur-pub", "q/x", 0, n, [&](std::size_t count) {
        if (count == 500 && !killed.exchange(true)) killer = std::thread([&] { b.kill9(); });
    });
    if (killer.joinable()) killer.join();
    REQUIRE(killed.load());
    REQUIRE(acked.size() >= 500);
    b.restart();

    raw_client c{b.port()};
    auto s = r::spec(5, sub_id, false);
    s.properties.four(r::prop::session_expiry, 3600);
    auto ack = c.handshake(s);
    REQUIRE(ack);
    CHECK(ack->session_present);
    std::set<std::int64_t> received;
    for (;;) {
        auto p = c.read(std::chrono::seconds(3));
        if (!p) break;
        if (p->type != r::publish) continue;
        auto pv = r::parse_publish(*p, 5);
        CHECK(pv.topic == "q/x");
        if (pv.qos == 1) c.send(r::ack_packet(r::puback, pv.packet_id));
        const auto at = pv.payload.find("\"seq\":");
        REQUIRE(at != std::string::npos);
        received.insert(std::stoll(pv.payload.substr(at + 6)));
    }
    std::size_t missing = 0;
    for (auto seq : acked) missing += received.count(seq) == 0 ? 1 : 0;
    CHECK(missing == 0);
    CHECK(received.size() >= acked.size());
}

TEST_CASE("retained messages and cleared retained topics survive kill -9") {
    if (is_mosquitto()) return;
    broker_process b;
    {
        mosq_client pub{"dur-retainer"};
        REQUIRE(pub.connect(b.port()) == 0);
        for (int i = 0; i < 50; ++i) pub.publish("r/" + std::to_string(i), "v" + std::to_string(i), 1, true);
        pub.publish("r/7", "", 1, true); // cleared
        pub.publish("r/8", "v8-new", 1, true);
    }
    b.kill9();
    b.restart();
    mosq_client sub{"dur-reader"};
    REQUIRE(sub.connect(b.port()) == 0);
    sub.subscribe("r/#", 1);
    std::map<std::string, std::string> got;
    for (auto const& m : sub.messages().pop_n(49, std::chrono::seconds(10))) {
        CHECK(m.retain);
        got[m.topic] = m.payload;
    }
    CHECK(got.size() == 49);
    CHECK(got.count("r/7") == 0);
    CHECK(got["r/8"] == "v8-new");
    CHECK(got["r/49"] == "v49");
    CHECK_FALSE(sub.messages().pop(std::chrono::milliseconds(300)));
}

TEST_CASE("session subscriptions survive kill -9 and session expiry counts across the restart") {
    if (is_mosquitto()) return;
    broker_process b;
    auto persistent = [&](std::string id, std::uint32_t expiry, bool clean) {
        auto s = r::spec(5, std::move(id), clean);
        s.properties.four(r::prop::session_expiry, expiry);
        return s;
    };
    for (auto [id, expiry] : {std::pair<std::string, std::uint32_t>{"dur-short", 1}, {"dur-long", 3600}}) {
        raw_client c{b.port()};
        REQUIRE(c.handshake(persistent(id, expiry, true)));
        c.send(r::subscribe_packet(5, 1, {{"s/" + id, 1}}));
        REQUIRE(c.read_type(r::suback));
        c.send(r::disconnect_packet(5));
    }
    b.kill9();
    std::this_thread::sleep_for(std::chrono::milliseconds(2100)); // past dur-short's expiry
    b.restart();
    {
        raw_client c{b.port()};
        auto ack = c.handshake(persistent("dur-short", 1, false));
        REQUIRE(ack);
        CHECK_FALSE(ack->session_present);
    }
    raw_client c{b.port()};
    auto ack = c.handshake(persistent("dur-long", 3600, false));
    REQUIRE(ack);
    CHECK(ack->session_present);
    mosq_client pub{"dur-pub2"};
    REQUIRE(pub.connect(b.port()) == 0);
    pub.publish("s/dur-long", "hello", 1);
    auto p = c.read_type(r::publish);
    REQUIRE(p);
    CHECK(r::parse_publish(*p, 5).payload == "hello");
}

TEST_CASE("a full store refuses readings with 0x97, says so, and the daemon keeps serving") {
    if (is_mosquitto()) return;
    broker_options o;
    o.storage_toml = "max_size_mb = 1\ncheckpoint_interval_ms = 50\n";
    broker_process b(o);
    raw_client dev{b.port()};
    REQUIRE(dev.handshake(r::spec(5, "dur-full")));
    // Readings of many series until the map is full.
    std::uint8_t refused = 0;
    std::uint16_t id = 0;
    for (int i = 0; i < 20000 && refused == 0; ++i) {
        std::string payload = "{";
        for (int m = 0; m < 50; ++m) payload += (m ? ",\"m" : "\"m") + std::to_string(m) + "\":" + std::to_string(i);
        payload += "}";
        id = static_cast<std::uint16_t>(id % 60000 + 1);
        dev.send(r::publish_packet(5, "d/full" + std::to_string(i) + "/telemetry", payload, 1, id));
        auto p = dev.read_type(r::puback);
        REQUIRE(p);
        auto a = r::parse_ack(*p, 5);
        CHECK(a.packet_id == id);
        if (a.reason != 0) refused = a.reason;
    }
    CHECK(refused == 0x97);
    // Still serving: other traffic flows, and telemetry is still refused
    // rather than the daemon falling over.
    mosq_client sub{"dur-full-sub"};
    REQUIRE(sub.connect(b.port()) == 0);
    sub.subscribe("chat", 1);
    mosq_client pub{"dur-full-pub"};
    REQUIRE(pub.connect(b.port()) == 0);
    pub.publish("chat", "still here", 1);
    auto m = sub.messages().pop();
    REQUIRE(m);
    CHECK(m->payload == "still here");
    CHECK(b.log_text().find("storage full") != std::string::npos);
    CHECK(b.running());
}

TEST_CASE("invalid telemetry is refused with 0x99 and stores nothing") {
    if (is_mosquitto()) return;
    broker_process b;
    raw_client dev{b.port()};
    REQUIRE(dev.handshake(r::spec(5, "dur-bad")));
    mosq_client sub{"dur-bad-sub"};
    REQUIRE(sub.connect(b.port()) == 0);
    sub.subscribe("d/#", 1);
    std::uint16_t id = 1;
    for (std::string bad : {"not json", "[1,2]", "{\"t\":\"warm\"}", "{\"t\":1e999}", "{}", "{\"metrics\":{\"x\":1},\"y\":2}"}) {
        CAPTURE(bad);
        dev.send(r::publish_packet(5, "d/bad/telemetry", bad, 1, id));
        auto p = dev.read_type(r::puback);
        REQUIRE(p);
        CHECK(r::parse_ack(*p, 5).reason == 0x99);
        ++id;
    }
    dev.send(r::publish_packet(5, "d/bad/telemetry", "{\"t\":21.5}", 1, id));
    auto p = dev.read_type(r::puback);
    REQUIRE(p);
    CHECK(r::parse_ack(*p, 5).reason == 0);
    // Only the valid reading reached subscribers.
    auto m = sub.messages().pop();
    REQUIRE(m);
    CHECK(m->payload == "{\"t\":21.5}");
    CHECK_FALSE(sub.messages().pop(std::chrono::milliseconds(300)));
    b.stop();
    auto points = stored_points(b, "default", "bad", "t");
    REQUIRE(points.size() == 1);
    CHECK(points[0].value == 21.5);
    CHECK(b.log_text().find("telemetry rejected") != std::string::npos);
}
