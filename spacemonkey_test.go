package openssl_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// buildSpacemonkey copies testdata/spacemonkey, a program written against
// spacemonkeygo/openssl, changes nothing but its import path, and builds it
// against this checkout. It returns the binary's path.
func buildSpacemonkey(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "spacemonkey", "main.go"))
	require.NoError(t, err)
	const from, to = `"github.com/spacemonkeygo/openssl"`, `"github.com/closenotify/openssl"`
	require.Equal(t, 1, bytes.Count(src, []byte(from)), "the program imports spacemonkeygo/openssl once")
	root, err := filepath.Abs(".")
	require.NoError(t, err)
	goSum, err := os.ReadFile("go.sum")
	require.NoError(t, err)

	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"main.go": bytes.Replace(src, []byte(from), []byte(to), 1),
		"go.mod": fmt.Appendf(nil, "module spacemonkey\n\ngo 1.26\n\nrequire github.com/closenotify/openssl v0.0.0\n\nreplace github.com/closenotify/openssl => %s\n",
			root),
		"go.sum": goSum, // this module's dependencies, from the module cache
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	bin := filepath.Join(dir, "spacemonkey")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the spacemonkeygo program against this package:\n%s", out)
	return bin
}

// reverseServer is a crypto/tls server on 127.0.0.1 that answers each line
// with the line reversed, as openssl s_server -rev does, for n connections.
func reverseServer(t *testing.T, cfg *tls.Config, n int) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for range n {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				io.WriteString(c, reverse(strings.TrimSuffix(line, "\n"))+"\n")
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// TestSpacemonkeyProgram builds the spacemonkeygo program against this
// package and runs each of its modes against real peers.
func TestSpacemonkeyProgram(t *testing.T) {
	bin := buildSpacemonkey(t)
	files, err := tlstest.WriteFiles(pki, t.TempDir())
	require.NoError(t, err)

	// The client: its verify callback sees the CA then the leaf, the host
	// names are checked, and the second connection resumes the first's
	// session.
	wantClient := strings.Join([]string{
		"verify depth=1 ok=true cn=" + pki.CA.Subject.CommonName,
		"verify depth=0 ok=true cn=localhost",
		"hostname localhost: <nil>",
		"hostname wrong.example: mismatch",
		"server: localhost verify result ok: true",
		"answer: olleh",
		"answer: olleh",
		"resumed: true",
	}, "\n") + "\n"
	for _, version := range tlstest.Versions {
		t.Run("client/s_server/"+tls.VersionName(version), func(t *testing.T) {
			arg := map[uint16]string{tls.VersionTLS12: "-tls1_2", tls.VersionTLS13: "-tls1_3"}[version]
			srv := tlstest.Started(t)(peer.OpenSSLServer(t.Context(), files.Cert, files.Key, "-rev", "-naccept", "2", arg))
			requireRun(t, wantClient, bin, "-mode", "client", "-addr", srv.Addr(), "-ca", files.CA, "-host", "localhost")
		})
		t.Run("client/crypto-tls/"+tls.VersionName(version), func(t *testing.T) {
			addr := reverseServer(t, tlstest.PeerConfig(pki, version, tlstest.WeClient), 2)
			requireRun(t, wantClient, bin, "-mode", "client", "-addr", addr, "-ca", files.CA, "-host", "localhost")
		})
	}

	t.Run("sni/crypto-tls", func(t *testing.T) {
		other, err := testcert.New("other.example")
		require.NoError(t, err)
		otherFiles, err := tlstest.WriteFiles(other, t.TempDir())
		require.NoError(t, err)
		addr := tlstest.Started(t)(peer.StartServer(t.Context(), bin, "-mode", "sni", "-addr", "127.0.0.1:0",
			"-cert", files.Cert, "-key", files.Key, "-cert2", otherFiles.Cert, "-key2", otherFiles.Key,
			"-name2", "other.example")).Addr()

		roots := pki.Pool.Clone()
		roots.AddCert(other.CA)
		cache := tls.NewLRUClientSessionCache(4)
		for _, tc := range []struct {
			serverName, cn string
			resumed        bool
		}{
			{"localhost", "localhost", false},
			{"other.example", "other.example", false},
			{"localhost", "localhost", true}, // the session of the first
		} {
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: tc.serverName, ClientSessionCache: cache})
			require.NoError(t, err)
			_, err = io.WriteString(c, "hello\n")
			require.NoError(t, err)
			answer, err := bufio.NewReader(c).ReadString('\n') // the TLS 1.3 tickets come first
			require.NoError(t, err)
			require.Equal(t, "olleh\n", answer)
			state := c.ConnectionState()
			require.Equal(t, tc.cn, state.PeerCertificates[0].Subject.CommonName)
			require.Equal(t, tc.resumed, state.DidResume, tc.serverName)
			require.NoError(t, c.Close())
		}
	})

	t.Run("https/crypto-tls", func(t *testing.T) {
		addr := tlstest.Started(t)(peer.StartServer(t.Context(), bin, "-mode", "https", "-addr", "127.0.0.1:0",
			"-cert", files.Cert, "-key", files.Key)).Addr()

		transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}
		defer transport.CloseIdleConnections()
		client := &http.Client{Transport: transport, Timeout: tlstest.Timeout}
		resp, err := client.Get("https://" + addr + "/")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, "hello over TLS\n", string(body))
		require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)
	})
}

// requireRun runs the program to its end and checks its exit code and
// output.
func requireRun(t *testing.T, want, bin string, args ...string) {
	t.Helper()
	p := tlstest.Started(t)(peer.Start(t.Context(), bin, args...))
	code, err := p.Wait(tlstest.Timeout)
	require.NoError(t, err)
	require.Equal(t, 0, code, p.Output())
	require.Equal(t, want, p.Output())
}
