#include "daemon/text.hpp"

#include <fmt/format.h>

namespace pulsegate::daemon {

void append_quoted(std::string& out, std::string_view s) {
    out += '"';
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (ch) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
            if (c < 0x20 || c == 0x7f)
                out += fmt::format("\\u{:04X}", static_cast<unsigned>(c));
            else
                out += ch;
        }
    }
    out += '"';
}

std::string quote(std::string_view s) {
    std::string out;
    append_quoted(out, s);
    return out;
}

} // namespace pulsegate::daemon
