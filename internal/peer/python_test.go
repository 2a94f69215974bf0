package peer_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// roles are the two sides the Python peer plays.
var roles = []string{"python server", "python client"}

// startPython starts the Python peer in role against a crypto/tls peer
// and returns both once a line has gone each way.
func startPython(t *testing.T, role string, version uint16, opts peer.PythonOptions) (*goPeer, *peer.Process) {
	t.Helper()
	opts.Version = version
	var g *goPeer
	var p *peer.Process
	if role == "python server" {
		p = tlstest.Started(t)(peer.PythonServer(t.Context(), files.Cert, files.Key, opts))
		g = dialGo(t, p.Addr(), version)
	} else {
		addr, accept := listenGo(t, version)
		p = tlstest.Started(t)(peer.PythonClient(t.Context(), addr, files.CA, opts))
		g = accept()
	}
	if err := p.WaitFor(peer.PythonConnected+tls.VersionName(version)[:3]+"v"+tls.VersionName(version)[4:]+"\n", wait); err != nil {
		t.Fatal(err)
	}
	g.write(t, "hello")
	pyReply(t, p, peer.PythonRecv(100), peer.PythonDataLine([]byte("hello")))
	pyReply(t, p, peer.PythonSend([]byte("ping")), peer.PythonSent+"4\n")
	g.expectData(t, "ping")
	return g, p
}

// pyReply sends cmd to the Python peer and checks that its next output is
// exactly want.
func pyReply(t *testing.T, p *peer.Process, cmd, want string) {
	t.Helper()
	m := p.Mark()
	send(t, p, cmd)
	if err := p.WaitForAfter(m, want, wait); err != nil {
		t.Fatal(err)
	}
	if got := p.Output()[m:]; got != want {
		t.Fatalf("after %q: output %q, want %q", cmd, got, want)
	}
}

// pyError sends cmd and checks that the reply is PythonError with the
// exception class, and that its text contains each of texts.
func pyError(t *testing.T, p *peer.Process, cmd, class string, texts ...string) {
	t.Helper()
	m := p.Mark()
	send(t, p, cmd)
	prefix := peer.PythonError + class + ": "
	if err := p.WaitForAfter(m, "\n", wait); err != nil {
		t.Fatal(err)
	}
	line := p.Output()[m:]
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("after %q: output %q, want %q...", cmd, line, prefix)
	}
	for _, s := range texts {
		if !strings.Contains(line, s) {
			t.Fatalf("after %q: output %q lacks %q", cmd, line, s)
		}
	}
}

// The server reports the port the kernel chose.
func TestPythonServerAddress(t *testing.T) {
	t.Parallel()
	p := tlstest.Started(t)(peer.PythonServer(t.Context(), files.Cert, files.Key, peer.PythonOptions{}))
	host, port, err := net.SplitHostPort(p.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q, error %v", p.Addr(), err)
	}
	inOrder(t, p.Output(), peer.PythonReady+port+"\n")
}

// The peer's close_notify: recv returns b"" with either setting of
// suppress_ragged_eofs, and again on a second recv; Python sends nothing
// until unwrap, which sends close_notify and returns at once.
func TestPythonPeerCloseNotify(t *testing.T) {
	t.Parallel()
	for _, role := range roles {
		for _, version := range tlstest.Versions {
			for _, suppress := range []bool{false, true} {
				name := role + "/" + tls.VersionName(version)
				if suppress {
					name += "/suppress"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					g, p := startPython(t, role, version, peer.PythonOptions{SuppressRaggedEOFs: suppress})
					g.closeWrite(t)
					pyReply(t, p, peer.PythonRecv(100), peer.PythonEOF)
					pyReply(t, p, peer.PythonRecv(100), peer.PythonEOF)
					select {
					case e := <-g.end:
						t.Fatalf("crypto/tls peer's reading ended (%s) before unwrap", e)
					default:
					}
					pyReply(t, p, peer.PythonCmdUnwrap, peer.PythonUnwrapped)
					g.expectEnd(t, endCloseNotify)
					// The TCP connection is still open: Python's FIN
					// comes with end of stdin.
					g.expectFIN(t, false, 100*time.Millisecond)
					closeStdin(t, p)
					g.expectFIN(t, true, wait)
					expectExit(t, p, 0)
				})
			}
		}
	}
}

// truncationClass returns the exception class p's Python raises for a TCP
// EOF without close_notify.
func truncationClass(t *testing.T, p *peer.Process) string {
	t.Helper()
	version, err := peer.PythonVersion(p, wait)
	if err != nil {
		t.Fatal(err)
	}
	return peer.PythonTruncationClass(version)
}

// A TCP close without close_notify: the version's exception naming
// OpenSSL's unexpected-EOF reason; b"" with suppress_ragged_eofs if that
// is SSLEOFError; b"" with OP_IGNORE_UNEXPECTED_EOF.
func TestPythonPeerTruncates(t *testing.T) {
	t.Parallel()
	for _, role := range roles {
		for _, version := range tlstest.Versions {
			for _, tc := range []struct {
				name string
				opts peer.PythonOptions
			}{
				{"", peer.PythonOptions{}},
				{"/suppress", peer.PythonOptions{SuppressRaggedEOFs: true}},
				{"/ignore", peer.PythonOptions{IgnoreUnexpectedEOF: true}},
			} {
				t.Run(role+"/"+tls.VersionName(version)+tc.name, func(t *testing.T) {
					t.Parallel()
					g, p := startPython(t, role, version, tc.opts)
					class := truncationClass(t, p)
					g.closeTCP(t)
					switch {
					case tc.opts.IgnoreUnexpectedEOF,
						tc.opts.SuppressRaggedEOFs && class == peer.PythonSSLEOFError:
						pyReply(t, p, peer.PythonRecv(100), peer.PythonEOF)
					default:
						pyError(t, p, peer.PythonRecv(100), class, peer.PythonUnexpectedEOF)
					}
				})
			}
		}
	}
}

// The classes by version: CPython fixed the mapping in 3.10.11, 3.11.3
// and 3.12.0.
func TestPythonTruncationClass(t *testing.T) {
	for version, want := range map[string]string{
		"3.9.18": peer.PythonSSLError, "3.10.10": peer.PythonSSLError, "3.10.11": peer.PythonSSLEOFError,
		"3.11.2": peer.PythonSSLError, "3.11.3": peer.PythonSSLEOFError, "3.12.0": peer.PythonSSLEOFError,
		"3.13.5": peer.PythonSSLEOFError,
	} {
		if got := peer.PythonTruncationClass(version); got != want {
			t.Errorf("PythonTruncationClass(%q) = %q, want %q", version, got, want)
		}
	}
}

// A TCP reset: SSLEOFError too, without OpenSSL's reason, or b"" with
// suppress_ragged_eofs.
func TestPythonPeerResets(t *testing.T) {
	t.Parallel()
	for _, role := range roles {
		for _, suppress := range []bool{false, true} {
			name := role
			if suppress {
				name += "/suppress"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				g, p := startPython(t, role, tls.VersionTLS13, peer.PythonOptions{SuppressRaggedEOFs: suppress})
				g.reset(t)
				if suppress {
					pyReply(t, p, peer.PythonRecv(100), peer.PythonEOF)
					return
				}
				m := p.Mark()
				pyError(t, p, peer.PythonRecv(100), peer.PythonSSLEOFError, peer.PythonEOFViolation)
				absent(t, p.Output()[m:], "UNEXPECTED_EOF")
			})
		}
	}
}

// unwrap first: it sends close_notify and returns once the peer answers;
// it times out if the peer does neither answer nor close, and raises the
// exception of a truncation if the peer closes TCP without answering.
func TestPythonUnwrap(t *testing.T) {
	t.Parallel()
	for _, role := range roles {
		for _, version := range tlstest.Versions {
			name := role + "/" + tls.VersionName(version)
			t.Run(name+"/answered", func(t *testing.T) {
				t.Parallel()
				g, p := startPython(t, role, version, peer.PythonOptions{})
				m := p.Mark()
				send(t, p, peer.PythonCmdUnwrap)
				g.expectEnd(t, endCloseNotify)
				g.closeWrite(t)
				if err := p.WaitForAfter(m, peer.PythonUnwrapped, wait); err != nil {
					t.Fatal(err)
				}
				// Plain TCP from now on: the peer's FIN is EOF.
				g.closeTCP(t)
				pyReply(t, p, peer.PythonRecv(100), peer.PythonEOF)
			})
			t.Run(name+"/never answered", func(t *testing.T) {
				t.Parallel()
				const timeout = 500 * time.Millisecond
				g, p := startPython(t, role, version, peer.PythonOptions{Timeout: timeout})
				start := time.Now()
				pyError(t, p, peer.PythonCmdUnwrap, peer.PythonTimeoutError, "The read operation timed out")
				if elapsed := time.Since(start); elapsed < timeout {
					t.Fatalf("unwrap failed after %v, before the timeout %v", elapsed, timeout)
				}
				g.expectEnd(t, endCloseNotify)
			})
			t.Run(name+"/FIN", func(t *testing.T) {
				t.Parallel()
				g, p := startPython(t, role, version, peer.PythonOptions{})
				class := truncationClass(t, p)
				m := p.Mark()
				send(t, p, peer.PythonCmdUnwrap)
				g.expectEnd(t, endCloseNotify)
				g.closeTCP(t)
				if err := p.WaitForAfter(m, "\n", wait); err != nil {
					t.Fatal(err)
				}
				line := p.Output()[m:]
				if !strings.HasPrefix(line, peer.PythonError+class+": ") || !strings.Contains(line, peer.PythonUnexpectedEOF) {
					t.Fatalf("unwrap: %q, want %s with %q", line, class, peer.PythonUnexpectedEOF)
				}
			})
		}
	}
}

// close and rawclose send no close_notify; reset sends RST.
func TestPythonClose(t *testing.T) {
	t.Parallel()
	for _, role := range roles {
		for _, tc := range []struct {
			cmd  string
			want ending
		}{
			{peer.PythonCmdClose, endTruncated},
			{peer.PythonCmdRawClose, endTruncated},
			{peer.PythonCmdReset, "error: read tcp"},
		} {
			t.Run(role+"/"+strings.TrimSpace(tc.cmd), func(t *testing.T) {
				t.Parallel()
				g, p := startPython(t, role, tls.VersionTLS13, peer.PythonOptions{})
				pyReply(t, p, tc.cmd, peer.PythonClosed)
				if tc.want == endTruncated {
					g.expectEnd(t, endTruncated)
					return
				}
				if e := receive(t, g.end, "reset"); !strings.HasPrefix(string(e), string(tc.want)) || !strings.HasSuffix(string(e), "connection reset by peer") {
					t.Fatalf("crypto/tls peer: %s, want a reset", e)
				}
			})
		}
	}
}

// recvall reads to the end.
func TestPythonRecvAll(t *testing.T) {
	t.Parallel()
	g, p := startPython(t, "python server", tls.VersionTLS13, peer.PythonOptions{})
	g.write(t, "abc")
	g.closeWrite(t)
	pyReply(t, p, peer.PythonCmdRecvAll, peer.PythonDataLine([]byte("abc"))+peer.PythonEOF)
}

// A certificate that does not verify: the client prints the exception
// and exits 1.
func TestPythonClientVerifyFailure(t *testing.T) {
	t.Parallel()
	s := tlstest.Started(t)(peer.PythonServer(t.Context(), files.Cert, files.Key, peer.PythonOptions{}))
	c := tlstest.Started(t)(peer.PythonClient(t.Context(), s.Addr(), untrustedCA(t), peer.PythonOptions{}))
	expectExit(t, c, 1)
	inOrder(t, c.Output(), peer.PythonVersionLine, peer.PythonError+"SSLCertVerificationError: ", "certificate verify failed")
	absent(t, c.Output(), peer.PythonConnected)
}
