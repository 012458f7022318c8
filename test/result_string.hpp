#pragma once
// doctest output for boost::system::result: a failed CHECK(r) or
// REQUIRE(r) prints the error's message instead of failing to compile.

#include "storage/state/error.hpp"

#include <boost/system/result.hpp>

#include <doctest/doctest.h>

template <class T>
struct doctest::StringMaker<boost::system::result<T, pulsegate::storage::state::state_error>> {
    static doctest::String convert(const boost::system::result<T, pulsegate::storage::state::state_error>& r) {
        return r ? "(a value)" : ("error: " + r.error().message).c_str();
    }
};
template <class T>
struct doctest::StringMaker<boost::system::result<T>> {
    static doctest::String convert(const boost::system::result<T>& r) {
        return r ? "(a value)" : ("error: " + r.error().message()).c_str();
    }
};
