#include "common/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <stdexcept>

namespace pulsegate::common {

namespace {

namespace ssl = boost::asio::ssl;

// Forward secrecy and AEAD only (TLS 1.2); TLS 1.3's suites are all of that kind.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

[[noreturn]] void fail(const std::string& what, const std::string& file, const boost::system::error_code& ec) {
    throw std::runtime_error(what + " \"" + file + "\": " + ec.message());
}

void require_readable(const std::string& what, const std::string& file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
        throw std::runtime_error(what + " \"" + file + "\" is not a readable file");
}

bool tenant_device_form(std::string_view s) {
    const auto slash = s.find('/');
    return slash != std::string_view::npos && slash > 0 && slash + 1 < s.size() &&
           s.find('/', slash + 1) == std::string_view::npos;
}

} // namespace

std::shared_ptr<ssl::context> make_server_tls_context(const tls_files& files) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx->native_handle(), tls12_ciphers);
    SSL_CTX_set_options(ctx->native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    boost::system::error_code ec;
    require_readable("[tls] cert", files.cert);
    require_readable("[tls] key", files.key);
    ctx->use_certificate_chain_file(files.cert, ec);
    if (ec) fail("[tls] cert", files.cert, ec);
    ctx->use_private_key_file(files.key, ssl::context::pem, ec);
    if (ec) fail("[tls] key", files.key, ec);
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
        throw std::runtime_error("[tls] key \"" + files.key + "\" does not belong to the certificate in \"" +
                                 files.cert + "\"");
    if (!files.client_ca.empty()) {
        require_readable("[tls] client_ca", files.client_ca);
        ctx->load_verify_file(files.client_ca, ec);
        if (ec) fail("[tls] client_ca", files.client_ca, ec);
        // Ask for a certificate and verify it; with require, none is a refusal.
        ctx->set_verify_mode(ssl::verify_peer |
                             (files.require_client_cert ? ssl::verify_fail_if_no_peer_cert : ssl::verify_none));
        SSL_CTX_set_client_CA_list(ctx->native_handle(), SSL_load_client_CA_file(files.client_ca.c_str()));
    }
    return ctx;
}

tls_source::tls_source(tls_files files) : files_(std::move(files)), current_(make_server_tls_context(files_)) {}

std::shared_ptr<ssl::context> tls_source::current() const {
    std::lock_guard lock(mutex_);
    return current_;
}

std::optional<std::string> tls_source::reload() {
    try {
        auto fresh = make_server_tls_context(files_);
        std::lock_guard lock(mutex_);
        current_ = std::move(fresh);
        return std::nullopt;
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
}

std::string certificate_identity(void* native) {
    auto* s = static_cast<SSL*>(native);
    X509* cert = SSL_get0_peer_certificate(s);
    if (cert == nullptr || SSL_get_verify_result(s) != X509_V_OK) return {};
    if (X509_NAME* subject = X509_get_subject_name(cert)) {
        const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (at >= 0) {
            ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
            unsigned char* utf8 = nullptr;
            const int n = ASN1_STRING_to_UTF8(&utf8, data);
            std::string cn;
            if (n > 0) cn.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
            OPENSSL_free(utf8);
            if (tenant_device_form(cn)) return cn;
        }
    }
    std::string found;
    auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names) && found.empty(); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI && g->type != GEN_DNS) continue;
        const ASN1_STRING* v = g->type == GEN_URI ? g->d.uniformResourceIdentifier : g->d.dNSName;
        std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                         static_cast<std::size_t>(ASN1_STRING_length(v)));
        if (tenant_device_form(text)) found = std::move(text);
    }
    GENERAL_NAMES_free(names);
    return found;
}

} // namespace pulsegate::common
