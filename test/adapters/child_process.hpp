#pragma once
// What the adapter tests share to run their real receivers: a child process
// killed and reaped when the test ends however it ends, the path of a helper
// script of this folder, and reading a file whole.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace pulsegate::test {

inline std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// test/adapters/<name> in the source tree (PULSEGATE_SOURCE_ROOT, set by
// test/adapters/meson.build).
inline std::filesystem::path adapters_script(const std::string& name) {
    const char* root = std::getenv("PULSEGATE_SOURCE_ROOT");
    return std::filesystem::path(root != nullptr ? root : ".") / "test" / "adapters" / name;
}

// stdout and stderr go to `log`.
class child_process {
public:
    child_process(std::vector<std::string> argv, const std::filesystem::path& log) {
        std::vector<char*> cargv;
        for (auto& a : argv)
            cargv.push_back(a.data());
        cargv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        const int rc = ::posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0)
            throw std::runtime_error("cannot start " + argv[0]);
    }
    ~child_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    bool exited() {
        int status = 0;
        if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_)
            pid_ = -1;
        return pid_ <= 0;
    }

private:
    pid_t pid_ = -1;
};

} // namespace pulsegate::test
