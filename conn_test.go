package openssl_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
)

func TestNewConnRejectsNonSocketConns(t *testing.T) {
	before := liveSSL()
	ctx := serverCtx(t)

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer udp.Close()
	tcp, _ := tcpPair(t)

	for _, tc := range []struct {
		name string
		conn net.Conn
		ctx  *openssl.Ctx
		want string
	}{
		{"net.Pipe", a, ctx, "does not expose a file descriptor"},
		{"UDP", udp, ctx, "not a stream socket"},
		{"nil conn", nil, ctx, "nil net.Conn or Ctx"},
		{"nil ctx", tcp, nil, "nil net.Conn or Ctx"},
	} {
		for name, f := range map[string]func(net.Conn, *openssl.Ctx) (*openssl.Conn, error){
			"Client": openssl.Client, "Server": openssl.Server,
		} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				c, err := f(tc.conn, tc.ctx)
				require.Nil(t, c)
				e := asError(t, err)
				require.Equal(t, "new conn", e.Op)
				require.Equal(t, openssl.ErrorNone, e.Code)
				require.True(t, strings.HasPrefix(err.Error(), "openssl: new conn: "), err.Error())
				require.Contains(t, err.Error(), tc.want)
			})
		}
	}
	require.Equal(t, before, liveSSL(), "no SSL object made for a refused conn")
}

func TestDial(t *testing.T) {
	wrongName, err := testcert.New("example.com") // covers neither localhost nor 127.0.0.1
	require.NoError(t, err)

	eachVersion(t, func(t *testing.T, v uint16) {
		good := startGoTLSServer(t, peerConfig(v, weAreClient))
		wrongCfg := peerConfig(v, weAreClient)
		wrongCfg.Certificates = []tls.Certificate{wrongName.TLSCert}
		wrong := startGoTLSServer(t, wrongCfg)

		for _, tc := range []struct {
			name    string
			srv     *goTLSServer
			host    string
			ctx     *openssl.Ctx
			flags   openssl.DialFlags
			sni     string               // what the server must see
			verify  openssl.VerifyResult // for failures: the expected result
			message string               // for failures: in the message
		}{
			{name: "DNS name", srv: good, host: "localhost", ctx: clientCtx(t), sni: "localhost"},
			{name: "IP address", srv: good, host: "127.0.0.1", ctx: clientCtx(t), sni: ""},
			{name: "DisableSNI", srv: good, host: "localhost", ctx: clientCtx(t), flags: openssl.DisableSNI, sni: ""},
			{name: "wrong host name", srv: wrong, host: "localhost", ctx: trustingCtx(t, wrongName), sni: "localhost",
				verify: 62, message: "hostname mismatch"}, // X509_V_ERR_HOSTNAME_MISMATCH
			{name: "wrong IP address", srv: wrong, host: "127.0.0.1", ctx: trustingCtx(t, wrongName), sni: "",
				verify: 64, message: "IP address mismatch"}, // X509_V_ERR_IP_ADDRESS_MISMATCH
			{name: "wrong host name, InsecureSkipHostVerification", srv: wrong, host: "localhost", ctx: trustingCtx(t, wrongName),
				flags: openssl.InsecureSkipHostVerification, sni: "localhost"},
			{name: "untrusted CA", srv: good, host: "localhost", ctx: trustingCtx(t, wrongName), sni: "localhost",
				verify: 19, message: "self-signed certificate in certificate chain"},
			{name: "system roots (nil Ctx)", srv: good, host: "localhost", ctx: nil, sni: "localhost",
				verify: 19, message: "self-signed certificate in certificate chain"},
		} {
			for _, dialer := range []string{"Dial", "DialContext"} {
				t.Run(tc.name+"/"+dialer, func(t *testing.T) {
					before := liveSSL()
					addr := net.JoinHostPort(tc.host, tc.srv.port())
					var conn *openssl.Conn
					var err error
					if dialer == "Dial" {
						conn, err = openssl.Dial("tcp", addr, tc.ctx, tc.flags)
					} else {
						dctx, cancel := context.WithTimeout(context.Background(), testTimeout)
						defer cancel()
						conn, err = openssl.DialContext(dctx, "tcp", addr, tc.ctx, tc.flags)
					}
					require.Equal(t, tc.sni, <-tc.srv.hellos, "SNI seen by the server")
					srvErr := <-tc.srv.results
					if tc.message != "" {
						require.Nil(t, conn)
						e := requireReason(t, err, "handshake", "certificate verify failed")
						require.Equal(t, openssl.ErrorSSL, e.Code)
						require.Equal(t, tc.verify, e.Verify)
						require.NotEqual(t, openssl.VerifyOK, e.Verify)
						require.Contains(t, err.Error(), tc.message)
						require.Error(t, srvErr)
						require.Equal(t, before, liveSSL(), "the failed Dial freed its SSL")
						return
					}
					require.NoError(t, err)
					require.NoError(t, srvErr)
					peer := <-tc.srv.conns
					st := conn.ConnectionState()
					require.Equal(t, tc.sni, st.ServerName)
					require.Equal(t, openssl.VerifyOK, st.VerifyResult)
					require.Equal(t, v, st.Version)
					echoOnce(t, conn, peer)
					require.NoError(t, conn.Close())
					require.Equal(t, before, liveSSL())
				})
			}
		}
	})
}

// echoOnce sends a line through ours to peer and back.
func echoOnce(t testing.TB, ours *openssl.Conn, peer *tls.Conn) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 5)
		_, err := io.ReadFull(peer, buf)
		if err == nil {
			_, err = peer.Write(buf)
		}
		errc <- err
	}()
	_, err := ours.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(ours, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))
	require.NoError(t, <-errc)
}

func TestDialErrors(t *testing.T) {
	_, err := openssl.Dial("tcp", "no-port", clientCtx(t), 0)
	require.Equal(t, "dial", asError(t, err).Op)

	// Nothing listens on a port that was just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	_, err = openssl.Dial("tcp", addr, clientCtx(t), 0)
	require.Equal(t, "dial", asError(t, err).Op)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = openssl.DialContext(ctx, "tcp", silentListener(t), clientCtx(t), 0)
	require.ErrorIs(t, err, context.Canceled)

	//lint:ignore SA1012 a nil context is what is tested.
	_, err = openssl.DialContext(nil, "tcp", addr, clientCtx(t), 0) //nolint:staticcheck
	require.ErrorIs(t, err, openssl.ErrNilContext)
}

func TestListen(t *testing.T) {
	eachVersion(t, func(t *testing.T, v uint16) {
		for name, listen := range map[string]func() (net.Listener, error){
			"Listen": func() (net.Listener, error) { return openssl.Listen("tcp", "127.0.0.1:0", serverCtx(t)) },
			"NewListener": func() (net.Listener, error) {
				inner, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return nil, err
				}
				return openssl.NewListener(inner, serverCtx(t)), nil
			},
		} {
			t.Run(name, func(t *testing.T) {
				l, err := listen()
				require.NoError(t, err)
				defer l.Close()

				type dialed struct {
					c   *tls.Conn
					err error
				}
				dc := make(chan dialed, 1)
				go func() {
					d := &net.Dialer{Timeout: testTimeout}
					c, err := tls.DialWithDialer(d, "tcp", l.Addr().String(), peerConfig(v, weAreServer))
					dc <- dialed{c, err}
				}()
				nc, err := l.Accept()
				require.NoError(t, err)
				ours, ok := nc.(*openssl.Conn)
				require.True(t, ok, "Accept returns *openssl.Conn, not %T", nc)
				defer ours.Close()
				require.NoError(t, ours.Handshake())
				d := <-dc
				require.NoError(t, d.err)
				defer d.c.Close()
				st := ours.ConnectionState()
				require.Equal(t, v, st.Version)
				require.Equal(t, "localhost", st.ServerName)
				echoOnce(t, ours, d.c)
			})
		}
	})
}

func TestHandshakeFailures(t *testing.T) {
	stranger, err := testcert.New() // same names, another CA
	require.NoError(t, err)

	t.Run("untrusted CA", func(t *testing.T) {
		eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
			spec := pairSpec{version: v, role: r, peer: peerConfig(v, r)}
			if r == weAreClient {
				spec.peer.Certificates = []tls.Certificate{stranger.TLSCert}
			} else {
				spec.ctx = mtlsServerCtx(t)
				spec.peer.Certificates = []tls.Certificate{stranger.TLSCert}
			}
			p := newPair(t, spec)
			ourErr, peerErr := p.handshake()
			if peerErr == nil {
				// A TLS 1.3 client finishes before the server judges its
				// certificate, and learns of the alert on Read.
				require.Equal(t, uint16(tls.VersionTLS13), v)
				_, peerErr = p.peer.Read(make([]byte, 1))
			}
			// OpenSSL's alert is "unknown CA". (A TLS 1.3 crypto/tls server
			// reports it as a bad record MAC: the OpenSSL client sends it
			// before it switches to its handshake keys.)
			require.Error(t, peerErr)
			e := requireReason(t, ourErr, "handshake", "certificate verify failed")
			require.Equal(t, openssl.ErrorSSL, e.Code)
			require.Equal(t, openssl.VerifyResult(19), e.Verify) // self-signed certificate in certificate chain
			require.Contains(t, ourErr.Error(), "certificate verification: self-signed certificate in certificate chain")
			requireStickyHandshakeError(t, p.ours, ourErr)
		})
	})

	t.Run("no shared cipher", func(t *testing.T) {
		// crypto/tls cannot restrict its TLS 1.3 suites, so TLS 1.2 only.
		for _, r := range ourRoles {
			t.Run(r.String(), func(t *testing.T) {
				ctx := ctxFor(t, r)
				require.NoError(t, ctx.SetCipherList("ECDHE-ECDSA-AES256-GCM-SHA384"))
				cfg := peerConfig(tls.VersionTLS12, r)
				cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
				p := newPair(t, pairSpec{version: tls.VersionTLS12, role: r, ctx: ctx, peer: cfg})
				ourErr, peerErr := p.handshake()
				require.Error(t, peerErr)
				var e *openssl.Error
				if r == weAreClient {
					e = requireReasonCode(t, ourErr, "handshake", reasonAlertHandshakeFailure) // the crypto/tls server's alert
				} else {
					e = requireReason(t, ourErr, "handshake", "no shared cipher") // our server found none
				}
				require.Equal(t, openssl.ErrorSSL, e.Code)
				requireStickyHandshakeError(t, p.ours, ourErr)
			})
		}
		// TLS 1.3 between two of our Conns.
		t.Run("TLS 1.3 OpenSSL peer", func(t *testing.T) {
			srvCtx, cliCtx := serverCtx(t), clientCtx(t)
			require.NoError(t, srvCtx.SetCipherSuites("TLS_AES_256_GCM_SHA384"))
			require.NoError(t, cliCtx.SetCipherSuites("TLS_CHACHA20_POLY1305_SHA256"))
			require.NoError(t, srvCtx.SetMinProtoVersion(tls.VersionTLS13))
			c, s := tcpPair(t)
			cli, err := openssl.Client(c, cliCtx)
			require.NoError(t, err)
			defer cli.Close()
			srv, err := openssl.Server(s, srvCtx)
			require.NoError(t, err)
			defer srv.Close()
			cliErr := make(chan error, 1)
			go func() { cliErr <- cli.Handshake() }()
			srvErr := srv.Handshake()
			requireReason(t, srvErr, "handshake", "no shared cipher")
			requireReasonCode(t, <-cliErr, "handshake", reasonAlertHandshakeFailure)
		})
	})

	t.Run("peer speaks plain text", func(t *testing.T) {
		for _, r := range ourRoles {
			t.Run(r.String(), func(t *testing.T) {
				c, s := tcpPair(t)
				var ours *openssl.Conn
				var peer *net.TCPConn
				var reason string
				if r == weAreServer {
					ours, err = openssl.Server(s, serverCtx(t))
					peer = c
					reason = "http request"
				} else {
					ours, err = openssl.Client(c, clientCtx(t))
					peer = s
					reason = "wrong version number"
				}
				require.NoError(t, err)
				defer ours.Close()
				msg := "GET / HTTP/1.0\r\n\r\n"
				if r == weAreClient {
					msg = "HTTP/1.0 400 Bad Request\r\n\r\n"
				}
				_, err = peer.Write([]byte(msg))
				require.NoError(t, err)
				ourErr := ours.Handshake()
				e := requireReason(t, ourErr, "handshake", reason)
				require.Equal(t, openssl.ErrorSSL, e.Code)
				require.Equal(t, openssl.VerifyOK, e.Verify)
				requireStickyHandshakeError(t, ours, ourErr)
			})
		}
	})
}

// requireStickyHandshakeError checks that a failed handshake fails every
// later call with the same error.
func requireStickyHandshakeError(t testing.TB, c *openssl.Conn, first error) {
	t.Helper()
	require.Same(t, asError(t, first), asError(t, c.Handshake()))
	_, err := c.Read(make([]byte, 1))
	require.Same(t, asError(t, first), asError(t, err))
	_, err = c.Write([]byte("x"))
	require.Same(t, asError(t, first), asError(t, err))
	require.False(t, c.ConnectionState().HandshakeComplete)
}

func TestConnectionState(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
		ctx := ctxFor(t, r)
		if r == weAreServer {
			ctx = mtlsServerCtx(t)
		}
		require.NoError(t, ctx.SetNextProtos([]string{"h2", "http/1.1"}))
		cfg := peerConfig(v, r)
		cfg.NextProtos = []string{"http/1.1"}

		var ours *openssl.Conn
		var peer *tls.Conn
		wantPeerLeaf := pki.Leaf
		if r == weAreClient {
			srv := startGoTLSServer(t, cfg)
			ours, err = openssl.Dial("tcp", "localhost:"+srv.port(), ctx, 0)
			require.NoError(t, err)
			t.Cleanup(func() { ours.Close() })
			require.Equal(t, "localhost", <-srv.hellos)
			require.NoError(t, <-srv.results)
			peer = <-srv.conns
		} else {
			cfg.Certificates = []tls.Certificate{client.TLSCert}
			p := newPair(t, pairSpec{version: v, role: r, ctx: ctx, peer: cfg})
			require.Equal(t, openssl.ConnectionState{}, p.ours.ConnectionState(), "zero before the handshake")
			ourErr, peerErr := p.handshake()
			require.NoError(t, ourErr)
			require.NoError(t, peerErr)
			ours, peer = p.ours, p.peer
			wantPeerLeaf = client.Leaf
		}

		st, pst := ours.ConnectionState(), peer.ConnectionState()
		require.True(t, st.HandshakeComplete)
		require.Equal(t, v, st.Version)
		require.Equal(t, pst.Version, st.Version)
		if v == tls.VersionTLS13 {
			require.Equal(t, tls.CipherSuiteName(pst.CipherSuite), st.CipherSuite)
		} else {
			id, ok := openSSL12Names[st.CipherSuite]
			require.True(t, ok, "unexpected TLS 1.2 suite %q", st.CipherSuite)
			require.Equal(t, pst.CipherSuite, id)
		}
		require.Equal(t, "http/1.1", st.NegotiatedProtocol)
		require.Equal(t, "localhost", st.ServerName)
		require.Equal(t, pst.ServerName, st.ServerName)
		require.False(t, st.DidResume)
		require.Equal(t, openssl.VerifyOK, st.VerifyResult)
		require.NotEmpty(t, st.PeerCertificates)
		require.True(t, st.PeerCertificates[0].Equal(wantPeerLeaf))
		if r == weAreClient {
			require.Len(t, st.PeerCertificates, 2, "leaf and CA as the server sent them")
			require.True(t, st.PeerCertificates[1].Equal(pki.CA))
		}
	})
}

func TestConnectionStateNoClientCertificate(t *testing.T) {
	p := connectedPair(t, pairSpec{version: tls.VersionTLS13, role: weAreServer})
	st := p.ours.ConnectionState()
	require.Nil(t, st.PeerCertificates)
	require.Equal(t, openssl.VerifyOK, st.VerifyResult)
}

func TestLargeTransferBothWays(t *testing.T) {
	const size = 8 << 20
	eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
		p := connectedPair(t, pairSpec{version: v, role: r})
		require.NoError(t, p.peerRaw.SetDeadline(time.Now().Add(4*testTimeout)))
		require.NoError(t, p.ours.SetDeadline(time.Now().Add(4*testTimeout)))
		up, down := pattern(1, size), pattern(2, size)

		type result struct {
			sum [32]byte
			err error
		}
		peerRead := make(chan result, 1)
		peerWrite := make(chan error, 1)
		ourWrite := make(chan error, 1)
		go func() {
			sum, err := readSum(p.peer, size)
			peerRead <- result{sum, err}
		}()
		go func() { peerWrite <- writeChunks(p.peer, down, 3) }()
		go func() { ourWrite <- writeChunks(p.ours, up, 4) }()

		// Our reads land in buffers of varying size too.
		got := bytes.NewBuffer(make([]byte, 0, size))
		buf := make([]byte, 128<<10+1)
		sizes := pattern(5, 1<<16)
		for i := 0; got.Len() < size; i++ {
			n := 1 + int(sizes[i%len(sizes)])<<9
			k, err := p.ours.Read(buf[:min(n, size-got.Len())])
			require.NoError(t, err)
			got.Write(buf[:k])
		}
		require.True(t, bytes.Equal(down, got.Bytes()), "the bytes we read differ from the peer's")
		require.NoError(t, <-ourWrite)
		require.NoError(t, <-peerWrite)
		res := <-peerRead
		require.NoError(t, res.err)
		wantSum, _ := readSum(bytes.NewReader(up), size)
		require.Equal(t, wantSum, res.sum, "the bytes the peer read differ from ours")
	})
}

func TestReadEOFOnCloseNotify(t *testing.T) {
	eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
		p := connectedPair(t, pairSpec{version: v, role: r})
		_, err := p.peer.Write([]byte("bye"))
		require.NoError(t, err)
		require.NoError(t, p.peer.CloseWrite()) // close_notify, TCP stays open

		buf := make([]byte, 16)
		n, err := io.ReadAtLeast(p.ours, buf, 3)
		require.NoError(t, err)
		require.Equal(t, "bye", string(buf[:n]))
		for range 3 {
			n, err = p.ours.Read(buf)
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
		}
		require.True(t, p.ours.ShutdownState().Received())

		// Our direction still works after the peer's close_notify.
		errc := make(chan error, 1)
		go func() {
			b := make([]byte, 4)
			_, err := io.ReadFull(p.peer, b)
			if err == nil && string(b) != "more" {
				err = errors.New("peer read " + string(b))
			}
			errc <- err
		}()
		_, err = p.ours.Write([]byte("more"))
		require.NoError(t, err)
		require.NoError(t, <-errc)
	})
}

func TestReadTruncated(t *testing.T) {
	eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
		p := connectedPair(t, pairSpec{version: v, role: r})
		p.syncPeer(t)
		_, err := p.peer.Write([]byte("last"))
		require.NoError(t, err)
		require.NoError(t, p.peerRaw.Close()) // FIN, no close_notify

		buf := make([]byte, 16)
		n, err := p.ours.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "last", string(buf[:n]))

		n, err = p.ours.Read(buf)
		require.Zero(t, n)
		require.ErrorIs(t, err, openssl.ErrTruncated)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		require.NotErrorIs(t, err, io.EOF)
		e := asError(t, err)
		require.Equal(t, "read", e.Op)
		require.Equal(t, openssl.ErrorSyscall, e.Code)
		require.True(t, strings.HasPrefix(err.Error(), "openssl: read: "), err.Error())
		for range 3 {
			_, again := p.ours.Read(buf)
			require.Equal(t, err, again, "the error is permanent")
		}
	})
}

func TestReadFromResetPeer(t *testing.T) {
	eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
		p := connectedPair(t, pairSpec{version: v, role: r})
		p.syncPeer(t)
		require.NoError(t, p.peerRaw.SetLinger(0))
		require.NoError(t, p.peerRaw.Close()) // RST

		_, err := p.ours.Read(make([]byte, 16))
		require.ErrorIs(t, err, syscall.ECONNRESET)
		e := asError(t, err)
		require.Equal(t, "read", e.Op)
		require.Equal(t, openssl.ErrorSyscall, e.Code)
		require.Equal(t, syscall.ECONNRESET, e.Errno)
		require.NotErrorIs(t, err, openssl.ErrTruncated)
		_, again := p.ours.Read(make([]byte, 16))
		require.Equal(t, err, again, "the error is permanent")
	})
}

// TestWriteToResetPeer writes until the reset shows: the process must not
// die of SIGPIPE, and the error must name the errno.
func TestWriteToResetPeer(t *testing.T) {
	eachVersionAndRole(t, func(t *testing.T, v uint16, r ourRole) {
		// The kernel reports a pending reset once, as ECONNRESET, and
		// raises SIGPIPE only with the EPIPE of later writes. With
		// clearReset the test takes the ECONNRESET itself (SO_ERROR), so
		// OpenSSL's write(2) gets EPIPE (and, written with plain write(2)
		// by the socket BIO, SIGPIPE).
		for _, clearReset := range []bool{false, true} {
			t.Run(fmt.Sprintf("clearReset=%t", clearReset), func(t *testing.T) {
				p := connectedPair(t, pairSpec{version: v, role: r})
				p.syncPeer(t)
				require.NoError(t, p.peerRaw.SetLinger(0))
				require.NoError(t, p.peerRaw.Close()) // RST
				require.NoError(t, p.ours.SetDeadline(time.Now().Add(testTimeout)))
				if clearReset {
					require.Equal(t, syscall.ECONNRESET, takeSocketError(t, p.ours))
				}

				chunk := make([]byte, 16<<10)
				var err error
				for i := 0; i < 1000 && err == nil; i++ {
					_, err = p.ours.Write(chunk)
				}
				require.Error(t, err, "1000 writes to a reset peer succeeded")
				if clearReset {
					require.ErrorIs(t, err, syscall.EPIPE)
				} else {
					require.True(t, errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET), "%v", err)
				}
				e := asError(t, err)
				require.Equal(t, "write", e.Op)
				require.Equal(t, openssl.ErrorSyscall, e.Code)
				_, again := p.ours.Write(chunk)
				require.Equal(t, err, again, "the error is permanent")
			})
		}
	})
}

// takeSocketError waits until the socket of c is readable with an error
// pending (the peer's RST arrived), and takes the error (SO_ERROR), so that
// the kernel does not report it again.
func takeSocketError(t testing.TB, c *openssl.Conn) syscall.Errno {
	t.Helper()
	raw, err := c.NetConn().(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var soErr int
	var gerr error
	err = raw.Read(func(fd uintptr) bool {
		soErr, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		return gerr != nil || soErr != 0
	})
	require.NoError(t, err)
	require.NoError(t, gerr)
	return syscall.Errno(soErr)
}

// TestReadWriteBufferInsideStructWithPointers: the buffers given to Read
// and Write may live inside objects that hold Go pointers (net/http's
// connReader does); passing them to C must not trip cgo's pointer check.
func TestReadWriteBufferInsideStructWithPointers(t *testing.T) {
	ours, peer := goServer(t, tls.VersionTLS13)
	type holder struct {
		next *holder
		buf  [8]byte
		name string
	}
	h := &holder{name: "x"}
	h.next = h
	copy(h.buf[:], "abcdefgh")
	go func() {
		b := make([]byte, 8)
		if _, err := io.ReadFull(peer, b); err == nil {
			peer.Write(b)
		}
	}()
	_, err := ours.Write(h.buf[:])
	require.NoError(t, err)
	_, err = io.ReadFull(ours, h.buf[:])
	require.NoError(t, err)
	require.Equal(t, "abcdefgh", string(h.buf[:]))
}
