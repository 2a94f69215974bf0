package openssl

import "sync/atomic"

// liveCtx and liveSSL count the SSL_CTX and SSL objects this package has
// created and not yet freed, for leak checks; liveSessions counts the
// SSL_SESSION references client session caches hold.
var liveCtx, liveSSL, liveSessions atomic.Int64

// LiveObjects returns how many SSL and SSL_CTX objects made by this package
// are not yet freed. A [Conn] frees its SSL in [Conn.Close]; a [Ctx]'s
// SSL_CTX is freed after the Ctx is garbage collected. Meant for leak checks
// in tests.
func LiveObjects() (ssl, ctx int64) {
	return liveSSL.Load(), liveCtx.Load()
}
