#pragma once
// The LMDB environment of pulsegate: telemetry rings and rollups, the latest
// value of every series, and the broker's durable state (persistent sessions,
// their queued messages, retained messages) as opaque key/value tables.
//
// One writer thread owns every write. Producers (shard threads) append
// readings and key/value operations to an in-memory batch under a short lock
// and never wait for the disk; the writer takes the whole batch, applies it
// in one transaction (group commit), commits (fsync unless durability is
// relaxed) and then reports every operation of the batch through the commit
// handler, in the order they were appended, with the token the producer gave.
// That is how a PUBACK waits for its reading to be on disk without a shard
// ever blocking.
//
// Telemetry layout (see lmdb_store.cpp for the byte formats):
//   - series index: (tenant, device, metric) -> series id; ids are dense u32.
//   - every series has three rings with a fixed number of slots: raw points,
//     1-minute and 1-hour rollups (min, max, sum, count, last). A ring
//     overwrites its oldest slot: disk use per series is constant and nothing
//     is deleted point by point. Keys are big-endian, so scans are ordered.
//   - points of a series must arrive in time order: a point older than the
//     newest one of its series is dropped (counted, as Prometheus does with
//     out-of-order samples); one with the same timestamp is a duplicate
//     (a redelivered QoS 1 publish) and is ignored. Both still "commit".
//   - new points are written first to a journal (one sequential record per
//     commit, the only write on the durable path) and moved into the rings by
//     a checkpoint every `checkpoint_interval` or `checkpoint_points`, which
//     amortises the page writes of thousands of series over many commits
//     (flash wear). Queries see journaled points as if they were in the rings.
//
// Readers (queries) use their own read transactions and never wait for the
// writer's I/O: only for its in-memory updates after a commit or checkpoint
// (a copy of the batch's points) and while the map is being grown (rare).
//
// Thread safety: every public member may be called from any thread once
// start() has returned; the commit handler runs on the writer thread.

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pulsegate::storage {

struct lmdb_options {
    std::filesystem::path dir;                  // the environment's directory, created if missing
    std::uint32_t points_per_series = 100000;   // raw ring slots
    std::uint32_t minute_slots = 10140;         // 7 days + 1 hour of 1-minute rollups
    std::uint32_t hour_slots = 8784;            // 366 days of 1-hour rollups
    bool sync_on_commit = true;                 // durability "commit"; false = "relaxed"
    std::chrono::milliseconds relaxed_sync_interval{1000}; // relaxed: fsync at most this late
    // Relaxed: a commit of fewer than 1,024 operations waits this long for
    // more to share its transaction (0: commit at once). Bounds how
    // late a point becomes visible to queries, and what a crash of the
    // process loses of what was acknowledged.
    std::chrono::milliseconds relaxed_commit_delay{10};
    std::uint64_t initial_map_size = 64ull << 20;
    std::uint64_t max_map_size = 0;             // 0: grow until the disk is full
    std::size_t max_batch_operations = 65536;   // per transaction
    std::size_t max_queued_operations = 1u << 20; // beyond: append() answers overloaded
    std::chrono::milliseconds checkpoint_interval{10000};
    std::size_t checkpoint_points = 1u << 20;
    // A checkpoint writes this many series per transaction, one transaction
    // between two batches of operations, so that commits go on while it
    // goes through many series (halved automatically when LMDB's cap on
    // the pages one transaction may dirty is reached).
    std::size_t checkpoint_series_per_txn = 1024;
    // The ring sizes above apply to series created after they change: a
    // series keeps the geometry it was created with (stored with it).
};

// One metric of a reading. Booleans are stored as 0/1.
struct metric_value {
    std::string_view name;
    double value = 0;
};

// The points of one telemetry publish.
struct reading {
    std::string_view tenant;
    std::string_view device;
    std::int64_t ts_ms = 0; // epoch milliseconds
    std::span<const metric_value> metrics;
};

// Durable broker state: opaque keys and values owned by the broker's
// persistence format.
enum class kv_table : std::uint8_t { sessions, session_messages, retained, messages };

enum class append_result { queued, overloaded };

// What a commit did with one appended operation.
enum class commit_status : std::uint8_t {
    committed,   // durable (or, relaxed, written and synced soon)
    storage_full // the map reached max_map_size or the disk is full: nothing of it was written
};

struct point {
    std::int64_t ts_ms = 0;
    double value = 0;
};

struct series_key {
    std::string tenant;
    std::string device;
    std::string metric;
    auto operator<=>(const series_key&) const = default;
};

enum class resolution : std::uint8_t { raw, minute, hour };

struct series_query {
    series_key series;
    std::int64_t from_ms = 0; // inclusive
    std::int64_t to_ms = 0;   // inclusive
    std::size_t max_points = 1000;
};

struct query_result {
    resolution source = resolution::raw; // the ring the points came from
    // In time order, at most max_points. When the range holds more, each
    // bucket of the range contributes its minimum and its maximum point (so a
    // spike survives downsampling); rollup rows contribute their min and max
    // at the bucket's start time (the first row may start before from_ms).
    std::vector<point> points;
};

// One entry of query_buckets(): a raw point, or the aggregate of the points
// of one time bucket.
struct bucket {
    std::int64_t ts_ms = 0;  // raw point: its time; bucket: the bucket's start
    double mean = 0;         // raw point: its value
    double min = 0;
    double max = 0;
    std::uint64_t count = 0; // points in the bucket (1 for a raw point)
    bool operator==(const bucket&) const = default;
};

struct bucket_result {
    resolution source = resolution::raw; // the ring the data came from
    std::int64_t bucket_ms = 0;          // 0: raw points, one per entry; else the bucket width
    std::vector<bucket> buckets;         // time order, empty buckets omitted, at most max_points
};

// One row of a rollup ring: the points of [start_ms, start_ms + 1 min or 1 h).
struct rollup_row {
    std::int64_t start_ms = 0;
    double min = 0;
    double max = 0;
    double sum = 0;
    std::uint64_t count = 0;
    double last = 0; // value of the newest point of the bucket
    bool operator==(const rollup_row&) const = default;
};

struct latest_value {
    std::string metric;
    std::int64_t ts_ms = 0;
    double value = 0;
};

struct lmdb_stats {
    std::uint64_t points_written = 0;
    std::uint64_t points_out_of_order = 0;
    std::uint64_t points_duplicate = 0;
    std::uint64_t points_rejected = 0; // a name with a NUL byte, or tenant+device+metric over 509 bytes
    std::uint64_t commits = 0;
    std::uint64_t checkpoints = 0;
    std::uint64_t storage_full_errors = 0;
    std::uint64_t overloaded = 0; // append() refusals
    std::uint64_t series = 0;
    std::uint64_t map_size = 0;
    std::uint64_t queued_operations = 0;
};

class lmdb_store {
public:
    // Called on the writer thread after each commit, once per appended
    // operation, in append order. `token` is what the producer passed. It
    // must not throw nor wait for the writer (flush()).
    using commit_handler = std::function<void(std::shared_ptr<void> token, commit_status)>;

    // Opens (creating if needed) the environment and replays the journal.
    // Throws std::system_error naming the directory on failure (startup).
    explicit lmdb_store(lmdb_options opts);
    ~lmdb_store(); // stop() + join
    lmdb_store(const lmdb_store&) = delete;
    lmdb_store& operator=(const lmdb_store&) = delete;

    void set_commit_handler(commit_handler h); // before start()
    // Called on the writer thread with the time each write transaction took,
    // fsync included (the latency a durable acknowledgement waits for).
    using duration_handler = std::function<void(std::chrono::duration<double>)>;
    void set_commit_duration_handler(duration_handler h); // before start()
    void start();                             // starts the writer thread
    // Commits what is queued, checkpoints, stops the writer.
    void stop();

    // Producers: copy what they are given, never block on the disk. After
    // stop() they answer overloaded. Keys are 1 to 511 bytes (LMDB's limit):
    // another key is answered storage_full on its own, nothing written.
    append_result append(const reading& r, std::shared_ptr<void> token);
    append_result put(kv_table t, std::string_view key, std::string_view value, std::shared_ptr<void> token);
    append_result erase(kv_table t, std::string_view key, std::shared_ptr<void> token);
    // Completes after everything appended before it (a barrier for tests and
    // shutdown); returns at once when the writer is not running.
    void flush();

    // Readers.
    // The points of [from_ms, to_ms] from the finest ring that covers the
    // whole range and holds at most 20 x max_points entries in it (raw, else
    // minute, else hour), journaled points included. Errors: invalid_argument
    // when from_ms > to_ms or max_points < 2, an LMDB error when no read
    // transaction can begin. Unknown series (or a name with a NUL): empty.
    boost::system::result<query_result> query(const series_query& q) const;
    // Same source, arguments and errors as query(), aggregated for charts
    // (the REST telemetry route). When the source is raw and the range holds
    // at most max_points points: those points (bucket_ms 0). Otherwise
    // bucket_ms = ceil((to_ms - from_ms + 1) / max_points) rounded up to a
    // whole multiple of the source's resolution (1 ms, 1 min, 1 h), buckets
    // start at from_ms rounded down to the resolution, and each holds the
    // count, min, max and mean (sum / count, from the rollups' sums and
    // counts) of its points. Rollup rows fall whole into one bucket, so the
    // first bucket may hold points before from_ms and the last after to_ms.
    boost::system::result<bucket_result> query_buckets(const series_query& q) const;
    std::vector<latest_value> latest(std::string_view tenant, std::string_view device) const;
    // Series of a tenant (and of one device when `device` is not empty), in
    // key order.
    std::vector<series_key> list_series(std::string_view tenant, std::string_view device = {}) const;
    // The rollup rows of a series overlapping [from_ms, to_ms], in time order
    // (averages, exports). `r` is minute or hour. Unknown series: none.
    boost::system::result<std::vector<rollup_row>> rollups(const series_key& s, resolution r, std::int64_t from_ms,
                                                           std::int64_t to_ms) const;
    // Every (key, value) of a table, in key order (startup load of broker
    // state). `f` runs inside a read transaction: it must not wait for the
    // writer (no flush()).
    void scan(kv_table t, const std::function<void(std::string_view key, std::string_view value)>& f) const;

    lmdb_stats stats() const;

    // Online copy of the environment with compaction (mdb_env_copy2) into an
    // empty directory.
    boost::system::error_code copy_to(const std::filesystem::path& dir) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Online, compacted copy (mdb_env_copy2) of the environment in `from` into the
// empty or new directory `to`, from another process than the daemon's (the
// `pulsegate backup` command). Opens the environment read-only.
boost::system::error_code lmdb_backup(const std::filesystem::path& from, const std::filesystem::path& to);

} // namespace pulsegate::storage
