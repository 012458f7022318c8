#pragma once
// The web front end, embedded in the binary and served by the HTTP server.
//
// The files of webui/ui/src/ and the libraries npm fetches into
// webui/ui/node_modules/ (uPlot) become a table at build time
// (webui/embed_assets.py, run by webui/meson.build), so the UI needs no file
// and no network at run time. Assets are flat: each is named by its file's
// base name and served at /assets/<name>; a front-end module imports the
// others by that absolute URL ("/assets/api.js").
//
// Routes (register_static_routes; with a `dev_dir`, assets are read from
// that webui/ui checkout on every request instead — <dir>/src/<name>, then
// <dir>/node_modules/uplot/dist/<name> — with Cache-Control: no-store and
// no ETag, so that front-end edits show on reload without a rebuild):
//   GET /               index.html
//   GET /assets/{name}  the asset; 404 not_found (the JSON error) otherwise
// (GET routes answer HEAD too: the same headers, no body.)
//
// Every response of these routes, the 404 included, carries a strict
// Content-Security-Policy (ui_content_security_policy: only our own origin,
// no inline script or style, no framing), X-Content-Type-Options: nosniff,
// Referrer-Policy: no-referrer and X-Frame-Options: DENY. An asset response
// also carries:
//   - Content-Type, by extension;
//   - ETag (strong; the gzip form has its own) and Cache-Control: no-cache:
//     the names are not content-hashed, so a browser revalidates every use
//     and gets 304 (no body) while its copy is current. If-None-Match is a
//     list of entity tags or "*", compared weakly (W/ ignored);
//   - the gzip form with Content-Encoding: gzip when Accept-Encoding accepts
//     gzip (not "gzip;q=0") and the asset has one (it is smaller), and
//     Vary: Accept-Encoding whenever the asset has one, whichever form is
//     sent, so that caches keep the two apart.
//
// Threads: the table is immutable; everything here may be called from any
// thread at once.

#include "webui/router.hpp"

#include <span>
#include <string_view>

namespace pulsegate::webui {

// One embedded file. Every view points into static storage (valid for the
// program's life).
struct static_asset {
    std::string_view name;         // "app.js"
    std::string_view content_type; // "text/javascript; charset=utf-8"
    std::string_view body;         // the file's bytes
    std::string_view etag;         // of body, quoted: "\"0123456789abcdef\""
    std::string_view gzip;         // body gzipped; empty when that is not smaller
    std::string_view gzip_etag;    // of gzip, quoted (differs from etag); empty with gzip
};

// Every asset, sorted by name (byte order). Defined in the generated
// translation unit (embed_assets.py).
std::span<const static_asset> static_assets() noexcept;

// The asset named `name` (exactly, case-sensitive), or null.
const static_asset* find_static_asset(std::string_view name) noexcept;

// The Content-Security-Policy of every UI response.
inline constexpr std::string_view ui_content_security_policy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

// The route patterns register_static_routes adds: they serve the UI, not the
// REST API, so they are not in webui/openapi.json.
inline constexpr std::string_view static_route_patterns[] = {"/", "/assets/{name}"};

// Adds GET / and GET /assets/{name}. The router must not have them yet.
void register_static_routes(router& r, std::string_view dev_dir = {});

// Whether an Accept-Encoding value accepts gzip: "gzip" or "x-gzip" with a
// non-zero q, or else "*" with a non-zero q. Absent or empty: no.
bool accepts_gzip(std::string_view accept_encoding) noexcept;

// Whether an If-None-Match value matches `etag` (quoted, as sent in ETag):
// "*", or a comma-separated list of entity tags one of which equals `etag`
// under weak comparison (a W/ prefix on either side is ignored). A
// malformed list matches nothing past the first malformed element.
bool if_none_match_matches(std::string_view if_none_match, std::string_view etag) noexcept;

} // namespace pulsegate::webui
