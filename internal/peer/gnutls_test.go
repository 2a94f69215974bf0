package peer_test

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// gnutls-serv reports no port for -p 0; GnuTLSServer finds it in /proc.
// The priority strings pin the version whatever the client allows.
func TestGnuTLSServerAddress(t *testing.T) {
	t.Parallel()
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		s := tlstest.Started(t)(peer.GnuTLSServer(t.Context(), files.Cert, files.Key, gnutlsPriority(version)...))
		inOrder(t, s.Output(), peer.GnuTLSServerListening+"0.0.0.0 port 0"+peer.GnuTLSServerListenDone)
		host, p, err := net.SplitHostPort(s.Addr())
		if err != nil || host != "127.0.0.1" || p == "0" {
			t.Fatalf("Addr() = %q, error %v", s.Addr(), err)
		}
		c := dialGo(t, s.Addr(), 0)
		if v := c.tls.ConnectionState().Version; v != version {
			t.Fatalf("negotiated %s, want %s", tls.VersionName(v), tls.VersionName(version))
		}
		c.write(t, "echo\n")
		c.expectData(t, "echo\n")
		if err := s.WaitFor(peer.GnuTLSServerAccepted+"IPv4 127.0.0.1", wait); err != nil {
			t.Fatal(err)
		}
	})
}

// **REHANDSHAKE** under TLS 1.2 sends a HelloRequest, which a crypto/tls
// client that does not renegotiate refuses.
func TestGnuTLSServerRehandshake(t *testing.T) {
	t.Parallel()
	l := gnutlsServ(t, tls.VersionTLS12)
	l.g.write(t, peer.GnuTLSServerCmdRehandshake)
	if e := receive(t, l.g.end, "HelloRequest"); !strings.Contains(string(e), "no renegotiation") {
		t.Fatalf("crypto/tls client: %s, want no renegotiation", e)
	}
	if err := l.p.WaitFor("*** Sending rehandshake request", wait); err != nil {
		t.Fatal(err)
	}
}

// A peer program that is not installed is an error naming its Debian
// package. python3 is looked up in PATH only when /usr/bin/python3 is
// absent, so it is checked only then.
func TestMissingToolNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	check := func(err error, pkg string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "install the Debian package "+pkg) {
			t.Errorf("error %v, want it to name the Debian package %s", err, pkg)
		}
	}
	_, err := peer.GnuTLSServer(t.Context(), files.Cert, files.Key)
	check(err, peer.GnuTLSPackage)
	_, err = peer.GnuTLSClient(t.Context(), "127.0.0.1:1", files.CA)
	check(err, peer.GnuTLSPackage)
	_, err = peer.Curl(t.Context(), files.CA, "https://localhost:1/")
	check(err, peer.CurlPackage)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		_, err = peer.PythonClient(t.Context(), "127.0.0.1:1", files.CA, peer.PythonOptions{})
		check(err, peer.PythonPackage)
	}
}
