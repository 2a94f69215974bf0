package peer_test

import (
	"crypto/tls"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/testcert"
)

// startClient starts s_client against a crypto/tls server and returns both
// once the handshake is done and s_client has printed a first line of data
// from the server, so that its output is in a known state.
func startClient(t *testing.T, version uint16, extra ...string) (*goPeer, *peer.Process) {
	t.Helper()
	addr, accept := listenGo(t, version)
	cl := peer.OpenSSLClientT(t, addr, bundle.CAFile, extra...)
	srv := accept()
	m := cl.Mark()
	srv.write(t, "hi\n")
	if err := cl.WaitForAfter(m, "hi\n", wait); err != nil {
		t.Fatal(err)
	}
	return srv, cl
}

// The peer's close_notify: s_client prints "closed", answers with
// close_notify, sends FIN and exits 0.
func TestClientPeerCloseNotify(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv, cl := startClient(t, v.version)
			srv.closeWrite(t)
			srv.expectEnd(t, endCloseNotify)
			srv.expectFIN(t, true, wait)
			expectExit(t, cl, 0)
			out := cl.Output()
			inOrder(t, out, peer.ClientConnected, peer.ClientVerifyOK, "hi\n", peer.ClientClosed)
			absent(t, out, peer.UnexpectedEOF, peer.ClientDone)
		})
	}
}

// After its FIN, s_client keeps the socket open, reading, for 500 ms while
// the peer does not close TCP; only then does it exit.
func TestClientLingeringClose(t *testing.T) {
	t.Parallel()
	srv, cl := startClient(t, tls.VersionTLS13)
	start := time.Now()
	srv.closeWrite(t)
	srv.expectEnd(t, endCloseNotify)
	srv.expectFIN(t, true, wait)
	expectExit(t, cl, 0)
	if elapsed := time.Since(start); elapsed < peer.LingerTime {
		t.Fatalf("s_client exited %v after the close_notify, want at least %v", elapsed, peer.LingerTime)
	}
}

// A TCP close without close_notify: s_client prints the unexpected-EOF
// error and exits 1.
func TestClientPeerTruncates(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv, cl := startClient(t, v.version)
			srv.closeTCP(t)
			expectExit(t, cl, 1)
			out := cl.Output()
			inOrder(t, out, "hi\n", peer.UnexpectedEOF)
			absent(t, out, peer.ClientClosed, peer.ClientDone)
		})
	}
}

// A TCP reset (the server closes with SO_LINGER 0): s_client prints
// "read:errno=104" and exits with ECONNRESET (104) as its code.
func TestClientPeerResets(t *testing.T) {
	t.Parallel()
	srv, cl := startClient(t, tls.VersionTLS13)
	if err := srv.raw.Conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	srv.closeTCP(t)
	expectExit(t, cl, int(syscall.ECONNRESET))
	out := cl.Output()
	inOrder(t, out, "hi\n", peer.ClientReadErrno+"104\n")
	absent(t, out, peer.UnexpectedEOF, peer.ClientClosed, peer.ClientDone)
}

// End of stdin and Q make s_client send close_notify and exit 0.
func TestClientQuitAndStdinEOF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		quit func(t *testing.T, p *peer.Process)
	}{
		{"stdin EOF", closeStdin},
		{"Q", func(t *testing.T, p *peer.Process) { send(t, p, peer.ClientCmdQuit) }},
	} {
		for _, v := range versions {
			t.Run(tc.name+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				srv, cl := startClient(t, v.version)
				tc.quit(t, cl)
				srv.expectEnd(t, endCloseNotify)
				srv.expectFIN(t, true, wait)
				expectExit(t, cl, 0)
				out := cl.Output()
				inOrder(t, out, "hi\n", peer.ClientDone)
				absent(t, out, peer.ClientClosed, peer.UnexpectedEOF)
			})
		}
	}
}

// Lower-case q is no command: it is sent as data.
func TestClientLowerQIsData(t *testing.T) {
	t.Parallel()
	srv, cl := startClient(t, tls.VersionTLS13)
	send(t, cl, "q\n")
	srv.expectData(t, "q\n")
	send(t, cl, peer.ClientCmdQuit)
	srv.expectEnd(t, endCloseNotify)
	expectExit(t, cl, 0)
}

// k and K send a KeyUpdate; after K the crypto/tls peer answers with its
// own, which s_client reads as a record without data.
func TestClientKeyUpdate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cmd       string
		readBlock bool
	}{
		{peer.ClientCmdKeyUpdate, false},
		{peer.ClientCmdKeyUpdateRequest, true},
	} {
		t.Run(strings.TrimSpace(tc.cmd), func(t *testing.T) {
			t.Parallel()
			srv, cl := startClient(t, tls.VersionTLS13)
			m := cl.Mark()
			send(t, cl, tc.cmd)
			if err := cl.WaitForAfter(m, peer.ClientKeyUpdate, wait); err != nil {
				t.Fatal(err)
			}
			if tc.readBlock {
				if err := cl.WaitForAfter(m, peer.ClientReadBlock, wait); err != nil {
					t.Fatal(err)
				}
			}
			// Data flows both ways under the new keys.
			send(t, cl, "ping\n")
			srv.expectData(t, "ping\n")
			srv.write(t, "pong\n")
			if err := cl.WaitForAfter(m, "pong\n", wait); err != nil {
				t.Fatal(err)
			}
			send(t, cl, peer.ClientCmdQuit)
			srv.expectEnd(t, endCloseNotify)
			expectExit(t, cl, 0)
			out := cl.Output()[m:]
			if tc.readBlock {
				inOrder(t, out, peer.ClientKeyUpdate, peer.ClientReadBlock, "pong\n", peer.ClientDone)
			} else {
				inOrder(t, out, peer.ClientKeyUpdate, "pong\n", peer.ClientDone)
				absent(t, out, peer.ClientReadBlock)
			}
		})
	}
}

// -ign_eof and -quiet: end of stdin is ignored and Q is data; s_client
// runs until the peer closes, then answers its close_notify and exits 0.
// With -quiet the output is exact: the verify callback's lines, a line
// about SNI unless -servername is given, and the data.
func TestClientIgnEOFAndQuiet(t *testing.T) {
	t.Parallel()
	verifyLines := "depth=1 O = closenotify tests, CN = closenotify test CA\nverify return:1\n" +
		"depth=0 O = closenotify tests, CN = localhost\nverify return:1\n"
	for _, tc := range []struct {
		name  string
		extra []string
		want  string // the whole output; "" means not exact
	}{
		{"-ign_eof", []string{"-ign_eof"}, ""},
		{"-quiet", []string{"-quiet"}, "Can't use SSL_get_servername\n" + verifyLines + "hi\nlater\n"},
		{"-quiet -servername", []string{"-quiet", "-servername", "localhost"}, verifyLines + "hi\nlater\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, cl := startClient(t, tls.VersionTLS13, tc.extra...)
			send(t, cl, peer.ClientCmdQuit)
			srv.expectData(t, "Q\n")
			closeStdin(t, cl)
			// Still running and reading after end of stdin.
			m := cl.Mark()
			srv.write(t, "later\n")
			if err := cl.WaitForAfter(m, "later\n", wait); err != nil {
				t.Fatal(err)
			}
			srv.closeWrite(t)
			srv.expectEnd(t, endCloseNotify)
			srv.expectFIN(t, true, wait)
			expectExit(t, cl, 0)
			out := cl.Output()
			if tc.want != "" {
				if out != tc.want {
					t.Fatalf("output %q, want %q", out, tc.want)
				}
				return
			}
			inOrder(t, out, peer.ClientVerifyOK, "hi\n", "later\n", peer.ClientClosed)
			absent(t, out, peer.ClientDone)
		})
	}
}

// -verify_return_error, which OpenSSLClient adds, makes an untrusted
// certificate fail the handshake.
func TestClientVerifyFailure(t *testing.T) {
	t.Parallel()
	other, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFiles(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		serverErr <- tls.Server(c, &tls.Config{Certificates: []tls.Certificate{bundle.TLSCert}}).Handshake()
	}()
	cl := peer.OpenSSLClientT(t, ln.Addr().String(), other.CAFile)
	expectExit(t, cl, 1)
	// s_client sends its alert before it switches to the handshake keys,
	// so crypto/tls fails with "bad record MAC" rather than the alert.
	if err := <-serverErr; err == nil || !strings.Contains(err.Error(), "bad record MAC") {
		t.Errorf("crypto/tls server: %v, want bad record MAC", err)
	}
	// The server sends its chain with the CA, which s_client sees as a
	// self-signed certificate it does not trust.
	inOrder(t, cl.Output(),
		"verify error:num=19:self-signed certificate in certificate chain",
		"certificate verify failed",
		"Verify return code: 19 (self-signed certificate in certificate chain)")
}
