#ifndef WSTAP_CZLIB_SHIM_H
#define WSTAP_CZLIB_SHIM_H
#include <zlib.h>

/* inflateInit2 is a macro, which Swift cannot call. */
static inline int wstap_inflate_init_raw(z_streamp stream, int windowBits) {
    return inflateInit2(stream, -windowBits);
}
/* A gzip stream (header and CRC checked): windowBits 15 + 16. */
static inline int wstap_inflate_init_gzip(z_streamp stream) {
    return inflateInit2(stream, 15 + 16);
}
#endif
