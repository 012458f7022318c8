#pragma once
// Server-side TLS for the MQTT TLS listener and HTTPS (asio::ssl on
// OpenSSL): TLS 1.2 and 1.3 only, forward-secret AEAD cipher suites, the
// server's certificate chain and key from PEM files, and optionally client
// certificates verified against a CA bundle.
//
// tls_source holds the current context and replaces it on reload() (SIGHUP):
// a connection takes the context current when it starts and keeps it, so a
// new certificate reaches new connections and drops none.

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/verify_context.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace pulsegate::common {

struct tls_files {
    std::string cert;      // PEM: the certificate, then its intermediates
    std::string key;       // PEM: the private key
    std::string client_ca; // PEM bundle for client certificates; "": none asked for
    bool require_client_cert = false; // with client_ca: a client without one is refused
};

// Builds a context from `files`; throws std::runtime_error naming the file
// and what is wrong with it (unreadable, not PEM, key does not match).
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const tls_files& files);

class tls_source {
public:
    explicit tls_source(tls_files files); // loads them: throws as make_server_tls_context
    std::shared_ptr<boost::asio::ssl::context> current() const;
    // Loads the same files again. On failure the current context stays and
    // the error (naming the file) is returned.
    std::optional<std::string> reload();

private:
    const tls_files files_;
    mutable std::mutex mutex_;
    std::shared_ptr<boost::asio::ssl::context> current_;
};

// The identity a verified client certificate claims: its subject's common
// name when it has the form "tenant/device", else the first subject
// alternative name (URI or DNS) of that form; "" when none does. Call after
// the handshake; `ssl` is the connection's SSL object.
std::string certificate_identity(void* ssl);

} // namespace pulsegate::common
