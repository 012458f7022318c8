// The single translation unit that compiles Beast's bodies
// (BOOST_BEAST_SEPARATE_COMPILATION, set for webui/ and its users in
// webui/meson.build).
#include <boost/beast/src.hpp>
