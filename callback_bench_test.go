package openssl_test

import (
	"crypto/tls"
	"io"
	"testing"

	"github.com/closenotify/openssl/internal/tlstest"
)

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// BenchmarkReadByte reads one byte per Read from records the client has
// already decrypted, so that a Read costs one cgo call and no system call:
// what cgo directives such as nocallback change shows most here.
func BenchmarkReadByte(b *testing.B) {
	for _, impl := range clientImpls {
		b.Run(impl.name, func(b *testing.B) {
			conn := benchPair(b, impl, tlstest.ClientCtx(b), func(s *tls.Conn) { io.Copy(s, zeros{}) })
			buf := make([]byte, 1)
			if _, err := conn.Read(buf); err != nil { // handshake
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
