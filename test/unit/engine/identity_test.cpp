// engine/identity: password hashes, generated credentials and their keyed
// digests, the server key file, the validators (with their reasons), MQTT
// user names, and the credential cache (hits, expiry, invalidation, bounds,
// the generation check, many threads at once).

#include "engine/identity.hpp"

#include <doctest/doctest.h>

#include "test/temp_dir.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>

namespace fs = std::filesystem;
using namespace pulsegate::engine;

// A failed REQUIRE(result) prints the error's message.
template <class T>
struct doctest::StringMaker<boost::system::result<T, identity_error>> {
    static doctest::String convert(const boost::system::result<T, identity_error>& r) {
        return r ? "(a value)" : ("error: " + r.error().message).c_str();
    }
};
using namespace std::chrono_literals;
using pulsegate::test::temp_dir;

namespace {

bool contains(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

bool in_alphabet(std::string_view s) {
    constexpr std::string_view alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    return std::all_of(s.begin(), s.end(), [&](char c) { return alphabet.find(c) != std::string_view::npos; });
}

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out << bytes;
}

server_key key_of(unsigned char fill) {
    server_key k;
    k.fill(fill);
    return k;
}

} // namespace

// ---- passwords ------------------------------------------------------------

TEST_CASE("a password hash is argon2id, salted, and verifies only the right password") {
    const auto hash = hash_password("correct horse battery");
    CHECK(hash.starts_with("$argon2id$"));
    CHECK_FALSE(contains(hash, "correct horse"));
    CHECK(verify_password(hash, "correct horse battery"));
    CHECK_FALSE(verify_password(hash, "correct horse batterY"));
    CHECK_FALSE(verify_password(hash, ""));
    CHECK_FALSE(password_needs_rehash(hash));

    // Salted: the same password hashes differently each time.
    const auto again = hash_password("correct horse battery");
    CHECK(again != hash);
    CHECK(verify_password(again, "correct horse battery"));
}

TEST_CASE("a malformed password hash verifies nothing and asks for a rehash") {
    for (std::string_view bad : {"", "plain", "$argon2id$v=19$m=65536,t=2,p=1$garbage", "$2b$10$bcrypthashhere"}) {
        CAPTURE(bad);
        CHECK_FALSE(verify_password(bad, "plain"));
        CHECK(password_needs_rehash(bad));
    }
    CHECK_FALSE(verify_password(std::string(1000, 'x'), "x"));
}

TEST_CASE("password policy: 8 to 256 bytes, the reason gives the length, never the text") {
    CHECK(validate_password("12345678"));
    CHECK(validate_password(std::string(256, 'p')));
    auto short_pw = validate_password("hunter2");
    REQUIRE_FALSE(short_pw);
    CHECK(contains(short_pw.reason, "8 to 256 bytes"));
    CHECK(contains(short_pw.reason, "it has 7"));
    CHECK_FALSE(contains(short_pw.reason, "hunter2"));
    auto long_pw = validate_password(std::string(257, 'p'));
    REQUIRE_FALSE(long_pw);
    CHECK(contains(long_pw.reason, "it has 257"));
    CHECK_FALSE(validate_password(""));
}

// ---- generated credentials ------------------------------------------------

TEST_CASE("random tokens: the requested length, the unambiguous alphabet, never repeated") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        auto t = random_token(32);
        CHECK(t.size() == 32);
        CHECK(in_alphabet(t));
        CHECK(seen.insert(t).second);
    }
    CHECK(random_token(0).empty());
    // Every symbol shows up (the five-bit mapping covers the alphabet).
    std::set<char> symbols;
    for (const auto& t : seen)
        symbols.insert(t.begin(), t.end());
    CHECK(symbols.size() == 32);
}

TEST_CASE("API tokens: pgt_<12>_<32>, parsed back into their parts") {
    std::set<std::string> ids;
    for (int i = 0; i < 200; ++i) {
        const auto parts = generate_api_token();
        const auto text = parts.text();
        CHECK(text.size() == api_token_length);
        CHECK(text.size() == 49);
        CHECK(text.starts_with("pgt_"));
        CHECK(parts.public_id.size() == 12);
        CHECK(parts.secret.size() == 32);
        CHECK(text == "pgt_" + parts.public_id + "_" + parts.secret);
        auto parsed = parse_api_token(text);
        REQUIRE(parsed);
        CHECK(*parsed == parts);
        CHECK(ids.insert(parts.public_id).second);
    }
}

TEST_CASE("parse_api_token is strict") {
    const std::string id = "0123456789ab";
    const std::string secret = "0123456789abcdefghjkmnpqrstvwxyz";
    const std::string good = "pgt_" + id + "_" + secret;
    REQUIRE(parse_api_token(good));
    CHECK(parse_api_token(good)->public_id == id);
    CHECK(parse_api_token(good)->secret == secret);

    struct row {
        std::string token;
        const char* why;
    };
    const std::vector<row> bad = {
        {"", "empty"},
        {"pgt_", "prefix only"},
        {"pgd_" + id + "_" + secret, "device prefix"},
        {"PGT_" + id + "_" + secret, "upper-case prefix"},
        {"pgt-" + id + "_" + secret, "wrong prefix separator"},
        {"pgt_" + id + "-" + secret, "wrong separator"},
        {"pgt_" + id + secret + "0", "no separator"},
        {"pgt_" + id + "_" + secret + "0", "secret too long"},
        {"pgt_" + id + "_" + secret.substr(1), "secret too short"},
        {"pgt_" + id + "0_" + secret.substr(1), "id too long"},
        {"pgt_" + id.substr(1) + "_" + secret + "0", "id too short"},
        {"pgt_" + id + "_" + secret.substr(0, 31) + "i", "'i' is not in the alphabet"},
        {"pgt_" + id + "_" + secret.substr(0, 31) + "l", "'l' is not in the alphabet"},
        {"pgt_" + id + "_" + secret.substr(0, 31) + "o", "'o' is not in the alphabet"},
        {"pgt_" + id + "_" + secret.substr(0, 31) + "u", "'u' is not in the alphabet"},
        {"pgt_" + id + "_" + secret.substr(0, 31) + "A", "upper case"},
        {"pgt_" + id.substr(0, 11) + "_" + "_" + secret, "separator inside the id"},
        {"pgt_" + id + "_" + secret.substr(0, 31) + std::string(1, '\0'), "NUL"},
        {" " + good.substr(1), "leading space"},
        {good + " ", "trailing space"},
    };
    for (const auto& r : bad) {
        CAPTURE(r.why);
        CHECK_FALSE(parse_api_token(r.token));
    }
}

TEST_CASE("device secrets: pgd_<32>, recognised strictly") {
    const auto s = generate_device_secret();
    CHECK(s.size() == device_secret_length);
    CHECK(s.size() == 36);
    CHECK(s.starts_with("pgd_"));
    CHECK(in_alphabet(s.substr(4)));
    CHECK(is_device_secret(s));
    CHECK(generate_device_secret() != s);

    CHECK_FALSE(is_device_secret(""));
    CHECK_FALSE(is_device_secret(s.substr(4)));          // no prefix
    CHECK_FALSE(is_device_secret(s + "0"));              // too long
    CHECK_FALSE(is_device_secret(s.substr(0, 35)));      // too short
    CHECK_FALSE(is_device_secret("pgt_" + s.substr(4))); // token prefix
    CHECK_FALSE(is_device_secret(s.substr(0, 35) + "O"));
    CHECK_FALSE(is_device_secret(generate_api_token().text()));
}

// ---- digests --------------------------------------------------------------

TEST_CASE("credential digests are keyed BLAKE2b, hex, and verify in constant time") {
    const auto k1 = key_of(1);
    const auto k2 = key_of(2);
    const auto token = generate_api_token().text();
    const auto d = credential_digest(k1, token);
    CHECK(d.size() == 64);
    CHECK(std::all_of(d.begin(), d.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
    CHECK(credential_digest(k1, token) == d);  // deterministic: no salt
    CHECK(credential_digest(k2, token) != d);  // the key matters
    CHECK(credential_digest(k1, token + "x") != d);

    CHECK(verify_credential(k1, token, d));
    CHECK_FALSE(verify_credential(k2, token, d));
    CHECK_FALSE(verify_credential(k1, token.substr(0, token.size() - 1), d));
    CHECK_FALSE(verify_credential(k1, "", d));

    // Malformed stored digests verify nothing.
    CHECK_FALSE(verify_credential(k1, token, ""));
    CHECK_FALSE(verify_credential(k1, token, d.substr(0, 62)));
    CHECK_FALSE(verify_credential(k1, token, d + "00"));
    CHECK_FALSE(verify_credential(k1, token, std::string(64, 'g')));
    CHECK_FALSE(verify_credential(k1, token, "$argon2id$v=19$m=65536,t=2,p=1$xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));

    // A digest of the empty string is still a digest (but not of the token).
    CHECK(verify_credential(k1, "", credential_digest(k1, "")));
}

TEST_CASE("the server key is created once (32 bytes, 0600) and read back unchanged") {
    temp_dir dir;
    const auto file = dir.path / "secret.key";
    auto created = load_or_create_server_key(file);
    REQUIRE_MESSAGE(created, (created ? "" : created.error().message));
    CHECK(fs::file_size(file) == 32);
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(read_bytes(file) == std::string(created->begin(), created->end()));
    CHECK(*created != server_key{}); // random, not zeros

    auto again = load_or_create_server_key(file);
    REQUIRE(again);
    CHECK(*again == *created);

    // No temporary files are left behind.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path))
        ++entries;
    CHECK(entries == 1);

    // A second data dir gets another key.
    temp_dir other;
    auto third = load_or_create_server_key(other.path / "secret.key");
    REQUIRE(third);
    CHECK(*third != *created);
}

TEST_CASE("a server key file of the wrong size is refused, untouched, with a clear message") {
    temp_dir dir;
    const auto file = dir.path / "secret.key";
    for (const std::string& content : {std::string(), std::string(31, 'k'), std::string(33, 'k'), std::string(64, 'a')}) {
        CAPTURE(content.size());
        write_bytes(file, content);
        auto r = load_or_create_server_key(file);
        REQUIRE_FALSE(r);
        const auto& msg = r.error().message;
        CHECK(contains(msg, file.string()));
        CHECK(contains(msg, "is " + std::to_string(content.size()) + " bytes, expected 32"));
        CHECK(contains(msg, "Restore it from the backup"));
        CHECK(read_bytes(file) == content);
    }
}

TEST_CASE("server key errors: a directory in its place, a missing data dir") {
    temp_dir dir;
    fs::create_directory(dir.path / "secret.key");
    auto r = load_or_create_server_key(dir.path / "secret.key");
    REQUIRE_FALSE(r);
    CHECK(contains(r.error().message, "not a regular file"));

    auto missing = load_or_create_server_key(dir.path / "no-such-dir" / "secret.key");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == boost::system::errc::no_such_file_or_directory);
    CHECK(contains(missing.error().message, (dir.path / "no-such-dir" / "secret.key").string()));
    CHECK(contains(missing.error().message, "pulsegate init"));
}

TEST_CASE("concurrent first starts agree on one server key") {
    temp_dir dir;
    const auto file = dir.path / "secret.key";
    std::vector<server_key> keys(8);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (std::size_t i = 0; i < keys.size(); ++i)
        threads.emplace_back([&, i] {
            auto k = load_or_create_server_key(file);
            if (k)
                keys[i] = *k;
            else
                ++failures;
        });
    for (auto& t : threads)
        t.join();
    CHECK(failures == 0);
    for (const auto& k : keys)
        CHECK(k == keys.front());
}

// ---- validators -----------------------------------------------------------

TEST_CASE("tenant and device ids: [a-z0-9][a-z0-9_-]{0,62}") {
    for (std::string_view ok : {"a", "0", "acme", "dev-1", "dev_1", "a-", "9z_-", "abcdefghijklmnopqrstuvwxyz0123456789"}) {
        CAPTURE(ok);
        CHECK(validate_tenant_id(ok));
        CHECK(validate_device_id(ok));
    }
    CHECK(validate_tenant_id(std::string(63, 'a')));

    struct row {
        std::string id;
        const char* reason;
    };
    const std::vector<row> bad = {
        {"", "it is empty"},
        {std::string(64, 'a'), "it has 64"},
        {"-acme", "it starts with '-'"},
        {"_acme", "it starts with '_'"},
        {"Acme", "it starts with 'A'"},
        {"acMe", "'M' at position 3 is not allowed"},
        {"ac me", "a space at position 3 is not allowed"},
        {"a/b", "'/' at position 2 is not allowed"},
        {"a.b", "'.' at position 2 is not allowed"},
        {"a+", "'+' at position 2"},
        {"a#", "'#' at position 2"},
        {std::string("a\0b", 3), "byte 0x00 at position 2"},
        {"caf\xc3\xa9", "byte 0xC3 at position 4"},
    };
    for (const auto& r : bad) {
        CAPTURE(r.id);
        auto t = validate_tenant_id(r.id);
        REQUIRE_FALSE(t);
        CHECK(t.reason.starts_with("tenant id must be 1 to 63 characters"));
        CHECK(contains(t.reason, r.reason));
        auto d = validate_device_id(r.id);
        REQUIRE_FALSE(d);
        CHECK(d.reason.starts_with("device id must be"));
        CHECK(contains(d.reason, r.reason));
    }
}

TEST_CASE("device id \"api\" is reserved for the integrators' user name") {
    CHECK(validate_tenant_id("api"));
    auto r = validate_device_id("api");
    REQUIRE_FALSE(r);
    CHECK(contains(r.reason, "reserved"));
    CHECK(validate_device_id("api2"));
    CHECK(validate_device_id("apis"));
}

TEST_CASE("user names: [A-Za-z0-9._@-]{1,64}") {
    for (std::string_view ok : {"admin", "Alice", "a.b_c-d@example.com", "0", "@"})
        CHECK(validate_user_name(ok));
    CHECK(validate_user_name(std::string(64, 'u')));
    CHECK(contains(validate_user_name("").reason, "it is empty"));
    CHECK(contains(validate_user_name(std::string(65, 'u')).reason, "it has 65"));
    CHECK(contains(validate_user_name("acme/dev").reason, "'/' at position 5"));
    CHECK(contains(validate_user_name("a b").reason, "a space at position 2"));
    CHECK(contains(validate_user_name("a:b").reason, "':' at position 2"));
    CHECK(contains(validate_user_name("\xc3\xa9").reason, "byte 0xC3 at position 1"));
    CHECK(validate_user_name("x!").reason.starts_with("user name must be 1 to 64 characters"));
}

TEST_CASE("display names: 1 to 128 bytes of printable UTF-8") {
    for (std::string_view ok : {"Boiler room 2", "x", "Caf\xc3\xa9 \xe2\x82\xac 5", "\xf0\x9f\x8c\xa1 probe",
                                "tab\x7e"})
        CHECK(validate_display_name(ok));
    CHECK(validate_display_name(std::string(128, 'n')));

    struct row {
        std::string name;
        const char* reason;
    };
    const std::vector<row> bad = {
        {"", "it is empty"},
        {std::string(129, 'n'), "it has 129 bytes"},
        {"a\tb", "byte 0x09 at byte 2"},
        {"a\nb", "byte 0x0A at byte 2"},
        {"del\x7f", "byte 0x7F at byte 4"},
        {"\xc2\x85", "byte 0xC2 at byte 1"},               // U+0085, a C1 control
        {"bad \xff", "byte 0xFF at byte 5"},               // never valid in UTF-8
        {"\xc0\xaf", "byte 0xC0 at byte 1"},               // overlong '/'
        {"\xe0\x80\xaf", "byte 0xE0 at byte 1"},           // overlong, 3 bytes
        {"\xed\xa0\x80", "byte 0xED at byte 1"},           // a surrogate
        {"\xf4\x90\x80\x80", "byte 0xF4 at byte 1"},       // beyond U+10FFFF
        {"cut \xe2\x82", "byte 0xE2 at byte 5"},           // truncated
        {"cont \x82", "byte 0x82 at byte 6"},              // a lone continuation byte
    };
    for (const auto& r : bad) {
        CAPTURE(r.name);
        auto v = validate_display_name(r.name);
        REQUIRE_FALSE(v);
        CHECK(v.reason.starts_with("name must be 1 to 128 bytes of printable UTF-8"));
        CHECK(contains(v.reason, r.reason));
    }
}

TEST_CASE("labels: keys [a-z0-9_.-]{1,63}, printable values up to 256 bytes, at most 32") {
    CHECK(validate_labels({}));
    CHECK(validate_labels({{"site", "plant-7"}, {"zone.a", ""}, {"k_1-x", "Caf\xc3\xa9"}}));
    CHECK(validate_label_key(std::string(63, 'k')));
    CHECK(validate_label_value(std::string(256, 'v')));
    CHECK(validate_label_value(""));

    CHECK(contains(validate_label_key("").reason, "it is empty"));
    CHECK(contains(validate_label_key(std::string(64, 'k')).reason, "it has 64"));
    CHECK(contains(validate_label_key("Zone").reason, "label key \"Zone\""));
    CHECK(contains(validate_label_key("Zone").reason, "'Z' at position 1"));
    CHECK(contains(validate_label_key("a/b").reason, "'/' at position 2"));
    CHECK(contains(validate_label_value(std::string(257, 'v')).reason, "it has 257 bytes"));
    CHECK(contains(validate_label_value("a\x01").reason, "byte 0x01 at byte 2"));

    std::map<std::string, std::string> many;
    for (int i = 0; i < 32; ++i)
        many["k" + std::to_string(i)] = "v";
    CHECK(validate_labels(many));
    many["k32"] = "v";
    auto too_many = validate_labels(many);
    REQUIRE_FALSE(too_many);
    CHECK(contains(too_many.reason, "at most 32 labels"));
    CHECK(contains(too_many.reason, "has 33"));

    auto bad_key = validate_labels({{"ok", "v"}, {"Bad", "v"}});
    REQUIRE_FALSE(bad_key);
    CHECK(contains(bad_key.reason, "label key \"Bad\""));
    auto bad_value = validate_labels({{"site", "line\nbreak"}});
    REQUIRE_FALSE(bad_value);
    CHECK(bad_value.reason.starts_with("label \"site\": label value must be"));
}

TEST_CASE("roles, and operators have no tenant while tenant users have exactly one") {
    for (std::string_view r : {"operator_admin", "operator", "tenant_admin", "tenant_viewer"})
        CHECK(validate_role(r));
    for (std::string_view r : {"", "admin", "Operator", "tenant-admin", "operator_admin "}) {
        CAPTURE(r);
        auto v = validate_role(r);
        REQUIRE_FALSE(v);
        CHECK(contains(v.reason, "is unknown"));
        CHECK(contains(v.reason, "operator_admin, operator, tenant_admin or tenant_viewer"));
    }

    CHECK(validate_role_tenant("operator_admin", std::nullopt));
    CHECK(validate_role_tenant("operator", std::nullopt));
    CHECK(validate_role_tenant("tenant_admin", "acme"));
    CHECK(validate_role_tenant("tenant_viewer", "acme"));
    CHECK(contains(validate_role_tenant("operator", "acme").reason, "role operator takes no tenant"));
    CHECK(contains(validate_role_tenant("operator_admin", "acme").reason, "takes no tenant"));
    CHECK(contains(validate_role_tenant("tenant_viewer", std::nullopt).reason, "role tenant_viewer needs a tenant"));
    CHECK(contains(validate_role_tenant("tenant_admin", "Acme").reason, "tenant id must be"));
    CHECK(contains(validate_role_tenant("root", std::nullopt).reason, "is unknown"));
}

TEST_CASE("MQTT user names: {tenant}/{device}, {tenant}/api, or an operator's name") {
    CHECK(parse_mqtt_username("acme/dev-1") == mqtt_username{principal_kind::device, "acme", "dev-1"});
    CHECK(parse_mqtt_username("acme/api") == mqtt_username{principal_kind::integrator, "acme", ""});
    CHECK(parse_mqtt_username("admin") == mqtt_username{principal_kind::operator_, "", ""});
    CHECK(parse_mqtt_username("ops@example.com") == mqtt_username{principal_kind::operator_, "", ""});
    for (std::string_view bad : {"", "/", "acme/", "/dev-1", "Acme/dev-1", "acme/Dev", "acme/dev/1", "acme//dev",
                                 "a b", "acme/api/x", "acme/+", "acme/#"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_mqtt_username(bad));
    }
    CHECK(to_string(principal_kind::integrator) == "integrator");
}

// ---- credential cache -----------------------------------------------------

namespace {

using cache_clock = credential_cache::clock;
const cache_clock::time_point t0 = cache_clock::time_point{} + 1000h;

verified_identity device_identity(std::string tenant, std::string device) {
    return {principal_kind::device, tenant + "/" + device, tenant, device};
}

} // namespace

TEST_CASE("credential cache: miss, then the verdict for that exact password until it expires") {
    credential_cache cache({.ttl = 60s, .negative_ttl = 5s});
    const auto id = device_identity("acme", "dev-1");

    CHECK_FALSE(cache.find("acme/dev-1", "pgd_secret", t0));
    cache.insert_allowed("acme/dev-1", "pgd_secret", id, cache.generation(), t0);
    auto hit = cache.find("acme/dev-1", "pgd_secret", t0 + 59s);
    REQUIRE(hit);
    CHECK(hit->allowed);
    CHECK(hit->identity == id);

    // Another password, another user name: not this entry.
    CHECK_FALSE(cache.find("acme/dev-1", "pgd_other", t0));
    CHECK_FALSE(cache.find("acme/dev-2", "pgd_secret", t0));

    // The expiry is fixed at insert; hits do not extend it.
    CHECK_FALSE(cache.find("acme/dev-1", "pgd_secret", t0 + 60s));
    CHECK(cache.size() == 0); // the expired entry went on lookup

    const auto c = cache.counters();
    CHECK(c.hits == 1);
    CHECK(c.misses == 4);
}

TEST_CASE("credential cache: denied verdicts are kept for the short negative TTL") {
    credential_cache cache({.ttl = 60s, .negative_ttl = 5s});
    cache.insert_denied("acme/dev-1", "wrong", cache.generation(), t0);
    auto v = cache.find("acme/dev-1", "wrong", t0 + 4s);
    REQUIRE(v);
    CHECK_FALSE(v->allowed);
    CHECK_FALSE(cache.find("acme/dev-1", "wrong", t0 + 5s));
    CHECK(cache.counters().negative_hits == 1);

    // A later success replaces a denial for the same password.
    cache.insert_denied("admin", "pw", cache.generation(), t0);
    cache.insert_allowed("admin", "pw", {principal_kind::operator_, "admin", std::nullopt, ""}, cache.generation(), t0);
    auto now_ok = cache.find("admin", "pw", t0);
    REQUIRE(now_ok);
    CHECK(now_ok->allowed);
    CHECK(cache.size() == 1);
}

TEST_CASE("credential cache: invalidate_principal forgets every password of one user name") {
    credential_cache cache;
    const auto g = cache.generation();
    cache.insert_allowed("acme/dev-1", "s1", device_identity("acme", "dev-1"), g, t0);
    cache.insert_denied("acme/dev-1", "bad", g, t0);
    cache.insert_allowed("acme/dev-2", "s2", device_identity("acme", "dev-2"), g, t0);
    cache.invalidate_principal("acme/dev-1");
    CHECK_FALSE(cache.find("acme/dev-1", "s1", t0));
    CHECK_FALSE(cache.find("acme/dev-1", "bad", t0));
    CHECK(cache.find("acme/dev-2", "s2", t0));
    CHECK(cache.generation() > g);
}

TEST_CASE("credential cache: invalidate_tenant forgets the tenant's positive and negative verdicts only") {
    credential_cache cache;
    const auto g = cache.generation();
    cache.insert_allowed("acme/dev-1", "s1", device_identity("acme", "dev-1"), g, t0);
    cache.insert_allowed("acme/api", "tok", {principal_kind::integrator, "acme/api", "acme", ""}, g, t0);
    cache.insert_denied("acme/dev-9", "bad", g, t0);
    cache.insert_allowed("acme2/dev-1", "s1", device_identity("acme2", "dev-1"), g, t0);
    cache.insert_denied("acme2/dev-9", "bad", g, t0);
    cache.insert_allowed("admin", "pw", {principal_kind::operator_, "admin", std::nullopt, ""}, g, t0);
    cache.insert_denied("admin", "bad", g, t0);

    cache.invalidate_tenant("acme");
    CHECK_FALSE(cache.find("acme/dev-1", "s1", t0));
    CHECK_FALSE(cache.find("acme/api", "tok", t0));
    CHECK_FALSE(cache.find("acme/dev-9", "bad", t0));
    CHECK(cache.find("acme2/dev-1", "s1", t0));
    CHECK(cache.find("acme2/dev-9", "bad", t0));
    CHECK(cache.find("admin", "pw", t0));
    CHECK(cache.find("admin", "bad", t0));

    cache.clear();
    CHECK(cache.size() == 0);
}

TEST_CASE("credential cache: a verification that began before an invalidation cannot re-insert its verdict") {
    credential_cache cache;
    const auto before = cache.generation();
    // ... the verifier reads the old secret from the store here, then the
    // secret is rotated and the daemon invalidates ...
    cache.invalidate_principal("acme/dev-1");
    cache.insert_allowed("acme/dev-1", "old-secret", device_identity("acme", "dev-1"), before, t0);
    CHECK_FALSE(cache.find("acme/dev-1", "old-secret", t0));
    CHECK(cache.counters().stale_inserts == 1);

    cache.insert_allowed("acme/dev-1", "new-secret", device_identity("acme", "dev-1"), cache.generation(), t0);
    CHECK(cache.find("acme/dev-1", "new-secret", t0));
}

TEST_CASE("credential cache: bounded, least recently used evicted first") {
    credential_cache cache({.max_entries = 3, .max_negative_entries = 2, .shards = 1});
    const auto g = cache.generation();
    for (int i = 1; i <= 3; ++i)
        cache.insert_allowed("acme/d" + std::to_string(i), "s", device_identity("acme", "d" + std::to_string(i)), g, t0);
    CHECK(cache.size() == 3);
    CHECK(cache.find("acme/d1", "s", t0)); // d1 is now the most recently used
    cache.insert_allowed("acme/d4", "s", device_identity("acme", "d4"), g, t0);
    CHECK(cache.size() == 3);
    CHECK_FALSE(cache.find("acme/d2", "s", t0)); // the least recently used went
    CHECK(cache.find("acme/d1", "s", t0));
    CHECK(cache.find("acme/d3", "s", t0));
    CHECK(cache.find("acme/d4", "s", t0));
    CHECK(cache.counters().evictions == 1);

    // A flood of wrong passwords evicts only denied verdicts.
    for (int i = 0; i < 100; ++i)
        cache.insert_denied("acme/x" + std::to_string(i), "bad", g, t0);
    CHECK(cache.size() == 5);
    CHECK(cache.find("acme/d1", "s", t0));
    CHECK(cache.find("acme/d3", "s", t0));
    CHECK(cache.find("acme/d4", "s", t0));
    CHECK(cache.find("acme/x99", "bad", t0));
    CHECK_FALSE(cache.find("acme/x0", "bad", t0));
}

TEST_CASE("credential cache: the bound holds across shards") {
    credential_cache cache({.max_entries = 64, .max_negative_entries = 16, .shards = 8});
    const auto g = cache.generation();
    for (int i = 0; i < 1000; ++i) {
        cache.insert_allowed("t/d" + std::to_string(i), "s", device_identity("t", "d" + std::to_string(i)), g, t0);
        cache.insert_denied("t/n" + std::to_string(i), "s", g, t0);
    }
    CHECK(cache.size() <= 64 + 16);
    CHECK(cache.size() > 0);
    CHECK(cache.find("t/d999", "s", t0)); // the newest is always kept
}

TEST_CASE("credential cache: many threads find, insert and invalidate at once") {
    credential_cache cache({.max_entries = 256, .max_negative_entries = 64, .shards = 4});
    constexpr int threads_n = 6;
    constexpr int rounds = 3000;
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_n; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < rounds; ++i) {
                const int n = (i * 7 + t) % 300;
                const std::string user = "acme/d" + std::to_string(n);
                const std::string password = "s" + std::to_string(n);
                const auto now = t0 + std::chrono::milliseconds(i);
                if (auto v = cache.find(user, password, now)) {
                    // A hit must be the verdict for this very user.
                    if (!v->allowed || v->identity.username != user)
                        ++wrong;
                } else {
                    const auto g = cache.generation();
                    cache.insert_allowed(user, password, device_identity("acme", "d" + std::to_string(n)), g, now);
                }
                if (cache.find(user, "wrong", now).value_or(credential_verdict{true, {}}).allowed)
                    cache.insert_denied(user, "wrong", cache.generation(), now);
                if (i % 500 == 0)
                    cache.invalidate_principal(user);
                if (t == 0 && i % 1000 == 999)
                    cache.invalidate_tenant("acme");
            }
        });
    for (auto& th : threads)
        th.join();
    CHECK(wrong == 0);
    CHECK(cache.size() <= 256 + 64);
    const auto c = cache.counters();
    CHECK(c.hits > 0);
    CHECK(c.misses > 0);
}
