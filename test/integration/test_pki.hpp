#pragma once
// A test PKI made by the openssl command in a temp dir, per run: two CAs
// ("ca", "other-ca"), a server certificate for 127.0.0.1 / localhost and
// client certificates. Files: NAME.pem, NAME.key.

#include "harness.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stdlib.h>

namespace pulsegate::itest {

// Runs a command that must succeed; returns its output.
inline std::string must_run(std::vector<std::string> argv) {
    const auto what = argv.front() + " " + (argv.size() > 1 ? argv[1] : "");
    auto r = run_process(std::move(argv), 30s);
    REQUIRE_MESSAGE((r.exit_code && *r.exit_code == 0), what << " failed:\n" << r.output);
    return r.output;
}

struct pki {
    std::filesystem::path dir;

    pki() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "pg-tls-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        dir = tmpl;
        make_ca("ca");
        make_ca("other-ca");
        issue("server", "ca", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost");
        issue("device", "ca", "/CN=acme\\/s1");
        issue("ghost", "ca", "/CN=acme\\/nobody");
        issue("stranger", "other-ca", "/CN=acme\\/s1");
    }
    ~pki() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }

    std::string operator()(const std::string& name) const { return (dir / name).string(); }

    void make_ca(const std::string& name) {
        must_run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", (*this)(name + ".key"), "-out", (*this)(name + ".pem"), "-days", "2", "-subj",
                  "/CN=" + name});
    }
    void issue(const std::string& name, const std::string& ca, const std::string& subject,
               const std::string& san = {}) {
        must_run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                  (*this)(name + ".key"), "-out", (*this)(name + ".csr"), "-subj", subject});
        std::vector<std::string> sign{"openssl", "x509", "-req", "-in", (*this)(name + ".csr"), "-CA",
                                      (*this)(ca + ".pem"), "-CAkey", (*this)(ca + ".key"), "-CAcreateserial",
                                      "-out", (*this)(name + ".pem"), "-days", "2"};
        if (!san.empty()) {
            std::ofstream((*this)(name + ".ext")) << san << "\n";
            sign.insert(sign.end(), {"-extfile", (*this)(name + ".ext")});
        }
        must_run(sign);
    }
};

} // namespace pulsegate::itest
