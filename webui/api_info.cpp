// GET /api/v1/info: what a signed-in user needs to know to connect a device
// (the MQTT listeners of this server: TCP, TLS, WebSocket) and its version.
// Any signed-in caller (tenant users, tokens, operators).

#include "webui/api.hpp"

#include "webui/api_error.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

namespace pulsegate::webui {

namespace json = boost::json;

void add_info_route(router& r, auth& a, std::function<server_info()> info) {
    r.add(http::verb::get, "/api/v1/info", [&a, info = std::move(info)](const request_context& ctx) -> response {
        auto who = a.check(ctx, access::tenant_read);
        // An operator is refused tenant access (403) but may read this.
        if (!who && who.error().status == http::status::forbidden) who = a.check(ctx, access::operator_read);
        if (!who) return to_response(who.error());
        const auto i = info();
        const auto list = [](const std::vector<std::string>& v) { return json::array(v.begin(), v.end()); };
        return json_response(json::object{
            {"version", i.version},
            {"https", i.https},
            {"mqtt", json::object{{"tcp", list(i.mqtt)},
                                  {"tls", list(i.mqtts)},
                                  {"websocket", i.mqtt_websocket_path}}},
        });
    });
}

} // namespace pulsegate::webui
