#pragma once
// The OpenAPI 3.0 document of the REST API, served at GET
// /api/v1/openapi.json. Its source is webui/openapi.json, turned into a C++
// translation unit at build time (embed_file.py), so the binary needs no
// file at run time. test/unit/webui/openapi_test.cpp keeps it true: every
// registered route is in its `paths` and every path there is registered.

#include <string_view>

namespace pulsegate::webui {

// The document's bytes (UTF-8 JSON), valid for the program's life.
std::string_view openapi_document() noexcept;

} // namespace pulsegate::webui
