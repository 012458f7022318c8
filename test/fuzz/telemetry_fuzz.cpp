// libFuzzer target for the telemetry payload decoder
// (engine/telemetry_decoder.hpp): any bytes a device can publish.
//
//   CXX=clang++ meson setup build-fuzz -Dfuzz=true
//   ninja -C build-fuzz test/fuzz/telemetry_fuzz
//   ./build-fuzz/test/fuzz/telemetry_fuzz -max_total_time=60 test/fuzz/corpus/telemetry_fuzz
//
// For every input: decode() never crashes (ASan/UBSan watch reads), and a
// success keeps the contract: between 1 and max_metrics metrics, every name
// non-empty, within the length limit and printable ASCII without / + #,
// every value finite, no name twice, a non-negative timestamp. Decoding the
// same bytes again with the same (reused) decoder gives the same result.

#include "engine/telemetry_decoder.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "telemetry_fuzz: violated: %s\n", what);
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static pulsegate::engine::telemetry_decoder decoder(
        pulsegate::engine::telemetry_limits{.max_metrics = 8, .max_metric_name = 16, .max_payload = 4096});
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    auto first = decoder.decode(input);
    if (!first) {
        auto again = decoder.decode(input);
        check(!again && again.error() == first.error(), "a failure is not repeatable");
        return 0;
    }
    const auto& limits = decoder.limits();
    check(!first->metrics.empty() && first->metrics.size() <= limits.max_metrics, "metric count");
    check(!first->ts_ms || *first->ts_ms >= 0, "timestamp");
    std::set<std::string> names;
    std::vector<std::pair<std::string, double>> copy;
    for (const auto& m : first->metrics) {
        check(!m.name.empty() && m.name.size() <= limits.max_metric_name, "name length");
        for (char c : m.name)
            check(c >= 0x21 && c <= 0x7E && c != '/' && c != '+' && c != '#', "name character");
        check(std::isfinite(m.value), "finite value");
        check(names.insert(std::string(m.name)).second, "duplicate name");
        copy.emplace_back(std::string(m.name), m.value);
    }
    const auto ts = first->ts_ms;
    auto again = decoder.decode(input);
    check(again.has_value() && again->ts_ms == ts && again->metrics.size() == copy.size(), "repeatable");
    for (std::size_t i = 0; i < copy.size(); ++i)
        check(again->metrics[i].name == copy[i].first && again->metrics[i].value == copy[i].second, "same metrics");
    return 0;
}
