#pragma once
// JSON text for people as well as programs: like boost::json::serialize,
// except that numbers are written the way people write them. Boost.JSON
// 1.81 writes every double in exponent form (21.5 -> "2.15E1"); this writes
// the shortest text that reads back to the same double ("21.5", "30",
// "1e+21"), and null for NaN and infinities (which JSON cannot express).

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace pulsegate::common {

std::string to_json_text(const boost::json::value& v);

// The object `text` holds; an empty object when it is not a JSON object
// (for columns and payloads pulsegate wrote itself).
boost::json::object object_or_empty(std::string_view text);

} // namespace pulsegate::common
