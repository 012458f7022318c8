#pragma once
// Identity building blocks (DESIGN.md "MQTT contract" identity paragraph,
// "Web UI and REST API" auth): password hashing, generated credentials and
// their digests, the server key, validators for names and ids, and the
// credential cache of the broker's CONNECT path. No I/O except libsodium and
// the server key file; the repositories (storage/state) store what these
// functions produce.
//
// Two kinds of secret, two kinds of hash:
//   - Passwords are chosen by people, so they are weak: argon2id
//     (crypto_pwhash_str, interactive limits: about 64 MiB and a tenth of a
//     second) makes each guess against a stolen hash expensive.
//   - Device secrets, API tokens and web session ids are generated here with
//     160 bits from randombytes: guessing is hopeless, so a slow hash buys
//     nothing. They are stored as a keyed BLAKE2b digest (crypto_generichash,
//     32-byte server key): a reconnect storm of 10,000 devices costs 10,000
//     microsecond hashes, not 10,000 argon2 runs of 64 MiB each. The key
//     (secret.key in the data dir, never in the database) means a leaked
//     state.db or backup of it alone cannot even confirm a guess.
//     Consequence: the key must travel with the database (backups, restore);
//     with another key every device secret and token stops verifying.
//
// Credential formats (Crockford base32 in lower case: 0-9 a-z without i, l,
// o, u; no look-alikes, no case to get wrong, URL- and topic-safe):
//   - API token:     pgt_<public id: 12>_<secret: 32>   (49 characters)
//     The public id (60 bits) finds the row and names the token in the UI
//     and the REST API (DELETE /api/v1/tokens/{public id}); the digest covers
//     the whole token text. The prefix lets secret scanners and people
//     recognise a leaked token.
//   - Device secret: pgd_<secret: 32>                   (36 characters)
//     The MQTT password of user name {tenant}/{device}. A prefix for the
//     same reasons; it also tells a device secret from a token at a glance.
//   - random_token(n): n characters of the same alphabet, for web session
//     ids and CSRF tokens.
//
// Thread safety: every free function may be called from any thread (libsodium
// is initialised once, on first use). credential_cache: see its comment.

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace pulsegate::engine {

// ---- errors ---------------------------------------------------------------

struct identity_error {
    boost::system::error_code code; // errno-based for file errors
    std::string message;            // complete: names the file, what is wrong and what to do
};

inline std::ostream& operator<<(std::ostream& os, const identity_error& e) { return os << e.message; }

[[noreturn]] void throw_exception_from_error(const identity_error& e, const boost::source_location& loc);

template <class T>
using identity_result = boost::system::result<T, identity_error>;

// ---- validators -----------------------------------------------------------

// The outcome of a validator. Valid when `reason` is empty; otherwise the
// reason names the field, what is wrong and what is allowed ("tenant id must
// be ...; 'A' at position 1 is not allowed"), ready for a 400 answer or a CLI
// error. Reasons never echo passwords.
struct validation {
    std::string reason;

    bool ok() const noexcept { return reason.empty(); }
    explicit operator bool() const noexcept { return ok(); }
};

constexpr std::size_t min_password_bytes = 8;
constexpr std::size_t max_password_bytes = 256;
constexpr std::size_t max_labels = 32;
constexpr std::size_t max_label_value_bytes = 256;

// [a-z0-9][a-z0-9_-]{0,62}: the root of the tenant's topic tree.
validation validate_tenant_id(std::string_view id);
// The same syntax as tenant ids; "api" is reserved (user name {tenant}/api
// is the integrator's, see parse_mqtt_username).
validation validate_device_id(std::string_view id);
// [A-Za-z0-9._@-]{1,64}: no '/', so an operator's MQTT user name never looks
// like {tenant}/{device}.
validation validate_user_name(std::string_view name);
// 1..128 bytes of printable UTF-8 (no control characters): tenant, device
// and token names.
validation validate_display_name(std::string_view name);
// Password policy: 8..256 bytes; the reason gives the length, never the text.
validation validate_password(std::string_view password);
// Keys [a-z0-9_.-]{1,63}; values 0..256 bytes of printable UTF-8; at most
// 32 labels.
validation validate_label_key(std::string_view key);
validation validate_label_value(std::string_view value);
validation validate_labels(const std::map<std::string, std::string>& labels);
// operator_admin, operator, tenant_admin or tenant_viewer.
validation validate_role(std::string_view role);
// Operators (operator_admin, operator) have no tenant, tenant users
// (tenant_admin, tenant_viewer) exactly one. Checks validate_role first.
validation validate_role_tenant(std::string_view role, const std::optional<std::string>& tenant);

// ---- passwords (argon2id) -------------------------------------------------

// An encoded argon2id hash ("$argon2id$v=19$m=65536,t=2,p=1$..."), salted,
// with libsodium's interactive limits. Takes about 64 MiB and a tenth of a
// second: never call it on a broker shard. Throws std::bad_alloc if the
// memory cannot be had (the only way libsodium fails here).
std::string hash_password(std::string_view password);
// Whether `password` matches `hash` (from hash_password or any libsodium
// crypto_pwhash_str). False for a malformed hash. As slow as hash_password.
bool verify_password(std::string_view hash, std::string_view password);
// True when `hash` was made with other limits or algorithm than
// hash_password uses now: rehash at the next successful login.
bool password_needs_rehash(std::string_view hash);

// ---- generated credentials ------------------------------------------------

constexpr std::string_view api_token_prefix = "pgt_";
constexpr std::string_view device_secret_prefix = "pgd_";
constexpr std::size_t api_token_public_id_length = 12;
constexpr std::size_t credential_secret_length = 32; // 160 bits
constexpr std::size_t api_token_length =
    api_token_prefix.size() + api_token_public_id_length + 1 + credential_secret_length;
constexpr std::size_t device_secret_length = device_secret_prefix.size() + credential_secret_length;

// `length` characters of the alphabet above from randombytes (5 bits each).
std::string random_token(std::size_t length);

struct api_token_parts {
    std::string public_id; // 12 characters
    std::string secret;    // 32 characters

    // "pgt_<public_id>_<secret>": what the user is shown once and presents.
    std::string text() const;
    friend bool operator==(const api_token_parts&, const api_token_parts&) = default;
};

api_token_parts generate_api_token();
// Strict: the prefix, both lengths, the separator and the alphabet exactly
// (upper case is refused: tokens are generated, never typed from memory).
std::optional<api_token_parts> parse_api_token(std::string_view token);

// "pgd_" + 32 characters.
std::string generate_device_secret();
// Whether `secret` has the form generate_device_secret makes.
bool is_device_secret(std::string_view secret);

// ---- digests of generated credentials (keyed BLAKE2b) ---------------------

using server_key = std::array<unsigned char, 32>;

// The key of credential_digest, kept in `file` (the daemon uses
// <data_dir>/secret.key): read if present, else created with 32 random
// bytes, mode 0600, written to a temporary file, fsynced and linked into
// place (so a crash never leaves a short key, and two processes starting at
// once agree on one key). Refuses a file that is not exactly 32 bytes
// (message names the file, its size and what to do). Startup only: blocks on
// the disk.
identity_result<server_key> load_or_create_server_key(const std::filesystem::path& file);

// 64 lower-case hex characters: BLAKE2b-256 of `credential` (the whole text
// as presented: "pgt_...", "pgd_...", a session id) keyed with `key`. What
// the repositories store as token_hash / secret_hash / id_hash.
std::string credential_digest(const server_key& key, std::string_view credential);
// Recomputes the digest of `credential` and compares it with `stored_digest`
// in constant time (sodium_memcmp). False for a malformed stored digest.
bool verify_credential(const server_key& key, std::string_view credential, std::string_view stored_digest);

// ---- MQTT user names ------------------------------------------------------

enum class principal_kind {
    device,     // {tenant}/{device}, password: the device secret
    integrator, // {tenant}/api, password: an API token of that tenant
    operator_,  // a user name without '/', password: the user's password
};

std::string_view to_string(principal_kind k) noexcept;

struct mqtt_username {
    principal_kind kind = principal_kind::device;
    std::string tenant; // empty for operators
    std::string device; // kind == device only
    friend bool operator==(const mqtt_username&, const mqtt_username&) = default;
};

// Splits a CONNECT user name by DESIGN.md's identity rules; nullopt when it
// fits none of them (bad tenant or device id, bad user name, extra '/').
std::optional<mqtt_username> parse_mqtt_username(std::string_view username);

// ---- credential cache -----------------------------------------------------

// Who a CONNECT proved to be, as the broker needs it for mounting and ACLs.
struct verified_identity {
    principal_kind kind = principal_kind::device;
    std::string username;              // as presented: "acme/dev-1", "acme/api", "admin"
    std::optional<std::string> tenant; // none for operators
    std::string device;                // kind == device only
    friend bool operator==(const verified_identity&, const verified_identity&) = default;
};

struct credential_cache_options {
    std::size_t max_entries = 65536;         // positive verdicts, across all shards; > 0
    std::size_t max_negative_entries = 4096; // denied verdicts, bounded apart (see below); > 0
    std::chrono::milliseconds ttl{std::chrono::minutes(5)};
    std::chrono::milliseconds negative_ttl{std::chrono::seconds(5)};
    std::size_t shards = 16; // independent locks; > 0
};

struct credential_verdict {
    bool allowed = false;
    verified_identity identity; // when allowed
};

// Caches the outcome of verifying (user name, password) at CONNECT, so that
// a reconnect storm costs a hash-map lookup instead of a database read (and,
// for operators, an argon2 run), and repeated wrong passwords are denied
// cheaply for a short while.
//
// Keys: the user name and a BLAKE2b digest of the presented password keyed
// with a random per-process key, so the cache never holds a password nor a
// digest that could be checked offline. Values: the verdict and its expiry.
//
// Bounds: entries are sharded by user name (all entries of one name live in
// one shard, so invalidate_principal touches one lock); each shard keeps
// positive and negative verdicts in two separate LRU lists with their own
// caps, so a flood of wrong passwords or unknown names evicts only other
// negative verdicts, never a device's positive one.
//
// Stale answers: the daemon calls invalidate_principal / invalidate_tenant
// after committing a change (secret rotation, token revocation, a device,
// user or tenant disabled or removed). A verification that read the store
// before that change must not re-insert its old verdict afterwards, hence
// the generation: read generation() before reading the store and pass it to
// insert_*; an insert whose generation is older than the last invalidation
// is dropped. Changes the daemon does not see (another process editing the
// database) last at most `ttl`.
//
// Thread safety: every member may be called from any thread concurrently
// (the broker's shards share one cache). Time is passed in, never read.
class credential_cache {
public:
    using clock = std::chrono::steady_clock;

    explicit credential_cache(credential_cache_options opts = {});
    ~credential_cache();
    credential_cache(const credential_cache&) = delete;
    credential_cache& operator=(const credential_cache&) = delete;

    // The current generation, for insert_*.
    std::uint64_t generation() const noexcept;

    // The cached verdict for this exact (user name, password), or nullopt
    // (never seen, expired, evicted or invalidated): verify against the
    // store, then insert the outcome. A hit refreshes the entry's LRU
    // position, not its expiry.
    std::optional<credential_verdict> find(std::string_view username, std::string_view password,
                                           clock::time_point now);
    // Remember a successful verification until now + ttl.
    void insert_allowed(std::string_view username, std::string_view password, verified_identity identity,
                        std::uint64_t generation, clock::time_point now);
    // Remember a failed one until now + negative_ttl.
    void insert_denied(std::string_view username, std::string_view password, std::uint64_t generation,
                       clock::time_point now);

    // Forget every verdict for this user name ("acme/dev-1", "acme/api",
    // "admin"), whatever the password.
    void invalidate_principal(std::string_view username);
    // Forget every verdict of this tenant's principals (a tenant disabled or
    // removed): positive ones by their identity, negative ones by the
    // "{tenant}/" prefix of their user name.
    void invalidate_tenant(std::string_view tenant);
    void clear();

    struct stats {
        std::uint64_t hits = 0;          // allowed verdicts served
        std::uint64_t negative_hits = 0; // denied verdicts served
        std::uint64_t misses = 0;
        std::uint64_t evictions = 0;     // entries pushed out by the bounds
        std::uint64_t stale_inserts = 0; // inserts dropped by the generation check
    };
    stats counters() const noexcept;
    // Live entries (positive + negative), expired ones not yet removed included.
    std::size_t size() const;

private:
    struct shard;
    std::size_t shard_of(std::string_view username) const noexcept;
    std::string key_of(std::string_view username, std::string_view password) const;
    void insert(std::string_view username, std::string_view password, std::optional<verified_identity> identity,
                std::uint64_t generation, clock::time_point now);

    credential_cache_options opts_;
    std::size_t per_shard_max_;
    std::size_t per_shard_max_negative_;
    std::array<unsigned char, 32> digest_key_{};
    std::unique_ptr<shard[]> shards_;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<std::uint64_t> hits_{0}, negative_hits_{0}, misses_{0}, evictions_{0}, stale_inserts_{0};
};

} // namespace pulsegate::engine
