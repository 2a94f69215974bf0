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

// Lower-case q is no command of s_client: it is sent as data.
func TestClientLowerQIsData(t *testing.T) {
	t.Parallel()
	l := sClient(t, tls.VersionTLS13)
	l.fromPeer(t, "q\n")
	send(t, l.p, peer.ClientCmdQuit)
	l.g.expectEnd(t, endCloseNotify)
	expectExit(t, l.p, 0)
}

// k and K send a KeyUpdate; after K the crypto/tls peer answers with its
// own, which the program reads as a record without data. Data flows both
// ways under the new keys, and the program closes cleanly.
func TestKeyUpdate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prog                             program
		name                             string
		cmd, updated, readBlock, closing string
		close                            func(*testing.T, link)
	}{
		{sClient, "s_client/k", peer.ClientCmdKeyUpdate, peer.ClientKeyUpdate, "", peer.ClientDone, command(peer.ClientCmdQuit)},
		{sClient, "s_client/K", peer.ClientCmdKeyUpdateRequest, peer.ClientKeyUpdate, peer.ClientReadBlock, peer.ClientDone, command(peer.ClientCmdQuit)},
		{sServer, "s_server/k", peer.ServerCmdKeyUpdate, peer.ServerKeyUpdated, "", peer.ServerCloseNotifyReceived, closeNotify},
		{sServer, "s_server/K", peer.ServerCmdKeyUpdateRequest, peer.ServerKeyUpdated, peer.ServerReadBlock, peer.ServerCloseNotifyReceived, closeNotify},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := tc.prog(t, tls.VersionTLS13)
			m := l.p.Mark()
			send(t, l.p, tc.cmd)
			want := []string{tc.updated}
			if tc.readBlock != "" {
				want = append(want, tc.readBlock)
			}
			for _, w := range want {
				if err := l.p.WaitForAfter(m, w, wait); err != nil {
					t.Fatal(err)
				}
			}
			l.fromPeer(t, "ping\n")
			l.toPeer(t, "pong\n")
			tc.close(t, l)
			l.g.expectEnd(t, endCloseNotify)
			expectExit(t, l.p, 0)
			out := l.p.Output()[m:]
			inOrder(t, out, append(want, "pong\n", tc.closing)...)
			if tc.readBlock == "" {
				absent(t, out, peer.ClientReadBlock, peer.ServerReadBlock)
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
			l := sClient(t, tls.VersionTLS13, tc.extra...)
			l.fromPeer(t, peer.ClientCmdQuit)
			closeStdin(t, l.p)
			// Still running and reading after end of stdin.
			l.toPeer(t, "later\n")
			l.g.closeWrite(t)
			l.g.expectEnd(t, endCloseNotify)
			l.g.expectFIN(t, true, wait)
			expectExit(t, l.p, 0)
			out := l.p.Output()
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
	ln, err := tlstest.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := tlstest.Go(func() error {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		return tls.Server(c, tlstest.PeerConfig(pki, 0, tlstest.WeClient)).Handshake()
	})
	cl := tlstest.Started(t)(peer.OpenSSLClient(t.Context(), ln.Addr().String(), untrustedCA(t)))
	expectExit(t, cl, 1)
	// s_client sends its alert before it switches to the handshake keys,
	// so crypto/tls fails with "bad record MAC" rather than the alert.
	if err := tlstest.Result(t, serverErr, "crypto/tls handshake"); err == nil || !strings.Contains(err.Error(), "bad record MAC") {
		t.Errorf("crypto/tls server: %v, want bad record MAC", err)
	}
	// The server sends its chain with the CA, which s_client sees as a
	// self-signed certificate it does not trust.
	inOrder(t, cl.Output(),
		"verify error:num=19:self-signed certificate in certificate chain",
		"certificate verify failed",
		"Verify return code: 19 (self-signed certificate in certificate chain)")
}

// s_server reports the port the kernel chose, and fails to start without
// its certificate.
func TestServerAddress(t *testing.T) {
	t.Parallel()
	t.Run("port 0", func(t *testing.T) {
		l := sServer(t, tls.VersionTLS13)
		s := l.p
		line, _, _ := strings.Cut(s.Output()[strings.Index(s.Output(), peer.ServerAccept):], "\n")
		if line != peer.ServerAccept+" "+s.Addr() || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
			t.Fatalf("Addr %q, ACCEPT line %q", s.Addr(), line)
		}
	})
	t.Run("bad certificate file", func(t *testing.T) {
		p, err := peer.OpenSSLServer(t.Context(), files.Cert+".missing", files.Key)
		if err == nil {
			p.Kill()
			t.Fatal("OpenSSLServer with a missing certificate succeeded")
		}
	})
}

// -naccept 2 in extra overrides the default -naccept 1.
func TestServerNacceptOverride(t *testing.T) {
	t.Parallel()
	l := sServer(t, tls.VersionTLS13, "-naccept", "2")
	for i := range 2 {
		if i == 1 {
			l.g = dialGo(t, l.p.Addr(), tls.VersionTLS13)
			l.toPeer(t, "second\n")
		}
		m := l.p.Mark()
		l.g.closeWrite(t)
		l.g.expectEnd(t, endCloseNotify)
		if err := l.p.WaitForAfter(m, peer.ServerConnectionClosed, wait); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			select {
			case <-l.p.Exited():
				t.Fatal("s_server -naccept 2 exited after one connection")
			default:
			}
		}
	}
	expectExit(t, l.p, 0)
	if n := strings.Count(l.p.Output(), peer.ServerCloseNotifyReceived); n != 2 {
		t.Fatalf("%d close_notify messages, want 2; output:\n%s", n, l.p.Output())
	}
}

// q closes TCP without close_notify, prints what a close_notify would,
// and leaves s_server accepting.
func TestServerCommandClose(t *testing.T) {
	t.Parallel()
	l := sServer(t, tls.VersionTLS13, "-naccept", "2")
	send(t, l.p, peer.ServerCmdClose)
	l.g.expectEnd(t, endTruncated)
	if err := l.p.WaitFor(peer.ServerCloseNotifyReceived, wait); err != nil {
		t.Fatal(err)
	}
	absent(t, l.p.Output(), peer.ServerAcceptSocketClosed)

	// Still listening: a second connection works and ends the server.
	c2 := link{dialGo(t, l.p.Addr(), tls.VersionTLS13), l.p}
	c2.toPeer(t, "second\n")
	c2.g.closeWrite(t)
	c2.g.expectEnd(t, endCloseNotify)
	expectExit(t, l.p, 0)
}

// -quiet: only the application data is printed; close_notify is answered;
// a truncation still prints OpenSSL's error line. OpenSSLServer finds the
// port in /proc.
func TestServerQuiet(t *testing.T) {
	t.Parallel()
	t.Run("peer close_notify", func(t *testing.T) {
		l := sServer(t, tls.VersionTLS13, "-quiet")
		l.g.closeWrite(t)
		l.g.expectEnd(t, endCloseNotify)
		l.g.expectFIN(t, true, wait)
		expectExit(t, l.p, 0)
		if out := l.p.Output(); out != "hello\n" {
			t.Fatalf("output %q, want only the data", out)
		}
	})
	t.Run("peer truncates", func(t *testing.T) {
		l := sServer(t, tls.VersionTLS13, "-quiet")
		l.g.closeTCP(t)
		expectExit(t, l.p, 0)
		out := l.p.Output()
		inOrder(t, out, "hello\n", peer.UnexpectedEOF)
		absent(t, out, peer.ServerError, peer.ServerDone)
		if n := strings.Count(out, "\n"); n != 2 {
			t.Fatalf("output has %d lines, want the data and one error line:\n%s", n, out)
		}
	})
	t.Run("stdin commands are data, stdin EOF sends close_notify", func(t *testing.T) {
		l := sServer(t, tls.VersionTLS13, "-quiet")
		l.fromPeer(t, peer.ServerCmdClose+peer.ServerCmdQuit)
		closeStdin(t, l.p)
		l.g.expectEnd(t, endCloseNotify)
		l.g.expectFIN(t, true, wait)
		expectExit(t, l.p, 0)
		if out := l.p.Output(); out != "hello\n" {
			t.Fatalf("output %q, want only the data", out)
		}
	})
}

// -rev echoes lines reversed; CLOSE makes it send close_notify and then
// wait for the peer's, or for its FIN, before it closes TCP.
func TestServerRev(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(*goPeer, *testing.T)
	}{
		{"peer close_notify", (*goPeer).closeWrite},
		{"peer FIN", func(c *goPeer, t *testing.T) {
			if err := c.raw.Conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tlstest.Started(t)(peer.OpenSSLServer(t.Context(), files.Cert, files.Key, "-rev"))
			c := dialGo(t, s.Addr(), tls.VersionTLS13)
			c.write(t, "abc\n")
			c.expectData(t, "cba\n")
			c.write(t, "CLOSE\n")
			c.expectEnd(t, endCloseNotify)
			c.expectFIN(t, false, quietWindow)
			select {
			case <-s.Exited():
				t.Fatal("s_server -rev exited before the peer's close_notify")
			default:
			}
			tc.end(c, t)
			c.expectFIN(t, true, wait)
			expectExit(t, s, 0)
			inOrder(t, s.Output(), peer.ServerAccept, peer.RevConnectionEstablished, peer.ServerConnectionClosed)
		})
	}
}

// -rev -ign_eof: CLOSE is no command, just a line to reverse.
func TestServerRevIgnEOF(t *testing.T) {
	t.Parallel()
	s := tlstest.Started(t)(peer.OpenSSLServer(t.Context(), files.Cert, files.Key, "-rev", "-ign_eof"))
	c := dialGo(t, s.Addr(), tls.VersionTLS13)
	c.write(t, "CLOSE\n")
	c.expectData(t, "ESOLC\n")
	c.closeWrite(t)
	c.expectEnd(t, endCloseNotify)
	c.expectFIN(t, true, wait)
	expectExit(t, s, 0)
}

// -www answers GET / with a status page, sends close_notify, and waits for
// the peer's before it closes TCP.
func TestServerWWW(t *testing.T) {
	t.Parallel()
	s := tlstest.Started(t)(peer.OpenSSLServer(t.Context(), files.Cert, files.Key, "-www"))
	c := dialGo(t, s.Addr(), tls.VersionTLS13)
	c.write(t, "GET / HTTP/1.0\r\n\r\n")
	page := c.expectDataPrefix(t, "HTTP/1.0 200 ok\r\nContent-type: text/html\r\n\r\n")
	if !strings.Contains(page, "s_server -accept 127.0.0.1:0") {
		t.Errorf("status page does not show the command line:\n%s", page)
	}
	c.expectEnd(t, endCloseNotify)
	c.expectFIN(t, false, quietWindow)
	c.closeWrite(t)
	c.expectFIN(t, true, wait)
	expectExit(t, s, 0)
}
