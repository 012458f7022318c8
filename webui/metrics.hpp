#pragma once
// A small Prometheus metrics registry, rendered at GET /metrics in the text
// exposition format 0.0.4.
//
//   webui::metrics m;
//   auto& requests = m.add_counter("pulsegate_http_requests_total", "HTTP requests answered",
//                                  {"route", "method", "status"});
//   requests.with({"/healthz", "GET", "200"}).inc();
//   auto& queued = m.add_gauge("pulsegate_outbox_jobs", "Delivery jobs waiting").with({});
//   auto hold = m.add_callback_gauge("pulsegate_storage_bytes", "Bytes on disk",
//                                    [&] { return double(store.size()); });
//
// Families: a metric name with its help, type and label names; one series
// (child) per distinct set of label values, created on first with() and kept
// for the registry's life. Bound the label values (route patterns, not raw
// paths; status codes, not messages): every distinct set is a series forever.
//
// Threads: everything is thread safe. inc/set/observe are lock-free atomics;
// with() takes a shared lock (an exclusive one only to create a child) —
// callers on a hot path keep the returned reference, which stays valid for the
// registry's life. render() holds each family's lock while it reads it.
//
// Registration (add_*) is a setup step: a bad or clashing name throws
// std::invalid_argument naming it. Adding a family again with the same type,
// help and label names returns the existing one.

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pulsegate::webui {

enum class metric_type { counter, gauge, histogram };

// A value that only goes up (reset at restart).
class counter {
public:
    void inc(double v = 1) noexcept { v_.fetch_add(v, std::memory_order_relaxed); } // v >= 0
    double value() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> v_{0};
};

// A value that goes up and down.
class gauge {
public:
    void set(double v) noexcept { v_.store(v, std::memory_order_relaxed); }
    void inc(double v = 1) noexcept { v_.fetch_add(v, std::memory_order_relaxed); }
    void dec(double v = 1) noexcept { v_.fetch_sub(v, std::memory_order_relaxed); }
    double value() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> v_{0};
};

// Observations counted into fixed buckets (upper bounds, ascending; +Inf is
// implied), with their sum.
class histogram {
public:
    // `bounds` belongs to the family and outlives the histogram.
    explicit histogram(std::span<const double> bounds);

    void observe(double v) noexcept;

    struct snapshot {
        std::vector<std::uint64_t> cumulative; // per bound, then +Inf (= count)
        double sum = 0;
    };
    // Buckets and count are consistent with each other; the sum may include
    // an observation the buckets do not yet show (or the reverse).
    snapshot read() const;

private:
    std::span<const double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_; // per bucket, not cumulative; +Inf last
    std::atomic<double> sum_{0};
};

namespace detail {

// What the registry keeps per metric name.
class family_base {
public:
    family_base(std::string name, std::string help, metric_type type, std::vector<std::string> label_names);
    virtual ~family_base() = default;

    const std::string& name() const noexcept { return name_; }
    const std::string& help() const noexcept { return help_; }
    metric_type type() const noexcept { return type_; }
    const std::vector<std::string>& label_names() const noexcept { return label_names_; }

    // Appends the family's HELP, TYPE and sample lines to `out`.
    void render(std::string& out) const;

protected:
    // Appends the sample lines only.
    virtual void render_samples(std::string& out) const = 0;
    // `{a="x",b="y"}` for `values` (escaped), with `extra` (e.g. le="0.5")
    // appended; empty when there are no labels at all.
    std::string label_text(std::span<const std::string> values, std::string_view extra = {}) const;

private:
    std::string name_;
    std::string help_;
    metric_type type_;
    std::vector<std::string> label_names_;
};

class callback_family;

} // namespace detail

// A metric name with its children, one per distinct set of label values.
// Metric is counter, gauge or histogram.
template <class Metric>
class family final : public detail::family_base {
public:
    family(std::string name, std::string help, std::vector<std::string> label_names, std::vector<double> bounds);

    // The child for `values`, one per label name, in order (a programmer
    // error otherwise: asserts). Created on first use.
    Metric& with(std::initializer_list<std::string_view> values) { return with(std::span(values.begin(), values.size())); }
    Metric& with(std::span<const std::string_view> values);

private:
    void render_samples(std::string& out) const override;

    std::vector<double> bounds_; // histograms only
    mutable std::shared_mutex mutex_;
    // Key: the label values, each length-prefixed (join_key in metrics.cpp).
    std::map<std::string, std::pair<std::vector<std::string>, std::unique_ptr<Metric>>, std::less<>> children_;
};

class metrics;

// Keeps a callback metric registered; destroying it (or reset()) removes the
// series. Must not outlive the registry.
class callback_registration {
public:
    callback_registration() = default;
    callback_registration(metrics* owner, std::string name, std::uint64_t id)
        : owner_(owner), name_(std::move(name)), id_(id) {}
    callback_registration(callback_registration&& o) noexcept;
    callback_registration& operator=(callback_registration&& o) noexcept;
    ~callback_registration() { reset(); }

    void reset() noexcept;

private:
    metrics* owner_ = nullptr;
    std::string name_;
    std::uint64_t id_ = 0;
};

class metrics {
public:
    metrics();
    ~metrics();
    metrics(const metrics&) = delete;
    metrics& operator=(const metrics&) = delete;

    // Names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*,
    // not starting with "__", "le" reserved for histograms. Counter names
    // should end in _total, units in the name (_seconds, _bytes).
    family<counter>& add_counter(std::string name, std::string help, std::vector<std::string> label_names = {});
    family<gauge>& add_gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
    // `bounds`: bucket upper bounds, strictly ascending and finite.
    family<histogram>& add_histogram(std::string name, std::string help, std::vector<double> bounds,
                                     std::vector<std::string> label_names = {});

    // A series whose value `read` returns at scrape time (e.g. a queue
    // length owned elsewhere, or an atomic counter kept by another part).
    // Several registrations may share a name (same type and help) with
    // different `labels`. `read` runs on the scraping thread under a lock of
    // the registry: it must be quick and must not touch this registry.
    // It stays registered while the returned registration lives.
    [[nodiscard]] callback_registration add_callback_gauge(std::string name, std::string help,
                                                           std::function<double()> read,
                                                           std::vector<std::pair<std::string, std::string>> labels = {});
    [[nodiscard]] callback_registration add_callback_counter(std::string name, std::string help,
                                                             std::function<double()> read,
                                                             std::vector<std::pair<std::string, std::string>> labels = {});

    // Every family, sorted by name, in the text exposition format 0.0.4.
    std::string render() const;

    // The Content-Type of render()'s output.
    static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

private:
    friend class callback_registration;

    template <class Metric>
    family<Metric>& add_family(std::string name, std::string help, std::vector<std::string> label_names,
                               std::vector<double> bounds);
    callback_registration add_callback(metric_type type, std::string name, std::string help,
                                       std::function<double()> read,
                                       std::vector<std::pair<std::string, std::string>> labels);
    void remove_callback(const std::string& name, std::uint64_t id) noexcept;

    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<detail::family_base>, std::less<>> families_;
    std::uint64_t next_callback_id_ = 1;
};

// Formats a sample value as the exposition format wants it: shortest
// round-trip decimal, "+Inf", "-Inf", "NaN".
std::string format_metric_value(double v);

} // namespace pulsegate::webui
