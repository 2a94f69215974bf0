package openssl

/*
#include "shim.h"
*/
import "C"

import (
	"io"
	"sync"
)

// keyLogMu serialises key log writes of every Ctx, as crypto/tls's
// writerMutex does: several Ctxs often share one file.
var keyLogMu sync.Mutex

type keyLogger struct {
	w io.Writer // constant
}

func (k *keyLogger) write(line string) error {
	keyLogMu.Lock()
	defer keyLogMu.Unlock()
	_, err := io.WriteString(k.w, line+"\n")
	return err
}

// SetKeyLogWriter makes connections write their TLS secrets to w in the
// NSS key log format, one line each (CLIENT_RANDOM for TLS 1.2,
// CLIENT_HANDSHAKE_TRAFFIC_SECRET and the others for TLS 1.3), as
// crypto/tls's Config.KeyLogWriter does, for Wireshark and the like. It
// weakens the security of every connection: use it only for debugging.
// Writes are serialised; an error or panic of w fails the handshake during
// which it happened. nil stops the logging (corresponds to
// SSL_CTX_set_keylog_callback).
func (c *Ctx) SetKeyLogWriter(w io.Writer) {
	setHook(c, &c.hooks.keyLog, ptrOrNil(keyLogger{w: w}, w == nil), func(sslCtx *C.SSL_CTX) {
		C.go_ossl_ctx_set_keylog_hook(sslCtx)
	})
}
