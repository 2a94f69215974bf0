package peer_test

import (
	"crypto/tls"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// link is a peer program and the crypto/tls end connected to it.
type link struct {
	g *goPeer
	p *peer.Process
}

// toPeer writes line with crypto/tls and waits until the program has
// printed it.
func (l link) toPeer(t *testing.T, line string) {
	t.Helper()
	m := l.p.Mark()
	l.g.write(t, line)
	if err := l.p.WaitForAfter(m, line, wait); err != nil {
		t.Fatal(err)
	}
}

// fromPeer types line on the program's standard input and waits until
// crypto/tls has read it.
func (l link) fromPeer(t *testing.T, line string) {
	t.Helper()
	send(t, l.p, line)
	l.g.expectData(t, line)
}

// A program starts a peer program for version, with extra arguments, and
// connects a crypto/tls end to it. It returns once data has gone through
// and neither side has anything unread (TLS 1.3 session tickets
// included): closing a socket with unread input makes Linux send RST, not
// FIN.
type program func(t *testing.T, version uint16, extra ...string) link

// sServer is s_server facing a crypto/tls client: a line each way.
func sServer(t *testing.T, version uint16, extra ...string) link {
	t.Helper()
	s := tlstest.Started(t)(peer.OpenSSLServer(t.Context(), files.Cert, files.Key, extra...))
	l := link{dialGo(t, s.Addr(), version), s}
	l.toPeer(t, "hello\n")
	l.fromPeer(t, "sync\n")
	return l
}

// sClient is s_client facing a crypto/tls server, which sends a line.
func sClient(t *testing.T, version uint16, extra ...string) link {
	t.Helper()
	addr, accept := listenGo(t, version)
	cl := tlstest.Started(t)(peer.OpenSSLClient(t.Context(), addr, files.CA, extra...))
	l := link{accept(), cl}
	l.toPeer(t, "hi\n")
	if !slices.Contains(extra, "-quiet") {
		inOrder(t, cl.Output(), peer.ClientConnected, peer.ClientVerifyOK, "hi\n")
	}
	return l
}

// gnutlsServ is gnutls-serv --echo facing a crypto/tls client, whose
// first line came back.
func gnutlsServ(t *testing.T, version uint16, extra ...string) link {
	t.Helper()
	s := tlstest.Started(t)(peer.GnuTLSServer(t.Context(), files.Cert, files.Key, append(gnutlsPriority(version), extra...)...))
	c := dialGo(t, s.Addr(), version)
	c.write(t, "hello\n")
	c.expectData(t, "hello\n")
	return link{c, s}
}

// gnutlsCli is gnutls-cli facing a crypto/tls server: a line each way.
func gnutlsCli(t *testing.T, version uint16, extra ...string) link {
	t.Helper()
	addr, accept := listenGo(t, version)
	cl := tlstest.Started(t)(peer.GnuTLSClient(t.Context(), addr, files.CA, append(gnutlsPriority(version), extra...)...))
	l := link{accept(), cl}
	l.toPeer(t, "hi\n")
	inOrder(t, cl.Output(), peer.GnuTLSClientHandshakeDone, peer.GnuTLSClientSimpleMode, "hi\n")
	l.fromPeer(t, "ping\n")
	return l
}

// gnutlsPriority returns the --priority option that pins version.
func gnutlsPriority(version uint16) []string {
	if version == tls.VersionTLS12 {
		return []string{"--priority", peer.GnuTLSPriorityTLS12}
	}
	return []string{"--priority", peer.GnuTLSPriorityTLS13}
}

// Ways to end a link: three of the crypto/tls end, two of the program's.
func closeNotify(t *testing.T, l link) { l.g.closeWrite(t) }
func truncate(t *testing.T, l link)    { l.g.closeTCP(t) }
func reset(t *testing.T, l link)       { l.g.reset(t) }
func stdinEOF(t *testing.T, l link)    { closeStdin(t, l.p) }
func command(cmd string) func(*testing.T, link) {
	return func(t *testing.T, l link) { send(t, l.p, cmd) }
}

// keepsServing, as an exit code, says that the program does not exit.
const keepsServing = -1

// TestEnds proves how each program takes each way a connection ends: the
// crypto/tls end's close_notify, TCP close without it, or reset, and the
// program's own ways to close. These are the cases that OpenSSLServer,
// OpenSSLClient, GnuTLSServer and GnuTLSClient document.
func TestEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prog  program
		name  string
		args  []string
		end   func(*testing.T, link)
		tls13 bool // TLS 1.3 only; else both versions
		// reads is how the crypto/tls end's reading stops afterwards ("":
		// not looked at), and fin whether a FIN follows a close_notify.
		reads ending
		fin   bool
		// exit is the program's exit code, or keepsServing: gnutls-serv
		// prints want, then accepts and echoes a second connection.
		exit int
		// lingers: the program exits no earlier than peer.LingerTime after
		// the end.
		lingers bool
		// want is what the program prints after the end, in order, and
		// never what it does not print; silent: it prints nothing more.
		want, never []string
		silent      bool
	}{
		{prog: sClient, name: "s_client/peer close_notify", end: closeNotify, reads: endCloseNotify, fin: true, exit: 0, lingers: true,
			want: []string{peer.ClientClosed}, never: []string{peer.UnexpectedEOF, peer.ClientDone}},
		{prog: sClient, name: "s_client/peer truncates", end: truncate, exit: 1,
			want: []string{peer.UnexpectedEOF}, never: []string{peer.ClientClosed, peer.ClientDone}},
		{prog: sClient, name: "s_client/peer resets", end: reset, tls13: true, exit: int(syscall.ECONNRESET),
			want: []string{peer.ClientReadErrno + "104\n"}, never: []string{peer.UnexpectedEOF, peer.ClientClosed, peer.ClientDone}},
		{prog: sClient, name: "s_client/stdin EOF", end: stdinEOF, reads: endCloseNotify, fin: true, exit: 0,
			want: []string{peer.ClientDone}, never: []string{peer.ClientClosed, peer.UnexpectedEOF}},
		{prog: sClient, name: "s_client/Q", end: command(peer.ClientCmdQuit), reads: endCloseNotify, fin: true, exit: 0,
			want: []string{peer.ClientDone}, never: []string{peer.ClientClosed, peer.UnexpectedEOF}},

		// gnutls-cli closes TCP without answering close_notify.
		{prog: gnutlsCli, name: "gnutls-cli/peer close_notify", end: closeNotify, reads: endTruncated, exit: 0,
			want: []string{peer.GnuTLSClientPeerClosed}, never: []string{peer.GnuTLSClientFatal, peer.GnuTLSClientAbnormal}},
		{prog: gnutlsCli, name: "gnutls-cli/peer truncates", end: truncate, exit: 1,
			want:  []string{peer.GnuTLSClientFatal + peer.GnuTLSPrematureEOF + "\n" + peer.GnuTLSClientAbnormal},
			never: []string{peer.GnuTLSClientPeerClosed}},
		{prog: gnutlsCli, name: "gnutls-cli/peer resets", end: reset, tls13: true, exit: 1,
			want:  []string{peer.GnuTLSClientFatal + peer.GnuTLSPullError + "\n" + peer.GnuTLSClientAbnormal},
			never: []string{peer.GnuTLSClientPeerClosed, peer.GnuTLSPrematureEOF}},
		// It does not wait for an answer (crypto/tls never sends one).
		{prog: gnutlsCli, name: "gnutls-cli/stdin EOF", end: stdinEOF, reads: endCloseNotify, fin: true, exit: 0, silent: true},

		{prog: sServer, name: "s_server/peer close_notify", end: closeNotify, reads: endCloseNotify, fin: true, exit: 0, lingers: true,
			want:  []string{peer.ServerCloseNotifyReceived},
			never: []string{peer.ServerError, peer.UnexpectedEOF, peer.ServerAcceptSocketClosed}},
		// It still goes through its shutdown, and nothing in the exit
		// code tells a truncation from a clean close.
		{prog: sServer, name: "s_server/peer truncates", end: truncate, exit: 0,
			want:  []string{peer.ServerError, peer.UnexpectedEOF, peer.ServerShuttingDown + peer.ServerConnectionClosed},
			never: []string{peer.ServerDone}},
		// No OpenSSL reason: the error is the system's.
		{prog: sServer, name: "s_server/peer resets", end: reset, tls13: true, exit: 0,
			want:  []string{peer.ServerError + peer.ServerShuttingDown + peer.ServerConnectionClosed},
			never: []string{peer.UnexpectedEOF, peer.ServerDone}},
		// Q and end of stdin close TCP without close_notify and end
		// s_server even when -naccept allows more connections; -ign_eof
		// does not change that.
		{prog: sServer, name: "s_server/Q", args: []string{"-naccept", "2"}, end: command(peer.ServerCmdQuit), tls13: true,
			reads: endTruncated, exit: 0,
			want: []string{peer.ServerDone + peer.ServerAcceptSocketClosed + peer.ServerShuttingDown + peer.ServerConnectionClosed}},
		{prog: sServer, name: "s_server/stdin EOF", args: []string{"-naccept", "2"}, end: stdinEOF, tls13: true,
			reads: endTruncated, exit: 0,
			want: []string{peer.ServerDone + peer.ServerAcceptSocketClosed + peer.ServerShuttingDown + peer.ServerConnectionClosed}},
		{prog: sServer, name: "s_server/stdin EOF with -ign_eof", args: []string{"-naccept", "2", "-ign_eof"}, end: stdinEOF, tls13: true,
			reads: endTruncated, exit: 0,
			want: []string{peer.ServerDone + peer.ServerAcceptSocketClosed + peer.ServerShuttingDown + peer.ServerConnectionClosed}},

		// gnutls-serv answers close_notify and prints nothing about it.
		{prog: gnutlsServ, name: "gnutls-serv/peer close_notify", end: closeNotify, reads: endCloseNotify, fin: true, exit: keepsServing,
			never: []string{peer.GnuTLSServerReceiveError, "Error"}},
		{prog: gnutlsServ, name: "gnutls-serv/peer truncates", end: truncate, exit: keepsServing,
			want:  []string{peer.GnuTLSServerReceiveError + "Error: " + peer.GnuTLSPrematureEOF + "\n"},
			never: []string{peer.GnuTLSPullError}},
		{prog: gnutlsServ, name: "gnutls-serv/peer resets", end: reset, tls13: true, exit: keepsServing,
			want:  []string{peer.GnuTLSServerReceiveError + "Error: " + peer.GnuTLSPullError + "\n"},
			never: []string{peer.GnuTLSPrematureEOF}},
	} {
		for _, version := range tlstest.Versions {
			if tc.tls13 && version != tls.VersionTLS13 {
				continue
			}
			t.Run(tc.name+"/"+tls.VersionName(version), func(t *testing.T) {
				t.Parallel()
				l := tc.prog(t, version, tc.args...)
				m := l.p.Mark()
				start := time.Now()
				tc.end(t, l)
				if tc.reads != "" {
					l.g.expectEnd(t, tc.reads)
				}
				if tc.fin {
					l.g.expectFIN(t, true, wait)
				}
				if tc.exit == keepsServing {
					for _, w := range tc.want {
						if err := l.p.WaitForAfter(m, w, wait); err != nil {
							t.Fatal(err)
						}
					}
					// Still accepting: a second connection is echoed.
					c2 := dialGo(t, l.p.Addr(), version)
					c2.write(t, "again\n")
					c2.expectData(t, "again\n")
					if err := l.p.WaitForAfter(m, peer.GnuTLSServerAccepted, wait); err != nil {
						t.Fatal(err)
					}
				} else {
					expectExit(t, l.p, tc.exit)
				}
				if elapsed := time.Since(start); tc.lingers && elapsed < peer.LingerTime {
					t.Fatalf("%s exited %v after the close_notify, want at least %v", l.p.Name(), elapsed, peer.LingerTime)
				}
				out := l.p.Output()[m:]
				if tc.silent && out != "" {
					t.Fatalf("output after the end: %q, want none", out)
				}
				inOrder(t, out, tc.want...)
				absent(t, out, tc.never...)
			})
		}
	}
}
