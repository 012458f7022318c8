#include "webui/static_assets.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <string>

namespace pulsegate::webui {

namespace {

namespace beast = boost::beast;

std::string_view trim(std::string_view s) noexcept {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// A qvalue (RFC 9110 12.4.2: "0" ["." 0-3 digits] or "1" ["." 0-3 zeros])
// above zero. A malformed one counts as zero: identity always works.
bool positive_qvalue(std::string_view q) noexcept {
    if (q.empty() || q.size() > 5 || (q[0] != '0' && q[0] != '1')) return false;
    if (q.size() == 1) return q[0] == '1';
    if (q[1] != '.') return false;
    const auto decimals = q.substr(2);
    if (!std::all_of(decimals.begin(), decimals.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
    const bool all_zero = decimals.find_first_not_of('0') == std::string_view::npos;
    return q[0] == '1' ? all_zero : !all_zero;
}

// Every field `name` of the request joined into one list, as RFC 9110 5.3
// allows for list-valued fields.
std::string field_list(const request_context& ctx, http::field name) {
    std::string out;
    if (ctx.headers == nullptr) return out;
    const auto [first, last] = ctx.headers->equal_range(name);
    for (auto it = first; it != last; ++it) {
        if (!out.empty()) out += ", ";
        out.append(it->value());
    }
    return out;
}

void add_ui_headers(response& res) {
    res.headers.emplace_back("Content-Security-Policy", std::string(ui_content_security_policy));
    res.headers.emplace_back("X-Content-Type-Options", "nosniff");
    res.headers.emplace_back("Referrer-Policy", "no-referrer");
    res.headers.emplace_back("X-Frame-Options", "DENY");
}

response serve(const static_asset& a, const request_context& ctx) {
    const bool zipped = !a.gzip.empty() && accepts_gzip(field_list(ctx, http::field::accept_encoding));
    const auto etag = zipped ? a.gzip_etag : a.etag;
    response res;
    add_ui_headers(res);
    res.headers.emplace_back("ETag", std::string(etag));
    res.headers.emplace_back("Cache-Control", "no-cache");
    if (!a.gzip.empty()) res.headers.emplace_back("Vary", "Accept-Encoding");
    if (ctx.header(http::field::if_none_match) &&
        if_none_match_matches(field_list(ctx, http::field::if_none_match), etag)) {
        res.status = http::status::not_modified;
        return res;
    }
    res.content_type = a.content_type;
    res.body = zipped ? a.gzip : a.body;
    if (zipped) res.headers.emplace_back("Content-Encoding", "gzip");
    return res;
}

// Development (register_static_routes with a dev_dir): the file, read now.
std::string_view dev_content_type(std::string_view name) noexcept {
    const auto dot = name.rfind('.');
    const auto ext = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
    if (ext == "html") return "text/html; charset=utf-8";
    if (ext == "js") return "text/javascript; charset=utf-8";
    if (ext == "css") return "text/css; charset=utf-8";
    if (ext == "svg") return "image/svg+xml";
    if (ext == "json") return "application/json";
    if (ext == "png") return "image/png";
    return "application/octet-stream";
}

std::optional<response> serve_from_dir(const std::filesystem::path& dir, std::string_view name) {
    if (name.empty() || name.front() == '.' || name.find('/') != std::string_view::npos) return std::nullopt;
    for (const auto& where : {dir / "src", dir / "node_modules" / "uplot" / "dist"}) {
        std::ifstream in(where / std::string(name), std::ios::binary);
        if (!in) continue;
        response res;
        add_ui_headers(res);
        res.headers.emplace_back("Cache-Control", "no-store");
        res.content_type = dev_content_type(name);
        res.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        return res;
    }
    return std::nullopt;
}

} // namespace

const static_asset* find_static_asset(std::string_view name) noexcept {
    const auto all = static_assets();
    const auto it = std::lower_bound(all.begin(), all.end(), name,
                                     [](const static_asset& a, std::string_view n) { return a.name < n; });
    return it != all.end() && it->name == name ? &*it : nullptr;
}

bool accepts_gzip(std::string_view accept_encoding) noexcept {
    bool named = false, named_ok = false, star_ok = false;
    while (!accept_encoding.empty()) {
        const auto comma = accept_encoding.find(',');
        auto element = accept_encoding.substr(0, comma);
        accept_encoding = comma == std::string_view::npos ? std::string_view{} : accept_encoding.substr(comma + 1);

        const auto semi = element.find(';');
        const auto coding = trim(element.substr(0, semi));
        bool positive = true;
        for (auto params = semi == std::string_view::npos ? std::string_view{} : element.substr(semi + 1);
             !params.empty();) {
            const auto next = params.find(';');
            const auto param = trim(params.substr(0, next));
            params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
            if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=')
                positive = positive_qvalue(param.substr(2));
        }
        if (beast::iequals(coding, "gzip") || beast::iequals(coding, "x-gzip")) {
            named = true;
            named_ok = named_ok || positive;
        } else if (coding == "*") {
            star_ok = star_ok || positive;
        }
    }
    return named ? named_ok : star_ok;
}

bool if_none_match_matches(std::string_view if_none_match, std::string_view etag) noexcept {
    const auto opaque = [](std::string_view tag) { return tag.starts_with("W/") ? tag.substr(2) : tag; };
    const auto want = opaque(etag);
    if (trim(if_none_match) == "*") return true;
    std::size_t pos = 0;
    for (;;) {
        pos = if_none_match.find_first_not_of(" \t,", pos);
        if (pos == std::string_view::npos) return false;
        if (if_none_match.substr(pos).starts_with("W/")) pos += 2;
        if (pos >= if_none_match.size() || if_none_match[pos] != '"') return false;
        const auto close = if_none_match.find('"', pos + 1);
        if (close == std::string_view::npos) return false;
        if (if_none_match.substr(pos, close - pos + 1) == want) return true;
        pos = close + 1;
    }
}

void register_static_routes(router& r, std::string_view dev_dir) {
    if (!dev_dir.empty()) {
        const std::filesystem::path dir(dev_dir);
        spdlog::warn("web UI served from {} ([http] ui_dir: front-end development only)", dir.string());
        const auto missing = [](std::string_view name) {
            auto res = json_error(http::status::not_found, codes::not_found, "no asset \"" + std::string(name) + "\"");
            add_ui_headers(res);
            return res;
        };
        r.add(http::verb::get, static_route_patterns[0], [dir, missing](const request_context&) {
            return serve_from_dir(dir, "index.html").value_or(missing("index.html"));
        });
        r.add(http::verb::get, static_route_patterns[1], [dir, missing](const request_context& ctx) {
            const auto name = ctx.path_param("name");
            return serve_from_dir(dir, name).value_or(missing(name));
        });
        return;
    }
    r.add(http::verb::get, static_route_patterns[0], [](const request_context& ctx) {
        const auto* index = find_static_asset("index.html");
        if (index == nullptr) {
            // The build embeds index.html (webui/meson.build); without it
            // there is no UI to show.
            auto res = json_error(http::status::not_found, codes::not_found, "this build has no web UI (no index.html)");
            add_ui_headers(res);
            return res;
        }
        return serve(*index, ctx);
    });
    r.add(http::verb::get, static_route_patterns[1], [](const request_context& ctx) {
        const auto name = ctx.path_param("name");
        if (const auto* a = find_static_asset(name)) return serve(*a, ctx);
        auto res = json_error(http::status::not_found, codes::not_found, "no asset \"" + std::string(name) + "\"");
        add_ui_headers(res);
        return res;
    });
}

} // namespace pulsegate::webui
