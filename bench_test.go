package openssl_test

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// The benchmarks run each workload twice in the same process, once with
// this package's client and once with crypto/tls's, against the same
// crypto/tls server, so that `make bench` reports comparable figures. The
// sub-benchmarks are named impl=openssl and impl=cryptotls (and size=N
// where the size varies), so that benchstat -col /impl puts the two side
// by side with their ratio.

type clientImpl struct {
	name string
	dial func(b *testing.B, c net.Conn, sslCtx *openssl.Ctx) net.Conn // wraps a raw TCP conn
}

var clientImpls = []clientImpl{
	{"impl=openssl", func(b *testing.B, c net.Conn, sslCtx *openssl.Ctx) net.Conn {
		conn, err := openssl.Client(c, sslCtx)
		if err != nil {
			b.Fatal(err)
		}
		return conn
	}},
	{"impl=cryptotls", func(b *testing.B, c net.Conn, _ *openssl.Ctx) net.Conn {
		return tls.Client(c, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
	}},
}

// benchPair returns a client of impl (made with sslCtx when it is ours)
// connected to a crypto/tls server whose connection is passed to serve in
// its own goroutine.
func benchPair(b *testing.B, impl clientImpl, sslCtx *openssl.Ctx, serve func(*tls.Conn)) net.Conn {
	c, s := tlstest.TCPPair(b)
	srv := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(srv)
	}()
	client := impl.dial(b, c, sslCtx)
	b.Cleanup(func() {
		client.Close()
		<-done
	})
	return client
}

func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, impl := range clientImpls {
			b.Run(sizeName(size)+"/"+impl.name, func(b *testing.B) {
				conn := benchPair(b, impl, tlstest.ClientCtx(b), func(s *tls.Conn) { io.Copy(io.Discard, s) })
				buf := make([]byte, size)
				if _, err := conn.Write(buf); err != nil { // handshake
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := conn.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkRead(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, impl := range clientImpls {
			b.Run(sizeName(size)+"/"+impl.name, func(b *testing.B) {
				conn := benchPair(b, impl, tlstest.ClientCtx(b), func(s *tls.Conn) {
					buf := make([]byte, size)
					for {
						if _, err := s.Write(buf); err != nil {
							return
						}
					}
				})
				buf := make([]byte, size)
				if _, err := io.ReadFull(conn, buf); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := io.ReadFull(conn, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkPingPong64(b *testing.B) {
	for _, impl := range clientImpls {
		b.Run(impl.name, func(b *testing.B) {
			conn := benchPair(b, impl, tlstest.ClientCtx(b), func(s *tls.Conn) { io.Copy(s, s) })
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHandshake(b *testing.B) {
	for _, impl := range clientImpls {
		b.Run(impl.name, func(b *testing.B) {
			sslCtx := tlstest.ClientCtx(b)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				conn := benchPair(b, impl, sslCtx, func(s *tls.Conn) { s.Handshake() })
				if err := conn.(interface{ Handshake() error }).Handshake(); err != nil {
					b.Fatal(err)
				}
				conn.Close()
			}
		})
	}
}

// sizeName names a sub-benchmark after a buffer size: "size=1KiB".
func sizeName(n int) string {
	if n >= 1<<10 {
		return "size=" + strconv.Itoa(n>>10) + "KiB"
	}
	return "size=" + strconv.Itoa(n) + "B"
}

// BenchmarkBulkPath compares the two paths of our Conn, 16 KiB writes to
// and reads from a crypto/tls server: impl=openssl is given the
// *net.TCPConn itself (the socket-fd path), impl=openssl-generic the same
// socket inside a wrapper (the generic path: a BIO pair and the wrapper's
// Read and Write), and impl=cryptotls is crypto/tls's client.
func BenchmarkBulkPath(b *testing.B) {
	const size = 16 << 10
	generic := clientImpl{"impl=openssl-generic", func(b *testing.B, c net.Conn, sslCtx *openssl.Ctx) net.Conn {
		return clientImpls[0].dial(b, struct{ net.Conn }{c}, sslCtx)
	}}
	impls := []clientImpl{clientImpls[0], generic, clientImpls[1]}
	for _, dir := range []string{"write", "read"} {
		for _, impl := range impls {
			b.Run("dir="+dir+"/"+impl.name, func(b *testing.B) {
				serve := func(s *tls.Conn) { io.Copy(io.Discard, s) }
				if dir == "read" {
					serve = func(s *tls.Conn) {
						buf := make([]byte, size)
						for {
							if _, err := s.Write(buf); err != nil {
								return
							}
						}
					}
				}
				conn := benchPair(b, impl, tlstest.ClientCtx(b), serve)
				buf := make([]byte, size)
				step := func() error {
					if dir == "read" {
						_, err := io.ReadFull(conn, buf)
						return err
					}
					_, err := conn.Write(buf)
					return err
				}
				if err := step(); err != nil { // handshake
					b.Fatal(err)
				}
				b.SetBytes(size)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := step(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
