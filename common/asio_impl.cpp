// The single translation unit that compiles Asio (BOOST_ASIO_SEPARATE_COMPILATION),
// its TLS layer included.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
