// 15: the daemon's HTTP listener: health, readiness and Prometheus metrics
// that follow what the broker, ingest and storage do; the embedded web UI.
#include <doctest/doctest.h>

#include <string>

#include "harness.hpp"

using namespace pulsegate::itest;
namespace r = pulsegate::itest::raw;

namespace {

double metric(std::string const& text, std::string const& name) {
    const auto at = text.find("\n" + name + " ");
    REQUIRE_MESSAGE(at != std::string::npos, name << " not in /metrics");
    return std::stod(text.substr(at + name.size() + 2));
}

} // namespace

TEST_CASE("healthz, readyz and metrics follow the broker, ingest and storage") {
    if (is_mosquitto()) return;
    broker_process b;
    const auto port = b.http_port();
    CHECK(http_get(port, "/healthz").status == 200);
    const auto ready = http_get(port, "/readyz");
    CHECK(ready.status == 200);
    CHECK(ready.body.find("\"storage\"") != std::string::npos);

    const auto before = http_get(port, "/metrics");
    CHECK(before.header("Content-Type").value_or("").starts_with("text/plain; version=0.0.4"));
    raw_client dev{b.port()};
    REQUIRE(dev.handshake(r::spec(5, "http-dev")));
    for (std::uint16_t id = 1; id <= 3; ++id) {
        dev.send(r::publish_packet(5, "d/m1/telemetry", "{\"a\":1,\"b\":2}", 1, id));
        REQUIRE(dev.read_type(r::puback));
    }
    dev.send(r::publish_packet(5, "d/m1/telemetry", "not json", 1, 4));
    REQUIRE(dev.read_type(r::puback));
    const auto after = http_get(port, "/metrics").body;
    CHECK(metric(after, "pulsegate_ingest_readings_total") - metric(before.body, "pulsegate_ingest_readings_total") == 3);
    CHECK(metric(after, "pulsegate_ingest_rejected_total") - metric(before.body, "pulsegate_ingest_rejected_total") == 1);
    CHECK(metric(after, "pulsegate_storage_points_written_total") >= 2); // the first commit wrote a and b
    CHECK(metric(after, "pulsegate_mqtt_publish_received_total") >= 4);

    const auto missing = http_get(port, "/api/v1/nothing");
    CHECK(missing.status == 404);
    CHECK(missing.body.find("\"error\"") != std::string::npos);
    CHECK(http_get(port, "/api/v1/openapi.json").body.find("\"openapi\"") != std::string::npos);
}

TEST_CASE("the daemon serves the embedded web UI with its security and cache headers") {
    if (is_mosquitto()) return;
    broker_process b;
    const auto port = b.http_port();
    const auto index = http_get(port, "/");
    REQUIRE_MESSAGE(index.status == 200, index.describe());
    CHECK(index.header("Content-Type") == "text/html; charset=utf-8");
    CHECK(index.body.find("<script type=\"module\" src=\"/assets/app.js\">") != std::string::npos);
    CHECK(index.header("Content-Security-Policy").value_or("").starts_with("default-src 'self'; script-src 'self';"));
    CHECK(index.header("Cache-Control") == "no-cache");
    const auto etag = index.header("ETag");
    REQUIRE(etag);
    CHECK(http_get(port, "/", {{"If-None-Match", *etag}}).status == 304);

    const auto js = http_get(port, "/assets/app.js", {{"Accept-Encoding", "gzip"}});
    CHECK(js.status == 200);
    CHECK(js.header("Content-Type") == "text/javascript; charset=utf-8");
    CHECK(js.header("Content-Encoding") == "gzip");
    CHECK(http_get(port, "/assets/uPlot.esm.js").status == 200);
    CHECK(http_get(port, "/assets/nothing.js").status == 404);
}
