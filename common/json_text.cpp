#include "common/json_text.hpp"

#include <boost/json/parse.hpp>

#include <fmt/format.h>

#include <cmath>

namespace pulsegate::common {

namespace {

void write_string(std::string& out, std::string_view s) {
    out.push_back('"');
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
            else out.push_back(ch);
        }
    }
    out.push_back('"');
}

void write(std::string& out, const boost::json::value& v) {
    switch (v.kind()) {
    case boost::json::kind::null: out += "null"; break;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case boost::json::kind::int64: fmt::format_to(std::back_inserter(out), "{}", v.get_int64()); break;
    case boost::json::kind::uint64: fmt::format_to(std::back_inserter(out), "{}", v.get_uint64()); break;
    case boost::json::kind::double_: {
        const double d = v.get_double();
        if (!std::isfinite(d)) out += "null";
        else fmt::format_to(std::back_inserter(out), "{}", d);
        break;
    }
    case boost::json::kind::string: write_string(out, v.get_string()); break;
    case boost::json::kind::array: {
        out.push_back('[');
        bool first = true;
        for (const auto& e : v.get_array()) {
            if (!first) out.push_back(',');
            first = false;
            write(out, e);
        }
        out.push_back(']');
        break;
    }
    case boost::json::kind::object: {
        out.push_back('{');
        bool first = true;
        for (const auto& [k, e] : v.get_object()) {
            if (!first) out.push_back(',');
            first = false;
            write_string(out, k);
            out.push_back(':');
            write(out, e);
        }
        out.push_back('}');
        break;
    }
    }
}

} // namespace

std::string to_json_text(const boost::json::value& v) {
    std::string out;
    out.reserve(256);
    write(out, v);
    return out;
}

boost::json::object object_or_empty(std::string_view text) {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    if (ec || !v.is_object())
        return {};
    return std::move(v.get_object());
}

} // namespace pulsegate::common
