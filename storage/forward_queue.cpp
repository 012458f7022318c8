#include "storage/forward_queue.hpp"

#include <lmdb.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <system_error>

// Record layout (value): i64 queued_ms (little-endian, host order as LMDB
// stores it on the same machine), u8 qos, u8 retain, u32 topic length,
// topic bytes, payload bytes. The "meta" database holds "format" = u32 1.

namespace pulsegate::storage {

namespace {

namespace sys = boost::system;

constexpr std::uint32_t format_version = 1;
constexpr std::size_t header_bytes = 8 + 1 + 1 + 4;

class lmdb_category_impl final : public sys::error_category {
public:
    const char* name() const noexcept override { return "lmdb"; }
    std::string message(int ev) const override { return mdb_strerror(ev); }
};

sys::error_code lmdb_error(int rc) {
    static const lmdb_category_impl category;
    if (rc > 0) return {rc, sys::system_category()};
    return {rc, category};
}

[[noreturn]] void startup_failure(const std::filesystem::path& dir, const char* what, int rc) {
    throw std::system_error(rc > 0 ? std::error_code(rc, std::generic_category()) : std::error_code(),
                            "bridge queue in " + dir.string() + ": " + what + ": " + mdb_strerror(rc) +
                                " (check that the directory is writable and the disk has space)");
}

void key_of(std::uint64_t seq, char (&k)[8]) {
    for (int i = 7; i >= 0; --i, seq >>= 8) k[i] = static_cast<char>(seq & 0xff);
}

std::uint64_t seq_of(const MDB_val& k) {
    std::uint64_t v = 0;
    const auto* p = static_cast<const unsigned char*>(k.mv_data);
    for (std::size_t i = 0; i < 8 && i < k.mv_size; ++i) v = (v << 8) | p[i];
    return v;
}

std::int64_t queued_ms_of(const MDB_val& v) {
    std::int64_t ms = 0;
    if (v.mv_size >= 8) std::memcpy(&ms, v.mv_data, 8);
    return ms;
}

// Aborts unless committed.
class txn {
public:
    int begin(MDB_env* env, unsigned flags) { return mdb_txn_begin(env, nullptr, flags, &t_); }
    int commit() {
        const int rc = mdb_txn_commit(t_);
        t_ = nullptr;
        return rc;
    }
    ~txn() {
        if (t_ != nullptr) mdb_txn_abort(t_);
    }
    MDB_txn* get() const { return t_; }

private:
    MDB_txn* t_ = nullptr;
};

// Commits without waiting for fsync (removals: after a crash a removed
// message may come back, and is sent again; the next synced commit of the
// environment makes it durable anyway).
int commit_unsynced(MDB_env* env, txn& t) {
    unsigned flags = 0;
    mdb_env_get_flags(env, &flags);
    if ((flags & MDB_NOSYNC) != 0) return t.commit();
    mdb_env_set_flags(env, MDB_NOSYNC, 1);
    const int rc = t.commit();
    mdb_env_set_flags(env, MDB_NOSYNC, 0);
    return rc;
}

class cursor {
public:
    int open(MDB_txn* t, MDB_dbi d) { return mdb_cursor_open(t, d, &c_); }
    ~cursor() {
        if (c_ != nullptr) mdb_cursor_close(c_);
    }
    MDB_cursor* get() const { return c_; }

private:
    MDB_cursor* c_ = nullptr;
};

// Deletes records from the front of `dbi` while `more(seq, queued_ms,
// deleted so far)`; returns how many it deleted.
template <class Pred>
sys::result<std::uint64_t> delete_front(MDB_txn* t, MDB_dbi dbi, Pred more) {
    cursor c;
    if (int rc = c.open(t, dbi)) return lmdb_error(rc);
    std::uint64_t removed = 0;
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST);; rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
        if (rc == MDB_NOTFOUND) break;
        if (rc) return lmdb_error(rc);
        if (!more(seq_of(k), queued_ms_of(v), removed)) break;
        if (int drc = mdb_cursor_del(c.get(), 0)) return lmdb_error(drc);
        ++removed;
    }
    return removed;
}

} // namespace

struct forward_queue::lmdb {
    MDB_env* env = nullptr;
    MDB_dbi queue = 0;
    std::string scratch; // one record being written
    ~lmdb() {
        if (env != nullptr) mdb_env_close(env);
    }
};

forward_queue::forward_queue(forward_queue_options opts) : opts_(std::move(opts)), db_(std::make_unique<lmdb>()) {
    const auto& dir = opts_.dir;
    std::error_code fec;
    std::filesystem::create_directories(dir, fec);
    if (fec)
        throw std::system_error(fec, "cannot create the bridge queue directory " + dir.string() +
                                         " (create it or fix its permissions)");
    if (int rc = mdb_env_create(&db_->env)) startup_failure(dir, "mdb_env_create", rc);
    mdb_env_set_maxdbs(db_->env, 2);
    if (int rc = mdb_env_set_mapsize(db_->env, opts_.max_bytes)) startup_failure(dir, "cannot set the map size", rc);
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    if (!opts_.sync) flags |= MDB_NOSYNC;
    if (int rc = mdb_env_open(db_->env, dir.c_str(), flags, 0640)) startup_failure(dir, "cannot open", rc);

    txn t;
    if (int rc = t.begin(db_->env, 0)) startup_failure(dir, "cannot begin a transaction", rc);
    MDB_dbi meta = 0;
    if (int rc = mdb_dbi_open(t.get(), "meta", MDB_CREATE, &meta)) startup_failure(dir, "cannot open meta", rc);
    if (int rc = mdb_dbi_open(t.get(), "queue", MDB_CREATE, &db_->queue))
        startup_failure(dir, "cannot open the queue", rc);
    char fkey[] = "format";
    MDB_val k{sizeof fkey - 1, fkey}, v;
    int rc = mdb_get(t.get(), meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        std::uint32_t version = format_version;
        v = {sizeof version, &version};
        rc = mdb_put(t.get(), meta, &k, &v, 0);
    } else if (rc == 0) {
        std::uint32_t found = 0;
        if (v.mv_size == sizeof found) std::memcpy(&found, v.mv_data, sizeof found);
        if (found != format_version)
            throw std::runtime_error("bridge queue in " + dir.string() + " has format " + std::to_string(found) +
                                     ", this pulsegate reads format " + std::to_string(format_version) +
                                     ": run the pulsegate version that wrote it, or move the directory away "
                                     "(its queued messages are then not sent)");
    }
    if (rc) startup_failure(dir, "cannot write the format version", rc);

    MDB_stat st;
    mdb_stat(t.get(), db_->queue, &st);
    count_ = st.ms_entries;
    {
        cursor c;
        if (int crc = c.open(t.get(), db_->queue)) startup_failure(dir, "cannot open a cursor", crc);
        MDB_val ck, cv;
        if (mdb_cursor_get(c.get(), &ck, &cv, MDB_LAST) == 0) next_seq_ = seq_of(ck) + 1;
        if (mdb_cursor_get(c.get(), &ck, &cv, MDB_FIRST) == 0) oldest_ms_ = queued_ms_of(cv);
    }
    if ((rc = t.commit())) startup_failure(dir, "cannot commit", rc);
}

forward_queue::~forward_queue() = default;

sys::error_code forward_queue::refresh_oldest(void* t) {
    cursor c;
    if (int rc = c.open(static_cast<MDB_txn*>(t), db_->queue)) return lmdb_error(rc);
    MDB_val k, v;
    const int rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST);
    if (rc == MDB_NOTFOUND) {
        oldest_ms_ = 0;
        return {};
    }
    if (rc) return lmdb_error(rc);
    oldest_ms_ = queued_ms_of(v);
    return {};
}

sys::result<std::uint64_t> forward_queue::evict_oldest(void* t, std::uint64_t n) {
    return delete_front(static_cast<MDB_txn*>(t), db_->queue,
                        [n](std::uint64_t, std::int64_t, std::uint64_t done) { return done < n; });
}

sys::result<push_result> forward_queue::push(std::span<const forward_item> items) {
    push_result out;
    // LMDB reuses the pages of deleted records only after their transaction
    // committed: on MDB_MAP_FULL, evict the oldest quarter (at least as many
    // as the batch) in a transaction of its own, then try again.
    for (int attempt = 0; attempt < 4; ++attempt) {
        if (attempt > 0) {
            txn e;
            if (int rc = e.begin(db_->env, 0)) return lmdb_error(rc);
            auto ev = evict_oldest(e.get(), std::max<std::uint64_t>(count_ / 4, items.size()));
            if (!ev) return ev.error();
            if (*ev == 0) break; // nothing left to make room with
            if (auto ec = refresh_oldest(e.get())) return ec;
            if (int rc = e.commit()) return lmdb_error(rc);
            count_ -= *ev;
            out.evicted += *ev;
        }
        std::uint64_t count = count_;
        std::size_t appended = 0;
        txn t;
        if (int rc = t.begin(db_->env, 0)) return lmdb_error(rc);
        bool full = false;
        std::uint64_t seq = next_seq_;
        for (const auto& it : items) {
            auto& rec = db_->scratch;
            rec.resize(header_bytes + it.topic.size() + it.payload.size());
            std::memcpy(rec.data(), &it.queued_ms, 8);
            rec[8] = static_cast<char>(it.qos);
            rec[9] = it.retain ? 1 : 0;
            const auto tlen = static_cast<std::uint32_t>(it.topic.size());
            std::memcpy(rec.data() + 10, &tlen, 4);
            std::memcpy(rec.data() + header_bytes, it.topic.data(), it.topic.size());
            if (!it.payload.empty())
                std::memcpy(rec.data() + header_bytes + it.topic.size(), it.payload.data(), it.payload.size());
            char kb[8];
            key_of(seq, kb);
            MDB_val k{8, kb}, v{rec.size(), rec.data()};
            const int rc = mdb_put(t.get(), db_->queue, &k, &v, MDB_APPEND);
            if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) {
                full = true;
                break;
            }
            if (rc) return lmdb_error(rc);
            ++seq;
            ++count;
            ++appended;
        }
        if (full) continue; // the transaction is unusable: abort it
        std::uint64_t evicted = 0;
        if (count > opts_.max_messages) {
            auto ev = evict_oldest(t.get(), count - opts_.max_messages);
            if (!ev) return ev.error();
            evicted = *ev;
            count -= *ev;
        }
        if (auto ec = refresh_oldest(t.get())) return ec;
        if (int rc = t.commit()) {
            if (rc == MDB_MAP_FULL) continue;
            return lmdb_error(rc);
        }
        next_seq_ = seq;
        count_ = count;
        out.appended = appended;
        out.evicted += evicted;
        return out;
    }
    out.refused = items.size();
    return out;
}

sys::error_code forward_queue::read(std::uint64_t from, std::size_t max, std::vector<queued_message>& out) const {
    out.clear();
    txn t;
    if (int rc = t.begin(db_->env, MDB_RDONLY)) return lmdb_error(rc);
    cursor c;
    if (int rc = c.open(t.get(), db_->queue)) return lmdb_error(rc);
    char kb[8];
    key_of(from, kb);
    MDB_val k{8, kb}, v;
    for (int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE); out.size() < max;
         rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
        if (rc == MDB_NOTFOUND) break;
        if (rc) return lmdb_error(rc);
        const auto* p = static_cast<const char*>(v.mv_data);
        std::uint32_t tlen = 0;
        if (v.mv_size < header_bytes) continue; // cannot happen: we wrote it
        std::memcpy(&tlen, p + 10, 4);
        if (header_bytes + tlen > v.mv_size) continue;
        auto& m = out.emplace_back();
        m.seq = seq_of(k);
        std::memcpy(&m.queued_ms, p, 8);
        m.qos = static_cast<std::uint8_t>(p[8]);
        m.retain = p[9] != 0;
        m.topic.assign(p + header_bytes, tlen);
        m.payload.assign(p + header_bytes + tlen, v.mv_size - header_bytes - tlen);
    }
    return {};
}

sys::result<std::uint64_t> forward_queue::remove_front(
    const std::function<bool(std::uint64_t seq, std::int64_t queued_ms)>& more) {
    txn t;
    if (int rc = t.begin(db_->env, 0)) return lmdb_error(rc);
    auto removed = delete_front(t.get(), db_->queue,
                                [&more](std::uint64_t seq, std::int64_t ms, std::uint64_t) { return more(seq, ms); });
    if (!removed) return removed.error();
    if (*removed == 0) return 0;
    if (auto ec = refresh_oldest(t.get())) return ec;
    if (int rc = commit_unsynced(db_->env, t)) return lmdb_error(rc);
    count_ -= std::min(count_, *removed);
    return removed;
}

sys::error_code forward_queue::remove_through(std::uint64_t seq) {
    auto r = remove_front([seq](std::uint64_t s, std::int64_t) { return s <= seq; });
    return r ? sys::error_code() : r.error();
}

sys::result<std::uint64_t> forward_queue::drop_older_than(std::int64_t cutoff_ms) {
    if (count_ == 0 || oldest_ms_ >= cutoff_ms) return 0;
    // Queued times grow with the sequence (one clock, one writer), so the
    // old ones are a prefix; a clock step back only delays their drop.
    return remove_front([cutoff_ms](std::uint64_t, std::int64_t ms) { return ms < cutoff_ms; });
}

} // namespace pulsegate::storage
