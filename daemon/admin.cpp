#include "daemon/admin.hpp"

#include "storage/lmdb_store.hpp"
#include "storage/state/audit_repository.hpp"
#include "storage/state/backup.hpp"
#include "storage/state/data_dir_lock.hpp"
#include "storage/state/database.hpp"
#include "storage/state/user_repository.hpp"

#include <boost/json.hpp>

#include <sodium.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#ifndef PULSEGATE_VERSION
#define PULSEGATE_VERSION "unknown"
#endif

namespace pulsegate::daemon {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace st = storage::state;

constexpr const char* state_file = "state.db";
constexpr const char* key_file = "secret.key";
constexpr const char* telemetry_dir = "telemetry";
constexpr const char* manifest_file = "manifest.json";
constexpr std::string_view backup_format = "pulsegate-backup";
constexpr std::int64_t backup_format_version = 1;
constexpr std::size_t min_password_length = 8;

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// RFC 3339 ("2024-05-01T12:00:00Z") or, compact, for file names
// ("20240501T120000Z").
std::string utc_time(std::time_t t, bool compact) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, compact ? "%Y%m%dT%H%M%SZ" : "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string human_size(std::uintmax_t bytes) {
    if (bytes < 1024)
        return std::to_string(bytes) + " B";
    const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = -1;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::uintmax_t tree_size(const fs::path& p) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec))
        return fs::file_size(p, ec);
    std::uintmax_t total = 0;
    for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_regular_file(ec))
            total += it->file_size(ec);
    return total;
}

bool sync_path(const fs::path& p, bool directory) {
    const int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

// Creates `dir` (and parents) if missing; a directory created here is 0700:
// it will hold password hashes and telemetry. Returns false with `why` set.
bool ensure_private_dir(const fs::path& dir, std::string& why) {
    std::error_code ec;
    if (fs::exists(dir, ec)) {
        if (!fs::is_directory(dir, ec)) {
            why = dir.string() + " exists and is not a directory";
            return false;
        }
        return true;
    }
    fs::create_directories(dir, ec);
    if (!ec)
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) {
        why = "cannot create " + dir.string() + ": " + ec.message();
        return false;
    }
    return true;
}

// 20 characters from an alphabet without look-alikes (0/O/o, 1/l/I):
// 56 symbols, about 116 bits.
std::string generate_password() {
    static constexpr std::string_view alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    std::string pw;
    for (int i = 0; i < 20; ++i)
        pw += alphabet[randombytes_uniform(static_cast<std::uint32_t>(alphabet.size()))];
    return pw;
}

// The first line of `file`; an error message instead when unreadable or
// too short.
bool read_password_file(const fs::path& file, std::string& password, std::string& why) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        why = "cannot read --admin-password-file " + file.string() + ": " + std::generic_category().message(errno);
        return false;
    }
    std::getline(in, password);
    if (!password.empty() && password.back() == '\r')
        password.pop_back();
    if (password.size() < min_password_length) {
        why = "--admin-password-file " + file.string() + ": the password on its first line must be at least " +
              std::to_string(min_password_length) + " characters, it has " + std::to_string(password.size());
        return false;
    }
    return true;
}

// argon2id, libsodium's interactive limits (about 64 MiB, well under a second).
bool hash_password(const std::string& password, std::string& hash) {
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return false;
    hash = out;
    return true;
}

void remove_contents(const fs::path& dir) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::error_code rm;
        fs::remove_all(it->path(), rm);
    }
}

// ---- backup manifest ----

struct manifest {
    int schema_version = 0;
    std::string created_at;
    std::string pulsegate_version;
    bool has_telemetry = false; // "telemetry": "lmdb": telemetry/data.mdb must be there
};

// The manifest of backup `dir`, or an error message saying why it is not one.
bool read_manifest(const fs::path& dir, manifest& m, std::string& why) {
    const auto file = dir / manifest_file;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) {
        why = dir.string() + " is not a pulsegate backup: " + file.string() + " is missing";
        return false;
    }
    std::ifstream in(file, std::ios::binary);
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (!in.good() && !in.eof()) {
        why = "cannot read " + file.string();
        return false;
    }
    boost::system::error_code jec;
    auto v = json::parse(text, jec);
    const auto* obj = jec ? nullptr : v.if_object();
    if (obj == nullptr) {
        why = dir.string() + " is not a pulsegate backup: " + file.string() + " is not a JSON object" +
              (jec ? " (" + jec.message() + ")" : std::string());
        return false;
    }
    const auto* format = obj->if_contains("format");
    const auto* schema = obj->if_contains("schema_version");
    if (format == nullptr || !format->is_string() || format->get_string() != backup_format || schema == nullptr ||
        !schema->is_int64()) {
        why = dir.string() + " is not a pulsegate backup: " + file.string() +
              " lacks \"format\": \"pulsegate-backup\" or an integer \"schema_version\"";
        return false;
    }
    m.schema_version = static_cast<int>(schema->get_int64());
    if (const auto* c = obj->if_contains("created_at"); c && c->is_string())
        m.created_at = c->get_string();
    if (const auto* pv = obj->if_contains("pulsegate_version"); pv && pv->is_string())
        m.pulsegate_version = pv->get_string();
    if (const auto* t = obj->if_contains("telemetry"); t && t->is_string())
        m.has_telemetry = t->get_string() == "lmdb";
    return true;
}

bool write_manifest(const fs::path& dir, const json::object& obj, std::string& why) {
    const auto tmp = dir / (std::string(manifest_file) + ".partial");
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << json::serialize(obj) << '\n';
        out.flush();
        if (!out) {
            why = "cannot write " + tmp.string();
            return false;
        }
    }
    std::error_code ec;
    if (!sync_path(tmp, false)) {
        why = "cannot sync " + tmp.string();
        return false;
    }
    fs::rename(tmp, dir / manifest_file, ec);
    if (ec) {
        why = "cannot rename " + tmp.string() + ": " + ec.message();
        return false;
    }
    sync_path(dir, true); // the rename's durability; the files are already synced
    return true;
}

} // namespace

bool data_dir_initialised(const fs::path& data_dir) {
    std::error_code ec;
    if (!fs::is_regular_file(data_dir / state_file, ec))
        return false;
    auto db = st::database::open({.file = data_dir / state_file, .mode = st::open_mode::read_only});
    if (!db || (*db)->schema_version() < 1)
        return false;
    auto admins = st::user_repository(**db).count_operator_admins();
    return admins && *admins > 0;
}

int run_init(const init_options& opts, std::ostream& out, std::ostream& err) {
    const auto& dir = opts.data_dir;
    if (data_dir_initialised(dir)) {
        out << "data dir " << dir.string() << " is already initialised (it has an operator_admin); nothing changed\n";
        return 0;
    }

    // Everything that can be refused is checked before anything is created.
    std::string password;
    std::string why;
    if (opts.admin_password_file) {
        if (!read_password_file(*opts.admin_password_file, password, why)) {
            err << "pulsegate: init: " << why << "; nothing was changed\n";
            return 1;
        }
    }
    if (sodium_init() < 0) {
        err << "pulsegate: init: cannot initialise libsodium (no entropy source?)\n";
        return 1;
    }
    const bool generated = password.empty();
    if (generated)
        password = generate_password();
    std::string hash;
    if (!hash_password(password, hash)) {
        err << "pulsegate: init: hashing the password failed (out of memory: it needs about 64 MiB)\n";
        return 1;
    }

    if (!ensure_private_dir(dir, why) || !ensure_private_dir(dir / telemetry_dir, why)) {
        err << "pulsegate: init: " << why << "\n";
        return 1;
    }
    auto lock = st::data_dir_lock::try_acquire(dir);
    if (!lock) {
        err << "pulsegate: init: " << lock.error().message << "\n";
        return 1;
    }
    auto db = st::database::open({.file = dir / state_file});
    if (!db) {
        err << "pulsegate: init: " << db.error().message << "\n";
        return 1;
    }
    st::user_repository users(**db);
    // Another init may have won the race before the lock.
    if (auto n = users.count_operator_admins(); n && *n > 0) {
        out << "data dir " << dir.string() << " is already initialised (it has an operator_admin); nothing changed\n";
        return 0;
    }
    const auto at = now_ms();
    auto id = users.create({std::nullopt, "admin", st::user_role::operator_admin, hash, at});
    if (!id) {
        err << "pulsegate: init: " << id.error().message << "\n";
        return 1;
    }
    json::object details{{"role", "operator_admin"}};
    auto audited = st::audit_repository(**db).append(
        {0, at, "cli:init", std::nullopt, "user.create", "user:admin", json::serialize(details)});
    if (!audited)
        // The user exists; a missing audit line is worth a warning, not a
        // failed init that the operator would retry into "already initialised".
        err << "pulsegate: init: warning: the audit log entry was not written: " << audited.error().message << "\n";

    out << "initialised data dir " << dir.string() << " (schema version " << (*db)->schema_version() << ")\n"
        << "created user admin (operator_admin)\n";
    if (generated)
        out << "admin password: " << password << "\n"
            << "this password will not be shown again: store it now\n";
    else
        out << "admin password: as given in " << opts.admin_password_file->string() << "\n";
    sodium_memzero(password.data(), password.size());
    return 0;
}

int run_backup(const fs::path& data_dir, const fs::path& dest, std::ostream& out, std::ostream& err) {
    std::error_code ec;
    const auto db_file = data_dir / state_file;
    if (!fs::is_regular_file(db_file, ec)) {
        err << "pulsegate: backup: " << data_dir.string()
            << " has no state.db: it is not an initialised data dir (check --data-dir or [storage] data_dir, or run "
               "`pulsegate init`)\n";
        return 1;
    }
    const bool dest_existed = fs::exists(dest, ec);
    if (dest_existed && (!fs::is_directory(dest, ec) || !fs::is_empty(dest, ec))) {
        err << "pulsegate: backup: " << dest.string() << " exists and is not an empty directory: give a new or empty one\n";
        return 1;
    }
    std::string why;
    if (!ensure_private_dir(dest, why)) {
        err << "pulsegate: backup: " << why << "\n";
        return 1;
    }
    // From here on a failure leaves `dest` as it was found.
    auto fail = [&](const std::string& message) {
        if (dest_existed)
            remove_contents(dest);
        else
            fs::remove_all(dest, ec);
        err << "pulsegate: backup: " << message << "; nothing was kept in " << dest.string() << "\n";
        return 1;
    };

    auto db = st::database::open({.file = db_file, .mode = st::open_mode::read_only});
    if (!db)
        return fail(db.error().message);
    if (auto r = st::sqlite_backup(**db, dest / state_file); !r)
        return fail(r.error().message);
    db->reset();
    // The copy is checked as restore will check it, and its version is the
    // one recorded.
    auto info = st::inspect_database_file(dest / state_file);
    if (!info)
        return fail("the copy of state.db does not pass its check: " + info.error().message);

    const auto tele_src = data_dir / telemetry_dir;
    const auto tele_dest = dest / telemetry_dir;
    const bool has_telemetry = fs::is_regular_file(tele_src / "data.mdb", ec);
    if (has_telemetry) {
        if (auto lec = storage::lmdb_backup(tele_src, tele_dest))
            return fail("copy of the telemetry store " + tele_src.string() + " failed: " + lec.message());
    } else if (!ensure_private_dir(tele_dest, why)) {
        return fail(why);
    }

    // The server key: device secrets, API tokens and sessions are stored as
    // digests keyed with it, so a backup without it restores none of them.
    if (std::error_code probe; fs::is_regular_file(data_dir / key_file, probe)) {
        fs::copy_file(data_dir / key_file, dest / key_file, ec);
        if (!ec) fs::permissions(dest / key_file, fs::perms::owner_read | fs::perms::owner_write,
                                 fs::perm_options::replace, ec);
        if (ec) return fail("copy of " + (data_dir / key_file).string() + " failed: " + ec.message());
    }

    const auto created_at = utc_time(std::time(nullptr), false);
    const auto db_bytes = tree_size(dest / state_file);
    const auto tele_bytes = tree_size(tele_dest);
    json::object m{
        {"format", backup_format},
        {"format_version", backup_format_version},
        {"pulsegate_version", PULSEGATE_VERSION},
        {"schema_version", info->schema_version},
        {"created_at", created_at},
        {"source_data_dir", fs::absolute(data_dir, ec).string()},
        {"state_db_bytes", db_bytes},
        {"telemetry", has_telemetry ? "lmdb" : "empty"},
        {"telemetry_bytes", tele_bytes},
    };
    if (!write_manifest(dest, m, why))
        return fail(why);

    out << "wrote " << (dest / state_file).string() << " (" << human_size(db_bytes) << ", schema version "
        << info->schema_version << ")\n";
    if (has_telemetry)
        out << "wrote " << tele_dest.string() << "/ (" << human_size(tele_bytes) << ")\n";
    else
        out << "wrote " << tele_dest.string() << "/ (empty: " << tele_src.string() << " holds no telemetry yet)\n";
    out << "wrote " << (dest / manifest_file).string() << "\n"
        << "backup of " << data_dir.string() << " complete in " << dest.string() << " ("
        << human_size(db_bytes + tele_bytes) << ")\n";
    return 0;
}

int run_restore(const fs::path& data_dir, const fs::path& src, std::ostream& out, std::ostream& err) {
    std::error_code ec;
    std::string why;
    manifest m;
    if (!fs::is_directory(src, ec)) {
        err << "pulsegate: restore: " << src.string() << " is not a directory: give the directory `pulsegate backup` wrote\n";
        return 1;
    }
    if (!read_manifest(src, m, why)) {
        err << "pulsegate: restore: " << why << "\n";
        return 1;
    }
    if (m.schema_version > st::database::latest_schema_version()) {
        err << "pulsegate: restore: " << src.string() << " was made by a newer pulsegate"
            << (m.pulsegate_version.empty() ? std::string() : " (" + m.pulsegate_version + ")") << " with schema version "
            << m.schema_version << "; this pulsegate (" PULSEGATE_VERSION ") knows up to "
            << st::database::latest_schema_version() << ": restore it with a newer pulsegate\n";
        return 1;
    }
    auto info = st::inspect_database_file(src / state_file);
    if (!info) {
        err << "pulsegate: restore: " << src.string() << " is not a usable backup: " << info.error().message << "\n";
        return 1;
    }
    if (info->schema_version != m.schema_version) {
        err << "pulsegate: restore: " << src.string() << " is inconsistent: manifest.json says schema version "
            << m.schema_version << ", state.db has " << info->schema_version << "\n";
        return 1;
    }
    const auto tele_src = src / telemetry_dir;
    if (!fs::is_directory(tele_src, ec) || (m.has_telemetry && !fs::is_regular_file(tele_src / "data.mdb", ec))) {
        err << "pulsegate: restore: " << src.string() << " is not a complete backup: " << tele_src.string()
            << (m.has_telemetry ? "/data.mdb" : "") << " is missing\n";
        return 1;
    }

    if (!ensure_private_dir(data_dir, why)) {
        err << "pulsegate: restore: " << why << "\n";
        return 1;
    }
    auto lock = st::data_dir_lock::try_acquire(data_dir);
    if (!lock) {
        err << "pulsegate: restore: " << lock.error().message << "; nothing was changed\n";
        return 1;
    }

    // Copy into a staging dir first: a failure there changes nothing.
    const auto staging = data_dir / ".restore-staging";
    fs::remove_all(staging, ec);
    ec.clear();
    fs::create_directory(staging, ec);
    if (!ec)
        fs::permissions(staging, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (!ec)
        fs::copy_file(src / state_file, staging / state_file, ec);
    if (!ec)
        fs::copy(tele_src, staging / telemetry_dir, fs::copy_options::recursive, ec);
    std::error_code probe;
    const bool has_key = fs::is_regular_file(src / key_file, probe);
    if (!ec && has_key)
        fs::copy_file(src / key_file, staging / key_file, ec);
    if (!ec && (!sync_path(staging / state_file, false) || !sync_path(staging, true)))
        ec = std::make_error_code(std::errc::io_error);
    if (ec) {
        std::error_code ignore;
        fs::remove_all(staging, ignore);
        err << "pulsegate: restore: copying " << src.string() << " into " << data_dir.string()
            << " failed: " << ec.message() << "; nothing was changed\n";
        return 1;
    }

    // Move the current state aside (never deleted).
    std::vector<std::string> current;
    for (const char* name : {"state.db", "state.db-wal", "state.db-shm", "state.db-journal", "telemetry", key_file})
        if (fs::exists(data_dir / name, ec))
            current.emplace_back(name);
    fs::path aside;
    std::vector<std::string> moved;
    auto move_back = [&] {
        std::error_code ignore;
        for (const auto& name : moved)
            fs::rename(aside / name, data_dir / name, ignore);
    };
    if (!current.empty()) {
        const auto base = "pre-restore-" + utc_time(std::time(nullptr), true);
        aside = data_dir / base;
        for (int n = 2; fs::exists(aside, ec); ++n)
            aside = data_dir / (base + "-" + std::to_string(n));
        fs::create_directory(aside, ec);
        if (!ec)
            fs::permissions(aside, fs::perms::owner_all, fs::perm_options::replace, ec);
        for (const auto& name : current) {
            if (ec)
                break;
            fs::rename(data_dir / name, aside / name, ec);
            if (!ec)
                moved.push_back(name);
        }
        if (ec) {
            move_back();
            std::error_code ignore;
            fs::remove_all(staging, ignore);
            fs::remove(aside, ignore);
            err << "pulsegate: restore: cannot move the current state aside into " << aside.string() << ": "
                << ec.message() << "; nothing was changed\n";
            return 1;
        }
    }

    fs::rename(staging / state_file, data_dir / state_file, ec);
    if (!ec)
        fs::rename(staging / telemetry_dir, data_dir / telemetry_dir, ec);
    if (!ec && has_key)
        fs::rename(staging / key_file, data_dir / key_file, ec);
    if (ec) {
        std::error_code ignore;
        fs::remove(data_dir / state_file, ignore);
        fs::remove_all(data_dir / telemetry_dir, ignore);
        fs::remove(data_dir / key_file, ignore);
        move_back();
        err << "pulsegate: restore: cannot put the backup in place in " << data_dir.string() << ": " << ec.message()
            << "; the previous state was put back\n";
        return 1;
    }
    fs::remove_all(staging, ec);
    sync_path(data_dir, true);

    if (!current.empty())
        out << "moved the previous state (";
    for (std::size_t i = 0; i < current.size(); ++i)
        out << (i ? ", " : "") << current[i];
    if (!current.empty())
        out << ") to " << aside.string() << "\n";
    out << "restored state.db (schema version " << info->schema_version << ") and telemetry/ from " << src.string()
        << (m.created_at.empty() ? std::string() : ", made " + m.created_at)
        << (m.pulsegate_version.empty() ? std::string() : " by pulsegate " + m.pulsegate_version) << ", into "
        << data_dir.string() << "\n";
    if (info->schema_version < st::database::latest_schema_version())
        out << "the schema will be upgraded from version " << info->schema_version << " to "
            << st::database::latest_schema_version() << " when pulsegate next starts\n";
    out << "start `pulsegate serve` to use it\n";
    return 0;
}

} // namespace pulsegate::daemon
