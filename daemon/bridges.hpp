#pragma once
// The [[bridge]] sections wired to the broker (DESIGN.md, Scale-out): each
// adapters::bridge gets a broker tap on its forward filters, publishes its
// imports as that tap's own (so they are not forwarded back), releases the
// publishers' acknowledgements through the broker, and reports its state in
// $SYS/broker/bridge/{name}/... every [mqtt] sys_interval_s and at once when
// its connection comes up or goes down.
//
// $SYS topics (retained, QoS 0): state ("connected" / "disconnected"),
// queued, oldest_age_s, in_flight, sent, imported, dropped.

#include "adapters/bridge.hpp"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pulsegate::broker {
class server;
}

namespace pulsegate::daemon {

// Reads each bridge's password_file into its password (startup and
// check-config). Throws std::runtime_error naming the bridge and the file.
void load_bridge_passwords(std::vector<adapters::bridge_options>& all);

class bridges {
public:
    // Opens every bridge's queue in data_dir/bridge/{name} (startup: throws
    // naming the directory). `sync`: fsync each append (durability commit).
    bridges(std::vector<adapters::bridge_options> cfg, const std::filesystem::path& data_dir, bool sync);
    ~bridges();
    bridges(const bridges&) = delete;
    bridges& operator=(const bridges&) = delete;

    // Adds the taps; before server.start(). `server` must outlive this.
    void attach(broker::server& server);
    void start(std::chrono::seconds sys_interval);
    // Stores what was offered and disconnects; after the broker stopped.
    void stop();

    bool empty() const noexcept { return entries_.empty(); }
    std::vector<std::pair<std::string, adapters::bridge_stats>> stats() const;

private:
    struct entry;
    void publish_sys(const entry& e) const;

    broker::server* server_ = nullptr;
    std::vector<std::unique_ptr<entry>> entries_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread sys_;
};

} // namespace pulsegate::daemon
