// daemon/log: messages split into text + pairs, one valid logfmt or JSON
// line per event.

#include "daemon/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <doctest/doctest.h>
#include <spdlog/details/log_msg.h>

#include <string>

using namespace pulsegate::daemon;

namespace {

std::string format_line(log_format f, spdlog::level::level_enum level, std::string_view text) {
    auto formatter = make_log_formatter(f);
    spdlog::details::log_msg msg(spdlog::source_loc{}, "pulsegate", level,
                                 spdlog::string_view_t(text.data(), text.size()));
    spdlog::memory_buf_t buf;
    formatter->format(msg, buf);
    return std::string(buf.data(), buf.size());
}

// Drops the "ts=...Z " prefix after checking its shape.
std::string without_ts(const std::string& line) {
    REQUIRE(line.rfind("ts=", 0) == 0);
    auto space = line.find(' ');
    auto ts = line.substr(3, space - 3);
    CHECK(ts.size() == 24);  // 2024-05-01T12:00:00.123Z
    CHECK(ts.back() == 'Z');
    CHECK(ts[10] == 'T');
    return line.substr(space + 1);
}

} // namespace

TEST_CASE("split: text then pairs") {
    auto s = split_log_message("client connected client_id=c1 tenant=acme");
    CHECK(s.text == "client connected");
    REQUIRE(s.pairs.size() == 2);
    CHECK(s.pairs[0] == std::pair<std::string, std::string>{"client_id", "c1"});
    CHECK(s.pairs[1] == std::pair<std::string, std::string>{"tenant", "acme"});
}

TEST_CASE("split: quoted values with spaces, escapes and '='") {
    auto s = split_log_message(R"(reload failed error="bad \"x\" = y" url=http://h/?a=b)");
    CHECK(s.text == "reload failed");
    REQUIRE(s.pairs.size() == 2);
    CHECK(s.pairs[0].second == "bad \"x\" = y");
    CHECK(s.pairs[1].second == "http://h/?a=b");
}

TEST_CASE("split: no pairs, or a tail that is not pairs, is all text") {
    CHECK(split_log_message("plain text").text == "plain text");
    CHECK(split_log_message("plain text").pairs.empty());
    auto s = split_log_message("a=1 but then text");
    CHECK(s.text == "a=1 but then text");
    CHECK(s.pairs.empty());
    s = split_log_message("broken error=\"unterminated");
    CHECK(s.text == "broken error=\"unterminated");
    CHECK(s.pairs.empty());
    CHECK(split_log_message("").text.empty());
    s = split_log_message("cannot listen on [mqtt] listen");
    CHECK(s.pairs.empty());
}

TEST_CASE("split: an empty value and text with '=' earlier") {
    auto s = split_log_message("x=1 happened k=");
    CHECK(s.text == "x=1 happened");
    REQUIRE(s.pairs.size() == 1);
    CHECK(s.pairs[0] == std::pair<std::string, std::string>{"k", ""});
}

TEST_CASE("logfmt_value quotes only when needed") {
    CHECK(logfmt_value("abc") == "abc");
    CHECK(logfmt_value("127.0.0.1:1883") == "127.0.0.1:1883");
    CHECK(logfmt_value("") == "\"\"");
    CHECK(logfmt_value("a b") == "\"a b\"");
    CHECK(logfmt_value("say \"hi\"\n") == "\"say \\\"hi\\\"\\n\"");
    CHECK(logfmt_value("k=v") == "\"k=v\"");
}

TEST_CASE("logfmt line") {
    auto line = format_line(log_format::logfmt, spdlog::level::info, "listening proto=mqtt addr=0.0.0.0:1883");
    REQUIRE(line.back() == '\n');
    CHECK(without_ts(line) == "level=info msg=\"listening\" proto=mqtt addr=0.0.0.0:1883\n");

    line = format_line(log_format::logfmt, spdlog::level::err, "two\nlines with \"quotes\"");
    CHECK(without_ts(line) == "level=error msg=\"two\\nlines with \\\"quotes\\\"\"\n");

    line = format_line(log_format::logfmt, spdlog::level::warn, "reserved msg=x level=y");
    CHECK(without_ts(line) == "level=warn msg=\"reserved\" msg_=x level_=y\n");
}

TEST_CASE("json line is one valid JSON object") {
    auto line = format_line(log_format::json, spdlog::level::warn,
                            "reload failed error=\"bad \\\"x\\\"\" n=3 ctl=\"a\\tb\"");
    REQUIRE(line.back() == '\n');
    CHECK(line.find('\n') == line.size() - 1);
    auto v = boost::json::parse(line.substr(0, line.size() - 1));
    const auto& o = v.as_object();
    CHECK(o.at("level").as_string() == "warn");
    CHECK(o.at("msg").as_string() == "reload failed");
    CHECK(o.at("error").as_string() == "bad \"x\"");
    CHECK(o.at("n").as_string() == "3");
    CHECK(o.at("ctl").as_string() == "a\tb");
    CHECK(o.at("ts").as_string().size() == 24);

    line = format_line(log_format::json, spdlog::level::debug, std::string("ctl \x01 char\nnewline"));
    v = boost::json::parse(line.substr(0, line.size() - 1));
    CHECK(v.as_object().at("msg").as_string() == "ctl \x01 char\nnewline");
}
