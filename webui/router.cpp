#include "webui/router.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

namespace pulsegate::webui {

namespace {

// "/a/b" -> {"a", "b"}; "/" -> {""}; "/a/" -> {"a", ""}. `path` starts with '/'.
std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> out;
    path.remove_prefix(1);
    for (;;) {
        const auto slash = path.find('/');
        out.push_back(path.substr(0, slash));
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return out;
}

bool valid_param_name(std::string_view n) {
    if (n.empty() || !(n[0] == '_' || (n[0] >= 'a' && n[0] <= 'z'))) return false;
    return std::all_of(n.begin(), n.end(),
                       [](char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string allow_header(const std::vector<std::pair<http::verb, handler>>& methods) {
    std::vector<std::string_view> names;
    for (const auto& [m, h] : methods) {
        names.push_back(http::to_string(m));
        if (m == http::verb::get) names.push_back(http::to_string(http::verb::head));
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::string out;
    for (auto n : names) {
        if (!out.empty()) out += ", ";
        out += n;
    }
    return out;
}

} // namespace

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        const int hi = hex_value(s[i + 1]);
        const int lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

void router::add(http::verb method, std::string_view pattern, handler h) {
    const auto fail = [&](std::string_view why) {
        throw std::invalid_argument("route pattern \"" + std::string(pattern) + "\": " + std::string(why));
    };
    if (pattern.empty() || pattern[0] != '/') fail("must start with '/'");
    if (method == http::verb::unknown || method == http::verb::head)
        fail("method must be a known verb other than HEAD (GET routes answer HEAD)");
    if (!h) fail("handler is empty");

    std::vector<segment> segs;
    for (auto s : split_path(pattern)) {
        segment seg;
        if (s.size() >= 2 && s.front() == '{' && s.back() == '}') {
            seg.param = true;
            seg.text = s.substr(1, s.size() - 2);
            if (!valid_param_name(seg.text)) fail("parameter names are [a-z_][a-z0-9_]*");
            for (const auto& other : segs)
                if (other.param && other.text == seg.text) fail("parameter \"" + seg.text + "\" appears twice");
        } else {
            if (s.find_first_of("{}%?#") != std::string_view::npos)
                fail("a literal segment may not contain { } % ? # (parameters take a whole segment)");
            seg.text = s;
        }
        segs.push_back(std::move(seg));
    }

    for (auto& entry : paths_) {
        const bool same_shape = std::equal(entry.segments.begin(), entry.segments.end(), segs.begin(), segs.end(),
                                           [](const segment& a, const segment& b) {
                                               return a.param == b.param && (a.param || a.text == b.text);
                                           });
        if (!same_shape) continue;
        if (entry.pattern != pattern) fail("has the shape of \"" + entry.pattern + "\"; use the same parameter names");
        for (const auto& [m, _] : entry.methods)
            if (m == method) fail(std::string(http::to_string(method)) + " is registered twice");
        entry.methods.emplace_back(method, std::move(h));
        return;
    }
    path_entry entry;
    entry.pattern = pattern;
    entry.segments = std::move(segs);
    entry.methods.emplace_back(method, std::move(h));
    paths_.push_back(std::move(entry));
}

router::match router::find(http::verb method, std::string_view path) const {
    match m;
    if (path.empty() || path[0] != '/') return m;
    std::vector<std::string> decoded;
    for (auto s : split_path(path)) {
        auto d = percent_decode(s);
        if (!d) return m;
        decoded.push_back(std::move(*d));
    }

    // The best of the matching entries: a literal beats a parameter at the
    // first segment where two matching patterns differ.
    const path_entry* best = nullptr;
    for (const auto& entry : paths_) {
        if (entry.segments.size() != decoded.size()) continue;
        bool ok = true;
        for (std::size_t i = 0; ok && i < decoded.size(); ++i) {
            const auto& seg = entry.segments[i];
            ok = seg.param ? !decoded[i].empty() : seg.text == decoded[i];
        }
        if (!ok) continue;
        if (best != nullptr) {
            for (std::size_t i = 0; i < decoded.size(); ++i) {
                if (best->segments[i].param == entry.segments[i].param) continue;
                if (!entry.segments[i].param) best = &entry;
                break;
            }
        } else {
            best = &entry;
        }
    }
    if (best == nullptr) return m;

    m.pattern = best->pattern;
    const http::verb wanted = method == http::verb::head ? http::verb::get : method;
    const auto it = std::find_if(best->methods.begin(), best->methods.end(),
                                 [&](const auto& mh) { return mh.first == wanted; });
    if (it == best->methods.end()) {
        m.result = match::outcome::method_not_allowed;
        m.allow = allow_header(best->methods);
        return m;
    }
    m.result = match::outcome::found;
    m.target = &it->second;
    for (std::size_t i = 0; i < decoded.size(); ++i)
        if (best->segments[i].param) m.params.emplace_back(best->segments[i].text, std::move(decoded[i]));
    return m;
}

response router::dispatch(request_context& ctx) const {
    auto m = find(ctx.method, ctx.path);
    ctx.route = m.pattern;
    switch (m.result) {
    case match::outcome::not_found:
        return json_error(http::status::not_found, codes::not_found,
                          "no resource at " + std::string(ctx.path) + "; see /api/v1/openapi.json for the API");
    case match::outcome::method_not_allowed: {
        auto r = json_error(http::status::method_not_allowed, codes::method_not_allowed,
                            std::string(http::to_string(ctx.method)) + " is not allowed on " +
                                std::string(m.pattern) + "; allowed: " + m.allow);
        r.headers.emplace_back("Allow", std::move(m.allow));
        return r;
    }
    case match::outcome::found:
        break;
    }
    ctx.path_params = std::move(m.params);
    try {
        return (*m.target)(ctx);
    } catch (const std::exception& e) {
        spdlog::error("http handler failed route=\"{}\" method={} error=\"{}\"", m.pattern,
                      std::string_view(http::to_string(ctx.method)), e.what());
    } catch (...) {
        spdlog::error("http handler failed route=\"{}\" method={} error=\"unknown exception\"", m.pattern,
                      std::string_view(http::to_string(ctx.method)));
    }
    return json_error(http::status::internal_server_error, codes::internal,
                      "the server failed to handle the request; the error is in the server log");
}

std::vector<route_info> router::routes() const {
    std::vector<route_info> out;
    for (const auto& entry : paths_)
        for (const auto& [m, _] : entry.methods) out.push_back({m, entry.pattern});
    std::sort(out.begin(), out.end(), [](const route_info& a, const route_info& b) {
        return a.pattern != b.pattern ? a.pattern < b.pattern : a.method < b.method;
    });
    return out;
}

} // namespace pulsegate::webui
