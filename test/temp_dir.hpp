#pragma once
// A fresh directory under the system temp dir, removed with everything in it
// when the test ends. Unique across processes (pid) and within one (counter).

#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

#include <unistd.h>

namespace pulsegate::test {

struct temp_dir {
    std::filesystem::path path;

    explicit temp_dir(const std::string& prefix = "pulsegate-test") {
        static std::atomic<int> n{0};
        std::random_device rd;
        path = std::filesystem::temp_directory_path() /
               (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + "-" + std::to_string(rd()));
        std::filesystem::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    std::filesystem::path sub(const char* name) const { return path / name; }
};

} // namespace pulsegate::test
