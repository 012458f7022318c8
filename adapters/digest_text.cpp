#include "adapters/digest_text.hpp"

#include "adapters/alert_message.hpp"
#include "adapters/json_fields.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fmt/format.h>

namespace pulsegate::adapters {

namespace json = boost::json;
using detail::int_of;
using detail::text_of;

namespace {

const json::array& array_of(const json::object& o, std::string_view key) {
    static const json::array none;
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_array() ? v->get_array() : none;
}

} // namespace

boost::system::result<digest_text> render_digest(std::string_view payload) {
    boost::system::error_code ec;
    auto v = json::parse(payload, ec);
    const json::value* d = nullptr;
    if (!ec && v.is_object())
        d = v.get_object().if_contains("digest");
    if (d == nullptr || !d->is_object() || text_of(v.get_object(), "event") != "digest")
        return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
    const auto& o = d->get_object();
    const auto tenant = text_of(v.get_object(), "tenant");
    const auto day = text_of(o, "day");
    const auto opened = int_of(o, "opened");
    const auto closed = int_of(o, "closed");
    const auto still_open = int_of(o, "still_open");

    digest_text out;
    out.subject = fmt::format("[pulsegate] {} digest {}: {} opened, {} closed, {} still open", tenant, day, opened,
                              closed, still_open);

    auto& t = out.text;
    auto& h = out.html;
    t += fmt::format("Alerts of tenant {} from {} to {} ({}):\n\n", tenant, text_of(o, "from"), text_of(o, "to"),
                     text_of(o, "time_zone"));
    t += fmt::format("  Opened:      {}\n  Closed:      {}\n  Still open:  {}\n", opened, closed, still_open);
    h += "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n";
    h += fmt::format("<h2>Alerts of tenant {}, {}</h2>\n", escape_html(tenant), escape_html(day));
    h += fmt::format("<p>From {} to {} ({}).</p>\n", escape_html(text_of(o, "from")), escape_html(text_of(o, "to")),
                     escape_html(text_of(o, "time_zone")));
    h += "<table cellpadding=\"4\">\n";
    h += fmt::format("<tr><th align=\"left\">Opened</th><td>{}</td></tr>\n", opened);
    h += fmt::format("<tr><th align=\"left\">Closed</th><td>{}</td></tr>\n", closed);
    h += fmt::format("<tr><th align=\"left\">Still open</th><td>{}</td></tr>\n", still_open);
    h += "</table>\n";

    if (const auto* sev = o.if_contains("open_by_severity"); sev != nullptr && sev->is_object() && still_open > 0) {
        t += "\nStill open by severity:\n";
        h += "<h3>Still open by severity</h3>\n<ul>\n";
        for (const auto& [name, n] : sev->get_object()) {
            if (!n.is_int64() || n.get_int64() == 0)
                continue;
            t += fmt::format("  {:<12} {}\n", std::string_view(name), n.get_int64());
            h += fmt::format("<li>{}: {}</li>\n", escape_html(name), n.get_int64());
        }
        h += "</ul>\n";
    }

    const auto ranking = [&](std::string_view title, const json::array& rows, auto label) {
        if (rows.empty())
            return;
        t += fmt::format("\n{}:\n", title);
        h += fmt::format("<h3>{}</h3>\n<ol>\n", title);
        for (const auto& row : rows) {
            if (!row.is_object())
                continue;
            const auto& r = row.get_object();
            const auto name = label(r);
            t += fmt::format("  {}: {} alerts, {} repeats\n", name, int_of(r, "alerts"), int_of(r, "repeats"));
            h += fmt::format("<li>{}: {} alerts, {} repeats</li>\n", escape_html(name), int_of(r, "alerts"),
                             int_of(r, "repeats"));
        }
        h += "</ol>\n";
    };
    ranking("Noisiest devices", array_of(o, "noisiest_devices"),
            [](const json::object& r) { return text_of(r, "device"); });
    ranking("Noisiest rules", array_of(o, "noisiest_rules"), [](const json::object& r) {
        return fmt::format("{} (rule {})", text_of(r, "name"), int_of(r, "rule"));
    });
    if (opened == 0 && closed == 0 && still_open == 0) {
        t += "\nNo alerts: a quiet day.\n";
        h += "<p>No alerts: a quiet day.</p>\n";
    }
    h += "</body></html>\n";
    return out;
}

} // namespace pulsegate::adapters
