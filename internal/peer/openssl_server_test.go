package peer_test

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/peer"
)

// startServer starts s_server with bundle's certificate on a port the
// kernel picks.
func startServer(t *testing.T, extra ...string) *peer.Process {
	t.Helper()
	return peer.OpenSSLServerT(t, 0, bundle.CertFile, bundle.KeyFile, extra...)
}

// sendLine sends s to s_server as application data and waits until the
// server printed it: from then on the connection is established on both
// sides.
func sendLine(t *testing.T, c *goPeer, s *peer.Process, line string) {
	t.Helper()
	m := s.Mark()
	c.write(t, line)
	if err := s.WaitForAfter(m, line, wait); err != nil {
		t.Fatal(err)
	}
}

// drain makes s_server send a line and waits until the client has read it,
// and with it everything sent before, such as TLS 1.3 session tickets.
// Closing a socket with unread input makes Linux send RST, not FIN, and
// s_server reports a reset differently from a truncation.
func drain(t *testing.T, c *goPeer, s *peer.Process) {
	t.Helper()
	send(t, s, "sync\n")
	c.expectData(t, "sync\n")
}

// A TCP reset (the client closes with SO_LINGER 0): s_server prints ERROR
// but no OpenSSL reason, since the error is the system's.
func TestServerPeerResets(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	c := dialGo(t, s.Addr(), tls.VersionTLS13)
	sendLine(t, c, s, "hello\n")
	if err := c.raw.Conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.closeTCP(t)
	expectExit(t, s, 0)
	out := s.Output()
	inOrder(t, out, "hello\n", peer.ServerError+peer.ServerShuttingDown+peer.ServerConnectionClosed)
	absent(t, out, peer.UnexpectedEOF, peer.ServerDone)
}

func send(t *testing.T, p *peer.Process, s string) {
	t.Helper()
	if err := p.Send(s); err != nil {
		t.Fatal(err)
	}
}

func TestServerAddress(t *testing.T) {
	t.Run("port 0", func(t *testing.T) {
		s := startServer(t)
		line, _, _ := strings.Cut(s.Output()[strings.Index(s.Output(), "ACCEPT"):], "\n")
		if line != "ACCEPT "+s.Addr() || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
			t.Fatalf("Addr %q, ACCEPT line %q", s.Addr(), line)
		}
		c := dialGo(t, s.Addr(), tls.VersionTLS13)
		c.closeWrite(t)
		c.expectEnd(t, endCloseNotify)
		expectExit(t, s, 0)
	})
	t.Run("explicit port", func(t *testing.T) {
		port, err := peer.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s := peer.OpenSSLServerT(t, port, bundle.CertFile, bundle.KeyFile)
		if want := "127.0.0.1:" + strconv.Itoa(port); s.Addr() != want {
			t.Fatalf("Addr = %q, want %q", s.Addr(), want)
		}
		// The line carries no address when the port was given.
		if !strings.Contains(s.Output(), "\nACCEPT\n") && !strings.HasPrefix(s.Output(), "ACCEPT\n") {
			t.Fatalf("no bare ACCEPT line in %q", s.Output())
		}
		c := dialGo(t, s.Addr(), tls.VersionTLS13)
		c.closeWrite(t)
		c.expectEnd(t, endCloseNotify)
		expectExit(t, s, 0)
	})
	t.Run("bad certificate file", func(t *testing.T) {
		p, err := peer.OpenSSLServer(t.Context(), 0, bundle.CertFile+".missing", bundle.KeyFile)
		if err == nil {
			p.Kill()
			t.Fatal("OpenSSLServer with a missing certificate succeeded")
		}
	})
	t.Run("quiet needs a port", func(t *testing.T) {
		p, err := peer.OpenSSLServer(t.Context(), 0, bundle.CertFile, bundle.KeyFile, "-quiet")
		if err == nil {
			p.Kill()
			t.Fatal("OpenSSLServer -quiet with port 0 succeeded")
		}
	})
}

// The peer's close_notify: s_server prints DONE, answers with close_notify,
// sends FIN and, with the default -naccept 1, exits 0.
func TestServerPeerCloseNotify(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			c := dialGo(t, s.Addr(), v.version)
			sendLine(t, c, s, "hello\n")
			c.closeWrite(t)
			c.expectEnd(t, endCloseNotify)
			c.expectFIN(t, true, wait)
			expectExit(t, s, 0)
			out := s.Output()
			inOrder(t, out, "hello\n", peer.ServerCloseNotifyReceived)
			absent(t, out, peer.ServerError, peer.UnexpectedEOF, peer.ServerAcceptSocketClosed)
		})
	}
}

// After its FIN, s_server keeps the socket open, reading, for 500 ms while
// the peer does not close TCP; only then does it exit.
func TestServerLingeringClose(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	c := dialGo(t, s.Addr(), tls.VersionTLS13)
	sendLine(t, c, s, "hello\n")
	start := time.Now()
	c.closeWrite(t)
	c.expectEnd(t, endCloseNotify)
	c.expectFIN(t, true, wait)
	expectExit(t, s, 0)
	if elapsed := time.Since(start); elapsed < peer.LingerTime {
		t.Fatalf("s_server exited %v after the close_notify, want at least %v", elapsed, peer.LingerTime)
	}
}

// A TCP close without close_notify: s_server prints ERROR and OpenSSL's
// unexpected-EOF error, still goes through its shutdown, and exits 0.
func TestServerPeerTruncates(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			c := dialGo(t, s.Addr(), v.version)
			sendLine(t, c, s, "hello\n")
			drain(t, c, s)
			c.closeTCP(t)
			expectExit(t, s, 0)
			out := s.Output()
			inOrder(t, out, "hello\n", peer.ServerError, peer.UnexpectedEOF,
				peer.ServerShuttingDown+peer.ServerConnectionClosed)
			absent(t, out, peer.ServerDone)
		})
	}
}

// -naccept 2 in extra overrides the default -naccept 1.
func TestServerNacceptOverride(t *testing.T) {
	t.Parallel()
	s := startServer(t, "-naccept", "2")
	for i := range 2 {
		c := dialGo(t, s.Addr(), tls.VersionTLS13)
		sendLine(t, c, s, "conn"+strconv.Itoa(i)+"\n")
		m := s.Mark()
		c.closeWrite(t)
		c.expectEnd(t, endCloseNotify)
		if err := s.WaitForAfter(m, peer.ServerConnectionClosed, wait); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			select {
			case <-s.Exited():
				t.Fatal("s_server -naccept 2 exited after one connection")
			default:
			}
		}
	}
	expectExit(t, s, 0)
	if n := strings.Count(s.Output(), peer.ServerCloseNotifyReceived); n != 2 {
		t.Fatalf("%d close_notify messages, want 2; output:\n%s", n, s.Output())
	}
}

// Q and end of stdin close TCP without close_notify and end s_server even
// when -naccept allows more connections; -ign_eof does not change that.
func TestServerQuitAndStdinEOF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
		quit  func(t *testing.T, s *peer.Process)
	}{
		{"Q", nil, func(t *testing.T, s *peer.Process) { send(t, s, peer.ServerCmdQuit) }},
		{"stdin EOF", nil, closeStdin},
		{"stdin EOF with -ign_eof", []string{"-ign_eof"}, closeStdin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, append([]string{"-naccept", "2"}, tc.extra...)...)
			c := dialGo(t, s.Addr(), tls.VersionTLS13)
			sendLine(t, c, s, "hello\n")
			tc.quit(t, s)
			c.expectEnd(t, endTruncated)
			expectExit(t, s, 0)
			inOrder(t, s.Output(), "hello\n",
				peer.ServerDone+peer.ServerAcceptSocketClosed+peer.ServerShuttingDown+peer.ServerConnectionClosed)
		})
	}
}

func closeStdin(t *testing.T, p *peer.Process) {
	t.Helper()
	if err := p.CloseStdin(); err != nil {
		t.Fatal(err)
	}
}

// q closes TCP without close_notify, prints what a close_notify would,
// and leaves s_server accepting.
func TestServerCommandClose(t *testing.T) {
	t.Parallel()
	s := startServer(t, "-naccept", "2")
	c := dialGo(t, s.Addr(), tls.VersionTLS13)
	sendLine(t, c, s, "hello\n")
	send(t, s, peer.ServerCmdClose)
	c.expectEnd(t, endTruncated)
	if err := s.WaitFor(peer.ServerCloseNotifyReceived, wait); err != nil {
		t.Fatal(err)
	}
	absent(t, s.Output(), peer.ServerAcceptSocketClosed)

	// Still listening: a second connection works and ends the server.
	c2 := dialGo(t, s.Addr(), tls.VersionTLS13)
	sendLine(t, c2, s, "second\n")
	c2.closeWrite(t)
	c2.expectEnd(t, endCloseNotify)
	expectExit(t, s, 0)
}

// k and K send a KeyUpdate; after K the crypto/tls peer answers with its
// own, which s_server reads as a record without data (Read BLOCK).
func TestServerKeyUpdate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cmd       string
		readBlock bool
	}{
		{peer.ServerCmdKeyUpdate, false},
		{peer.ServerCmdKeyUpdateRequest, true},
	} {
		t.Run(strings.TrimSpace(tc.cmd), func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			c := dialGo(t, s.Addr(), tls.VersionTLS13)
			sendLine(t, c, s, "before\n")
			m := s.Mark()
			send(t, s, tc.cmd)
			if err := s.WaitForAfter(m, peer.ServerKeyUpdated, wait); err != nil {
				t.Fatal(err)
			}
			if tc.readBlock {
				if err := s.WaitForAfter(m, peer.ServerReadBlock, wait); err != nil {
					t.Fatal(err)
				}
			}
			// Data flows both ways under the new keys.
			send(t, s, "after\n")
			c.expectData(t, "after\n")
			sendLine(t, c, s, "reply\n")
			c.closeWrite(t)
			c.expectEnd(t, endCloseNotify)
			expectExit(t, s, 0)
			out := s.Output()[m:]
			if tc.readBlock {
				inOrder(t, out, peer.ServerKeyUpdated, peer.ServerReadBlock, "reply\n", peer.ServerCloseNotifyReceived)
			} else {
				inOrder(t, out, peer.ServerKeyUpdated, "reply\n", peer.ServerCloseNotifyReceived)
				absent(t, out, peer.ServerReadBlock)
			}
		})
	}
}

// -quiet: only the application data is printed; close_notify is answered;
// a truncation still prints OpenSSL's error line.
func TestServerQuiet(t *testing.T) {
	start := func(t *testing.T) *peer.Process {
		port, err := peer.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return peer.OpenSSLServerT(t, port, bundle.CertFile, bundle.KeyFile, "-quiet")
	}
	t.Run("peer close_notify", func(t *testing.T) {
		s := start(t)
		c := dialGo(t, s.Addr(), tls.VersionTLS13)
		sendLine(t, c, s, "hello\n")
		c.closeWrite(t)
		c.expectEnd(t, endCloseNotify)
		c.expectFIN(t, true, wait)
		expectExit(t, s, 0)
		if out := s.Output(); out != "hello\n" {
			t.Fatalf("output %q, want only the data", out)
		}
	})
	t.Run("peer truncates", func(t *testing.T) {
		s := start(t)
		c := dialGo(t, s.Addr(), tls.VersionTLS13)
		sendLine(t, c, s, "hello\n")
		drain(t, c, s)
		c.closeTCP(t)
		expectExit(t, s, 0)
		out := s.Output()
		inOrder(t, out, "hello\n", peer.UnexpectedEOF)
		absent(t, out, peer.ServerError, peer.ServerDone)
		if n := strings.Count(out, "\n"); n != 2 {
			t.Fatalf("output has %d lines, want the data and one error line:\n%s", n, out)
		}
	})
	t.Run("stdin commands are data, stdin EOF sends close_notify", func(t *testing.T) {
		s := start(t)
		c := dialGo(t, s.Addr(), tls.VersionTLS13)
		sendLine(t, c, s, "hello\n")
		send(t, s, peer.ServerCmdClose+peer.ServerCmdQuit)
		c.expectData(t, "q\nQ\n")
		closeStdin(t, s)
		c.expectEnd(t, endCloseNotify)
		c.expectFIN(t, true, wait)
		expectExit(t, s, 0)
		if out := s.Output(); out != "hello\n" {
			t.Fatalf("output %q, want only the data", out)
		}
	})
}

// -rev echoes lines reversed; CLOSE makes it send close_notify and then
// wait for the peer's before it closes TCP.
func TestServerRev(t *testing.T) {
	t.Parallel()
	s := startServer(t, "-rev")
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
	c.closeWrite(t)
	c.expectFIN(t, true, wait)
	expectExit(t, s, 0)
	inOrder(t, s.Output(), peer.ServerAccept, peer.RevConnectionEstablished, peer.ServerConnectionClosed)
}

// After CLOSE, -rev also stops waiting when the peer only half-closes TCP.
func TestServerRevPeerFIN(t *testing.T) {
	t.Parallel()
	s := startServer(t, "-rev")
	c := dialGo(t, s.Addr(), tls.VersionTLS13)
	c.write(t, "CLOSE\n")
	c.expectEnd(t, endCloseNotify)
	if err := c.raw.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.expectFIN(t, true, wait)
	expectExit(t, s, 0)
	inOrder(t, s.Output(), peer.RevConnectionEstablished, peer.ServerConnectionClosed)
}

// -rev -ign_eof: CLOSE is no command, just a line to reverse.
func TestServerRevIgnEOF(t *testing.T) {
	t.Parallel()
	s := startServer(t, "-rev", "-ign_eof")
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
	s := startServer(t, "-www")
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
