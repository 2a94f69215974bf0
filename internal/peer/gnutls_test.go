package peer_test

import (
	"crypto/tls"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/peer"
)

// gnutlsPriority returns the --priority option that pins version.
func gnutlsPriority(version uint16) []string {
	if version == tls.VersionTLS12 {
		return []string{"--priority", peer.GnuTLSPriorityTLS12}
	}
	return []string{"--priority", peer.GnuTLSPriorityTLS13}
}

// startGnuTLSServer starts gnutls-serv --echo for version on a port the
// kernel picks, and a crypto/tls client connected to it whose first line
// came back, so that the handshake is complete on both sides.
func startGnuTLSServer(t *testing.T, version uint16) (*peer.Process, *goPeer) {
	t.Helper()
	s := peer.GnuTLSServerT(t, 0, bundle.CertFile, bundle.KeyFile, gnutlsPriority(version)...)
	c := dialGo(t, s.Addr(), version)
	c.write(t, "hello\n")
	c.expectData(t, "hello\n")
	return s, c
}

// gnutls-serv reports no port for -p 0; GnuTLSServer finds it in /proc.
// An explicit port is used as given. The priority strings pin the version
// whatever the client allows.
func TestGnuTLSServerAddress(t *testing.T) {
	t.Parallel()
	port, err := peer.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		port    int
		version uint16
	}{
		{"port 0", 0, tls.VersionTLS12},
		{"explicit port", port, tls.VersionTLS13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := peer.GnuTLSServerT(t, tc.port, bundle.CertFile, bundle.KeyFile, gnutlsPriority(tc.version)...)
			inOrder(t, s.Output(), peer.GnuTLSServerListening+"0.0.0.0 port "+strconv.Itoa(tc.port)+peer.GnuTLSServerListenDone)
			host, p, err := net.SplitHostPort(s.Addr())
			if err != nil || host != "127.0.0.1" || p == "0" || (tc.port != 0 && p != strconv.Itoa(tc.port)) {
				t.Fatalf("Addr() = %q, error %v", s.Addr(), err)
			}
			raw, err := net.DialTimeout("tcp", s.Addr(), wait)
			if err != nil {
				t.Fatal(err)
			}
			c := newGoPeer(t, raw, false, &tls.Config{RootCAs: bundle.Pool, ServerName: "localhost",
				MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13})
			if v := c.tls.ConnectionState().Version; v != tc.version {
				t.Fatalf("negotiated %s, want %s", tls.VersionName(v), tls.VersionName(tc.version))
			}
			c.write(t, "echo\n")
			c.expectData(t, "echo\n")
			if err := s.WaitFor(peer.GnuTLSServerAccepted+"IPv4 127.0.0.1", wait); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A port in use: the listening line ends in "failed", not done, and
// GnuTLSServer returns an error at once.
func TestGnuTLSServerPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := peer.GnuTLSServer(t.Context(), ln.Addr().(*net.TCPAddr).Port, bundle.CertFile, bundle.KeyFile)
	if err == nil {
		p.Kill()
		t.Fatal("GnuTLSServer on a port in use succeeded")
	}
	if !strings.Contains(err.Error(), "could not listen") {
		t.Fatalf("error %v, want \"could not listen\"", err)
	}
}

// The peer's close_notify: gnutls-serv answers with close_notify and FIN,
// prints nothing, and goes on accepting.
func TestGnuTLSServerPeerCloseNotify(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			s, c := startGnuTLSServer(t, v.version)
			m := s.Mark()
			c.closeWrite(t)
			c.expectEnd(t, endCloseNotify)
			c.expectFIN(t, true, wait)
			// Still accepting; a second connection's output follows.
			c2 := dialGo(t, s.Addr(), v.version)
			c2.write(t, "again\n")
			c2.expectData(t, "again\n")
			if err := s.WaitForAfter(m, peer.GnuTLSServerAccepted, wait); err != nil {
				t.Fatal(err)
			}
			absent(t, s.Output()[m:], peer.GnuTLSServerReceiveError, "Error")
		})
	}
}

// A TCP close without close_notify: gnutls-serv reports a premature
// termination.
func TestGnuTLSServerPeerTruncates(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			s, c := startGnuTLSServer(t, v.version)
			c.closeTCP(t)
			want := peer.GnuTLSServerReceiveError + "Error: " + peer.GnuTLSPrematureEOF + "\n"
			if err := s.WaitFor(want, wait); err != nil {
				t.Fatal(err)
			}
			absent(t, s.Output(), peer.GnuTLSPullError)
		})
	}
}

// A TCP reset: gnutls-serv reports a pull error.
func TestGnuTLSServerPeerResets(t *testing.T) {
	t.Parallel()
	s, c := startGnuTLSServer(t, tls.VersionTLS13)
	if err := c.raw.Conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.closeTCP(t)
	if err := s.WaitFor(peer.GnuTLSServerReceiveError+"Error: "+peer.GnuTLSPullError+"\n", wait); err != nil {
		t.Fatal(err)
	}
	absent(t, s.Output(), peer.GnuTLSPrematureEOF)
}

// **REHANDSHAKE** under TLS 1.2 sends a HelloRequest, which a crypto/tls
// client that does not renegotiate refuses.
func TestGnuTLSServerRehandshake(t *testing.T) {
	t.Parallel()
	s, c := startGnuTLSServer(t, tls.VersionTLS12)
	c.write(t, peer.GnuTLSServerCmdRehandshake)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case e := <-c.end:
		if !strings.Contains(string(e), "no renegotiation") {
			t.Fatalf("crypto/tls client: %s, want no renegotiation", e)
		}
	case <-timer.C:
		t.Fatalf("no HelloRequest within %v", wait)
	}
	if err := s.WaitFor("*** Sending rehandshake request", wait); err != nil {
		t.Fatal(err)
	}
}

// startGnuTLSClient starts gnutls-cli against a crypto/tls server and
// returns both once the client printed a first line from the server.
func startGnuTLSClient(t *testing.T, version uint16) (*goPeer, *peer.Process) {
	t.Helper()
	addr, accept := listenGo(t, version)
	cl := peer.GnuTLSClientT(t, addr, bundle.CAFile, gnutlsPriority(version)...)
	srv := accept()
	srv.write(t, "hi\n")
	if err := cl.WaitFor(peer.GnuTLSClientSimpleMode, wait); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitFor("hi\n", wait); err != nil {
		t.Fatal(err)
	}
	send(t, cl, "ping\n")
	srv.expectData(t, "ping\n")
	return srv, cl
}

// The peer's close_notify: gnutls-cli prints that the peer closed and
// exits 0, closing TCP without close_notify of its own.
func TestGnuTLSClientPeerCloseNotify(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv, cl := startGnuTLSClient(t, v.version)
			srv.closeWrite(t)
			srv.expectEnd(t, endTruncated)
			expectExit(t, cl, 0)
			out := cl.Output()
			inOrder(t, out, peer.GnuTLSClientHandshakeDone, peer.GnuTLSClientSimpleMode, "hi\n", peer.GnuTLSClientPeerClosed)
			absent(t, out, peer.GnuTLSClientFatal, peer.GnuTLSClientAbnormal)
		})
	}
}

// A TCP close without close_notify: premature termination, exit 1.
func TestGnuTLSClientPeerTruncates(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv, cl := startGnuTLSClient(t, v.version)
			srv.closeTCP(t)
			expectExit(t, cl, 1)
			out := cl.Output()
			inOrder(t, out, "hi\n", peer.GnuTLSClientFatal+peer.GnuTLSPrematureEOF+"\n"+peer.GnuTLSClientAbnormal)
			absent(t, out, peer.GnuTLSClientPeerClosed)
		})
	}
}

// A TCP reset: pull error, exit 1.
func TestGnuTLSClientPeerResets(t *testing.T) {
	t.Parallel()
	srv, cl := startGnuTLSClient(t, tls.VersionTLS13)
	if err := srv.raw.Conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	srv.closeTCP(t)
	expectExit(t, cl, 1)
	out := cl.Output()
	inOrder(t, out, "hi\n", peer.GnuTLSClientFatal+peer.GnuTLSPullError+"\n"+peer.GnuTLSClientAbnormal)
	absent(t, out, peer.GnuTLSClientPeerClosed, peer.GnuTLSPrematureEOF)
}

// End of stdin: gnutls-cli sends close_notify and FIN and exits 0 without
// waiting for an answer (the crypto/tls server never sends one).
func TestGnuTLSClientStdinEOF(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv, cl := startGnuTLSClient(t, v.version)
			m := cl.Mark()
			closeStdin(t, cl)
			srv.expectEnd(t, endCloseNotify)
			srv.expectFIN(t, true, wait)
			expectExit(t, cl, 0)
			if out := cl.Output()[m:]; out != "" {
				t.Fatalf("output after end of stdin: %q, want none", out)
			}
		})
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
	_, err := peer.GnuTLSServer(t.Context(), 0, bundle.CertFile, bundle.KeyFile)
	check(err, peer.GnuTLSPackage)
	_, err = peer.GnuTLSClient(t.Context(), "127.0.0.1:1", bundle.CAFile)
	check(err, peer.GnuTLSPackage)
	_, err = peer.Curl(t.Context(), bundle.CAFile, "https://localhost:1/")
	check(err, peer.CurlPackage)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		_, err = peer.PythonClient(t.Context(), "127.0.0.1:1", bundle.CAFile, peer.PythonOptions{})
		check(err, peer.PythonPackage)
	}
}
