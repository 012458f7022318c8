#include "engine/telemetry_decoder.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace pulsegate::engine {

namespace json = boost::json;
using boost::system::error_code;

std::string_view to_string(telemetry_error e) noexcept {
    switch (e) {
    case telemetry_error::payload_too_large: return "the payload is larger than the telemetry size limit";
    case telemetry_error::not_json: return "the payload is not valid JSON";
    case telemetry_error::not_an_object: return "the payload is not a JSON object";
    case telemetry_error::value_not_number: return "a metric value is not a number or boolean";
    case telemetry_error::value_not_finite: return "a metric value is not a finite number";
    case telemetry_error::too_many_metrics: return "the payload has more metrics than the limit";
    case telemetry_error::name_empty: return "a metric name is empty";
    case telemetry_error::name_too_long: return "a metric name is longer than the limit";
    case telemetry_error::name_invalid_character:
        return "a metric name has a character outside printable ASCII or one of / + #";
    case telemetry_error::duplicate_name: return "a name appears twice in one object";
    case telemetry_error::timestamp_not_integer: return "\"ts\" is not an integer (epoch milliseconds)";
    case telemetry_error::timestamp_negative: return "\"ts\" is negative";
    case telemetry_error::timestamp_out_of_range: return "\"ts\" is after year 9999 (expected epoch milliseconds)";
    case telemetry_error::unexpected_member: return "a wrapped payload has a member other than \"ts\" and \"metrics\"";
    case telemetry_error::no_metrics: return "the payload has no metrics";
    }
    return "unknown telemetry error";
}

namespace {

class telemetry_category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "telemetry"; }

    std::string message(int ev) const override { return std::string(to_string(static_cast<telemetry_error>(ev))); }

    char const* message(int ev, char* buffer, std::size_t len) const noexcept override {
        if (len == 0) return buffer;
        const std::string_view s = to_string(static_cast<telemetry_error>(ev));
        const std::size_t n = std::min(s.size(), len - 1);
        s.copy(buffer, n);
        buffer[n] = '\0';
        return buffer;
    }
};

// 9999-12-31T23:59:59.999Z.
constexpr std::int64_t max_ts_ms = 253402300799999;

constexpr std::string_view ts_member = "ts";
constexpr std::string_view metrics_member = "metrics";

constexpr bool allowed_in_name(unsigned char c) noexcept {
    return c >= 0x21 && c <= 0x7E && c != '/' && c != '+' && c != '#';
}

// The basic_parser handler: a state machine over the parse events that keeps
// the metrics of the payload being decoded. The first violation sets ec and
// returns false, which stops the parser.
//
// Names are copied into names_, a buffer sized at construction: committed
// metric names [0, names_used_) followed by the key being read
// [names_used_, names_used_ + key_len_). A key is cut off (and rejected) past
// key_limit_ bytes, and a committed name is at most max_metric_name bytes, so
// the buffer never overflows and never moves while views into it exist.
class handler {
public:
    static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();

    explicit handler(const telemetry_limits& limits)
        : limits_(limits),
          key_limit_(std::max(limits.max_metric_name, metrics_member.size())),
          names_capacity_(limits.max_metrics * limits.max_metric_name + key_limit_),
          names_(new char[names_capacity_]) {
        metrics_.reserve(limits.max_metrics);
    }

    void begin() noexcept {
        metrics_.clear();
        ts_.reset();
        names_used_ = 0;
        key_len_ = 0;
        depth_ = 0;
        slot_ = slot::metric;
        wrapped_ = false;
        detail_ = {};
    }

    const telemetry_limits& limits() const noexcept { return limits_; }
    std::optional<std::int64_t> ts() const noexcept { return ts_; }
    std::span<const storage::metric_value> metrics() const noexcept { return metrics_; }
    std::string_view detail() const noexcept { return detail_; }

    // Sets the detail of a failure that did not come from the handler.
    void set_detail(std::string_view d) noexcept { detail_ = d; }
    char* detail_buffer() noexcept { return detail_buf_; }
    static constexpr std::size_t detail_capacity = 128;

    bool on_document_begin(error_code&) noexcept { return true; }
    bool on_document_end(error_code&) noexcept { return true; }

    bool on_object_begin(error_code& ec) noexcept {
        if (depth_ == 0) {
            depth_ = 1;
            return true;
        }
        if (depth_ == 1 && slot_ == slot::metrics) {
            // The wrapped form: nothing but "ts" may have come before.
            for (const auto& m : metrics_)
                if (m.name == metrics_member) return fail(ec, telemetry_error::duplicate_name, metrics_member);
            if (!metrics_.empty()) return fail(ec, telemetry_error::unexpected_member, metrics_.front().name);
            wrapped_ = true;
            depth_ = 2;
            return true;
        }
        return wrong_value(ec);
    }
    bool on_object_end(std::size_t, error_code&) noexcept {
        --depth_;
        return true;
    }
    bool on_array_begin(error_code& ec) noexcept { return wrong_value(ec); }
    bool on_array_end(std::size_t, error_code&) noexcept { return true; }

    bool on_key_part(json::string_view s, std::size_t n, error_code& ec) noexcept { return append_key(s, n, ec); }
    bool on_key(json::string_view s, std::size_t n, error_code& ec) noexcept {
        if (!append_key(s, n, ec)) return false;
        const std::string_view key = current_key();
        if (depth_ == 2) {
            slot_ = slot::metric;
        } else if (key == ts_member) {
            if (ts_) return fail(ec, telemetry_error::duplicate_name, ts_member);
            slot_ = slot::ts;
        } else if (key == metrics_member) {
            if (wrapped_) return fail(ec, telemetry_error::duplicate_name, metrics_member);
            slot_ = slot::metrics;
        } else {
            if (wrapped_) return fail(ec, telemetry_error::unexpected_member, key);
            slot_ = slot::metric;
        }
        return true;
    }

    bool on_string_part(json::string_view, std::size_t, error_code& ec) noexcept { return wrong_value(ec); }
    bool on_string(json::string_view, std::size_t, error_code& ec) noexcept { return wrong_value(ec); }
    bool on_null(error_code& ec) noexcept { return wrong_value(ec); }
    bool on_number_part(json::string_view, error_code&) noexcept { return true; }

    bool on_int64(std::int64_t i, json::string_view, error_code& ec) noexcept {
        if (depth_ == 0) return fail(ec, telemetry_error::not_an_object, {});
        if (slot_ == slot::ts) {
            if (i < 0) return fail(ec, telemetry_error::timestamp_negative, ts_member);
            if (i > max_ts_ms) return fail(ec, telemetry_error::timestamp_out_of_range, ts_member);
            ts_ = i;
            return true;
        }
        return add_metric(static_cast<double>(i), ec);
    }
    bool on_uint64(std::uint64_t u, json::string_view, error_code& ec) noexcept {
        // Boost.JSON reports only values above INT64_MAX as uint64.
        if (depth_ == 0) return fail(ec, telemetry_error::not_an_object, {});
        if (slot_ == slot::ts) return fail(ec, telemetry_error::timestamp_out_of_range, ts_member);
        return add_metric(static_cast<double>(u), ec);
    }
    bool on_double(double d, json::string_view, error_code& ec) noexcept {
        if (depth_ == 0) return fail(ec, telemetry_error::not_an_object, {});
        if (slot_ == slot::ts) return fail(ec, telemetry_error::timestamp_not_integer, ts_member);
        // Boost.JSON turns an out-of-range literal (1e999) into an infinity.
        if (!std::isfinite(d)) return fail(ec, telemetry_error::value_not_finite, current_key());
        return add_metric(d, ec);
    }
    bool on_bool(bool b, error_code& ec) noexcept {
        if (depth_ == 0) return fail(ec, telemetry_error::not_an_object, {});
        if (slot_ == slot::ts) return fail(ec, telemetry_error::timestamp_not_integer, ts_member);
        return add_metric(b ? 1.0 : 0.0, ec);
    }

    // Comments are off in the parse options; never called.
    bool on_comment_part(json::string_view, error_code&) noexcept { return true; }
    bool on_comment(json::string_view, error_code&) noexcept { return true; }

private:
    // What the value after the current key is.
    enum class slot : std::uint8_t { metric, ts, metrics };

    std::string_view current_key() const noexcept { return {names_.get() + names_used_, key_len_}; }

    // `s` is the tail of a key whose first n bytes have been seen.
    bool append_key(json::string_view s, std::size_t n, error_code& ec) noexcept {
        key_len_ = n - s.size();
        assert(key_len_ <= key_limit_);
        const std::size_t take = std::min(s.size(), key_limit_ - key_len_);
        std::memcpy(names_.get() + names_used_ + key_len_, s.data(), take);
        key_len_ += take;
        if (n > key_limit_) {
            // Neither "ts" nor "metrics" nor a metric name: say which.
            const auto e = depth_ == 1 && wrapped_ ? telemetry_error::unexpected_member : telemetry_error::name_too_long;
            return fail(ec, e, current_key(), true);
        }
        return true;
    }

    bool wrong_value(error_code& ec) noexcept {
        if (depth_ == 0) return fail(ec, telemetry_error::not_an_object, {});
        if (slot_ == slot::ts) return fail(ec, telemetry_error::timestamp_not_integer, ts_member);
        return fail(ec, telemetry_error::value_not_number, current_key());
    }

    bool add_metric(double value, error_code& ec) noexcept {
        const std::string_view name = current_key();
        if (name.empty()) return fail(ec, telemetry_error::name_empty, name);
        if (name.size() > limits_.max_metric_name) return fail(ec, telemetry_error::name_too_long, name);
        if (!std::all_of(name.begin(), name.end(), [](char c) { return allowed_in_name(static_cast<unsigned char>(c)); }))
            return fail(ec, telemetry_error::name_invalid_character, name);
        // Linear: at most max_metrics short names, cheaper than any index.
        for (const auto& m : metrics_)
            if (m.name == name) return fail(ec, telemetry_error::duplicate_name, name);
        if (metrics_.size() == limits_.max_metrics) return fail(ec, telemetry_error::too_many_metrics, name);
        metrics_.push_back({name, value});
        names_used_ += key_len_;
        key_len_ = 0;
        assert(names_used_ + key_limit_ <= names_capacity_);
        return true;
    }

    // Copies `what` into detail_buf_, escaped and cut to fit; `cut`: `what`
    // is the beginning of a longer name.
    bool fail(error_code& ec, telemetry_error e, std::string_view what, bool cut = false) noexcept {
        ec = make_error_code(e);
        static constexpr char hex[] = "0123456789abcdef";
        std::size_t n = 0;
        for (std::size_t i = 0; i < what.size(); ++i) {
            const auto c = static_cast<unsigned char>(what[i]);
            const bool plain = c >= 0x20 && c <= 0x7E && c != '\\';
            const std::size_t need = plain ? 1 : 4;
            if (n + need > detail_capacity - 3) {
                cut = true;
                break;
            }
            if (plain) {
                detail_buf_[n++] = static_cast<char>(c);
            } else {
                detail_buf_[n++] = '\\';
                detail_buf_[n++] = 'x';
                detail_buf_[n++] = hex[c >> 4];
                detail_buf_[n++] = hex[c & 0xF];
            }
        }
        if (cut) {
            std::memcpy(detail_buf_ + n, "...", 3);
            n += 3;
        }
        detail_ = {detail_buf_, n};
        return false;
    }

    telemetry_limits limits_;
    std::size_t key_limit_;      // longest key kept: a metric name or "metrics"
    std::size_t names_capacity_;
    std::unique_ptr<char[]> names_;
    std::size_t names_used_ = 0; // bytes of committed metric names
    std::size_t key_len_ = 0;    // bytes of the current key, after names_used_
    std::vector<storage::metric_value> metrics_; // capacity max_metrics, never grows
    std::optional<std::int64_t> ts_;
    int depth_ = 0;              // 0 outside, 1 top object, 2 wrapped "metrics"
    slot slot_ = slot::metric;
    bool wrapped_ = false;       // the "metrics" object has been entered
    std::string_view detail_;
    char detail_buf_[detail_capacity];
};

json::parse_options strict_json() noexcept {
    json::parse_options opt; // standard JSON only: no comments, trailing commas or invalid UTF-8
    opt.allow_comments = false;
    opt.allow_trailing_commas = false;
    opt.allow_invalid_utf8 = false;
    return opt;
}

} // namespace

const boost::system::error_category& telemetry_category() noexcept {
    static const telemetry_category_impl instance;
    return instance;
}

struct telemetry_decoder::impl {
    explicit impl(const telemetry_limits& limits) : parser(strict_json(), limits) {}
    // Its internal stack is used only to suspend an incomplete document,
    // which never happens with the whole payload in one write_some(more = false).
    json::basic_parser<handler> parser;
};

telemetry_decoder::telemetry_decoder(telemetry_limits limits) {
    assert(limits.max_metrics > 0 && limits.max_metric_name > 0);
    assert(limits.max_metric_name <= std::numeric_limits<std::size_t>::max() / 2 / limits.max_metrics);
    impl_ = std::make_unique<impl>(limits);
}

telemetry_decoder::~telemetry_decoder() = default;
telemetry_decoder::telemetry_decoder(telemetry_decoder&&) noexcept = default;
telemetry_decoder& telemetry_decoder::operator=(telemetry_decoder&&) noexcept = default;

boost::system::result<decoded_telemetry> telemetry_decoder::decode(std::string_view payload) {
    auto& p = impl_->parser;
    auto& h = p.handler();
    p.reset();
    h.begin();
    if (payload.size() > h.limits().max_payload) return make_error_code(telemetry_error::payload_too_large);

    error_code ec;
    const std::size_t used = p.write_some(false, payload.data(), payload.size(), ec);
    if (ec && ec.category() == telemetry_category()) return ec;
    if (ec || used < payload.size()) {
        // A Boost.JSON error: say what and where, without allocating.
        std::string_view what = "invalid JSON or UTF-8 at offset ";
        if (!ec)
            what = "data after the JSON value at offset ";
        else if (ec == json::error::incomplete)
            what = "JSON ends too early at offset ";
        else if (ec == json::error::exponent_overflow)
            what = "number exponent too large at offset ";
        char* buf = h.detail_buffer();
        what.copy(buf, what.size());
        const auto r = std::to_chars(buf + what.size(), buf + handler::detail_capacity, used);
        h.set_detail({buf, static_cast<std::size_t>(r.ptr - buf)});
        return make_error_code(telemetry_error::not_json);
    }
    if (h.metrics().empty()) return make_error_code(telemetry_error::no_metrics);
    return decoded_telemetry{h.ts(), h.metrics()};
}

std::string_view telemetry_decoder::error_detail() const noexcept { return impl_->parser.handler().detail(); }

const telemetry_limits& telemetry_decoder::limits() const noexcept { return impl_->parser.handler().limits(); }

} // namespace pulsegate::engine
