#pragma once
// Rewrites the "format" record of an LMDB environment's "meta" database, as
// a newer pulsegate would have written it (format-check tests).

#include <doctest/doctest.h>
#include <lmdb.h>

#include <cstdint>
#include <filesystem>

namespace pulsegate::test {

inline void set_lmdb_format(const std::filesystem::path& dir, std::uint32_t version) {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 16);
    REQUIRE(mdb_env_open(env, dir.c_str(), 0, 0640) == 0);
    MDB_txn* t = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &t) == 0);
    MDB_dbi meta = 0;
    REQUIRE(mdb_dbi_open(t, "meta", 0, &meta) == 0);
    char key[] = "format";
    MDB_val k{6, key}, v{sizeof version, &version};
    REQUIRE(mdb_put(t, meta, &k, &v, 0) == 0);
    REQUIRE(mdb_txn_commit(t) == 0);
    mdb_env_close(env);
}

} // namespace pulsegate::test
