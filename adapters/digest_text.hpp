#pragma once
// The daily digest (engine/digest.hpp) as an email: subject, plain text and
// HTML, from the digest event JSON. Every value from the payload (device
// ids, rule names) is HTML-escaped in the HTML part.

#include <boost/system/result.hpp>

#include <string>
#include <string_view>

namespace pulsegate::adapters {

struct digest_text {
    std::string subject; // "[pulsegate] tenant t, 2026-11-24: 3 opened, 2 closed, 1 still open"
    std::string text;
    std::string html;
};

// Error (invalid_argument) when `payload` is not a digest event.
boost::system::result<digest_text> render_digest(std::string_view payload);

} // namespace pulsegate::adapters
