package openssl_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/relay"
	"github.com/closenotify/openssl/internal/testcert"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

var pki = mustBundle()

func mustBundle() *testcert.Bundle {
	b, err := testcert.New()
	if err != nil {
		panic(err)
	}
	return b
}

// serverCtx returns a Ctx serving pki's leaf.
func serverCtx(t testing.TB) *openssl.Ctx {
	t.Helper()
	ctx, err := openssl.NewCtx()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := openssl.LoadPrivateKeyFromPEM(pki.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.UseCertificate(cert); err != nil {
		t.Fatal(err)
	}
	if err := ctx.UsePrivateKey(key); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// clientCtx returns a Ctx that trusts pki's CA and verifies the server.
func clientCtx(t testing.TB) *openssl.Ctx {
	t.Helper()
	ctx, err := openssl.NewCtx()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pki.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if err := ctx.LoadVerifyLocations(pki.CAFile, ""); err != nil {
		t.Fatal(err)
	}
	ctx.SetVerifyMode(openssl.VerifyPeer)
	return ctx
}

// tcpPair returns two ends of a TCP connection on 127.0.0.1.
func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// relayedTCPPair is tcpPair through a relay.Relay with faults: client
// connects to the relay, which connects to server.
func relayedTCPPair(t testing.TB, faults ...relay.Fault) (client, server *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, err := relay.New(l.Addr().String(), faults...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		s, _ := l.Accept()
		accepted <- s
	}()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		c.Close()
		t.Fatal("accept behind the relay failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// goServer makes our client and a crypto/tls server on a TCP pair, limited
// to version.
func goServer(t testing.TB, version uint16) (*openssl.Conn, *tls.Conn) {
	t.Helper()
	c, s := tcpPair(t)
	ours, err := openssl.Client(c, clientCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close() })
	peer := tls.Server(s, &tls.Config{
		Certificates: []tls.Certificate{pki.TLSCert},
		MinVersion:   version, MaxVersion: version,
	})
	handshakeBoth(t, ours, peer)
	return ours, peer
}

// goClient makes our server and a crypto/tls client.
func goClient(t testing.TB, version uint16) (*openssl.Conn, *tls.Conn) {
	t.Helper()
	c, s := tcpPair(t)
	ours, err := openssl.Server(s, serverCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close() })
	peer := tls.Client(c, &tls.Config{
		RootCAs: pki.Pool, ServerName: "localhost",
		MinVersion: version, MaxVersion: version,
	})
	handshakeBoth(t, ours, peer)
	return ours, peer
}

func handshakeBoth(t testing.TB, ours *openssl.Conn, peer *tls.Conn) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- peer.Handshake() }()
	if err := ours.Handshake(); err != nil {
		t.Fatalf("our handshake: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("peer handshake: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("peer handshake timed out")
	}
}
