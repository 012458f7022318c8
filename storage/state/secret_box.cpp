#include "storage/state/secret_box.hpp"

#include <sodium.h>

#include <cassert>

namespace pulsegate::storage::state {

secret_box secret_box::derived_from(const key_type& root) noexcept {
    [[maybe_unused]] const int ready = sodium_init();
    assert(ready >= 0);
    key_type k{};
    // Subkey 1 of context "pgsecret": the integration-secrets key.
    crypto_kdf_derive_from_key(k.data(), k.size(), 1, "pgsecret", root.data());
    return secret_box(k);
}

state_result<secret_box> secret_box::from_hex(std::string_view hex) {
    key_type k{};
    std::size_t len = 0;
    const char* end = nullptr;
    if (hex.size() != 64 ||
        sodium_hex2bin(k.data(), k.size(), hex.data(), hex.size(), nullptr, &len, &end) != 0 || len != k.size())
        return make_state_error(state_errc::invalid_argument,
                                "the secrets key must be 64 hexadecimal digits (32 bytes), e.g. from "
                                "`openssl rand -hex 32`");
    return secret_box(k);
}

std::string secret_box::seal(std::string_view plain) const {
    [[maybe_unused]] const int ready = sodium_init();
    assert(ready >= 0);
    std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain.size(), '\0');
    auto* nonce = reinterpret_cast<unsigned char*>(out.data());
    randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, reinterpret_cast<const unsigned char*>(plain.data()),
                          plain.size(), nonce, key_.data());
    return out;
}

state_result<std::string> secret_box::open(std::string_view sealed) const {
    constexpr std::size_t overhead = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
    if (sealed.size() < overhead)
        return make_state_error(state_errc::corrupt, "a sealed secret is too short to be one pulsegate wrote");
    std::string out(sealed.size() - overhead, '\0');
    const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
    if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data()),
                                   nonce + crypto_secretbox_NONCEBYTES, sealed.size() - crypto_secretbox_NONCEBYTES,
                                   nonce, key_.data()) != 0)
        return make_state_error(state_errc::corrupt,
                                "a sealed secret does not open with this key: the data dir's secret.key or "
                                "PULSEGATE_SECRETS_KEY is not the one it was written with");
    return out;
}

} // namespace pulsegate::storage::state
