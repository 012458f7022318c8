#include "webui/builtin_routes.hpp"

#include "webui/openapi.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

namespace pulsegate::webui {

void register_builtin_routes(router& r, const metrics& m, const readiness& checks) {
    r.add(http::verb::get, "/healthz",
          [](const request_context&) { return json_response(json::object{{"status", "ok"}}); });

    r.add(http::verb::get, "/readyz", [&checks](const request_context&) {
        bool ready = true;
        json::array list;
        for (auto& [name, result] : checks.run()) {
            json::object o;
            o["name"] = name;
            o["status"] = result.ready ? "ok" : "failing";
            if (!result.ready) o["reason"] = result.reason;
            ready = ready && result.ready;
            list.push_back(std::move(o));
        }
        json::object body;
        body["status"] = ready ? "ready" : "not_ready";
        body["checks"] = std::move(list);
        return json_response(body, ready ? http::status::ok : http::status::service_unavailable);
    });

    r.add(http::verb::get, "/metrics",
          [&m](const request_context&) { return text_response(m.render(), metrics::content_type); });

    r.add(http::verb::get, "/api/v1/openapi.json", [](const request_context&) {
        return text_response(std::string(openapi_document()), json_content_type);
    });
}

} // namespace pulsegate::webui
