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
	"github.com/closenotify/openssl/internal/tlstest"
)

// TestNewConnRejects: packet conns and nil arguments are refused without an
// SSL object; any stream net.Conn is accepted (anyconn_test.go).
func TestNewConnRejects(t *testing.T) {
	before := liveSSL()
	sslCtx := tlstest.ServerCtx(t)

	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer udp.Close()
	tcp, _ := tlstest.TCPPair(t)

	for _, tc := range []struct {
		name   string
		conn   net.Conn
		sslCtx *openssl.Ctx
		want   string
	}{
		{"UDP", udp, sslCtx, "not a stream socket"},
		{"nil conn", nil, sslCtx, "nil net.Conn or Ctx"},
		{"nil ctx", tcp, nil, "nil net.Conn or Ctx"},
	} {
		for name, f := range map[string]func(net.Conn, *openssl.Ctx) (*openssl.Conn, error){
			"Client": openssl.Client, "Server": openssl.Server,
		} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				c, err := f(tc.conn, tc.sslCtx)
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

	tlstest.EachVersion(t, func(t *testing.T, v uint16) {
		good := startGoTLSServer(t, tlstest.PeerConfig(pki, v, tlstest.WeClient))
		wrongCfg := tlstest.PeerConfig(pki, v, tlstest.WeClient)
		wrongCfg.Certificates = []tls.Certificate{wrongName.TLSCert}
		wrong := startGoTLSServer(t, wrongCfg)

		for _, tc := range []struct {
			name    string
			srv     *goTLSServer
			host    string
			sslCtx  *openssl.Ctx
			flags   openssl.DialFlags
			sni     string               // what the server must see
			verify  openssl.VerifyResult // for failures: the expected result
			message string               // for failures: in the message
		}{
			{name: "DNS name", srv: good, host: "localhost", sslCtx: tlstest.ClientCtx(t), sni: "localhost"},
			{name: "IP address", srv: good, host: "127.0.0.1", sslCtx: tlstest.ClientCtx(t), sni: ""},
			{name: "DisableSNI", srv: good, host: "localhost", sslCtx: tlstest.ClientCtx(t), flags: openssl.DisableSNI, sni: ""},
			{name: "wrong host name", srv: wrong, host: "localhost", sslCtx: tlstest.TrustingCtx(t, wrongName), sni: "localhost",
				verify: 62, message: "hostname mismatch"}, // X509_V_ERR_HOSTNAME_MISMATCH
			{name: "wrong IP address", srv: wrong, host: "127.0.0.1", sslCtx: tlstest.TrustingCtx(t, wrongName), sni: "",
				verify: 64, message: "IP address mismatch"}, // X509_V_ERR_IP_ADDRESS_MISMATCH
			{name: "wrong host name, InsecureSkipHostVerification", srv: wrong, host: "localhost", sslCtx: tlstest.TrustingCtx(t, wrongName),
				flags: openssl.InsecureSkipHostVerification, sni: "localhost"},
			{name: "untrusted CA", srv: good, host: "localhost", sslCtx: tlstest.TrustingCtx(t, wrongName), sni: "localhost",
				verify: 19, message: "self-signed certificate in certificate chain"},
			{name: "system roots (nil Ctx)", srv: good, host: "localhost", sslCtx: nil, sni: "localhost",
				verify: 19, message: "self-signed certificate in certificate chain"},
		} {
			for _, dialer := range []string{"Dial", "DialContext"} {
				t.Run(tc.name+"/"+dialer, func(t *testing.T) {
					before := liveSSL()
					addr := net.JoinHostPort(tc.host, tc.srv.port())
					var conn *openssl.Conn
					var err error
					if dialer == "Dial" {
						conn, err = openssl.Dial("tcp", addr, tc.sslCtx, tc.flags)
					} else {
						ctx, cancel := context.WithTimeout(context.Background(), tlstest.Timeout)
						defer cancel()
						conn, err = openssl.DialContext(ctx, "tcp", addr, tc.sslCtx, tc.flags)
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
	_, err := openssl.Dial("tcp", "no-port", tlstest.ClientCtx(t), 0)
	require.Equal(t, "dial", asError(t, err).Op)

	// Nothing listens on a port that was just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	_, err = openssl.Dial("tcp", addr, tlstest.ClientCtx(t), 0)
	require.Equal(t, "dial", asError(t, err).Op)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = openssl.DialContext(ctx, "tcp", silentListener(t), tlstest.ClientCtx(t), 0)
	require.ErrorIs(t, err, context.Canceled)

	//lint:ignore SA1012 a nil context is what is tested.
	_, err = openssl.DialContext(nil, "tcp", addr, tlstest.ClientCtx(t), 0) //nolint:staticcheck
	require.ErrorIs(t, err, openssl.ErrNilContext)
}

func TestListen(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, v uint16) {
		for name, listen := range map[string]func() (net.Listener, error){
			"Listen": func() (net.Listener, error) { return openssl.Listen("tcp", "127.0.0.1:0", tlstest.ServerCtx(t)) },
			"NewListener": func() (net.Listener, error) {
				inner, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return nil, err
				}
				return openssl.NewListener(inner, tlstest.ServerCtx(t)), nil
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
					d := &net.Dialer{Timeout: tlstest.Timeout}
					c, err := tls.DialWithDialer(d, "tcp", l.Addr().String(), tlstest.PeerConfig(pki, v, tlstest.WeServer))
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
		tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
			spec := tlstest.Spec{Case: tc, Config: tlstest.PeerConfig(pki, tc.Version, tc.Role)}
			if tc.Role == tlstest.WeClient {
				spec.Config.Certificates = []tls.Certificate{stranger.TLSCert}
			} else {
				spec.Ctx = mtlsServerCtx(t)
				spec.Config.Certificates = []tls.Certificate{stranger.TLSCert}
			}
			p := tlstest.NewPair(t, spec)
			ourErr, peerErr := p.Handshake()
			if peerErr == nil {
				// A TLS 1.3 client finishes before the server judges its
				// certificate, and learns of the alert on Read.
				require.Equal(t, uint16(tls.VersionTLS13), tc.Version)
				_, peerErr = p.Peer.Read(make([]byte, 1))
			}
			// OpenSSL's alert is "unknown CA". (A TLS 1.3 crypto/tls server
			// reports it as a bad record MAC: the OpenSSL client sends it
			// before it switches to its handshake keys.)
			require.Error(t, peerErr)
			e := requireReason(t, ourErr, "handshake", "certificate verify failed")
			require.Equal(t, openssl.ErrorSSL, e.Code)
			require.Equal(t, openssl.VerifyResult(19), e.Verify) // self-signed certificate in certificate chain
			require.Contains(t, ourErr.Error(), "certificate verification: self-signed certificate in certificate chain")
			requireStickyHandshakeError(t, p.Ours, ourErr)
		})
	})

	t.Run("no shared cipher", func(t *testing.T) {
		// crypto/tls cannot restrict its TLS 1.3 suites, so TLS 1.2 only.
		for _, r := range tlstest.Roles {
			t.Run(r.String(), func(t *testing.T) {
				sslCtx := tlstest.CtxFor(t, r)
				require.NoError(t, sslCtx.SetCipherList("ECDHE-ECDSA-AES256-GCM-SHA384"))
				cfg := tlstest.PeerConfig(pki, tls.VersionTLS12, r)
				cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
				p := tlstest.NewPair(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS12, Role: r}, Ctx: sslCtx, Config: cfg})
				ourErr, peerErr := p.Handshake()
				require.Error(t, peerErr)
				var e *openssl.Error
				if r == tlstest.WeClient {
					e = requireReasonCode(t, ourErr, "handshake", reasonAlertHandshakeFailure) // the crypto/tls server's alert
				} else {
					e = requireReason(t, ourErr, "handshake", "no shared cipher") // our server found none
				}
				require.Equal(t, openssl.ErrorSSL, e.Code)
				requireStickyHandshakeError(t, p.Ours, ourErr)
			})
		}
		// TLS 1.3 between two of our Conns.
		t.Run("TLS 1.3 OpenSSL peer", func(t *testing.T) {
			srvCtx, cliCtx := tlstest.ServerCtx(t), tlstest.ClientCtx(t)
			require.NoError(t, srvCtx.SetCipherSuites("TLS_AES_256_GCM_SHA384"))
			require.NoError(t, cliCtx.SetCipherSuites("TLS_CHACHA20_POLY1305_SHA256"))
			require.NoError(t, srvCtx.SetMinProtoVersion(tls.VersionTLS13))
			c, s := tlstest.TCPPair(t)
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
		for _, r := range tlstest.Roles {
			t.Run(r.String(), func(t *testing.T) {
				c, s := tlstest.TCPPair(t)
				var ours *openssl.Conn
				var peer *net.TCPConn
				var reason string
				if r == tlstest.WeServer {
					ours, err = openssl.Server(s, tlstest.ServerCtx(t))
					peer = c
					reason = "http request"
				} else {
					ours, err = openssl.Client(c, tlstest.ClientCtx(t))
					peer = s
					reason = "wrong version number"
				}
				require.NoError(t, err)
				defer ours.Close()
				msg := "GET / HTTP/1.0\r\n\r\n"
				if r == tlstest.WeClient {
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
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		sslCtx := tlstest.CtxFor(t, tc.Role)
		if tc.Role == tlstest.WeServer {
			sslCtx = mtlsServerCtx(t)
		}
		require.NoError(t, sslCtx.SetNextProtos([]string{"h2", "http/1.1"}))
		cfg := tlstest.PeerConfig(pki, tc.Version, tc.Role)
		cfg.NextProtos = []string{"http/1.1"}

		var ours *openssl.Conn
		var peer *tls.Conn
		wantPeerLeaf := pki.Leaf
		if tc.Role == tlstest.WeClient {
			srv := startGoTLSServer(t, cfg)
			ours, err = openssl.Dial("tcp", "localhost:"+srv.port(), sslCtx, 0)
			require.NoError(t, err)
			t.Cleanup(func() { ours.Close() })
			require.Equal(t, "localhost", <-srv.hellos)
			require.NoError(t, <-srv.results)
			peer = <-srv.conns
		} else {
			cfg.Certificates = []tls.Certificate{client.TLSCert}
			p := tlstest.NewPair(t, tlstest.Spec{Case: tc, Ctx: sslCtx, Config: cfg})
			require.Equal(t, openssl.ConnectionState{}, p.Ours.ConnectionState(), "zero before the handshake")
			ourErr, peerErr := p.Handshake()
			require.NoError(t, ourErr)
			require.NoError(t, peerErr)
			ours, peer = p.Ours, p.Peer
			wantPeerLeaf = client.Leaf
		}

		st, pst := ours.ConnectionState(), peer.ConnectionState()
		require.True(t, st.HandshakeComplete)
		require.Equal(t, tc.Version, st.Version)
		require.Equal(t, pst.Version, st.Version)
		if tc.Version == tls.VersionTLS13 {
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
		if tc.Role == tlstest.WeClient {
			require.Len(t, st.PeerCertificates, 2, "leaf and CA as the server sent them")
			require.True(t, st.PeerCertificates[1].Equal(pki.CA))
		}
		requireVerifiedChain(t, st, wantPeerLeaf, pki.CA)

		// The IANA number, and the crypto/tls form, match what crypto/tls saw.
		require.Equal(t, pst.CipherSuite, st.CipherSuiteID)
		ts := st.TLSConnectionState()
		require.Equal(t, tls.ConnectionState{
			Version:                    pst.Version,
			HandshakeComplete:          true,
			CipherSuite:                pst.CipherSuite,
			NegotiatedProtocol:         pst.NegotiatedProtocol,
			NegotiatedProtocolIsMutual: true,
			ServerName:                 pst.ServerName,
			PeerCertificates:           st.PeerCertificates,
			VerifiedChains:             st.VerifiedChains,
		}, ts)
		require.Equal(t, ts, ours.TLSConnectionState())
	})
}

func TestConnectionStateNoClientCertificate(t *testing.T) {
	p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13, Role: tlstest.WeServer}})
	st := p.Ours.ConnectionState()
	require.Nil(t, st.PeerCertificates)
	require.Equal(t, openssl.VerifyOK, st.VerifyResult)
}

func TestLargeTransferBothWays(t *testing.T) {
	const size = 8 << 20
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		require.NoError(t, p.PeerTCP().SetDeadline(time.Now().Add(4*tlstest.Timeout)))
		require.NoError(t, p.Ours.SetDeadline(time.Now().Add(4*tlstest.Timeout)))
		up, down := randomBytes(1, size), randomBytes(2, size)

		type result struct {
			sum [32]byte
			err error
		}
		peerRead := make(chan result, 1)
		peerWrite := make(chan error, 1)
		ourWrite := make(chan error, 1)
		go func() {
			sum, err := readSum(p.Peer, size)
			peerRead <- result{sum, err}
		}()
		go func() { peerWrite <- writeChunks(p.Peer, down, 3) }()
		go func() { ourWrite <- writeChunks(p.Ours, up, 4) }()

		// Our reads land in buffers of varying size too.
		got := bytes.NewBuffer(make([]byte, 0, size))
		buf := make([]byte, 128<<10+1)
		sizes := randomBytes(5, 1<<16)
		for i := 0; got.Len() < size; i++ {
			n := 1 + int(sizes[i%len(sizes)])<<9
			k, err := p.Ours.Read(buf[:min(n, size-got.Len())])
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

// TestReadServesBufferedRecords: with read-ahead, one read(2) brings many
// records into OpenSSL, and Read must hand them all out without waiting
// for the socket, which stays silent: the peer sends nothing more until we
// have read everything. A Read that parked in the netpoller while OpenSSL
// held records would wait for the deadline.
func TestReadServesBufferedRecords(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		const records, size = 50, 100
		want := tlstest.Pattern(records * size)
		for i := range records { // one record per Write
			_, err := p.Peer.Write(want[i*size : (i+1)*size])
			require.NoError(t, err)
		}
		require.NoError(t, p.Ours.SetReadDeadline(time.Now().Add(tlstest.Timeout)))
		got := make([]byte, 0, len(want))
		buf := make([]byte, size)
		for len(got) < len(want) {
			n, err := p.Ours.Read(buf)
			require.NoError(t, err, "after %d of %d bytes", len(got), len(want))
			got = append(got, buf[:n]...)
		}
		require.Equal(t, want, got)
	})
}

// TestReadRecordsArrivingByteByByte: the peer sends every byte in a
// write(2), so a TCP segment, of its own, so a Read keeps finding part of
// a record in OpenSSL's read buffer when the socket runs dry, and parks
// with it there. Releasing OpenSSL's buffers while a Read parks must leave
// such a buffer alone: the handshake, the data and the close_notify all
// come through.
func TestReadRecordsArrivingByteByByte(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, WrapPeer: func(s tlstest.Sock) net.Conn { return byteWriter{s} }})
		want := tlstest.Pattern(3000)
		peerDone := tlstest.Go(func() error {
			if _, err := p.Peer.Write(want[:1000]); err != nil {
				return err
			}
			if _, err := p.Peer.Write(want[1000:]); err != nil {
				return err
			}
			return p.Peer.CloseWrite() // close_notify
		})
		require.NoError(t, p.Ours.SetReadDeadline(time.Now().Add(tlstest.Timeout)))
		got, err := io.ReadAll(p.Ours)
		require.NoError(t, err)
		require.Equal(t, want, got)
		tlstest.Wait(t, peerDone, "the peer's writes")
	})
}

// byteWriter writes each byte in a write(2) of its own; with TCP_NODELAY,
// Go's default, each leaves in a segment of its own.
type byteWriter struct{ tlstest.Sock }

func (w byteWriter) Write(b []byte) (int, error) {
	for i := range b {
		if _, err := w.Sock.Write(b[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(b), nil
}

// TestExchangesAcrossIdleReleases: the peer pauses before each answer,
// longer than a Read waits before OpenSSL's buffers are released (1 ms), so
// the buffers are freed while our Read is parked, and sometimes while our
// next Write starts; every exchange must still carry the exact bytes, and
// Close must not race with a release (run with -race).
func TestExchangesAcrossIdleReleases(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc})
		const rounds = 10
		peerDone := tlstest.Go(func() error {
			buf := make([]byte, 5)
			for i := range rounds {
				if _, err := io.ReadFull(p.Peer, buf); err != nil {
					return err
				}
				time.Sleep(3 * time.Millisecond) // an idle gap, not a synchronisation
				if _, err := fmt.Fprintf(p.Peer, "re:%02d", i); err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(t, p.Ours.SetDeadline(time.Now().Add(tlstest.Timeout)))
		buf := make([]byte, 5)
		for i := range rounds {
			_, err := fmt.Fprintf(p.Ours, "hi:%02d", i)
			require.NoError(t, err)
			_, err = io.ReadFull(p.Ours, buf)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("re:%02d", i), string(buf))
		}
		tlstest.Wait(t, peerDone, "the peer's answers")
		require.NoError(t, p.Ours.Close())
	})
}

func TestReadEOFOnCloseNotify(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
		_, err := p.Peer.Write([]byte("bye"))
		require.NoError(t, err)
		require.NoError(t, p.Peer.CloseWrite()) // close_notify, TCP stays open

		buf := make([]byte, 16)
		n, err := io.ReadAtLeast(p.Ours, buf, 3)
		require.NoError(t, err)
		require.Equal(t, "bye", string(buf[:n]))
		for range 3 {
			n, err = p.Ours.Read(buf)
			require.Zero(t, n)
			require.Equal(t, io.EOF, err)
		}
		require.True(t, p.Ours.ShutdownState().Received())

		// Our direction still works after the peer's close_notify.
		errc := make(chan error, 1)
		go func() {
			b := make([]byte, 4)
			_, err := io.ReadFull(p.Peer, b)
			if err == nil && string(b) != "more" {
				err = errors.New("peer read " + string(b))
			}
			errc <- err
		}()
		_, err = p.Ours.Write([]byte("more"))
		require.NoError(t, err)
		require.NoError(t, <-errc)
	}, tlstest.Path.OnSocket)
}

func TestReadTruncated(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
		p.SyncPeer(t)
		_, err := p.Peer.Write([]byte("last"))
		require.NoError(t, err)
		require.NoError(t, p.PeerTCP().Close()) // FIN, no close_notify

		buf := make([]byte, 16)
		n, err := p.Ours.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "last", string(buf[:n]))

		n, err = p.Ours.Read(buf)
		require.Zero(t, n)
		require.ErrorIs(t, err, openssl.ErrTruncated)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		require.NotErrorIs(t, err, io.EOF)
		e := asError(t, err)
		require.Equal(t, "read", e.Op)
		require.Equal(t, openssl.ErrorSyscall, e.Code)
		require.True(t, strings.HasPrefix(err.Error(), "openssl: read: "), err.Error())
		for range 3 {
			_, again := p.Ours.Read(buf)
			require.Equal(t, err, again, "the error is permanent")
		}
	}, tlstest.Path.OnSocket)
}

func TestReadFromResetPeer(t *testing.T) {
	tlstest.EachOnPaths(t, func(t *testing.T, tc tlstest.Case, path tlstest.Path) {
		p := tlstest.Connect(t, tlstest.Spec{Case: tc, Path: path})
		p.SyncPeer(t)
		require.NoError(t, p.ResetPeer())

		_, err := p.Ours.Read(make([]byte, 16))
		require.ErrorIs(t, err, syscall.ECONNRESET)
		e := asError(t, err)
		require.Equal(t, "read", e.Op)
		require.Equal(t, openssl.ErrorSyscall, e.Code)
		require.Equal(t, syscall.ECONNRESET, e.Errno)
		require.NotErrorIs(t, err, openssl.ErrTruncated)
		_, again := p.Ours.Read(make([]byte, 16))
		require.Equal(t, err, again, "the error is permanent")
	}, tlstest.Path.OnSocket)
}

// TestWriteToResetPeer writes until the reset shows: the process must not
// die of SIGPIPE, and the error must name the errno.
func TestWriteToResetPeer(t *testing.T) {
	tlstest.Each(t, func(t *testing.T, tc tlstest.Case) {
		// The kernel reports a pending reset once, as ECONNRESET, and
		// raises SIGPIPE only with the EPIPE of later writes. With
		// clearReset the test takes the ECONNRESET itself (SO_ERROR), so
		// OpenSSL's write(2) gets EPIPE (and, written with plain write(2)
		// by the socket BIO, SIGPIPE).
		for _, clearReset := range []bool{false, true} {
			t.Run(fmt.Sprintf("clearReset=%t", clearReset), func(t *testing.T) {
				p := tlstest.Connect(t, tlstest.Spec{Case: tc})
				p.SyncPeer(t)
				require.NoError(t, p.ResetPeer())
				require.NoError(t, p.Ours.SetDeadline(time.Now().Add(tlstest.Timeout)))
				if clearReset {
					require.Equal(t, syscall.ECONNRESET, takeSocketError(t, p.Ours))
				}

				chunk := make([]byte, 16<<10)
				var err error
				for i := 0; i < 1000 && err == nil; i++ {
					_, err = p.Ours.Write(chunk)
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
				_, again := p.Ours.Write(chunk)
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
	p := tlstest.Connect(t, tlstest.Spec{Case: tlstest.Case{Version: tls.VersionTLS13}})
	ours, peer := p.Ours, p.Peer
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
