package openssl_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// syncBuffer is a bytes.Buffer safe for the writes of a handshake in
// another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log's lines, sorted.
func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sortedLines(b.buf.String())
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

// withoutExporter drops OpenSSL's EXPORTER_SECRET line, which crypto/tls
// does not log.
func withoutExporter(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return strings.HasPrefix(l, "EXPORTER_SECRET ") })
}

// TestKeyLog: our key log of a connection has exactly the lines of the
// peer's own (crypto/tls's KeyLogWriter, s_server's -keylogfile), in both
// roles and TLS versions; TLS 1.3 adds OpenSSL's EXPORTER_SECRET.
func TestKeyLog(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, c tlstest.Case) {
		version, role := c.Version, c.Role
		var ours, theirs syncBuffer
		sslCtx := tlstest.CtxFor(t, role)
		sslCtx.SetKeyLogWriter(&ours)
		cfg := tlstest.PeerConfig(pki, version, role)
		cfg.KeyLogWriter = &theirs
		p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: version, Role: role}, Ctx: sslCtx, Config: cfg})
		p.SyncPeer(t)

		got := ours.lines()
		require.Equal(t, theirs.lines(), withoutExporter(got))
		if version == tls.VersionTLS12 {
			require.Len(t, got, 1)
			require.True(t, strings.HasPrefix(got[0], "CLIENT_RANDOM "), got[0])
		} else {
			require.Len(t, got, 5, "four traffic secrets and the exporter secret")
		}
	})
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		var ours syncBuffer
		_, cert, key := pemFiles(t, pki)
		logFile := filepath.Join(t.TempDir(), "keys.log")
		s := tlstest.Started(t)(peer.OpenSSLServer(t.Context(), cert, key, "-www", versionFlag(version), "-keylogfile", logFile))
		sslCtx := tlstest.ClientCtx(t)
		sslCtx.SetKeyLogWriter(&ours)
		c, err := openssl.Dial("tcp", s.Addr(), sslCtx, 0)
		require.NoError(t, err)
		get(t, c)
		c.Close()
		theirs, err := os.ReadFile(logFile)
		require.NoError(t, err)
		var logged []string
		for _, l := range sortedLines(string(theirs)) {
			if !strings.HasPrefix(l, "#") { // s_server writes a comment line first
				logged = append(logged, l)
			}
		}
		require.Equal(t, logged, ours.lines())
	})
}

// failingWriter fails or panics on every write.
type failingWriter struct{ panics bool }

var errDiskFull = errors.New("disk full")

func (w failingWriter) Write([]byte) (int, error) {
	if w.panics {
		panic("boom")
	}
	return 0, errDiskFull
}

// TestKeyLogWriterFails: a key log that cannot be written fails the
// handshake, as crypto/tls's does, with the writer's error or a panic
// message; SetKeyLogWriter(nil) stops the logging.
func TestKeyLogWriterFails(t *testing.T) {
	for _, tc := range []struct {
		w    failingWriter
		want string
	}{
		{failingWriter{}, "disk full"},
		{failingWriter{panics: true}, "key log callback panicked: boom"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			sslCtx := tlstest.ClientCtx(t)
			sslCtx.SetKeyLogWriter(tc.w)
			p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}, Ctx: sslCtx})
			ourErr, _ := p.Handshake()
			require.ErrorContains(t, handshakeError(t, ourErr), tc.want)
			if !tc.w.panics {
				require.ErrorIs(t, ourErr, errDiskFull)
			}

			sslCtx.SetKeyLogWriter(nil)
			tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeClient}, Ctx: sslCtx})
		})
	}
}
