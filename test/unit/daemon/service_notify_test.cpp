// daemon/service_notify: the sd_notify(3) datagram, to a path and to an
// abstract socket; nothing without $NOTIFY_SOCKET; a clear error for a
// value that names no socket.
#include "daemon/service_notify.hpp"

#include "test/notify_receiver.hpp"
#include "test/temp_dir.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include <unistd.h>

using pulsegate::daemon::notify_service;
using pulsegate::test::notify_receiver;

namespace {
// Sets $NOTIFY_SOCKET for one scope.
struct notify_env {
    explicit notify_env(const std::string& value) { ::setenv("NOTIFY_SOCKET", value.c_str(), 1); }
    ~notify_env() { ::unsetenv("NOTIFY_SOCKET"); }
};
} // namespace

TEST_CASE("a state reaches the socket named by a path") {
    pulsegate::test::temp_dir dir;
    notify_receiver sm{dir.sub("notify").string()};
    notify_env env{sm.name()};
    CHECK_FALSE(notify_service("READY=1\nSTATUS=serving"));
    CHECK(sm.receive() == "READY=1\nSTATUS=serving");
    CHECK_FALSE(notify_service("STOPPING=1"));
    CHECK(sm.receive() == "STOPPING=1");
}

TEST_CASE("a state reaches an abstract socket (@name)") {
    notify_receiver sm{"@pulsegate-notify-test-" + std::to_string(::getpid())};
    notify_env env{sm.name()};
    CHECK_FALSE(notify_service("READY=1"));
    CHECK(sm.receive() == "READY=1");
}

TEST_CASE("without NOTIFY_SOCKET nothing is sent and nothing fails") {
    ::unsetenv("NOTIFY_SOCKET");
    CHECK_FALSE(notify_service("READY=1"));
}

TEST_CASE("a NOTIFY_SOCKET that names no socket is an error") {
    pulsegate::test::temp_dir dir;
    {
        notify_env env{"relative/path"};
        CHECK(notify_service("READY=1"));
    }
    {
        notify_env env{(dir.path / "nobody-listens").string()};
        CHECK(notify_service("READY=1"));
    }
    {
        notify_env env{"/" + std::string(200, 'x')};
        CHECK(notify_service("READY=1"));
    }
}
