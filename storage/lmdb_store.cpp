// Byte formats (keys big-endian so cursor order is numeric order; values in
// the host's byte order, as LMDB files are not portable across byte orders
// anyway):
//
//   meta          "format" -> u32 format_version
//                 "ckpt_seq" -> u64 last journal record deleted by a checkpoint
//   series        tenant \0 device \0 metric -> u32 series id
//   series_by_id  u32 id -> series header (encode_header): ring sizes, ring
//                 totals (slot = total % size), the last journal seq whose
//                 points of this series are in its rings, last point, open
//                 rollup buckets, then the series key
//   raw           u32 id, u32 block -> block_points x {i64 ts, f64 value};
//                 ring slot s is entry s % bp of block s / bp
//   minute, hour  u32 id, u32 slot -> {i64 start, f64 min, max, sum, u64 count, f64 last}
//   journal       u64 seq -> n x {u32 id, i64 ts, f64 value}: the points
//                 accepted by one commit
//   kv_*          opaque broker keys and values
//
// Consistency: a commit writes the journal record of its points. A
// checkpoint writes the pending points of a series into its rings together
// with its header, whose ckpt_seq then says which journal records it covers.
// A checkpoint round goes through the series dirty when it starts, one
// transaction of at most checkpoint_series_per_txn series between two
// batches of operations (so commits go on meanwhile); each series' header
// says the journal seq current at its transaction, and the round's last
// transaction deletes the journal records up to the seq current at its
// start, which every series now covers. After a crash each point is either
// in its ring (seq <= its series' ckpt_seq) or only in the journal, never
// both: startup replays the journal from the state each header stored,
// skipping what it covers.
//
// Readers see the rings of their snapshot plus what the writer keeps in
// memory since the last checkpoint (pending points tagged with their journal
// seq, closed and open rollup buckets). A reader begins its transaction and
// copies that memory under one shared lock; the writer publishes after each
// commit and drops checkpointed memory after each checkpoint commit under the
// exclusive lock, so the copy always complements the snapshot: points with
// seq > the snapshot's ckpt_seq of the series, rollup rows from the first
// one in memory.

#include "storage/lmdb_store.hpp"

#include "common/thread.hpp"

#include <lmdb.h>

#include <boost/system/error_category.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace pulsegate::storage {

namespace {

namespace sys = boost::system;
using steady = std::chrono::steady_clock;

constexpr std::uint32_t format_version = 1;
constexpr std::uint32_t block_points = 64; // raw points per block entry (fewer for tiny rings)
constexpr std::size_t point_bytes = 16;
constexpr std::size_t row_bytes = 48;
constexpr std::size_t journal_point_bytes = 20;
constexpr std::int64_t minute_ms = 60'000;
constexpr std::int64_t hour_ms = 3'600'000;
constexpr std::size_t query_read_factor = 20; // a source is read when it holds at most 20 x max_points
constexpr std::size_t arena_keep_bytes = 64u << 20; // a larger batch arena is given back after use
constexpr char meta_format_key[] = "format";
constexpr char meta_ckpt_key[] = "ckpt_seq";

// How many points a query may read from one source.
std::size_t read_limit(std::size_t max_points) {
    return max_points > std::numeric_limits<std::size_t>::max() / query_read_factor
               ? std::numeric_limits<std::size_t>::max()
               : max_points * query_read_factor;
}

// ---- errors ---------------------------------------------------------------

class lmdb_category_impl final : public sys::error_category {
public:
    const char* name() const noexcept override { return "lmdb"; }
    std::string message(int ev) const override { return mdb_strerror(ev); }
};

const sys::error_category& lmdb_category() {
    static const lmdb_category_impl c;
    return c;
}

// LMDB returns errno values (> 0) for system errors and MDB_* (< 0) for its own.
sys::error_code lmdb_error(int rc) {
    if (rc > 0)
        return {rc, sys::system_category()};
    return {rc, lmdb_category()};
}

[[noreturn]] void startup_failure(const std::filesystem::path& dir, const char* what, int rc) {
    throw std::system_error(rc > 0 ? std::error_code(rc, std::generic_category()) : std::error_code(),
                            "LMDB store in " + dir.string() + ": " + what + ": " + mdb_strerror(rc) +
                                " (check that the directory is writable, not used by another pulsegate, and that "
                                "the disk has space)");
}

// ---- bytes ----------------------------------------------------------------

void put_be32(char* p, std::uint32_t v) {
    for (int i = 3; i >= 0; --i, v >>= 8)
        p[i] = static_cast<char>(v & 0xff);
}
void put_be64(char* p, std::uint64_t v) {
    for (int i = 7; i >= 0; --i, v >>= 8)
        p[i] = static_cast<char>(v & 0xff);
}
std::uint32_t get_be32(const char* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}
std::uint64_t get_be64(const char* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}
template <class T>
void put_raw(char* p, T v) {
    std::memcpy(p, &v, sizeof v);
}
template <class T>
T get_raw(const char* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

MDB_val to_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
MDB_val to_val(const char* p, std::size_t n) { return MDB_val{n, const_cast<char*>(p)}; }
std::string_view to_sv(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

struct key8 {
    char b[8];
    key8(std::uint32_t hi, std::uint32_t lo) {
        put_be32(b, hi);
        put_be32(b + 4, lo);
    }
    explicit key8(std::uint64_t v) { put_be64(b, v); }
    MDB_val val() { return MDB_val{8, b}; }
};

std::int64_t floor_to(std::int64_t ts, std::int64_t width) {
    std::int64_t q = ts / width;
    if (ts % width != 0 && ts < 0)
        --q;
    return q * width;
}

// ---- LMDB handles ---------------------------------------------------------

class env_handle {
public:
    env_handle() = default;
    ~env_handle() {
        if (e_)
            mdb_env_close(e_);
    }
    env_handle(const env_handle&) = delete;
    env_handle& operator=(const env_handle&) = delete;
    int create() { return mdb_env_create(&e_); }
    MDB_env* get() const noexcept { return e_; }

private:
    MDB_env* e_ = nullptr;
};

class txn_handle {
public:
    txn_handle() = default;
    ~txn_handle() { abort(); }
    txn_handle(const txn_handle&) = delete;
    txn_handle& operator=(const txn_handle&) = delete;
    int begin(MDB_env* env, unsigned flags) {
        abort();
        return mdb_txn_begin(env, nullptr, flags, &t_);
    }
    int commit() {
        int rc = mdb_txn_commit(t_); // frees the txn, success or not
        t_ = nullptr;
        return rc;
    }
    void abort() noexcept {
        if (t_)
            mdb_txn_abort(t_);
        t_ = nullptr;
    }
    MDB_txn* get() const noexcept { return t_; }

private:
    MDB_txn* t_ = nullptr;
};

// Must be destroyed before its transaction ends.
class cursor_handle {
public:
    cursor_handle() = default;
    ~cursor_handle() {
        if (c_)
            mdb_cursor_close(c_);
    }
    cursor_handle(const cursor_handle&) = delete;
    cursor_handle& operator=(const cursor_handle&) = delete;
    int open(MDB_txn* t, MDB_dbi d) { return mdb_cursor_open(t, d, &c_); }
    MDB_cursor* get() const noexcept { return c_; }

private:
    MDB_cursor* c_ = nullptr;
};

// ---- series state ---------------------------------------------------------

// One rollup bucket; `slot` is the ring slot it got when it opened.
struct rollup_bucket {
    std::int64_t start = 0;
    double min = 0;
    double max = 0;
    double sum = 0;
    std::uint64_t count = 0;
    double last = 0;
    std::uint32_t slot = 0;
};

void encode_row(char* p, const rollup_bucket& b) {
    put_raw(p, b.start);
    put_raw(p + 8, b.min);
    put_raw(p + 16, b.max);
    put_raw(p + 24, b.sum);
    put_raw(p + 32, b.count);
    put_raw(p + 40, b.last);
}
rollup_bucket decode_row(const char* p) {
    rollup_bucket b;
    b.start = get_raw<std::int64_t>(p);
    b.min = get_raw<double>(p + 8);
    b.max = get_raw<double>(p + 16);
    b.sum = get_raw<double>(p + 24);
    b.count = get_raw<std::uint64_t>(p + 32);
    b.last = get_raw<double>(p + 40);
    return b;
}

// What decides where the next point goes: the newest point and the open
// rollup buckets. The writer keeps a working copy, readers a published one.
struct series_cursor {
    bool has_last = false;
    bool has_minute = false;
    bool has_hour = false;
    std::int64_t last_ts = 0;
    double last_value = 0;
    std::uint64_t minute_total = 0; // buckets ever opened (next slot = total % size)
    std::uint64_t hour_total = 0;
    rollup_bucket minute;
    rollup_bucket hour;
};

struct pending_point {
    std::uint64_t seq; // journal record holding it
    std::int64_t ts;
    double value;
};

enum : std::uint8_t { k_minute = 0, k_hour = 1 };

struct series_state {
    std::string key; // tenant \0 device \0 metric (the `series` key)
    std::uint32_t id = 0;
    std::uint32_t raw_cap = 1;
    std::uint32_t minute_cap = 1;
    std::uint32_t hour_cap = 1;

    // Writer thread only.
    series_cursor w;
    std::uint64_t raw_total = 0;     // points in the raw ring as of the last checkpoint
    std::uint64_t ckpt_seq = 0;      // journal records up to this one are in its rings
    std::uint64_t touched_batch = 0; // the batch whose undo log holds `w`
    // Has something to checkpoint, and is in dirty_ for it (a series the
    // round in progress wrote stays in dirty_, not dirty, until it ends).
    bool dirty = false;

    // Written by the writer under the exclusive state lock, read by readers
    // under the shared one (and by the writer without it).
    series_cursor pub;
    std::vector<pending_point> pending;  // committed, not checkpointed; seq order
    std::vector<rollup_bucket> closed[2]; // closed since the last checkpoint; time order
};

// series_by_id value.
constexpr std::size_t header_fixed = 4 * 4 + 8 * 3 + 8 + 8 + 8 + 2 * (row_bytes + 8) + 8;

void encode_header(const series_state& s, std::uint64_t raw_total, std::uint64_t ckpt_seq, std::string& out) {
    out.assign(header_fixed, '\0');
    char* p = out.data();
    put_raw(p, s.raw_cap);
    put_raw(p + 4, s.minute_cap);
    put_raw(p + 8, s.hour_cap);
    put_raw(p + 12, static_cast<std::uint32_t>(s.key.size()));
    put_raw(p + 16, raw_total);
    put_raw(p + 24, s.w.minute_total);
    put_raw(p + 32, s.w.hour_total);
    p[40] = static_cast<char>(s.w.has_last);
    p[41] = static_cast<char>(s.w.has_minute);
    p[42] = static_cast<char>(s.w.has_hour);
    put_raw(p + 48, s.w.last_ts);
    put_raw(p + 56, s.w.last_value);
    encode_row(p + 64, s.w.minute);
    put_raw(p + 64 + row_bytes, s.w.minute.slot);
    encode_row(p + 120, s.w.hour);
    put_raw(p + 120 + row_bytes, s.w.hour.slot);
    put_raw(p + 176, ckpt_seq);
    out.append(s.key);
}

struct series_header {
    std::uint32_t raw_cap = 1;
    std::uint32_t minute_cap = 1;
    std::uint32_t hour_cap = 1;
    std::uint64_t raw_total = 0;
    std::uint64_t ckpt_seq = 0;
    series_cursor c;
    std::string_view key;
};

bool decode_header(std::string_view v, series_header& h) {
    if (v.size() < header_fixed)
        return false;
    const char* p = v.data();
    h.raw_cap = get_raw<std::uint32_t>(p);
    h.minute_cap = get_raw<std::uint32_t>(p + 4);
    h.hour_cap = get_raw<std::uint32_t>(p + 8);
    const auto key_len = get_raw<std::uint32_t>(p + 12);
    if (v.size() != header_fixed + key_len || h.raw_cap == 0 || h.minute_cap == 0 || h.hour_cap == 0)
        return false;
    h.raw_total = get_raw<std::uint64_t>(p + 16);
    h.c.minute_total = get_raw<std::uint64_t>(p + 24);
    h.c.hour_total = get_raw<std::uint64_t>(p + 32);
    h.c.has_last = p[40] != 0;
    h.c.has_minute = p[41] != 0;
    h.c.has_hour = p[42] != 0;
    h.c.last_ts = get_raw<std::int64_t>(p + 48);
    h.c.last_value = get_raw<double>(p + 56);
    h.c.minute = decode_row(p + 64);
    h.c.minute.slot = get_raw<std::uint32_t>(p + 64 + row_bytes);
    h.c.hour = decode_row(p + 120);
    h.c.hour.slot = get_raw<std::uint32_t>(p + 120 + row_bytes);
    h.ckpt_seq = get_raw<std::uint64_t>(p + 176);
    h.key = v.substr(header_fixed);
    return true;
}

enum class accept_result { accepted, out_of_order, duplicate };

// Rolls one point into the open bucket of one resolution; a bucket that
// closes goes to `closed`. Points arrive in strictly increasing time.
template <class Closed>
void roll(bool& has, rollup_bucket& b, std::uint64_t& total, std::uint32_t cap, std::int64_t width, std::int64_t ts,
          double v, Closed&& closed) {
    const std::int64_t start = floor_to(ts, width);
    if (has && b.start == start) {
        b.min = std::min(b.min, v);
        b.max = std::max(b.max, v);
        b.sum += v;
        ++b.count;
        b.last = v;
        return;
    }
    if (has)
        closed(b);
    b = rollup_bucket{start, v, v, v, 1, v, static_cast<std::uint32_t>(total % cap)};
    ++total;
    has = true;
}

// The one place that decides what a point does to a series (commits and
// journal replay alike, so replay rebuilds exactly what was committed).
template <class Closed>
accept_result accept(series_state& s, std::int64_t ts, double v, Closed&& closed) {
    series_cursor& w = s.w;
    if (w.has_last) {
        if (ts < w.last_ts)
            return accept_result::out_of_order;
        if (ts == w.last_ts)
            return accept_result::duplicate;
    }
    w.has_last = true;
    w.last_ts = ts;
    w.last_value = v;
    roll(w.has_minute, w.minute, w.minute_total, s.minute_cap, minute_ms, ts, v,
         [&](const rollup_bucket& b) { closed(k_minute, b); });
    roll(w.has_hour, w.hour, w.hour_total, s.hour_cap, hour_ms, ts, v,
         [&](const rollup_bucket& b) { closed(k_hour, b); });
    return accept_result::accepted;
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// ---- producer batches -----------------------------------------------------

struct str_ref {
    std::size_t off = 0;
    std::size_t len = 0;
};

enum class op_kind : std::uint8_t { reading, put, erase };

struct queued_op {
    op_kind kind = op_kind::reading;
    kv_table table = kv_table::sessions;
    str_ref a; // reading: tenant; kv: key
    str_ref b; // reading: device; put: value
    std::int64_t ts = 0;
    std::uint32_t metrics_begin = 0;
    std::uint32_t metrics_count = 0;
    std::shared_ptr<void> token;
};

struct queued_metric {
    str_ref name;
    double value = 0;
};

// Everything appended since the writer last took the queue. Strings live in
// one arena; cleared batches keep their capacity.
struct op_batch {
    std::vector<queued_op> ops;
    std::vector<queued_metric> metrics;
    std::string arena;

    str_ref add(std::string_view s) {
        str_ref r{arena.size(), s.size()};
        arena.append(s);
        return r;
    }
    std::string_view view(str_ref r) const { return {arena.data() + r.off, r.len}; }
    void clear() {
        ops.clear();
        metrics.clear();
        arena.clear();
        if (arena.capacity() > arena_keep_bytes)
            std::string().swap(arena);
    }
};

// Index of the first element of [lo, hi) for which pred is false (pred is
// true then false along the range).
template <class Pred>
std::uint64_t partition_index(std::uint64_t lo, std::uint64_t hi, Pred&& pred) {
    while (lo < hi) {
        const std::uint64_t mid = lo + (hi - lo) / 2;
        if (pred(mid))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// Keeps the minimum and maximum point of each of max_points / 2 equal time
// buckets of [from, to], in time order (one point when they are the same).
std::vector<point> downsample(std::vector<point> in, std::int64_t from, std::int64_t to, std::size_t max_points) {
    if (in.size() <= max_points)
        return in;
    const std::size_t nb = max_points / 2;
    const double span = static_cast<double>(static_cast<std::uint64_t>(to) - static_cast<std::uint64_t>(from)) + 1.0;
    auto bucket_of = [&](std::int64_t ts) -> std::size_t {
        if (ts <= from)
            return 0;
        const double d = static_cast<double>(static_cast<std::uint64_t>(ts) - static_cast<std::uint64_t>(from));
        return std::min(nb - 1, static_cast<std::size_t>(d / span * static_cast<double>(nb)));
    };
    std::vector<point> out;
    out.reserve(std::min(max_points, in.size()));
    std::size_t i = 0;
    while (i < in.size()) {
        const std::size_t b = bucket_of(in[i].ts_ms);
        std::size_t lo = i, hi = i;
        std::size_t j = i + 1;
        for (; j < in.size() && bucket_of(in[j].ts_ms) == b; ++j) {
            if (in[j].value < in[lo].value)
                lo = j;
            if (in[j].value > in[hi].value)
                hi = j;
        }
        out.push_back(in[std::min(lo, hi)]);
        if (lo != hi)
            out.push_back(in[std::max(lo, hi)]);
        i = j;
    }
    return out;
}

bool make_series_key(std::string_view tenant, std::string_view device, std::string_view metric, std::string& out) {
    if (has_nul(tenant) || has_nul(device) || has_nul(metric))
        return false;
    out.clear();
    out.append(tenant).push_back('\0');
    out.append(device).push_back('\0');
    out.append(metric);
    return true;
}

series_key split_series_key(std::string_view k) {
    const auto a = k.find('\0');
    const auto b = k.find('\0', a + 1);
    return series_key{std::string(k.substr(0, a)), std::string(k.substr(a + 1, b - a - 1)),
                      std::string(k.substr(b + 1))};
}

} // namespace

// ===========================================================================

struct lmdb_store::impl {
    explicit impl(lmdb_options o);
    ~impl();

    // ---- environment
    lmdb_options opts_;
    env_handle env_;
    MDB_dbi meta_ = 0, series_ = 0, series_by_id_ = 0, raw_ = 0, rollup_[2] = {0, 0}, journal_ = 0;
    MDB_dbi kv_[4] = {0, 0, 0, 0};
    std::size_t max_key_ = 511;
    std::size_t page_size_ = 4096;
    std::atomic<std::uint64_t> map_size_{0};

    // Readers hold resize_mutex_ shared for the whole life of their read
    // transaction; the writer takes it exclusively only to resize the map
    // (LMDB wants no transaction open then). The gate stops new readers while
    // the writer waits, so a stream of readers cannot starve it.
    mutable std::mutex resize_gate_;
    mutable std::shared_mutex resize_mutex_;
    // Guards series_state::pub / pending / closed and table_ (see the top).
    mutable std::shared_mutex state_mutex_;
    std::vector<std::unique_ptr<series_state>> table_; // by id

    // ---- producers -> writer
    std::mutex queue_mutex_;
    std::condition_variable queue_cv_;  // wakes the writer
    std::condition_variable done_cv_;   // wakes flush()
    op_batch incoming_;
    std::uint64_t appended_ops_ = 0;  // ever appended
    std::uint64_t completed_ops_ = 0; // ever reported
    bool writer_waiting_ = false;
    bool stop_requested_ = false;
    bool running_ = false;
    bool started_ = false;
    std::size_t flush_waiters_ = 0;
    std::thread writer_;
    // The writer thread's class: SCHED_IDLE while it keeps up, SCHED_BATCH
    // once `behind_ops` operations wait (pace_writer).
    static constexpr std::size_t behind_ops = 4096;
    // Operations have waited since then without the writer taking a batch.
    steady::time_point waiting_since_{};
    // Wakes the watch thread, which takes a starved SCHED_IDLE writer back
    // to SCHED_BATCH (watch_main).
    std::condition_variable watch_cv_;
    std::thread watch_;
    static constexpr auto watch_period = std::chrono::milliseconds(50);
    static constexpr auto starved_after = std::chrono::milliseconds(250);
    bool may_idle_ = false;
    bool writer_idle_ = false;
    commit_handler handler_;
    duration_handler duration_handler_;

    // ---- writer thread only
    op_batch work_;
    std::unordered_map<std::string_view, series_state*> by_key_; // views into series_state::key
    std::uint32_t next_id_ = 0;
    std::uint64_t last_journal_seq_ = 0;
    std::uint64_t batch_no_ = 0;
    std::string key_buf_;
    std::string hdr_buf_;
    std::vector<char> block_buf_;
    struct accepted_point {
        series_state* s;
        std::int64_t ts;
        double value;
    };
    struct closed_bucket {
        series_state* s;
        std::uint8_t kind;
        rollup_bucket b;
    };
    struct undo_entry {
        series_state* s;
        series_cursor w;
    };
    std::vector<accepted_point> acc_;
    std::vector<closed_bucket> closed_;
    std::vector<undo_entry> undo_; // also the list of series touched by the batch
    std::vector<std::unique_ptr<series_state>> created_;
    std::vector<commit_status> status_;
    std::vector<series_state*> dirty_;
    std::size_t pending_points_ = 0;
    std::size_t ckpt_chunk_ = 1; // series per checkpoint transaction; halved on MDB_TXN_FULL
    // The checkpoint round in progress (none while round_end_ is 0):
    // dirty_[0, round_end_) are its series, the first round_done_ of them
    // written; its last transaction deletes the journal up to round_upto_.
    std::size_t round_end_ = 0;
    std::size_t round_done_ = 0;
    std::uint64_t round_upto_ = 0;
    steady::time_point last_ckpt_attempt_ = steady::now();
    bool last_ckpt_failed_ = false;
    steady::time_point last_sync_ = steady::now();
    bool unsynced_ = false;

    struct batch_counts {
        std::uint64_t out_of_order = 0, duplicate = 0, rejected = 0, kv_refused = 0;
    };

    // ---- stats
    std::atomic<std::uint64_t> points_written_{0}, points_out_of_order_{0}, points_duplicate_{0},
        points_rejected_{0}, commits_{0}, checkpoints_{0}, storage_full_errors_{0}, overloaded_{0}, series_count_{0},
        queued_{0};

    // ---- startup
    void open_env();
    void startup_scan(MDB_dbi dbi, const std::function<void(const MDB_val&, const MDB_val&)>& f,
                      const std::function<void(MDB_txn*)>& after = {});
    void load_series();
    void replay_journal();
    std::uint64_t read_ckpt_seq(MDB_txn* t) const;

    // ---- writer
    void writer_main();
    void watch_main();
    void gather(std::unique_lock<std::mutex>& l);
    void pace_writer(bool idle);
    bool enqueued();
    void process(op_batch& b);
    int apply_chunk(const op_batch& b, std::size_t i, std::size_t j, batch_counts& c);
    int apply_reading(MDB_txn* t, const op_batch& b, const queued_op& o, batch_counts& c);
    int create_series(MDB_txn* t, std::string_view key, series_state*& out);
    void touch(series_state* s);
    void undo();
    void publish(std::uint64_t seq);
    void mark_dirty(series_state* s);
    void maybe_checkpoint(bool force);
    bool checkpoint();
    bool checkpoint_step();
    void end_round(bool ok);
    int write_checkpoint(std::size_t begin, std::size_t n, std::optional<std::uint64_t> trim_upto);
    int write_raw(MDB_txn* t, const series_state& s);
    int put_row(MDB_txn* t, std::uint8_t kind, std::uint32_t id, const rollup_bucket& b);
    void maybe_sync(bool force);
    int begin_write(txn_handle& t);
    bool grow_map();
    std::optional<steady::time_point> next_deadline() const;

    // ---- readers
    class read_scope;
    struct memory_copy;
    std::optional<std::uint32_t> find_id(MDB_txn* t, std::string_view key) const;
    bool read_header(MDB_txn* t, std::uint32_t id, series_header& h) const;
    void copy_memory(std::uint32_t id, std::uint64_t ckpt, const series_query* q, std::uint32_t raw_cap,
                     memory_copy& m) const;
    template <class Sink>
    sys::error_code read_range(const series_query& q, Sink& sink) const;
};

// ---- readers' scope -------------------------------------------------------

// A read transaction with the resize lock held for its life and, until
// release_state(), the state lock (see the top of the file).
class lmdb_store::impl::read_scope {
public:
    read_scope(const impl& s, bool with_state, bool with_txn = true) : s_(s) {
        {
            std::lock_guard g(s_.resize_gate_);
            s_.resize_mutex_.lock_shared();
        }
        if (with_state)
            state_ = std::shared_lock(s_.state_mutex_);
        if (with_txn)
            rc = txn.begin(s_.env_.get(), MDB_RDONLY);
    }
    ~read_scope() {
        txn.abort();
        release_state();
        s_.resize_mutex_.unlock_shared();
    }
    read_scope(const read_scope&) = delete;
    read_scope& operator=(const read_scope&) = delete;
    void release_state() {
        if (state_.owns_lock())
            state_.unlock();
    }
    MDB_txn* get() const { return txn.get(); }

    int rc = 0;
    txn_handle txn;

private:
    const impl& s_;
    std::shared_lock<std::shared_mutex> state_;
};

// What a reader copies from memory for one series.
struct lmdb_store::impl::memory_copy {
    std::size_t pending_total = 0;            // points newer than the snapshot's raw ring
    std::optional<std::int64_t> pending_oldest; // oldest of them still in the ring's window
    std::size_t pending_in_range = 0;
    std::vector<point> pending_points; // those in range, when at most the read limit
    std::vector<rollup_bucket> rows[2]; // closed + open buckets, time order
};

// ---- startup --------------------------------------------------------------

lmdb_store::impl::impl(lmdb_options o) : opts_(std::move(o)) {
    opts_.points_per_series = std::max<std::uint32_t>(opts_.points_per_series, 1);
    opts_.minute_slots = std::max<std::uint32_t>(opts_.minute_slots, 1);
    opts_.hour_slots = std::max<std::uint32_t>(opts_.hour_slots, 1);
    opts_.max_batch_operations = std::max<std::size_t>(opts_.max_batch_operations, 1);
    ckpt_chunk_ = std::max<std::size_t>(opts_.checkpoint_series_per_txn, 1);
    open_env();
    load_series();
    replay_journal();
    checkpoint(); // on failure (map full) the points stay journaled; the writer retries
}

lmdb_store::impl::~impl() = default;

void lmdb_store::impl::open_env() {
    const auto& dir = opts_.dir;
    std::error_code fec;
    std::filesystem::create_directories(dir, fec);
    if (fec)
        throw std::system_error(fec, "cannot create the LMDB directory " + dir.string() +
                                         " (create it or fix its permissions)");
    if (int rc = env_.create())
        startup_failure(dir, "mdb_env_create", rc);
    MDB_env* env = env_.get();
    mdb_env_set_maxdbs(env, 16);
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (!opts_.sync_on_commit)
        flags |= MDB_NOSYNC; // the writer calls mdb_env_sync every relaxed_sync_interval
    // No mapsize before open: an existing environment keeps the size it grew to.
    if (int rc = mdb_env_open(env, dir.c_str(), flags, 0640))
        startup_failure(dir, "cannot open the environment", rc);
    max_key_ = static_cast<std::size_t>(mdb_env_get_maxkeysize(env));
    MDB_stat st;
    mdb_env_stat(env, &st);
    page_size_ = st.ms_psize;
    MDB_envinfo info;
    mdb_env_info(env, &info);
    std::uint64_t want = opts_.initial_map_size;
    if (opts_.max_map_size != 0)
        want = std::min(want, opts_.max_map_size);
    want = (want + page_size_ - 1) / page_size_ * page_size_;
    if (info.me_mapsize < want) {
        if (int rc = mdb_env_set_mapsize(env, want))
            startup_failure(dir, "cannot set the map size", rc);
        mdb_env_info(env, &info);
    }
    map_size_ = info.me_mapsize;

    txn_handle t;
    if (int rc = t.begin(env, 0))
        startup_failure(dir, "cannot begin a transaction", rc);
    struct {
        const char* name;
        MDB_dbi* dbi;
    } dbs[] = {{"meta", &meta_},
               {"series", &series_},
               {"series_by_id", &series_by_id_},
               {"raw", &raw_},
               {"minute", &rollup_[k_minute]},
               {"hour", &rollup_[k_hour]},
               {"journal", &journal_},
               {"sessions", &kv_[0]},
               {"session_messages", &kv_[1]},
               {"retained", &kv_[2]},
               {"messages", &kv_[3]}};
    for (auto& d : dbs)
        if (int rc = mdb_dbi_open(t.get(), d.name, MDB_CREATE, d.dbi))
            startup_failure(dir, "cannot open the named database", rc);
    MDB_val k = to_val(meta_format_key), v;
    int rc = mdb_get(t.get(), meta_, &k, &v);
    if (rc == MDB_NOTFOUND) {
        char b[4];
        put_raw(b, format_version);
        v = to_val(b, 4);
        rc = mdb_put(t.get(), meta_, &k, &v, 0);
    } else if (rc == 0 && (v.mv_size != 4 || get_raw<std::uint32_t>(static_cast<char*>(v.mv_data)) != format_version)) {
        throw std::runtime_error("LMDB store in " + dir.string() +
                                 " has an unknown format (written by another pulsegate version): restore a backup "
                                 "made by this version or move the directory away");
    }
    if (rc)
        startup_failure(dir, "cannot write the format version", rc);
    if ((rc = t.commit()))
        startup_failure(dir, "cannot commit", rc);
}

std::uint64_t lmdb_store::impl::read_ckpt_seq(MDB_txn* t) const {
    MDB_val k = to_val(meta_ckpt_key), v;
    if (mdb_get(t, meta_, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    return get_raw<std::uint64_t>(static_cast<char*>(v.mv_data));
}

// Startup (no writer yet): `f` for every record of `dbi` in key order, in one
// read transaction, then `after` with that transaction.
void lmdb_store::impl::startup_scan(MDB_dbi dbi, const std::function<void(const MDB_val&, const MDB_val&)>& f,
                                    const std::function<void(MDB_txn*)>& after) {
    txn_handle t;
    if (int rc = t.begin(env_.get(), MDB_RDONLY))
        startup_failure(opts_.dir, "cannot begin a read transaction", rc);
    cursor_handle c;
    if (int rc = c.open(t.get(), dbi))
        startup_failure(opts_.dir, "cannot open a cursor", rc);
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT))
        f(k, v);
    if (after)
        after(t.get());
}

void lmdb_store::impl::load_series() {
    startup_scan(series_by_id_, [&](const MDB_val& k, const MDB_val& v) {
        series_header h;
        if (k.mv_size != 4 || get_be32(static_cast<char*>(k.mv_data)) != table_.size() || !decode_header(to_sv(v), h))
            throw std::runtime_error("LMDB store in " + opts_.dir.string() +
                                     ": the series index is damaged: restore a backup");
        auto s = std::make_unique<series_state>();
        s->key = std::string(h.key);
        s->id = static_cast<std::uint32_t>(table_.size());
        s->raw_cap = h.raw_cap;
        s->minute_cap = h.minute_cap;
        s->hour_cap = h.hour_cap;
        s->raw_total = h.raw_total;
        s->ckpt_seq = h.ckpt_seq;
        last_journal_seq_ = std::max(last_journal_seq_, h.ckpt_seq);
        s->w = h.c;
        s->pub = h.c;
        by_key_.emplace(std::string_view(s->key), s.get());
        table_.push_back(std::move(s));
    }, [&](MDB_txn* t) {
        // New records must number after every seq a header or the meta names.
        last_journal_seq_ = std::max(last_journal_seq_, read_ckpt_seq(t));
    });
    next_id_ = static_cast<std::uint32_t>(table_.size());
    series_count_ = table_.size();
}

void lmdb_store::impl::replay_journal() {
    startup_scan(journal_, [&](const MDB_val& k, const MDB_val& v) {
        if (k.mv_size != 8 || v.mv_size % journal_point_bytes != 0)
            throw std::runtime_error("LMDB store in " + opts_.dir.string() +
                                     ": a journal record is damaged: restore a backup");
        const std::uint64_t seq = get_be64(static_cast<char*>(k.mv_data));
        const char* p = static_cast<const char*>(v.mv_data);
        for (std::size_t n = v.mv_size / journal_point_bytes; n > 0; --n, p += journal_point_bytes) {
            const auto id = get_raw<std::uint32_t>(p);
            if (id >= table_.size())
                throw std::runtime_error("LMDB store in " + opts_.dir.string() +
                                         ": the journal names an unknown series: restore a backup");
            series_state* s = table_[id].get();
            if (seq <= s->ckpt_seq)
                continue; // in its rings already (a checkpoint stopped half way)
            const auto r = accept(*s, get_raw<std::int64_t>(p + 4), get_raw<double>(p + 12),
                                  [&](std::uint8_t kind, const rollup_bucket& b) { s->closed[kind].push_back(b); });
            if (r != accept_result::accepted)
                continue; // journaled points were accepted once; same state, same answer
            s->pending.push_back({seq, s->w.last_ts, s->w.last_value});
            ++pending_points_;
            s->pub = s->w;
            mark_dirty(s);
        }
        last_journal_seq_ = std::max(last_journal_seq_, seq);
    });
}

// ---- writer ---------------------------------------------------------------

int lmdb_store::impl::begin_write(txn_handle& t) {
    int rc = t.begin(env_.get(), 0);
    if (rc == MDB_MAP_RESIZED) { // another process grew the map: adopt its size
        {
            std::lock_guard g(resize_gate_);
            std::unique_lock l(resize_mutex_);
            mdb_env_set_mapsize(env_.get(), 0);
        }
        MDB_envinfo info;
        mdb_env_info(env_.get(), &info);
        map_size_ = info.me_mapsize;
        rc = t.begin(env_.get(), 0);
    }
    return rc;
}

bool lmdb_store::impl::grow_map() {
    const std::uint64_t cur = map_size_;
    if (opts_.max_map_size != 0 && cur >= opts_.max_map_size)
        return false;
    std::uint64_t next = cur * 2;
    if (opts_.max_map_size != 0)
        next = std::min(next, opts_.max_map_size);
    next = (next + page_size_ - 1) / page_size_ * page_size_;
    if (next <= cur)
        return false;
    int rc;
    {
        std::lock_guard g(resize_gate_);
        std::unique_lock l(resize_mutex_);
        rc = mdb_env_set_mapsize(env_.get(), next);
    }
    if (rc)
        return false; // e.g. no address space left: the batch is refused as storage_full
    MDB_envinfo info;
    mdb_env_info(env_.get(), &info);
    map_size_ = info.me_mapsize;
    return true;
}

void lmdb_store::impl::touch(series_state* s) {
    if (s->touched_batch != batch_no_) {
        s->touched_batch = batch_no_;
        undo_.push_back({s, s->w});
    }
}

int lmdb_store::impl::create_series(MDB_txn* t, std::string_view key, series_state*& out) {
    auto s = std::make_unique<series_state>();
    s->key = std::string(key);
    s->id = next_id_;
    s->raw_cap = opts_.points_per_series;
    s->minute_cap = opts_.minute_slots;
    s->hour_cap = opts_.hour_slots;
    MDB_val k = to_val(s->key);
    char idb[4];
    put_raw(idb, s->id);
    MDB_val v = to_val(idb, 4);
    if (int rc = mdb_put(t, series_, &k, &v, 0))
        return rc;
    encode_header(*s, 0, 0, hdr_buf_);
    key8 ik(s->id, 0);
    MDB_val k2{4, ik.b};
    MDB_val v2 = to_val(hdr_buf_);
    if (int rc = mdb_put(t, series_by_id_, &k2, &v2, MDB_APPEND))
        return rc;
    ++next_id_;
    out = s.get();
    by_key_.emplace(std::string_view(s->key), out);
    created_.push_back(std::move(s));
    touch(out); // so that publish() copies its cursor
    return 0;
}

int lmdb_store::impl::apply_reading(MDB_txn* t, const op_batch& b, const queued_op& o, batch_counts& c) {
    const std::string_view tenant = b.view(o.a), device = b.view(o.b);
    const bool prefix_ok = !has_nul(tenant) && !has_nul(device);
    key_buf_.assign(tenant);
    key_buf_.push_back('\0');
    key_buf_.append(device);
    key_buf_.push_back('\0');
    const std::size_t prefix = key_buf_.size();
    for (std::uint32_t m = 0; m < o.metrics_count; ++m) {
        const queued_metric& qm = b.metrics[o.metrics_begin + m];
        const std::string_view name = b.view(qm.name);
        if (!prefix_ok || has_nul(name) || prefix + name.size() > max_key_) {
            ++c.rejected;
            continue;
        }
        key_buf_.resize(prefix);
        key_buf_.append(name);
        series_state* s;
        if (auto it = by_key_.find(std::string_view(key_buf_)); it != by_key_.end()) {
            s = it->second;
            touch(s);
        } else if (int rc = create_series(t, key_buf_, s)) {
            return rc;
        }
        switch (accept(*s, o.ts, qm.value,
                       [&](std::uint8_t kind, const rollup_bucket& bk) { closed_.push_back({s, kind, bk}); })) {
        case accept_result::accepted:
            acc_.push_back({s, o.ts, qm.value});
            break;
        case accept_result::out_of_order:
            ++c.out_of_order;
            break;
        case accept_result::duplicate:
            ++c.duplicate;
            break;
        }
    }
    return 0;
}

// One write transaction for ops [i, j). On failure nothing of it stays,
// on disk or in memory.
int lmdb_store::impl::apply_chunk(const op_batch& b, std::size_t i, std::size_t j, batch_counts& c) {
    c = batch_counts{};
    txn_handle t;
    int rc = begin_write(t);
    if (rc)
        return rc;
    ++batch_no_;
    acc_.clear();
    closed_.clear();
    undo_.clear();
    created_.clear();
    status_.assign(j - i, commit_status::committed);
    for (std::size_t k = i; k < j && rc == 0; ++k) {
        const queued_op& o = b.ops[k];
        switch (o.kind) {
        case op_kind::reading:
            rc = apply_reading(t.get(), b, o, c);
            break;
        case op_kind::put:
        case op_kind::erase: {
            const std::string_view key = b.view(o.a);
            if (key.empty() || key.size() > max_key_) {
                status_[k - i] = commit_status::storage_full;
                ++c.kv_refused;
                break;
            }
            MDB_val kk = to_val(key);
            const MDB_dbi dbi = kv_[static_cast<std::size_t>(o.table)];
            if (o.kind == op_kind::put) {
                MDB_val vv = to_val(b.view(o.b));
                rc = mdb_put(t.get(), dbi, &kk, &vv, 0);
            } else {
                rc = mdb_del(t.get(), dbi, &kk, nullptr);
                if (rc == MDB_NOTFOUND)
                    rc = 0;
            }
            break;
        }
        }
    }
    if (rc == 0 && !acc_.empty()) {
        key8 k(last_journal_seq_ + 1);
        MDB_val kv = k.val();
        MDB_val v{acc_.size() * journal_point_bytes, nullptr};
        rc = mdb_put(t.get(), journal_, &kv, &v, MDB_RESERVE | MDB_APPEND);
        if (rc == 0) {
            char* p = static_cast<char*>(v.mv_data);
            for (const auto& a : acc_) {
                put_raw(p, a.s->id);
                put_raw(p + 4, a.ts);
                put_raw(p + 12, a.value);
                p += journal_point_bytes;
            }
        }
    }
    if (rc == 0)
        rc = t.commit();
    if (rc) {
        t.abort();
        undo();
    }
    return rc;
}

void lmdb_store::impl::undo() {
    for (const auto& u : undo_)
        u.s->w = u.w;
    for (const auto& s : created_)
        by_key_.erase(std::string_view(s->key));
    next_id_ -= static_cast<std::uint32_t>(created_.size());
    created_.clear();
    undo_.clear();
    acc_.clear();
    closed_.clear();
}

void lmdb_store::impl::mark_dirty(series_state* s) {
    if (!s->dirty) {
        s->dirty = true;
        dirty_.push_back(s);
    }
}

void lmdb_store::impl::publish(std::uint64_t seq) {
    {
        std::unique_lock l(state_mutex_);
        for (auto& s : created_)
            table_.push_back(std::move(s));
        for (const auto& a : acc_)
            a.s->pending.push_back({seq, a.ts, a.value});
        for (const auto& cb : closed_)
            cb.s->closed[cb.kind].push_back(cb.b);
        for (const auto& u : undo_)
            u.s->pub = u.s->w;
    }
    for (const auto& a : acc_)
        mark_dirty(a.s);
    pending_points_ += acc_.size();
    series_count_ = table_.size();
    created_.clear();
}

void lmdb_store::impl::process(op_batch& b) {
    const std::size_t n = b.ops.size();
    std::size_t i = 0;
    while (i < n) {
        std::size_t j = std::min(n, i + opts_.max_batch_operations);
        batch_counts c;
        int rc;
        const auto started = std::chrono::steady_clock::now();
        for (;;) {
            rc = apply_chunk(b, i, j, c);
            if (rc == MDB_MAP_FULL && grow_map())
                continue;
            if (rc == MDB_TXN_FULL && j - i > 1) { // too many dirty pages for one transaction
                j = i + (j - i) / 2;
                continue;
            }
            break;
        }
        if (duration_handler_) duration_handler_(std::chrono::steady_clock::now() - started);
        if (rc == 0) {
            if (!acc_.empty())
                last_journal_seq_ += 1;
            publish(last_journal_seq_);
            ++commits_;
            unsynced_ = !opts_.sync_on_commit;
            points_written_ += acc_.size();
            points_out_of_order_ += c.out_of_order;
            points_duplicate_ += c.duplicate;
            points_rejected_ += c.rejected;
            storage_full_errors_ += c.kv_refused;
        } else {
            // Map at max_map_size, disk full or an I/O error: nothing of the
            // batch was written; the store goes on with the next batch.
            status_.assign(j - i, commit_status::storage_full);
            storage_full_errors_ += j - i;
        }
        for (std::size_t k = i; k < j; ++k) {
            auto& o = b.ops[k];
            if (handler_)
                handler_(std::move(o.token), status_[k - i]);
            o.token.reset();
        }
        {
            std::lock_guard l(queue_mutex_);
            completed_ops_ += j - i;
            queued_ -= j - i;
            if (flush_waiters_ > 0)
                done_cv_.notify_all();
        }
        i = j;
        maybe_checkpoint(false);
    }
}

int lmdb_store::impl::put_row(MDB_txn* t, std::uint8_t kind, std::uint32_t id, const rollup_bucket& b) {
    key8 k(id, b.slot);
    MDB_val kv = k.val();
    char buf[row_bytes];
    encode_row(buf, b);
    MDB_val v = to_val(buf, row_bytes);
    return mdb_put(t, rollup_[kind], &kv, &v, 0);
}

// Writes the pending points of `s` into its raw ring blocks, after the
// `raw_total` points already there (only the last raw_cap of them matter).
int lmdb_store::impl::write_raw(MDB_txn* t, const series_state& s) {
    const auto& pv = s.pending;
    const std::uint64_t n = pv.size(), cap = s.raw_cap;
    const std::uint64_t bp = std::min<std::uint64_t>(block_points, cap);
    const std::size_t block_bytes = static_cast<std::size_t>(bp) * point_bytes;
    block_buf_.resize(block_bytes);
    std::uint64_t idx = n > cap ? n - cap : 0;
    std::uint64_t g = s.raw_total + idx;
    while (idx < n) {
        const std::uint64_t slot = g % cap, blk = slot / bp, off = slot % bp;
        const std::uint64_t in_block = std::min(bp, cap - blk * bp);
        const std::uint64_t run = std::min(n - idx, in_block - off);
        key8 k(s.id, static_cast<std::uint32_t>(blk));
        MDB_val kv = k.val();
        if (off != 0 || run != in_block) { // partial: keep the rest of the block
            MDB_val old;
            const int rc = mdb_get(t, raw_, &kv, &old);
            if (rc == 0 && old.mv_size == block_bytes)
                std::memcpy(block_buf_.data(), old.mv_data, block_bytes);
            else if (rc == 0 || rc == MDB_NOTFOUND)
                std::fill(block_buf_.begin(), block_buf_.end(), '\0');
            else
                return rc;
        }
        char* p = block_buf_.data() + off * point_bytes;
        for (std::uint64_t r = 0; r < run; ++r, p += point_bytes) {
            put_raw(p, pv[idx + r].ts);
            put_raw(p + 8, pv[idx + r].value);
        }
        MDB_val v = to_val(block_buf_.data(), block_bytes);
        if (int rc = mdb_put(t, raw_, &kv, &v, 0))
            return rc;
        idx += run;
        g += run;
    }
    return 0;
}

// Checkpoints dirty_[begin, begin + n), each header covering the journal
// up to last_journal_seq_; the round's last transaction also deletes the
// journal records up to `trim_upto`, all of them now in the rings.
int lmdb_store::impl::write_checkpoint(std::size_t begin, std::size_t n, std::optional<std::uint64_t> trim_upto) {
    txn_handle t;
    int rc = begin_write(t);
    if (rc)
        return rc;
    for (std::size_t i = begin; i < begin + n; ++i) {
        const series_state* s = dirty_[i];
        if ((rc = write_raw(t.get(), *s)))
            return rc;
        for (std::uint8_t kind : {k_minute, k_hour}) {
            for (const rollup_bucket& b : s->closed[kind])
                if ((rc = put_row(t.get(), kind, s->id, b)))
                    return rc;
            const bool open = kind == k_minute ? s->w.has_minute : s->w.has_hour;
            if (open && (rc = put_row(t.get(), kind, s->id, kind == k_minute ? s->w.minute : s->w.hour)))
                return rc;
        }
        encode_header(*s, s->raw_total + s->pending.size(), last_journal_seq_, hdr_buf_);
        key8 ik(s->id, 0);
        MDB_val k{4, ik.b};
        MDB_val v = to_val(hdr_buf_);
        if ((rc = mdb_put(t.get(), series_by_id_, &k, &v, 0)))
            return rc;
    }
    if (trim_upto) {
        const std::uint64_t upto = *trim_upto;
        {
            cursor_handle c;
            if ((rc = c.open(t.get(), journal_)))
                return rc;
            MDB_val k, v;
            while ((rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST)) == 0 &&
                   get_be64(static_cast<char*>(k.mv_data)) <= upto)
                if ((rc = mdb_cursor_del(c.get(), 0)))
                    return rc;
            if (rc != 0 && rc != MDB_NOTFOUND)
                return rc;
        }
        char sb[8];
        put_raw(sb, upto);
        MDB_val k = to_val(meta_ckpt_key), v = to_val(sb, 8);
        if ((rc = mdb_put(t.get(), meta_, &k, &v, 0)))
            return rc;
    }
    return t.commit();
}

// Moves every pending point and rollup bucket into the rings now: the
// round in progress and the rounds after it until no series is dirty. Runs
// on the writer thread (or at startup, before it exists), so nothing
// becomes dirty meanwhile.
bool lmdb_store::impl::checkpoint() {
    last_ckpt_attempt_ = steady::now();
    while (!dirty_.empty())
        if (!checkpoint_step())
            return false;
    return true;
}

// One transaction of the checkpoint round, which starts if none is in
// progress: the series dirty now, the journal records up to now. On
// failure (the map or the disk is full) the round ends; what is left stays
// journaled and in memory, retried after checkpoint_interval.
bool lmdb_store::impl::checkpoint_step() {
    if (round_end_ == 0) {
        last_ckpt_attempt_ = steady::now();
        if (dirty_.empty())
            return true;
        round_end_ = dirty_.size();
        round_done_ = 0;
        round_upto_ = last_journal_seq_;
    }
    for (;;) {
        const std::size_t begin = round_done_, n = std::min(ckpt_chunk_, round_end_ - begin);
        const bool last = begin + n == round_end_;
        const int rc = write_checkpoint(begin, n, last ? std::optional(round_upto_) : std::nullopt);
        if (rc == MDB_MAP_FULL && grow_map())
            continue;
        if (rc == MDB_TXN_FULL && n > 1) {
            ckpt_chunk_ = n / 2;
            continue;
        }
        if (rc) {
            end_round(false);
            return false;
        }
        unsynced_ = !opts_.sync_on_commit;
        for (std::size_t i = begin; i < begin + n; ++i) {
            series_state* s = dirty_[i];
            s->raw_total += s->pending.size();
            s->ckpt_seq = last_journal_seq_;
            s->dirty = false;
        }
        {
            std::unique_lock l(state_mutex_);
            for (std::size_t i = begin; i < begin + n; ++i) {
                series_state* s = dirty_[i];
                pending_points_ -= s->pending.size();
                s->pending.clear();
                s->closed[k_minute].clear();
                s->closed[k_hour].clear();
            }
        }
        round_done_ += n;
        if (last)
            end_round(true);
        return true;
    }
}

// The series written leave dirty_ (those dirty again since their
// transaction are behind round_end_ already).
void lmdb_store::impl::end_round(bool ok) {
    dirty_.erase(dirty_.begin(), dirty_.begin() + static_cast<std::ptrdiff_t>(round_done_));
    round_end_ = round_done_ = 0;
    last_ckpt_failed_ = !ok;
    if (ok)
        ++checkpoints_;
    else
        ++storage_full_errors_; // counted: the map or the disk is full
}

void lmdb_store::impl::maybe_checkpoint(bool force) {
    if (dirty_.empty())
        return;
    if (force) {
        checkpoint();
        return;
    }
    if (round_end_ > 0 || steady::now() - last_ckpt_attempt_ >= opts_.checkpoint_interval ||
        (pending_points_ >= opts_.checkpoint_points && !last_ckpt_failed_))
        checkpoint_step();
}

void lmdb_store::impl::maybe_sync(bool force) {
    if (!unsynced_)
        return;
    const auto now = steady::now();
    if (!force && now - last_sync_ < opts_.relaxed_sync_interval)
        return;
    last_sync_ = now;
    // On failure unsynced_ stays set and the next interval tries again; the
    // data is written, only its durability is late.
    if (mdb_env_sync(env_.get(), 1) == 0)
        unsynced_ = false;
}

std::optional<steady::time_point> lmdb_store::impl::next_deadline() const {
    std::optional<steady::time_point> d;
    if (round_end_ > 0)
        return steady::now(); // the round's next transaction
    if (!dirty_.empty())
        d = last_ckpt_attempt_ + opts_.checkpoint_interval;
    if (unsynced_) {
        const auto s = last_sync_ + opts_.relaxed_sync_interval;
        d = d ? std::min(*d, s) : s;
    }
    return d;
}

// Relaxed durability acknowledges before the commit, so a commit that
// starts small may wait a little for company: one transaction
// for the readings of a few milliseconds instead of one per wake-up, which
// is most of the writer's CPU at a moderate rate (the page writes of a
// commit cost about the same for 10 points as for 1,000) and CPU the shards
// then have. Nobody waits for it unless flush() is called, and flush() ends
// the wait; a writer that finds a large batch waiting does not wait.
void lmdb_store::impl::gather(std::unique_lock<std::mutex>& l) {
    // A backlog this large means operations arrive faster than they are
    // committed: batches are large anyway, waiting would only idle the writer.
    // Nothing queued (the writer woke for a checkpoint or a sync): no commit
    // to gather for, and those should not wait.
    constexpr std::size_t large_batch = 1024;
    const std::size_t queued = incoming_.ops.size();
    if (opts_.sync_on_commit || opts_.relaxed_commit_delay.count() <= 0 || queued == 0 || queued >= large_batch)
        return;
    // Appends do not wake the writer meanwhile (writer_waiting_ stays
    // false); flush() and stop() do.
    const auto until = steady::now() + opts_.relaxed_commit_delay;
    queue_cv_.wait_until(l, until, [&] { return stop_requested_ || flush_waiters_ > 0; });
}

// With queue_mutex_ held. A commit of a few hundred readings, or a
// checkpoint transaction, is milliseconds of CPU, and the scheduler lets
// a running thread finish its slice before a thread that woke on the same
// CPU runs: a shard with a message to deliver waited behind the writer (most
// of the broker's p99 latency on a 2-core gateway). So the writer runs as
// SCHED_IDLE, and a waking shard preempts it at once, while it keeps up; as
// soon as `behind_ops` operations wait (the shards have the CPU and the
// writer falls behind), the producer that saw it makes the writer
// SCHED_BATCH again. So does flush() while it waits, and the watch thread
// when operations wait and the writer takes no batch (watch_main): it
// cannot starve. Only where the process may leave SCHED_IDLE again
// (common::may_leave_sched_idle).
void lmdb_store::impl::pace_writer(bool idle) {
    if (idle == writer_idle_ || !may_idle_ || !writer_.joinable())
        return;
    if (common::set_background_idle(writer_.native_handle(), idle))
        writer_idle_ = idle;
}

// A SCHED_IDLE writer gets almost no CPU while other threads keep every CPU
// busy (readers querying in a loop did, in a unit test under CI load), and
// with fewer than `behind_ops` operations waiting no producer would bring it
// back: commits, and the acknowledgements that wait for them, would stall.
// This thread, at normal priority, does it once operations have waited
// `starved_after` without the writer taking a batch. Only runs where the
// writer may go idle.
void lmdb_store::impl::watch_main() {
    std::unique_lock l(queue_mutex_);
    while (!stop_requested_) {
        watch_cv_.wait_for(l, watch_period);
        if (writer_idle_ && queued_ > 0 && steady::now() - waiting_since_ >= starved_after)
            pace_writer(false);
    }
}

// With queue_mutex_ held, after an operation joined incoming_: counts it,
// gives a writer that fell behind its share back, and says whether the
// writer waits for a wake-up.
bool lmdb_store::impl::enqueued() {
    if (++queued_ == 1)
        waiting_since_ = steady::now();
    ++appended_ops_;
    if (writer_idle_ && queued_ >= behind_ops)
        pace_writer(false);
    return writer_waiting_;
}

void lmdb_store::impl::writer_main() {
    for (;;) {
        bool last = false;
        {
            std::unique_lock l(queue_mutex_);
            while (incoming_.ops.empty() && !stop_requested_) {
                const auto d = next_deadline();
                writer_waiting_ = true;
                bool timed_out = false;
                if (d)
                    timed_out = queue_cv_.wait_until(l, *d) == std::cv_status::timeout;
                else
                    queue_cv_.wait(l);
                writer_waiting_ = false;
                if (timed_out)
                    break;
            }
            gather(l);
            std::swap(incoming_, work_);
            waiting_since_ = steady::now();
            pace_writer(!stop_requested_ && queued_ < behind_ops && flush_waiters_ == 0);
            last = stop_requested_ && work_.ops.empty();
        }
        // process() takes the next checkpoint step after each transaction;
        // without one, the step is taken here: one per batch.
        const bool took_ops = !work_.ops.empty();
        process(work_);
        work_.clear();
        if (!took_ops)
            maybe_checkpoint(false);
        maybe_sync(false);
        if (last)
            break;
    }
    maybe_checkpoint(true);
    maybe_sync(true);
}

// ---- readers --------------------------------------------------------------

std::optional<std::uint32_t> lmdb_store::impl::find_id(MDB_txn* t, std::string_view key) const {
    if (key.size() > max_key_)
        return std::nullopt;
    MDB_val k = to_val(key), v;
    if (mdb_get(t, series_, &k, &v) != 0 || v.mv_size != 4)
        return std::nullopt;
    return get_raw<std::uint32_t>(static_cast<char*>(v.mv_data));
}

bool lmdb_store::impl::read_header(MDB_txn* t, std::uint32_t id, series_header& h) const {
    key8 ik(id, 0);
    MDB_val k{4, ik.b}, v;
    return mdb_get(t, series_by_id_, &k, &v) == 0 && decode_header(to_sv(v), h);
}

// Under the shared state lock, inside the snapshot where the series' header
// says its rings hold the journal records up to `ckpt`.
// Without a query, copies the rollup rows only.
void lmdb_store::impl::copy_memory(std::uint32_t id, std::uint64_t ckpt, const series_query* q,
                                   std::uint32_t raw_cap, memory_copy& m) const {
    if (id >= table_.size())
        return; // committed but not published yet: the snapshot has it all
    const series_state& s = *table_[id];
    for (std::uint8_t kind : {k_minute, k_hour}) {
        m.rows[kind] = s.closed[kind];
        const bool open = kind == k_minute ? s.pub.has_minute : s.pub.has_hour;
        if (open)
            m.rows[kind].push_back(kind == k_minute ? s.pub.minute : s.pub.hour);
    }
    if (!q)
        return;
    const auto& pv = s.pending;
    const auto first =
        std::partition_point(pv.begin(), pv.end(), [&](const pending_point& p) { return p.seq <= ckpt; });
    m.pending_total = static_cast<std::size_t>(pv.end() - first);
    const auto usable = first + static_cast<std::ptrdiff_t>(m.pending_total > raw_cap ? m.pending_total - raw_cap : 0);
    if (usable != pv.end())
        m.pending_oldest = usable->ts;
    const auto a = std::partition_point(usable, pv.end(), [&](const pending_point& p) { return p.ts < q->from_ms; });
    const auto b = std::partition_point(a, pv.end(), [&](const pending_point& p) { return p.ts <= q->to_ms; });
    m.pending_in_range = static_cast<std::size_t>(b - a);
    if (m.pending_in_range <= read_limit(q->max_points)) {
        m.pending_points.reserve(m.pending_in_range);
        for (auto it = a; it != b; ++it)
            m.pending_points.push_back({it->ts, it->value});
    }
}

namespace {

// Random access to the raw ring of one series in a read transaction.
class raw_reader {
public:
    raw_reader(MDB_txn* t, MDB_dbi d, std::uint32_t id, std::uint32_t cap)
        : t_(t), d_(d), id_(id), bp_(std::min(block_points, cap)) {}
    point at(std::uint64_t slot) {
        const std::uint64_t blk = slot / bp_, off = slot % bp_;
        if (blk != blk_) {
            blk_ = blk;
            key8 k(id_, static_cast<std::uint32_t>(blk));
            MDB_val kv = k.val();
            if (mdb_get(t_, d_, &kv, &cur_) != 0)
                cur_ = MDB_val{0, nullptr};
        }
        if ((off + 1) * point_bytes > cur_.mv_size)
            return {}; // missing block: cannot happen below the ring's total
        const char* p = static_cast<const char*>(cur_.mv_data) + off * point_bytes;
        return {get_raw<std::int64_t>(p), get_raw<double>(p + 8)};
    }

private:
    MDB_txn* t_;
    MDB_dbi d_;
    std::uint32_t id_;
    std::uint64_t bp_;
    std::uint64_t blk_ = ~std::uint64_t{0};
    MDB_val cur_{0, nullptr};
};

// The rows of one rollup ring as a reader sees them: the snapshot's ring up
// to the first row kept in memory, then the memory rows (newer or equal),
// trimmed to the ring's size. Index [first(), size()).
class rollup_view {
public:
    rollup_view(MDB_txn* t, MDB_dbi d, std::uint32_t id, std::uint32_t cap, std::uint64_t total,
                const std::vector<rollup_bucket>& mem, std::int64_t width)
        : t_(t), d_(d), id_(id), cap_(cap), width_(width), mem_(mem) {
        const std::uint64_t r = std::min<std::uint64_t>(total, cap);
        base_ = total - r;
        ring_ = r;
        if (!mem_.empty()) {
            const std::int64_t cut = mem_.front().start;
            ring_ = partition_index(0, r, [&](std::uint64_t i) { return ring_row(i).start < cut; });
        }
        size_ = ring_ + mem_.size();
        drop_ = size_ > cap_ ? size_ - cap_ : 0;
        wrapped_ = base_ + size_ > cap_;
    }
    std::uint64_t first() const { return drop_; }
    std::uint64_t size() const { return size_; }
    rollup_bucket at(std::uint64_t i) const { return i < ring_ ? ring_row(i) : mem_[i - ring_]; }
    bool covers(std::int64_t from) const { return !wrapped_ || (size_ > drop_ && at(drop_).start <= from); }
    // Rows overlapping [from, to].
    std::pair<std::uint64_t, std::uint64_t> range(std::int64_t from, std::int64_t to) const {
        const auto lo = partition_index(drop_, size_, [&](std::uint64_t i) {
            return from >= std::numeric_limits<std::int64_t>::min() + width_ && at(i).start <= from - width_;
        });
        const auto hi = partition_index(lo, size_, [&](std::uint64_t i) { return at(i).start <= to; });
        return {lo, hi};
    }

private:
    rollup_bucket ring_row(std::uint64_t i) const {
        key8 k(id_, static_cast<std::uint32_t>((base_ + i) % cap_));
        MDB_val kv = k.val(), v;
        if (mdb_get(t_, d_, &kv, &v) != 0 || v.mv_size != row_bytes)
            return {}; // cannot happen below the ring's total
        return decode_row(static_cast<const char*>(v.mv_data));
    }

    MDB_txn* t_;
    MDB_dbi d_;
    std::uint32_t id_;
    std::uint64_t cap_;
    std::int64_t width_;
    const std::vector<rollup_bucket>& mem_;
    std::uint64_t base_ = 0, ring_ = 0, size_ = 0, drop_ = 0;
    bool wrapped_ = false;
};

sys::error_code invalid_argument() { return sys::errc::make_error_code(sys::errc::invalid_argument); }

// query()'s sink (see read_range): collects points, downsampled once the
// read transaction is over. A rollup row gives its min and max at its start.
class point_collector {
public:
    explicit point_collector(query_result& out) : out_(out) {}
    void begin(resolution r, std::uint64_t n) {
        out_.source = r;
        out_.points.reserve(static_cast<std::size_t>(r == resolution::raw ? n : 2 * n));
    }
    void raw(const point& p) { out_.points.push_back(p); }
    void row(const rollup_bucket& b) {
        out_.points.push_back({b.start, b.min});
        if (b.max != b.min)
            out_.points.push_back({b.start, b.max});
    }

private:
    query_result& out_;
};

// query_buckets()'s sink (see read_range): passes a raw range of at most
// max_points through, else folds the entries, in time order, into buckets of
// `width_` from `start_`. Entries only ever land in the newest bucket or a
// later one. While folding, a bucket's `mean` holds its sum (finish()).
class bucket_builder {
public:
    bucket_builder(const series_query& q, bucket_result& out) : q_(q), out_(out) {}
    void begin(resolution r, std::uint64_t n) {
        out_.source = r;
        if (r == resolution::raw && n <= q_.max_points) {
            out_.buckets.reserve(static_cast<std::size_t>(n));
            return;
        }
        const std::uint64_t res = r == resolution::raw ? 1 : r == resolution::minute ? minute_ms : hour_ms;
        // ceil((to - from + 1) / max_points), computed so that the full int64
        // range does not overflow; max_points >= 2 keeps it below 2^63.
        const std::uint64_t span = static_cast<std::uint64_t>(q_.to_ms) - static_cast<std::uint64_t>(q_.from_ms);
        width_ = (span / q_.max_points + 1 + res - 1) / res * res;
        // Rounded down to the resolution, so rollup rows fall whole into one
        // bucket and there are still at most max_points of them. No row starts
        // below min + res (roll() could not have made it).
        constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
        start_ = res == 1 ? q_.from_ms
                          : floor_to(std::max(q_.from_ms, lowest + static_cast<std::int64_t>(res)),
                                     static_cast<std::int64_t>(res));
        // Saturates only for max_points 2 over nearly the whole int64 range.
        out_.bucket_ms = static_cast<std::int64_t>(
            std::min<std::uint64_t>(width_, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())));
        out_.buckets.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, q_.max_points)));
    }
    void raw(const point& p) {
        if (width_ == 0)
            out_.buckets.push_back({p.ts_ms, p.value, p.value, p.value, 1});
        else
            add(p.ts_ms, p.value, p.value, p.value, 1);
    }
    void row(const rollup_bucket& b) { add(b.start, b.min, b.max, b.sum, b.count); }
    void finish() {
        if (width_ != 0)
            for (auto& b : out_.buckets)
                b.mean /= static_cast<double>(b.count);
    }

private:
    void add(std::int64_t ts, double min, double max, double sum, std::uint64_t count) {
        const std::uint64_t idx = (static_cast<std::uint64_t>(ts) - static_cast<std::uint64_t>(start_)) / width_;
        if (!out_.buckets.empty() && idx == idx_) {
            auto& b = out_.buckets.back();
            b.min = std::min(b.min, min);
            b.max = std::max(b.max, max);
            b.mean += sum;
            b.count += count;
            return;
        }
        idx_ = idx;
        out_.buckets.push_back(
            {static_cast<std::int64_t>(static_cast<std::uint64_t>(start_) + idx * width_), sum, min, max, count});
    }

    const series_query& q_;
    bucket_result& out_;
    std::uint64_t width_ = 0; // 0: raw points passed through
    std::int64_t start_ = 0;
    std::uint64_t idx_ = 0; // of the newest bucket
};

} // namespace

// The one range reader of query() and query_buckets(): checks the arguments,
// picks the finest source that covers [from_ms, to_ms] with at most
// read_limit entries in it (hour rows when none does) and gives them to
// `sink` in time order, in the read transaction (so sinks only copy or fold):
// sink.begin(source, n) once, then n times sink.raw(point) or
// sink.row(rollup row). Nothing for an unknown series.
template <class Sink>
sys::error_code lmdb_store::impl::read_range(const series_query& q, Sink& sink) const {
    if (q.from_ms > q.to_ms || q.max_points < 2)
        return invalid_argument();
    std::string key;
    if (!make_series_key(q.series.tenant, q.series.device, q.series.metric, key))
        return {};
    read_scope rs(*this, true);
    if (rs.rc)
        return lmdb_error(rs.rc);
    const auto id = find_id(rs.get(), key);
    series_header h;
    if (!id || !read_header(rs.get(), *id, h))
        return {};
    memory_copy m;
    copy_memory(*id, h.ckpt_seq, &q, h.raw_cap, m);
    rs.release_state();

    const std::size_t limit = read_limit(q.max_points);
    // Raw: the ring's points, then the pending ones, the last raw_cap of them.
    {
        raw_reader rr(rs.get(), raw_, *id, h.raw_cap);
        const std::uint64_t cap = h.raw_cap, total = h.raw_total;
        const std::uint64_t r = std::min(total, cap), p = m.pending_total;
        const std::uint64_t skip = r + p > cap ? std::min(r, r + p - cap) : 0;
        auto ts_at = [&](std::uint64_t i) { return rr.at((total - r + i) % cap).ts_ms; };
        std::optional<std::int64_t> oldest = skip < r ? std::optional(ts_at(skip)) : m.pending_oldest;
        const bool covers = total + p <= cap || (oldest && *oldest <= q.from_ms);
        const auto lo = partition_index(skip, r, [&](std::uint64_t i) { return ts_at(i) < q.from_ms; });
        const auto hi = partition_index(lo, r, [&](std::uint64_t i) { return ts_at(i) <= q.to_ms; });
        if (covers && (hi - lo) + m.pending_in_range <= limit) {
            // pending_points holds every pending point in range (at most the limit).
            sink.begin(resolution::raw, (hi - lo) + m.pending_points.size());
            for (std::uint64_t i = lo; i < hi; ++i)
                sink.raw(rr.at((total - r + i) % cap));
            for (const point& pt : m.pending_points)
                sink.raw(pt);
            return {};
        }
    }
    auto read_rows = [&](resolution res, const rollup_view& v) {
        const auto [lo, hi] = v.range(q.from_ms, q.to_ms);
        sink.begin(res, hi - lo);
        for (auto i = lo; i < hi; ++i)
            sink.row(v.at(i));
    };
    const rollup_view minute(rs.get(), rollup_[k_minute], *id, h.minute_cap, h.c.minute_total, m.rows[k_minute],
                             minute_ms);
    const std::uint64_t minutes =
        (static_cast<std::uint64_t>(q.to_ms) - static_cast<std::uint64_t>(q.from_ms)) / minute_ms;
    if (minute.covers(q.from_ms) && minutes <= limit) {
        read_rows(resolution::minute, minute);
        return {};
    }
    const rollup_view hour(rs.get(), rollup_[k_hour], *id, h.hour_cap, h.c.hour_total, m.rows[k_hour], hour_ms);
    read_rows(resolution::hour, hour);
    return {};
}

// ===========================================================================

lmdb_store::lmdb_store(lmdb_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

lmdb_store::~lmdb_store() { stop(); }

void lmdb_store::set_commit_handler(commit_handler h) { impl_->handler_ = std::move(h); }
void lmdb_store::set_commit_duration_handler(duration_handler h) { impl_->duration_handler_ = std::move(h); }

void lmdb_store::start() {
    auto& s = *impl_;
    std::lock_guard l(s.queue_mutex_);
    if (s.started_)
        return;
    s.started_ = true;
    s.running_ = true;
    s.may_idle_ = common::may_leave_sched_idle();
    s.writer_ = std::thread([&s] {
        common::name_this_thread("pg-store-write");
        common::mark_background_thread();
        s.writer_main();
    });
    if (s.may_idle_)
        s.watch_ = std::thread([&s] {
            common::name_this_thread("pg-store-watch");
            s.watch_main();
        });
}

void lmdb_store::stop() {
    auto& s = *impl_;
    bool run_inline = false;
    {
        std::lock_guard l(s.queue_mutex_);
        if (s.stop_requested_)
            return;
        s.stop_requested_ = true;
        run_inline = !s.started_;
        s.started_ = true;
        s.queue_cv_.notify_one();
        s.watch_cv_.notify_one();
        // The last commits and the final checkpoint get the writer's full
        // share: nothing (watch thread, flush) takes it back from idle now.
        s.pace_writer(false);
    }
    if (s.watch_.joinable())
        s.watch_.join();
    if (run_inline)
        s.writer_main(); // never started: commit what was queued here
    else
        s.writer_.join();
    std::lock_guard l(s.queue_mutex_);
    s.running_ = false;
    s.done_cv_.notify_all();
}

append_result lmdb_store::append(const reading& r, std::shared_ptr<void> token) {
    auto& s = *impl_;
    std::unique_lock l(s.queue_mutex_);
    if (s.stop_requested_ || s.queued_ >= s.opts_.max_queued_operations) {
        ++s.overloaded_;
        return append_result::overloaded;
    }
    auto& b = s.incoming_;
    queued_op o;
    o.kind = op_kind::reading;
    o.a = b.add(r.tenant);
    o.b = b.add(r.device);
    o.ts = r.ts_ms;
    o.metrics_begin = static_cast<std::uint32_t>(b.metrics.size());
    o.metrics_count = static_cast<std::uint32_t>(r.metrics.size());
    for (const auto& m : r.metrics)
        b.metrics.push_back({b.add(m.name), m.value});
    o.token = std::move(token);
    b.ops.push_back(std::move(o));
    const bool wake = s.enqueued();
    l.unlock();
    if (wake)
        s.queue_cv_.notify_one();
    return append_result::queued;
}

namespace {
template <class Impl>
append_result append_kv(Impl& s, op_kind kind, kv_table t, std::string_view key, std::string_view value,
                        std::shared_ptr<void> token) {
    std::unique_lock l(s.queue_mutex_);
    if (s.stop_requested_ || s.queued_ >= s.opts_.max_queued_operations) {
        ++s.overloaded_;
        return append_result::overloaded;
    }
    auto& b = s.incoming_;
    queued_op o;
    o.kind = kind;
    o.table = t;
    o.a = b.add(key);
    o.b = b.add(value);
    o.token = std::move(token);
    b.ops.push_back(std::move(o));
    const bool wake = s.enqueued();
    l.unlock();
    if (wake)
        s.queue_cv_.notify_one();
    return append_result::queued;
}
} // namespace

append_result lmdb_store::put(kv_table t, std::string_view key, std::string_view value, std::shared_ptr<void> token) {
    return append_kv(*impl_, op_kind::put, t, key, value, std::move(token));
}

append_result lmdb_store::erase(kv_table t, std::string_view key, std::shared_ptr<void> token) {
    return append_kv(*impl_, op_kind::erase, t, key, {}, std::move(token));
}

void lmdb_store::flush() {
    auto& s = *impl_;
    std::unique_lock l(s.queue_mutex_);
    const std::uint64_t target = s.appended_ops_;
    ++s.flush_waiters_;
    // Somebody waits for the writer now: its full share until it has
    // committed what they wait for (it goes idle again at a batch taken with
    // no flush waiting). Once stop() has begun, the writer thread is stop()'s
    // to join, and stop() gave it its share already.
    if (!s.stop_requested_)
        s.pace_writer(false);
    s.queue_cv_.notify_one(); // a relaxed writer gathering a batch commits it now
    s.done_cv_.wait(l, [&] { return s.completed_ops_ >= target || !s.running_; });
    --s.flush_waiters_;
}

boost::system::result<query_result> lmdb_store::query(const series_query& q) const {
    query_result out;
    point_collector sink(out);
    if (auto ec = impl_->read_range(q, sink))
        return ec;
    out.points = downsample(std::move(out.points), q.from_ms, q.to_ms, q.max_points);
    return out;
}

boost::system::result<bucket_result> lmdb_store::query_buckets(const series_query& q) const {
    bucket_result out;
    bucket_builder sink(q, out);
    if (auto ec = impl_->read_range(q, sink))
        return ec;
    sink.finish();
    return out;
}

boost::system::result<std::vector<rollup_row>> lmdb_store::rollups(const series_key& key, resolution r,
                                                                 std::int64_t from_ms, std::int64_t to_ms) const {
    if (from_ms > to_ms || r == resolution::raw)
        return invalid_argument();
    const auto& s = *impl_;
    std::vector<rollup_row> out;
    std::string k;
    if (!make_series_key(key.tenant, key.device, key.metric, k))
        return out;
    impl::read_scope rs(s, true);
    if (rs.rc)
        return lmdb_error(rs.rc);
    const auto id = s.find_id(rs.get(), k);
    series_header h;
    if (!id || !s.read_header(rs.get(), *id, h))
        return out;
    impl::memory_copy m;
    s.copy_memory(*id, 0, nullptr, h.raw_cap, m);
    rs.release_state();
    const std::uint8_t kind = r == resolution::minute ? k_minute : k_hour;
    const rollup_view v(rs.get(), s.rollup_[kind], *id, kind == k_minute ? h.minute_cap : h.hour_cap,
                        kind == k_minute ? h.c.minute_total : h.c.hour_total, m.rows[kind],
                        kind == k_minute ? minute_ms : hour_ms);
    const auto [lo, hi] = v.range(from_ms, to_ms);
    for (auto i = lo; i < hi; ++i) {
        const rollup_bucket b = v.at(i);
        out.push_back({b.start, b.min, b.max, b.sum, b.count, b.last});
    }
    return out;
}

std::vector<latest_value> lmdb_store::latest(std::string_view tenant, std::string_view device) const {
    const auto& s = *impl_;
    std::vector<latest_value> out;
    std::string prefix;
    if (!make_series_key(tenant, device, {}, prefix))
        return out;
    std::vector<std::pair<std::string, std::uint32_t>> found;
    {
        impl::read_scope rs(s, false);
        if (rs.rc)
            return out; // no read slot or map resized by another process: nothing to show
        cursor_handle c;
        if (c.open(rs.get(), s.series_) != 0)
            return out;
        MDB_val k = to_val(prefix), v;
        for (int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE); rc == 0 && to_sv(k).starts_with(prefix);
             rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT))
            if (v.mv_size == 4)
                found.emplace_back(std::string(to_sv(k).substr(prefix.size())),
                                   get_raw<std::uint32_t>(static_cast<char*>(v.mv_data)));
    }
    std::shared_lock l(s.state_mutex_);
    for (auto& [metric, id] : found) {
        if (id >= s.table_.size() || !s.table_[id]->pub.has_last)
            continue;
        const auto& c = s.table_[id]->pub;
        out.push_back({std::move(metric), c.last_ts, c.last_value});
    }
    return out;
}

std::vector<series_key> lmdb_store::list_series(std::string_view tenant, std::string_view device) const {
    const auto& s = *impl_;
    std::vector<series_key> out;
    if (has_nul(tenant) || has_nul(device))
        return out;
    std::string prefix(tenant);
    prefix.push_back('\0');
    if (!device.empty()) {
        prefix.append(device);
        prefix.push_back('\0');
    }
    impl::read_scope rs(s, false);
    if (rs.rc)
        return out;
    cursor_handle c;
    if (c.open(rs.get(), s.series_) != 0)
        return out;
    MDB_val k = to_val(prefix), v;
    for (int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE); rc == 0 && to_sv(k).starts_with(prefix);
         rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT))
        out.push_back(split_series_key(to_sv(k)));
    return out;
}

void lmdb_store::scan(kv_table t, const std::function<void(std::string_view key, std::string_view value)>& f) const {
    const auto& s = *impl_;
    impl::read_scope rs(s, false);
    if (rs.rc)
        return;
    cursor_handle c;
    if (c.open(rs.get(), s.kv_[static_cast<std::size_t>(t)]) != 0)
        return;
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT))
        f(to_sv(k), to_sv(v));
}

lmdb_stats lmdb_store::stats() const {
    const auto& s = *impl_;
    lmdb_stats st;
    st.points_written = s.points_written_;
    st.points_out_of_order = s.points_out_of_order_;
    st.points_duplicate = s.points_duplicate_;
    st.points_rejected = s.points_rejected_;
    st.commits = s.commits_;
    st.checkpoints = s.checkpoints_;
    st.storage_full_errors = s.storage_full_errors_;
    st.overloaded = s.overloaded_;
    st.series = s.series_count_;
    st.map_size = s.map_size_;
    st.queued_operations = s.queued_;
    return st;
}

boost::system::error_code lmdb_store::copy_to(const std::filesystem::path& dir) const {
    const auto& s = *impl_;
    std::error_code fec;
    std::filesystem::create_directories(dir, fec);
    if (fec)
        return sys::error_code(fec.value(), sys::system_category());
    impl::read_scope rs(s, false, false); // mdb_env_copy2 opens its own read transaction
    if (int rc = mdb_env_copy2(s.env_.get(), dir.c_str(), MDB_CP_COMPACT))
        return lmdb_error(rc);
    return {};
}

boost::system::error_code lmdb_backup(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::error_code fec;
    std::filesystem::create_directories(to, fec);
    if (fec)
        return sys::error_code(fec.value(), sys::system_category());
    env_handle env;
    if (int rc = env.create())
        return lmdb_error(rc);
    mdb_env_set_maxdbs(env.get(), 16);
    if (int rc = mdb_env_open(env.get(), from.c_str(), MDB_RDONLY | MDB_NOTLS, 0640))
        return lmdb_error(rc);
    int rc = mdb_env_copy2(env.get(), to.c_str(), MDB_CP_COMPACT);
    if (rc == MDB_MAP_RESIZED) { // the daemon grew the map since we opened it
        mdb_env_set_mapsize(env.get(), 0);
        std::filesystem::remove(to / "data.mdb", fec);
        rc = mdb_env_copy2(env.get(), to.c_str(), MDB_CP_COMPACT);
    }
    return rc ? lmdb_error(rc) : sys::error_code{};
}

} // namespace pulsegate::storage
