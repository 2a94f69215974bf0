package httpssl_test

import (
	"context"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
)

// TestServerListenAndServeTLS: the root package's spacemonkeygo-style
// function serves a PEM chain file over HTTP/1.1 and HTTP/2, with
// Request.TLS and ConnFromContext, until Shutdown; it answers a plaintext
// HTTP request as net/http does.
func TestServerListenAndServeTLS(t *testing.T) {
	listening := make(chan net.Addr, 1)
	srv := &http.Server{
		Addr:    "127.0.0.1:0",
		Handler: report,
		// Serve calls it once it listens: the port, without polling.
		BaseContext: func(l net.Listener) context.Context {
			listening <- l.Addr()
			return context.Background()
		},
	}
	chainFile := filepath.Join(t.TempDir(), "chain.pem")
	require.NoError(t, os.WriteFile(chainFile, pki.ChainPEM, 0o600))
	served := make(chan error, 1)
	go func() { served <- openssl.ServerListenAndServeTLS(srv, chainFile, files.Key) }()
	var addr net.Addr
	select {
	case addr = <-listening:
	case err := <-served:
		t.Fatal(err)
	case <-time.After(wait):
		t.Fatal("not listening")
	}
	url := "https://localhost:" + portOf(t, addr) + "/"
	for _, h2 := range []bool{false, true} {
		resp, err := goClient(t, h2, nil, nil).Get(url)
		require.NoError(t, err)
		got := decodeSeen(t, resp)
		require.Equal(t, protoName(h2), resp.Proto)
		require.Len(t, resp.TLS.PeerCertificates, 2, "the chain file's leaf and CA")
		require.True(t, resp.TLS.PeerCertificates[1].Equal(pki.CA))
		require.True(t, got.HaveTLS && got.HaveConn)
		require.Equal(t, resp.TLS.CipherSuite, got.CipherSuite)
	}
	require.Equal(t, plaintextAnswer, plaintextExchange(t, addr.String(), "GET / HTTP/1.0\r\n\r\n"), "a plaintext request")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.ErrorIs(t, <-served, http.ErrServerClosed)
}

// TestListenAndServeTLSBadFiles: files that cannot serve are errors naming
// the file, before anything listens.
func TestListenAndServeTLSBadFiles(t *testing.T) {
	other, err := testcert.New()
	require.NoError(t, err)
	dir := t.TempDir()
	otherKey := filepath.Join(dir, "other-key.pem")
	require.NoError(t, os.WriteFile(otherKey, other.KeyPEM, 0o600))
	missing := filepath.Join(dir, "missing.pem")

	err = openssl.ListenAndServeTLS("127.0.0.1:0", missing, files.Key, nil)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, missing)

	err = openssl.ListenAndServeTLS("127.0.0.1:0", files.Key, files.Key, nil)
	require.ErrorContains(t, err, "no PEM CERTIFICATE block in "+files.Key)

	err = openssl.ListenAndServeTLS("127.0.0.1:0", files.Cert, otherKey, nil)
	require.ErrorContains(t, err, otherKey)
	require.ErrorContains(t, err, "key values mismatch")
}
