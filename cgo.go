package openssl

// The package-wide cgo directives.
//
// OPENSSL_API_COMPAT and OPENSSL_NO_DEPRECATED hide every API OpenSSL 3.0
// deprecated, so that using one is a compile error.
//
// noescape and nocallback are set on the four SSL operations that run on
// every Read and Write, the hot path, and on the two BIO pair copies that
// the generic path adds to it. noescape: the shim uses the Go buffer
// only during the call and keeps no pointer to it, so the buffer need not
// escape to the heap (Read and Write allocate nothing). nocallback: these
// calls never re-enter Go, so cgo can skip preparing for it. A C function
// during which OpenSSL may run one of this package's Go callbacks must not
// be listed here: cgo panics if a nocallback function calls back.

/*
#cgo pkg-config: libssl libcrypto
#cgo CFLAGS: -Wall -Werror -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
#cgo noescape go_ossl_read
#cgo nocallback go_ossl_read
#cgo noescape go_ossl_write
#cgo nocallback go_ossl_write
#cgo noescape go_ossl_do_handshake
#cgo nocallback go_ossl_do_handshake
#cgo noescape go_ossl_shutdown
#cgo nocallback go_ossl_shutdown
#cgo noescape go_ossl_bio_take
#cgo nocallback go_ossl_bio_take
#cgo noescape go_ossl_bio_give
#cgo nocallback go_ossl_bio_give
#include "shim.h"
*/
import "C"
