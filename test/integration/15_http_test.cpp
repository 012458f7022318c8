// 15: the daemon's HTTP listener: health, readiness and Prometheus metrics
// that follow what the broker, ingest and storage do.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <string>

#include "harness.hpp"

using namespace pulsegate::itest;
namespace r = pulsegate::itest::raw;

namespace {

// The HTTP port the daemon logged ("listening proto=http addr=127.0.0.1:PORT").
int http_port(broker_process const& b) {
    std::smatch m;
    const auto log = b.log_text();
    static const std::regex re(R"(proto=http addr=127\.0\.0\.1:(\d+))");
    REQUIRE(std::regex_search(log, m, re));
    return std::stoi(m[1]);
}

// One GET with Connection: close; the whole response.
std::string get(int port, std::string const& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
    std::string out;
    char buf[4096];
    for (;;) {
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

double metric(std::string const& text, std::string const& name) {
    const auto at = text.find("\n" + name + " ");
    REQUIRE_MESSAGE(at != std::string::npos, name << " not in /metrics");
    return std::stod(text.substr(at + name.size() + 2));
}

} // namespace

TEST_CASE("healthz, readyz and metrics follow the broker, ingest and storage") {
    if (is_mosquitto()) return;
    broker_process b;
    const int port = http_port(b);
    CHECK(get(port, "/healthz").starts_with("HTTP/1.1 200"));
    const auto ready = get(port, "/readyz");
    CHECK(ready.starts_with("HTTP/1.1 200"));
    CHECK(ready.find("\"storage\"") != std::string::npos);

    const auto before = get(port, "/metrics");
    CHECK(before.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
    raw_client dev{b.port()};
    REQUIRE(dev.handshake(r::spec(5, "http-dev")));
    for (std::uint16_t id = 1; id <= 3; ++id) {
        dev.send(r::publish_packet(5, "d/m1/telemetry", "{\"a\":1,\"b\":2}", 1, id));
        REQUIRE(dev.read_type(r::puback));
    }
    dev.send(r::publish_packet(5, "d/m1/telemetry", "not json", 1, 4));
    REQUIRE(dev.read_type(r::puback));
    const auto after = get(port, "/metrics");
    CHECK(metric(after, "pulsegate_ingest_readings_total") - metric(before, "pulsegate_ingest_readings_total") == 3);
    CHECK(metric(after, "pulsegate_ingest_rejected_total") - metric(before, "pulsegate_ingest_rejected_total") == 1);
    CHECK(metric(after, "pulsegate_storage_points_written_total") >= 2); // the first commit wrote a and b
    CHECK(metric(after, "pulsegate_mqtt_publish_received_total") >= 4);

    const auto missing = get(port, "/api/v1/nothing");
    CHECK(missing.starts_with("HTTP/1.1 404"));
    CHECK(missing.find("\"error\"") != std::string::npos);
    CHECK(get(port, "/api/v1/openapi.json").find("\"openapi\"") != std::string::npos);
}
