// The single translation unit that compiles Beast's bodies
// (BOOST_BEAST_SEPARATE_COMPILATION, set for every user of common_dep in
// common/meson.build): the HTTP server (webui/) and the webhook sender
// (adapters/) share them.
#include <boost/beast/src.hpp>
