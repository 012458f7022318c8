#include "engine/identity.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <list>
#include <mutex>
#include <new>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pulsegate::engine {

namespace {

namespace fs = std::filesystem;

// Crockford's base32 alphabet in lower case: 0-9 a-z without i, l, o, u.
constexpr std::string_view alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
static_assert(alphabet.size() == 32);

constexpr std::size_t max_id_bytes = 63;
constexpr std::size_t max_user_name_bytes = 64;
constexpr std::size_t max_display_name_bytes = 128;
constexpr std::size_t max_label_key_bytes = 63;
constexpr std::size_t digest_bytes = 32;

constexpr std::array<std::string_view, 4> role_names = {"operator_admin", "operator", "tenant_admin",
                                                        "tenant_viewer"};

void ensure_sodium() {
    // sodium_init is idempotent; the magic static makes the first call
    // happen once even when threads race to it.
    static const bool ready = sodium_init() >= 0;
    if (!ready)
        throw std::runtime_error("libsodium could not be initialised (no usable random source): check /dev/urandom");
}

bool in_alphabet(char c) noexcept { return alphabet.find(c) != std::string_view::npos; }

bool all_in_alphabet(std::string_view s) noexcept { return std::all_of(s.begin(), s.end(), in_alphabet); }

bool lower_or_digit(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// "'A'" for printable ASCII, "byte 0x07" otherwise.
std::string describe_byte(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x21 && u < 0x7F)
        return std::string("'") + c + "'";
    if (u == ' ')
        return "a space";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02X", static_cast<unsigned>(u));
    return buf;
}

// `s` for a message: at most 64 bytes, non-printable ASCII bytes as '?'.
std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s.substr(0, 64))
        out += (static_cast<unsigned char>(c) >= 0x20 && c != 0x7F && c != '"') ? c : '?';
    if (s.size() > 64)
        out += "...";
    return out + "\"";
}

// Index of the first byte that is not part of a well-formed, printable UTF-8
// character (C0 and C1 controls, DEL, overlong forms, surrogates, beyond
// U+10FFFF, truncated sequences), or npos.
std::size_t first_unprintable(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F)
                return i;
            ++i;
            continue;
        }
        std::size_t n = 0;
        std::uint32_t cp = 0;
        if ((c & 0xE0) == 0xC0) {
            n = 2;
            cp = c & 0x1Fu;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3;
            cp = c & 0x0Fu;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4;
            cp = c & 0x07u;
        } else {
            return i;
        }
        if (i + n > s.size())
            return i;
        for (std::size_t k = 1; k < n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        constexpr std::uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_length[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F))
            return i;
        i += n;
    }
    return std::string_view::npos;
}

validation fail(std::string reason) { return {std::move(reason)}; }

validation check_resource_id(std::string_view what, std::string_view id) {
    const std::string rule = std::string(what) +
                             " must be 1 to 63 characters a-z, 0-9, '_' and '-', starting with a-z or 0-9";
    if (id.empty())
        return fail(rule + "; it is empty");
    if (id.size() > max_id_bytes)
        return fail(rule + "; it has " + std::to_string(id.size()));
    if (!lower_or_digit(id.front()))
        return fail(rule + "; it starts with " + describe_byte(id.front()));
    for (std::size_t i = 1; i < id.size(); ++i)
        if (!lower_or_digit(id[i]) && id[i] != '_' && id[i] != '-')
            return fail(rule + "; " + describe_byte(id[i]) + " at position " + std::to_string(i + 1) +
                        " is not allowed");
    return {};
}

validation check_printable(std::string_view what, std::string_view s, std::size_t min, std::size_t max) {
    const std::string rule = std::string(what) + " must be " + std::to_string(min) + " to " + std::to_string(max) +
                             " bytes of printable UTF-8";
    if (s.size() < min)
        return fail(rule + "; it is empty");
    if (s.size() > max)
        return fail(rule + "; it has " + std::to_string(s.size()) + " bytes");
    if (auto at = first_unprintable(s); at != std::string_view::npos)
        return fail(rule + "; " + describe_byte(s[at]) + " at byte " + std::to_string(at + 1) +
                    " is a control character or not valid UTF-8");
    return {};
}

bool is_operator_role_name(std::string_view role) noexcept { return role == "operator_admin" || role == "operator"; }

identity_error file_error(int err, std::string message) {
    return {boost::system::error_code(err, boost::system::generic_category()), std::move(message)};
}

std::string errno_text(int err) { return boost::system::error_code(err, boost::system::generic_category()).message(); }

// Reads the key; nullopt (with no error) when the file does not exist.
identity_result<std::optional<server_key>> read_server_key(const fs::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT)
            return std::optional<server_key>();
        return file_error(err, "cannot read the server key " + file.string() + ": " + errno_text(err) +
                                   "; check the owner and permissions of the data dir");
    }
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        return file_error(err, "cannot read the server key " + file.string() + ": " + errno_text(err));
    }
    if (!S_ISREG(st.st_mode) || st.st_size != static_cast<off_t>(sizeof(server_key)))
        return file_error(EINVAL,
                          "the server key " + file.string() +
                              (S_ISREG(st.st_mode) ? " is " + std::to_string(st.st_size) + " bytes, expected " +
                                                         std::to_string(sizeof(server_key))
                                                   : std::string(" is not a regular file")) +
                              ": it is damaged or not a pulsegate key. Restore it from the backup of this data "
                              "dir; only if there is none, move it away to have a new one created (every device "
                              "secret and API token must then be reissued)");
    server_key key{};
    std::size_t got = 0;
    while (got < key.size()) {
        const ssize_t n = ::read(fd, key.data() + got, key.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : EIO;
            return file_error(err, "cannot read the server key " + file.string() + ": " + errno_text(err));
        }
        got += static_cast<std::size_t>(n);
    }
    return std::optional<server_key>(key);
}

// Writes a new key to a temporary file and links it to `file`. false (and
// no error) when another process linked one first.
identity_result<bool> create_server_key(const fs::path& file, const server_key& key) {
    const fs::path tmp = file.string() + ".tmp-" + std::to_string(::getpid()) + "-" + random_token(8);
    const std::string what = "cannot create the server key " + file.string();
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        const int err = errno;
        return file_error(err, what + ": " + errno_text(err) +
                                   "; the data dir must exist and be writable by this user (run `pulsegate init`)");
    }
    int err = 0;
    if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0)
        err = errno;
    std::size_t put = 0;
    while (err == 0 && put < key.size()) {
        const ssize_t n = ::write(fd, key.data() + put, key.size() - put);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            err = n < 0 ? errno : EIO;
        else
            put += static_cast<std::size_t>(n);
    }
    if (err == 0 && ::fsync(fd) != 0)
        err = errno;
    if (::close(fd) != 0 && err == 0)
        err = errno;
    bool linked = false;
    if (err == 0) {
        // link, not rename: it never replaces a key another process made.
        if (::link(tmp.c_str(), file.c_str()) == 0)
            linked = true;
        else if (errno != EEXIST)
            err = errno;
    }
    ::unlink(tmp.c_str());
    if (err != 0)
        return file_error(err, what + ": " + errno_text(err));
    if (linked) {
        // Make the new name durable; a failure here only risks the key
        // vanishing after a power cut before anything used it.
        const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
        if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }
    return linked;
}

} // namespace

void throw_exception_from_error(const identity_error& e, const boost::source_location& loc) {
    boost::throw_with_location(boost::system::system_error(e.code, e.message), loc);
}

// ---- validators -----------------------------------------------------------

validation validate_tenant_id(std::string_view id) { return check_resource_id("tenant id", id); }

validation validate_device_id(std::string_view id) {
    if (auto v = check_resource_id("device id", id); !v)
        return v;
    if (id == "api")
        return fail("device id \"api\" is reserved (MQTT user name {tenant}/api is the integrators'); choose another");
    return {};
}

validation validate_user_name(std::string_view name) {
    const std::string rule = "user name must be 1 to 64 characters A-Z, a-z, 0-9, '.', '_', '@' and '-'";
    if (name.empty())
        return fail(rule + "; it is empty");
    if (name.size() > max_user_name_bytes)
        return fail(rule + "; it has " + std::to_string(name.size()));
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool ok = (c >= 'A' && c <= 'Z') || lower_or_digit(c) || c == '.' || c == '_' || c == '@' || c == '-';
        if (!ok)
            return fail(rule + "; " + describe_byte(c) + " at position " + std::to_string(i + 1) + " is not allowed");
    }
    return {};
}

validation validate_display_name(std::string_view name) {
    return check_printable("name", name, 1, max_display_name_bytes);
}

validation validate_password(std::string_view password) {
    if (password.size() < min_password_bytes || password.size() > max_password_bytes)
        return fail("password must be " + std::to_string(min_password_bytes) + " to " +
                    std::to_string(max_password_bytes) + " bytes; it has " + std::to_string(password.size()));
    return {};
}

validation validate_label_key(std::string_view key) {
    const std::string rule = "label key " + quote(key) + " must be 1 to 63 characters a-z, 0-9, '_', '.' and '-'";
    if (key.empty())
        return fail("label key must be 1 to 63 characters a-z, 0-9, '_', '.' and '-'; it is empty");
    if (key.size() > max_label_key_bytes)
        return fail(rule + "; it has " + std::to_string(key.size()));
    for (std::size_t i = 0; i < key.size(); ++i) {
        const char c = key[i];
        if (!lower_or_digit(c) && c != '_' && c != '.' && c != '-')
            return fail(rule + "; " + describe_byte(c) + " at position " + std::to_string(i + 1) + " is not allowed");
    }
    return {};
}

validation validate_label_value(std::string_view value) {
    return check_printable("label value", value, 0, max_label_value_bytes);
}

validation validate_labels(const std::map<std::string, std::string>& labels) {
    if (labels.size() > max_labels)
        return fail("a device has at most " + std::to_string(max_labels) + " labels; this one has " +
                    std::to_string(labels.size()));
    for (const auto& [k, v] : labels) {
        if (auto r = validate_label_key(k); !r)
            return r;
        if (auto r = validate_label_value(v); !r)
            return fail("label " + quote(k) + ": " + r.reason);
    }
    return {};
}

validation validate_role(std::string_view role) {
    if (std::find(role_names.begin(), role_names.end(), role) != role_names.end())
        return {};
    return fail("role " + quote(role) + " is unknown; use operator_admin, operator, tenant_admin or tenant_viewer");
}

validation validate_role_tenant(std::string_view role, const std::optional<std::string>& tenant) {
    if (auto r = validate_role(role); !r)
        return r;
    if (is_operator_role_name(role) && tenant)
        return fail("role " + std::string(role) + " takes no tenant (operators see every tenant); remove the tenant");
    if (!is_operator_role_name(role) && !tenant)
        return fail("role " + std::string(role) + " needs a tenant");
    if (tenant)
        return validate_tenant_id(*tenant);
    return {};
}

// ---- passwords ------------------------------------------------------------

std::string hash_password(std::string_view password) {
    ensure_sodium();
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
        throw std::bad_alloc();
    return out;
}

bool verify_password(std::string_view hash, std::string_view password) {
    ensure_sodium();
    if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES)
        return false;
    const std::string terminated(hash); // libsodium wants a C string
    return crypto_pwhash_str_verify(terminated.c_str(), password.data(), password.size()) == 0;
}

bool password_needs_rehash(std::string_view hash) {
    ensure_sodium();
    if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES)
        return true;
    const std::string terminated(hash);
    // 1: other parameters, -1: not an argon2id hash at all.
    return crypto_pwhash_str_needs_rehash(terminated.c_str(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0;
}

// ---- generated credentials ------------------------------------------------

std::string random_token(std::size_t length) {
    ensure_sodium();
    std::string out(length, '\0');
    randombytes_buf(out.data(), out.size());
    // 256 is a multiple of 32: the low five bits of a uniform byte are uniform.
    for (char& c : out)
        c = alphabet[static_cast<unsigned char>(c) & 0x1Fu];
    return out;
}

std::string api_token_parts::text() const {
    std::string out;
    out.reserve(api_token_length);
    out.append(api_token_prefix).append(public_id).append(1, '_').append(secret);
    return out;
}

api_token_parts generate_api_token() {
    return {random_token(api_token_public_id_length), random_token(credential_secret_length)};
}

std::optional<api_token_parts> parse_api_token(std::string_view token) {
    if (token.size() != api_token_length || !token.starts_with(api_token_prefix))
        return std::nullopt;
    const auto id = token.substr(api_token_prefix.size(), api_token_public_id_length);
    const auto rest = token.substr(api_token_prefix.size() + api_token_public_id_length);
    if (rest.front() != '_')
        return std::nullopt;
    const auto secret = rest.substr(1);
    if (!all_in_alphabet(id) || !all_in_alphabet(secret))
        return std::nullopt;
    return api_token_parts{std::string(id), std::string(secret)};
}

std::string generate_device_secret() {
    return std::string(device_secret_prefix) + random_token(credential_secret_length);
}

bool is_device_secret(std::string_view secret) {
    return secret.size() == device_secret_length && secret.starts_with(device_secret_prefix) &&
           all_in_alphabet(secret.substr(device_secret_prefix.size()));
}

// ---- digests --------------------------------------------------------------

identity_result<server_key> load_or_create_server_key(const fs::path& file) {
    ensure_sodium();
    // Twice at most: if another process links its key between our read and
    // our link, the second read finds it.
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto existing = read_server_key(file);
        if (!existing)
            return existing.error();
        if (*existing)
            return **existing;
        server_key key{};
        randombytes_buf(key.data(), key.size());
        auto created = create_server_key(file, key);
        if (!created)
            return created.error();
        if (*created)
            return key;
    }
    return file_error(EAGAIN, "cannot create the server key " + file.string() +
                                  ": it appeared and vanished while starting; is another process removing it?");
}

std::string credential_digest(const server_key& key, std::string_view credential) {
    ensure_sodium();
    unsigned char out[digest_bytes];
    crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(credential.data()), credential.size(),
                       key.data(), key.size());
    char hex[digest_bytes * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, out, sizeof out);
    return std::string(hex, digest_bytes * 2);
}

bool verify_credential(const server_key& key, std::string_view credential, std::string_view stored_digest) {
    ensure_sodium();
    if (stored_digest.size() != digest_bytes * 2)
        return false;
    unsigned char stored[digest_bytes];
    std::size_t len = 0;
    const char* end = nullptr;
    if (sodium_hex2bin(stored, sizeof stored, stored_digest.data(), stored_digest.size(), nullptr, &len, &end) != 0 ||
        len != digest_bytes || end != stored_digest.data() + stored_digest.size())
        return false;
    unsigned char actual[digest_bytes];
    crypto_generichash(actual, sizeof actual, reinterpret_cast<const unsigned char*>(credential.data()),
                       credential.size(), key.data(), key.size());
    return sodium_memcmp(actual, stored, digest_bytes) == 0;
}

// ---- MQTT user names ------------------------------------------------------

std::string_view to_string(principal_kind k) noexcept {
    switch (k) {
    case principal_kind::device: return "device";
    case principal_kind::integrator: return "integrator";
    case principal_kind::operator_: return "operator";
    }
    return "unknown";
}

std::optional<mqtt_username> parse_mqtt_username(std::string_view username) {
    const auto slash = username.find('/');
    if (slash == std::string_view::npos) {
        if (!validate_user_name(username))
            return std::nullopt;
        return mqtt_username{principal_kind::operator_, {}, {}};
    }
    const auto tenant = username.substr(0, slash);
    const auto rest = username.substr(slash + 1);
    if (!validate_tenant_id(tenant) || rest.find('/') != std::string_view::npos)
        return std::nullopt;
    if (rest == "api")
        return mqtt_username{principal_kind::integrator, std::string(tenant), {}};
    if (!validate_device_id(rest))
        return std::nullopt;
    return mqtt_username{principal_kind::device, std::string(tenant), std::string(rest)};
}

// ---- credential cache -----------------------------------------------------

struct credential_cache::shard {
    struct entry {
        std::string key; // username '\0' digest(password)
        std::string username;
        std::optional<std::string> tenant;
        std::optional<verified_identity> identity; // none: a denied verdict
        clock::time_point expires_at;
    };
    using lru = std::list<entry>; // most recently used first

    std::mutex mu;
    lru positive;
    lru negative;
    // Views into entry::key: list nodes never move, and an entry leaves the
    // index before its node is freed.
    std::unordered_map<std::string_view, lru::iterator> index;

    lru& list_of(const entry& e) { return e.identity ? positive : negative; }

    void erase(lru::iterator it) {
        index.erase(it->key);
        list_of(*it).erase(it);
    }

    template <class Pred>
    void erase_if(Pred pred) {
        for (lru* l : {&positive, &negative})
            for (auto it = l->begin(); it != l->end();) {
                auto next = std::next(it);
                if (pred(*it))
                    erase(it);
                it = next;
            }
    }
};

credential_cache::credential_cache(credential_cache_options opts) : opts_(opts) {
    ensure_sodium();
    opts_.max_entries = std::max<std::size_t>(opts_.max_entries, 1);
    opts_.max_negative_entries = std::max<std::size_t>(opts_.max_negative_entries, 1);
    // No more shards than entries, so that the bound stays near max_entries.
    opts_.shards = std::clamp<std::size_t>(opts_.shards, 1, opts_.max_entries);
    per_shard_max_ = (opts_.max_entries + opts_.shards - 1) / opts_.shards;
    per_shard_max_negative_ = (opts_.max_negative_entries + opts_.shards - 1) / opts_.shards;
    randombytes_buf(digest_key_.data(), digest_key_.size());
    shards_ = std::make_unique<shard[]>(opts_.shards);
}

credential_cache::~credential_cache() = default;

std::uint64_t credential_cache::generation() const noexcept { return generation_.load(); }

std::size_t credential_cache::shard_of(std::string_view username) const noexcept {
    return std::hash<std::string_view>{}(username) % opts_.shards;
}

std::string credential_cache::key_of(std::string_view username, std::string_view password) const {
    std::string key(username);
    key.push_back('\0');
    unsigned char digest[digest_bytes];
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(password.data()),
                       password.size(), digest_key_.data(), digest_key_.size());
    key.append(reinterpret_cast<const char*>(digest), sizeof digest);
    return key;
}

std::optional<credential_verdict> credential_cache::find(std::string_view username, std::string_view password,
                                                         clock::time_point now) {
    const std::string key = key_of(username, password);
    shard& s = shards_[shard_of(username)];
    std::lock_guard lock(s.mu);
    const auto found = s.index.find(key);
    if (found == s.index.end()) {
        misses_.fetch_add(1, std::memory_order_relaxed);
        return std::nullopt;
    }
    const auto it = found->second;
    if (it->expires_at <= now) {
        s.erase(it);
        misses_.fetch_add(1, std::memory_order_relaxed);
        return std::nullopt;
    }
    auto& l = s.list_of(*it);
    l.splice(l.begin(), l, it);
    if (it->identity) {
        hits_.fetch_add(1, std::memory_order_relaxed);
        return credential_verdict{true, *it->identity};
    }
    negative_hits_.fetch_add(1, std::memory_order_relaxed);
    return credential_verdict{false, {}};
}

void credential_cache::insert_allowed(std::string_view username, std::string_view password,
                                      verified_identity identity, std::uint64_t generation, clock::time_point now) {
    insert(username, password, std::move(identity), generation, now);
}

void credential_cache::insert_denied(std::string_view username, std::string_view password, std::uint64_t generation,
                                     clock::time_point now) {
    insert(username, password, std::nullopt, generation, now);
}

void credential_cache::insert(std::string_view username, std::string_view password,
                              std::optional<verified_identity> identity, std::uint64_t generation,
                              clock::time_point now) {
    std::string key = key_of(username, password);
    std::optional<std::string> tenant;
    if (identity)
        tenant = identity->tenant;
    else if (const auto slash = username.find('/'); slash != std::string_view::npos)
        tenant = std::string(username.substr(0, slash));
    const bool allowed = identity.has_value();
    const auto expires_at = now + (allowed ? opts_.ttl : opts_.negative_ttl);

    shard& s = shards_[shard_of(username)];
    std::lock_guard lock(s.mu);
    // Checked under the shard lock; invalidations bump the generation before
    // taking it, so either this sees the bump or the purge sees this entry.
    if (generation != generation_.load()) {
        stale_inserts_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    if (const auto found = s.index.find(key); found != s.index.end())
        s.erase(found->second);
    auto& l = allowed ? s.positive : s.negative;
    l.push_front(shard::entry{std::move(key), std::string(username), std::move(tenant), std::move(identity),
                              expires_at});
    s.index.emplace(l.front().key, l.begin());
    const std::size_t cap = allowed ? per_shard_max_ : per_shard_max_negative_;
    while (l.size() > cap) {
        s.erase(std::prev(l.end()));
        evictions_.fetch_add(1, std::memory_order_relaxed);
    }
}

void credential_cache::invalidate_principal(std::string_view username) {
    generation_.fetch_add(1);
    shard& s = shards_[shard_of(username)];
    std::lock_guard lock(s.mu);
    s.erase_if([&](const shard::entry& e) { return e.username == username; });
}

void credential_cache::invalidate_tenant(std::string_view tenant) {
    generation_.fetch_add(1);
    for (std::size_t i = 0; i < opts_.shards; ++i) {
        shard& s = shards_[i];
        std::lock_guard lock(s.mu);
        s.erase_if([&](const shard::entry& e) { return e.tenant && *e.tenant == tenant; });
    }
}

void credential_cache::clear() {
    generation_.fetch_add(1);
    for (std::size_t i = 0; i < opts_.shards; ++i) {
        shard& s = shards_[i];
        std::lock_guard lock(s.mu);
        s.index.clear();
        s.positive.clear();
        s.negative.clear();
    }
}

credential_cache::stats credential_cache::counters() const noexcept {
    constexpr auto r = std::memory_order_relaxed;
    return {hits_.load(r), negative_hits_.load(r), misses_.load(r), evictions_.load(r), stale_inserts_.load(r)};
}

std::size_t credential_cache::size() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < opts_.shards; ++i) {
        shard& s = shards_[i];
        std::lock_guard lock(s.mu);
        n += s.index.size();
    }
    return n;
}

} // namespace pulsegate::engine
