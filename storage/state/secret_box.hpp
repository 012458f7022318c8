#pragma once
// Sealing of integration secrets at rest (DESIGN.md, Storage): libsodium
// secretbox (XSalsa20-Poly1305) with a random nonce per value; a sealed
// value is nonce || ciphertext. The key is the daemon's: derived from the
// data dir's secret.key, or given in PULSEGATE_SECRETS_KEY (64 hex digits)
// so that a copied data dir alone does not reveal the secrets.

#include "storage/state/error.hpp"

#include <array>
#include <string>
#include <string_view>

namespace pulsegate::storage::state {

class secret_box {
public:
    using key_type = std::array<unsigned char, 32>;
    explicit secret_box(const key_type& key) noexcept : key_(key) {}

    // A key derived from another 32-byte key (the server key) for this one
    // purpose, so one key never serves two.
    static secret_box derived_from(const key_type& root) noexcept;
    // 64 hex digits. invalid_argument naming what is wrong otherwise.
    static state_result<secret_box> from_hex(std::string_view hex);

    std::string seal(std::string_view plain) const;
    // corrupt when the value was not sealed with this key (or was altered).
    state_result<std::string> open(std::string_view sealed) const;

private:
    key_type key_;
};

} // namespace pulsegate::storage::state
