#include "webui/metrics.hpp"

#include <boost/assert.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pulsegate::webui {

namespace {

bool valid_name(std::string_view n, bool colon_ok) {
    const auto first = [&](char c) {
        return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (colon_ok && c == ':');
    };
    if (n.empty() || !first(n[0])) return false;
    return std::all_of(n.begin(), n.end(), [&](char c) { return first(c) || (c >= '0' && c <= '9'); });
}

void append_escaped(std::string& out, std::string_view s, bool quote) {
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (quote && c == '"') out += "\\\"";
        else out.push_back(c);
    }
}

std::string_view type_name(metric_type t) {
    switch (t) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
    }
    return "untyped";
}

// Each value length-prefixed, so that no two value lists share a key.
std::string join_key(std::span<const std::string_view> values) {
    std::string key;
    for (auto v : values) {
        key.append(std::to_string(v.size()));
        key.push_back(':');
        key.append(v);
    }
    return key;
}

void check_label_names(const std::string& metric, const std::vector<std::string>& names, bool histogram) {
    for (std::size_t i = 0; i < names.size(); ++i) {
        const auto& n = names[i];
        if (!valid_name(n, false) || n.starts_with("__") || (histogram && n == "le"))
            throw std::invalid_argument("metric \"" + metric + "\": bad label name \"" + n + "\"");
        if (std::find(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(i), n) !=
            names.begin() + static_cast<std::ptrdiff_t>(i))
            throw std::invalid_argument("metric \"" + metric + "\": label \"" + n + "\" appears twice");
    }
}

} // namespace

std::string format_metric_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", v);
}

// ---- histogram --------------------------------------------------------------

histogram::histogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void histogram::observe(double v) noexcept {
    // Bucket i counts bounds_[i-1] < v <= bounds_[i]; NaN lands in +Inf.
    const auto i = std::isnan(v) ? bounds_.size()
                                 : static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                                            bounds_.begin());
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
    snapshot s;
    s.cumulative.reserve(bounds_.size() + 1);
    std::uint64_t total = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        total += counts_[i].load(std::memory_order_relaxed);
        s.cumulative.push_back(total);
    }
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
}

// ---- families ---------------------------------------------------------------

namespace detail {

family_base::family_base(std::string name, std::string help, metric_type type, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), type_(type), label_names_(std::move(label_names)) {}

void family_base::render(std::string& out) const {
    out += "# HELP ";
    out += name_;
    out.push_back(' ');
    append_escaped(out, help_, false);
    out += "\n# TYPE ";
    out += name_;
    out.push_back(' ');
    out += type_name(type_);
    out.push_back('\n');
    render_samples(out);
}

std::string family_base::label_text(std::span<const std::string> values, std::string_view extra) const {
    if (values.empty() && extra.empty()) return {};
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out.push_back(',');
        out += label_names_[i];
        out += "=\"";
        append_escaped(out, values[i], true);
        out.push_back('"');
    }
    if (!extra.empty()) {
        if (!values.empty()) out.push_back(',');
        out += extra;
    }
    out.push_back('}');
    return out;
}

// Series whose values are read from callbacks at scrape time. Guarded by
// the registry's mutex (registration, removal and render all hold it).
class callback_family final : public family_base {
public:
    struct series {
        std::uint64_t id;
        std::vector<std::pair<std::string, std::string>> labels;
        std::function<double()> read;
    };
    using family_base::family_base;
    std::vector<series> all;

private:
    // A callback that throws shows NaN (and is logged): one broken source
    // must not take the whole scrape down.
    double read(const series& s) const {
        try {
            return s.read();
        } catch (const std::exception& e) {
            spdlog::warn("metric callback failed name={} error=\"{}\"", name(), e.what());
        } catch (...) {
            spdlog::warn("metric callback failed name={} error=\"unknown exception\"", name());
        }
        return std::nan("");
    }

    void render_samples(std::string& out) const override {
        for (const auto& s : all) {
            out += name();
            if (!s.labels.empty()) {
                out.push_back('{');
                for (std::size_t i = 0; i < s.labels.size(); ++i) {
                    if (i > 0) out.push_back(',');
                    out += s.labels[i].first;
                    out += "=\"";
                    append_escaped(out, s.labels[i].second, true);
                    out.push_back('"');
                }
                out.push_back('}');
            }
            out.push_back(' ');
            out += format_metric_value(read(s));
            out.push_back('\n');
        }
    }
};

} // namespace detail

namespace {
template <class Metric>
constexpr metric_type type_of() {
    if constexpr (std::is_same_v<Metric, counter>) return metric_type::counter;
    else if constexpr (std::is_same_v<Metric, gauge>) return metric_type::gauge;
    else return metric_type::histogram;
}
} // namespace

template <class Metric>
family<Metric>::family(std::string name, std::string help, std::vector<std::string> label_names,
                       std::vector<double> bounds)
    : family_base(std::move(name), std::move(help), type_of<Metric>(), std::move(label_names)),
      bounds_(std::move(bounds)) {}

template <class Metric>
Metric& family<Metric>::with(std::span<const std::string_view> values) {
    BOOST_ASSERT_MSG(values.size() == label_names().size(), "metric family: one value per label name");
    auto key = join_key(values);
    {
        std::shared_lock lock(mutex_);
        if (auto it = children_.find(key); it != children_.end()) return *it->second.second;
    }
    std::unique_lock lock(mutex_);
    auto [it, inserted] = children_.try_emplace(std::move(key));
    if (inserted) {
        it->second.first.assign(values.begin(), values.end());
        if constexpr (std::is_same_v<Metric, histogram>) it->second.second = std::make_unique<histogram>(bounds_);
        else it->second.second = std::make_unique<Metric>();
    }
    return *it->second.second;
}

template <class Metric>
void family<Metric>::render_samples(std::string& out) const {
    std::shared_lock lock(mutex_);
    for (const auto& [key, child] : children_) {
        const auto& [values, metric] = child;
        if constexpr (std::is_same_v<Metric, histogram>) {
            const auto snap = metric->read();
            for (std::size_t i = 0; i <= bounds_.size(); ++i) {
                const auto le = "le=\"" + (i < bounds_.size() ? format_metric_value(bounds_[i]) : "+Inf") + "\"";
                out += name();
                out += "_bucket";
                out += label_text(values, le);
                out.push_back(' ');
                out += std::to_string(snap.cumulative[i]);
                out.push_back('\n');
            }
            const auto labels = label_text(values);
            out += name() + "_sum" + labels + " " + format_metric_value(snap.sum) + "\n";
            out += name() + "_count" + labels + " " + std::to_string(snap.cumulative.back()) + "\n";
        } else {
            out += name();
            out += label_text(values);
            out.push_back(' ');
            out += format_metric_value(metric->value());
            out.push_back('\n');
        }
    }
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

// ---- registry ---------------------------------------------------------------

metrics::metrics() = default;
metrics::~metrics() = default;

template <class Metric>
family<Metric>& metrics::add_family(std::string name, std::string help, std::vector<std::string> label_names,
                                    std::vector<double> bounds) {
    constexpr auto type = type_of<Metric>();
    if (!valid_name(name, true)) throw std::invalid_argument("bad metric name \"" + name + "\"");
    check_label_names(name, label_names, type == metric_type::histogram);
    std::lock_guard lock(mutex_);
    if (auto it = families_.find(name); it != families_.end()) {
        auto* existing = dynamic_cast<family<Metric>*>(it->second.get());
        if (existing == nullptr || existing->help() != help || existing->label_names() != label_names)
            throw std::invalid_argument("metric \"" + name + "\" is already registered with another type, help or labels");
        return *existing;
    }
    auto f = std::make_unique<family<Metric>>(name, std::move(help), std::move(label_names), std::move(bounds));
    auto& ref = *f;
    families_.emplace(std::move(name), std::move(f));
    return ref;
}

family<counter>& metrics::add_counter(std::string name, std::string help, std::vector<std::string> label_names) {
    return add_family<counter>(std::move(name), std::move(help), std::move(label_names), {});
}

family<gauge>& metrics::add_gauge(std::string name, std::string help, std::vector<std::string> label_names) {
    return add_family<gauge>(std::move(name), std::move(help), std::move(label_names), {});
}

family<histogram>& metrics::add_histogram(std::string name, std::string help, std::vector<double> bounds,
                                          std::vector<std::string> label_names) {
    if (bounds.empty() || !std::all_of(bounds.begin(), bounds.end(), [](double b) { return std::isfinite(b); }) ||
        std::adjacent_find(bounds.begin(), bounds.end(), std::greater_equal<>()) != bounds.end())
        throw std::invalid_argument("histogram \"" + name + "\": bucket bounds must be finite and strictly ascending");
    return add_family<histogram>(std::move(name), std::move(help), std::move(label_names), std::move(bounds));
}

callback_registration metrics::add_callback_gauge(std::string name, std::string help, std::function<double()> read,
                                                  std::vector<std::pair<std::string, std::string>> labels) {
    return add_callback(metric_type::gauge, std::move(name), std::move(help), std::move(read), std::move(labels));
}

callback_registration metrics::add_callback_counter(std::string name, std::string help, std::function<double()> read,
                                                    std::vector<std::pair<std::string, std::string>> labels) {
    return add_callback(metric_type::counter, std::move(name), std::move(help), std::move(read), std::move(labels));
}

callback_registration metrics::add_callback(metric_type type, std::string name, std::string help,
                                            std::function<double()> read,
                                            std::vector<std::pair<std::string, std::string>> labels) {
    if (!valid_name(name, true)) throw std::invalid_argument("bad metric name \"" + name + "\"");
    if (!read) throw std::invalid_argument("metric \"" + name + "\": the callback is empty");
    std::vector<std::string> label_names;
    for (const auto& [k, v] : labels) label_names.push_back(k);
    check_label_names(name, label_names, false);
    std::sort(labels.begin(), labels.end());

    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end())
        it = families_.emplace(name, std::make_unique<detail::callback_family>(name, help, type, label_names)).first;
    auto* f = dynamic_cast<detail::callback_family*>(it->second.get());
    if (f == nullptr || f->type() != type || f->help() != help)
        throw std::invalid_argument("metric \"" + name + "\" is already registered with another type or help");
    for (const auto& s : f->all)
        if (s.labels == labels)
            throw std::invalid_argument("metric \"" + name + "\" already has a callback with these labels");
    const auto id = next_callback_id_++;
    f->all.push_back({id, std::move(labels), std::move(read)});
    return callback_registration(this, std::move(name), id);
}

void metrics::remove_callback(const std::string& name, std::uint64_t id) noexcept {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) return;
    auto* f = dynamic_cast<detail::callback_family*>(it->second.get());
    if (f == nullptr) return;
    std::erase_if(f->all, [&](const auto& s) { return s.id == id; });
    if (f->all.empty()) families_.erase(it);
}

std::string metrics::render() const {
    std::string out;
    std::lock_guard lock(mutex_);
    for (const auto& [name, f] : families_) f->render(out);
    return out;
}

// ---- callback_registration --------------------------------------------------

callback_registration::callback_registration(callback_registration&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), name_(std::move(o.name_)), id_(o.id_) {}

callback_registration& callback_registration::operator=(callback_registration&& o) noexcept {
    if (this != &o) {
        reset();
        owner_ = std::exchange(o.owner_, nullptr);
        name_ = std::move(o.name_);
        id_ = o.id_;
    }
    return *this;
}

void callback_registration::reset() noexcept {
    if (owner_ == nullptr) return;
    std::exchange(owner_, nullptr)->remove_callback(name_, id_);
}

} // namespace pulsegate::webui
