#include "adapters/alert_message.hpp"

#include "common/time.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <charconv>

namespace pulsegate::adapters {

namespace json = boost::json;

namespace {

std::string text_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::int64_t int_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr)
        return 0;
    if (v->is_int64())
        return v->get_int64();
    if (v->is_uint64())
        return static_cast<std::int64_t>(v->get_uint64());
    return 0;
}

std::optional<double> number_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_number())
        return std::nullopt;
    return v->to_number<double>();
}

void append_html(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
}

} // namespace

std::string format_value(const std::optional<double>& v) {
    if (!v)
        return {};
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *v);
    return ec == std::errc{} ? std::string(buf, end) : std::string();
}

boost::system::result<alert_message> parse_alert_message(std::string_view payload) {
    const auto bad = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
    boost::system::error_code ec;
    auto v = json::parse(payload, ec);
    if (ec || !v.is_object())
        return bad;
    const auto& o = v.get_object();
    const auto* a = o.if_contains("alert");
    if (a == nullptr || !a->is_object())
        return bad;
    const auto& al = a->get_object();
    alert_message m;
    m.payload = std::string(payload);
    m.event = text_of(o, "event");
    m.tenant = text_of(o, "tenant");
    m.at = text_of(o, "at");
    m.at_ms = common::parse_rfc3339(m.at).value_or(0);
    m.alert_id = int_of(al, "id");
    m.device = text_of(al, "device");
    m.rule_id = int_of(al, "rule");
    m.rule_name = text_of(al, "rule_name");
    m.kind = text_of(al, "kind");
    m.severity = text_of(al, "severity");
    m.status = text_of(al, "status");
    m.metric = text_of(al, "metric");
    m.value = number_of(al, "value");
    m.threshold = number_of(al, "threshold");
    m.message = text_of(al, "message");
    m.opened_at = text_of(al, "opened_at");
    m.closed_at = text_of(al, "closed_at");
    m.escalation_level = int_of(al, "escalation_level");
    if (const auto* l = al.if_contains("labels"); l != nullptr && l->is_object())
        for (const auto& [k, val] : l->get_object())
            if (val.is_string())
                m.labels.emplace(std::string(k), std::string(val.get_string()));
    if (m.event.empty() || m.tenant.empty())
        return bad;
    return m;
}

std::string render_template(std::string_view tmpl, const alert_message& m, bool escape_html) {
    std::string out;
    out.reserve(tmpl.size() + 64);
    std::size_t i = 0;
    while (i < tmpl.size()) {
        const auto open = tmpl.find('{', i);
        if (open == std::string_view::npos) {
            out.append(tmpl.substr(i));
            break;
        }
        out.append(tmpl.substr(i, open - i));
        const auto close = tmpl.find('}', open + 1);
        if (close == std::string_view::npos) {
            out.append(tmpl.substr(open));
            break;
        }
        const auto name = tmpl.substr(open + 1, close - open - 1);
        std::string value;
        bool known = true;
        if (name == "severity") value = m.severity;
        else if (name == "alert_type") value = m.kind;
        else if (name == "device_id") value = m.device;
        else if (name == "metric") value = m.metric;
        else if (name == "value") value = format_value(m.value);
        else if (name == "threshold") value = format_value(m.threshold);
        else if (name == "message") value = m.message;
        else if (name == "timestamp") value = m.at;
        else if (name == "event") value = m.event;
        else if (name == "rule") value = m.rule_name;
        else if (name == "status") value = m.status;
        else if (name == "tenant") value = m.tenant;
        else if (name == "alert_id") value = std::to_string(m.alert_id);
        else known = false;
        if (!known) {
            out.append(tmpl.substr(open, close - open + 1));
        } else if (escape_html) {
            append_html(out, value);
        } else {
            out += value;
        }
        i = close + 1;
    }
    return out;
}

} // namespace pulsegate::adapters
