#include "webui/api_error.hpp"

#include <stdexcept>

namespace pulsegate::webui {

api_error api_error::invalid_argument(std::string field, std::string message) {
    return {http::status::bad_request, std::string(codes::invalid_argument), std::move(message), std::move(field)};
}

api_error api_error::not_found(std::string message) {
    return {http::status::not_found, std::string(codes::not_found), std::move(message), {}};
}

api_error api_error::conflict(std::string message) {
    return {http::status::conflict, std::string(codes::conflict), std::move(message), {}};
}

void throw_exception_from_error(const api_error& e, const boost::source_location&) {
    throw std::runtime_error(e.code + ": " + e.message);
}

} // namespace pulsegate::webui
