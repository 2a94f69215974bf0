package openssl

// The package-wide cgo directives.
//
// OPENSSL_API_COMPAT and OPENSSL_NO_DEPRECATED hide every API OpenSSL 3.0
// deprecated, so that using one is a compile error.
//
// -Werror is not here: a warning that a user's newer compiler or OpenSSL
// headers bring must not stop their build. make test and CI add it
// through CGO_CFLAGS.
//
// noescape is set on the four SSL operations that run on every Read and
// Write, the hot path: the shim uses the Go buffer only during the call and
// keeps no pointer to it, so the buffer need not escape to the heap (Read
// and Write allocate nothing).
//
// None of them is nocallback: each may run this package's Go callbacks
// (callback.go), and cgo aborts the program when a nocallback function
// calls back. The handshake runs the verify, server name, key log and
// new-session callbacks; a read or a write may run a TLS 1.2 renegotiation
// (the same callbacks) or, on a client, receive a TLS 1.3 ticket (the
// new-session callback); so may the read inside a shutdown that waits for
// the peer's close_notify.
//
// The generic path's two BIO pair copies (go_ossl_bio_take and
// go_ossl_bio_give) run on every Read and Write too; they are memory
// operations that run no callback, so they are noescape and nocallback.

/*
#cgo pkg-config: libssl libcrypto
#cgo CFLAGS: -Wall -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
#cgo noescape go_ossl_read
#cgo noescape go_ossl_write
#cgo noescape go_ossl_do_handshake
#cgo noescape go_ossl_shutdown
#cgo noescape go_ossl_bio_take
#cgo nocallback go_ossl_bio_take
#cgo noescape go_ossl_bio_give
#cgo nocallback go_ossl_bio_give
#include "shim.h"
*/
import "C"
