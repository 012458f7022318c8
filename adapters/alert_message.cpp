#include "adapters/alert_message.hpp"

#include "adapters/json_fields.hpp"
#include "common/time.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <charconv>

namespace pulsegate::adapters {

namespace json = boost::json;
using detail::int_of;
using detail::number_of;
using detail::text_of;

namespace {

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

std::string escape_html(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    append_html(out, s);
    return out;
}

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
    alert_message m;
    m.payload = std::string(payload);
    m.event = text_of(o, "event");
    m.tenant = text_of(o, "tenant");
    m.at = text_of(o, "at");
    m.at_ms = common::parse_rfc3339(m.at).value_or(0);
    if (m.event == "digest") {
        const auto* d = o.if_contains("digest");
        if (d == nullptr || !d->is_object() || m.tenant.empty())
            return bad;
        return m;
    }
    const auto* a = o.if_contains("alert");
    if (a == nullptr || !a->is_object())
        return bad;
    const auto& al = a->get_object();
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
