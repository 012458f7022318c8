#pragma once
// Readiness checks behind GET /readyz: each part that must work before the
// daemon can serve (storage writable, listeners up) registers a named check.
// /readyz runs them all and answers 200 when every one passes, 503 naming
// the ones that fail and why.
//
// Threads: add() and run() are thread safe. Checks run on an HTTP thread,
// outside the registry's lock, possibly concurrently with themselves: they
// must be quick (read a flag, not probe a disk) and thread safe.

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace pulsegate::webui {

// What a check returns.
struct check_result {
    bool ready = true;
    std::string reason; // why not, for the operator (what is wrong, what to do)

    static check_result ok() { return {}; }
    static check_result failing(std::string why) { return {false, std::move(why)}; }
};

class readiness {
public:
    // Names are unique; a second add() with a taken name throws
    // std::invalid_argument (a setup error).
    void add(std::string name, std::function<check_result()> check);

    struct outcome {
        std::string name;
        check_result result;
    };
    // Every check, in the order added. A check that throws is failing, with
    // the exception's message as the reason.
    std::vector<outcome> run() const;

private:
    struct entry {
        std::string name;
        std::function<check_result()> check;
    };
    mutable std::mutex mutex_;
    std::vector<entry> checks_;
};

} // namespace pulsegate::webui
