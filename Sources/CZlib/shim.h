#ifndef WSTAP_CZLIB_SHIM_H
#define WSTAP_CZLIB_SHIM_H
#include <zlib.h>

/* inflateInit2 is a macro, which Swift cannot call. */
static inline int wstap_inflate_init_raw(z_streamp stream, int windowBits) {
    return inflateInit2(stream, -windowBits);
}
#endif
