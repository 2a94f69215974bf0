package openssl_test

import (
	"crypto/tls"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// clientPKI is the client certificate of the mutual TLS tests, from pki's
// CA.
var clientPKI = func() *testcert.Bundle {
	b, err := pki.ClientBundle("client")
	if err != nil {
		panic(err)
	}
	return b
}()

// resumeServer starts a server for the resumption tests, limited to
// version and, with mutualTLS, requiring a client certificate from pki's
// CA. It returns the address and, for in-process servers, the server's
// account of each connection (nil for s_server).
type resumeServer struct {
	name  string
	start func(t *testing.T, version uint16, mutualTLS bool) (string, <-chan served)
}

var resumeServers = []resumeServer{
	{"ours", func(t *testing.T, version uint16, mutualTLS bool) (string, <-chan served) {
		sslCtx := ctxOf(t, pki, version)
		if mutualTLS {
			sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
		}
		return startOurServer(t, sslCtx)
	}},
	{"crypto-tls", func(t *testing.T, version uint16, mutualTLS bool) (string, <-chan served) {
		cfg := &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}, MinVersion: version, MaxVersion: version}
		if mutualTLS {
			cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pki.Pool
		}
		return startGoServer(t, cfg)
	}},
	{"s_server", func(t *testing.T, version uint16, mutualTLS bool) (string, <-chan served) {
		ca, cert, key := pemFiles(t, pki)
		args := []string{"-www", "-naccept", "3", versionFlag(version)}
		if mutualTLS {
			args = append(args, "-Verify", "1", "-CAfile", ca)
		}
		return tlstest.Started(t)(peer.OpenSSLServer(t.Context(), cert, key, args...)).Addr(), nil
	}},
}

func versionFlag(version uint16) string {
	if version == tls.VersionTLS12 {
		return "-tls1_2"
	}
	return "-tls1_3"
}

// clientCtxFor returns a client Ctx trusting pki's CA, limited to version,
// presenting clientPKI's certificate.
func clientCtxFor(t testing.TB, version uint16) *openssl.Ctx {
	return ctxOf(t, clientPKI, version)
}

// withSessionCache gives sslCtx a client session cache of capacity
// sessions, which cleanup removes: the sessions of a cache left to the
// garbage collector would be freed whenever it runs, and the tests that
// count live sessions could not tell theirs apart.
func withSessionCache(t testing.TB, sslCtx *openssl.Ctx, capacity int) *openssl.Ctx {
	sslCtx.SetClientSessionCache(capacity)
	t.Cleanup(func() { sslCtx.SetClientSessionCache(0) })
	return sslCtx
}

// firstSession dials addr for a full handshake, fetches a page (TLS 1.3
// tickets arrive on the way) and returns the connection's session.
func firstSession(t *testing.T, addr string, sslCtx *openssl.Ctx) []byte {
	t.Helper()
	c, err := openssl.Dial("tcp", addr, sslCtx, 0)
	require.NoError(t, err)
	defer c.Close()
	require.False(t, c.ConnectionState().DidResume)
	get(t, c)
	session, err := c.GetSession()
	require.NoError(t, err)
	return session
}

// TestResumption: the second Dial with a client session cache resumes, and
// so does DialSession with the first connection's session on another Ctx,
// against each server, TLS 1.2 and 1.3, with and without mutual TLS (whose
// server side needs the default session id context).
func TestResumption(t *testing.T) {
	for _, srv := range resumeServers {
		for _, version := range tlstest.Versions {
			for _, mutualTLS := range []bool{false, true} {
				name := srv.name + "/" + tls.VersionName(version)
				if mutualTLS {
					name += "/mutual"
				}
				t.Run(name, func(t *testing.T) {
					addr, results := srv.start(t, version, mutualTLS)
					cached := withSessionCache(t, clientCtxFor(t, version), 8)
					checkServer := func(resumed bool) {
						if results == nil {
							return
						}
						s := nextServed(t, results)
						require.Equal(t, resumed, s.resumed, "the server's DidResume")
						if mutualTLS {
							require.NotZero(t, s.peerCerts, "the client's certificate on the server")
						}
					}

					session := firstSession(t, addr, cached)
					checkServer(false)

					second, err := openssl.Dial("tcp", addr, cached, 0)
					require.NoError(t, err)
					require.True(t, second.ConnectionState().DidResume, "Dial with the session cache")
					get(t, second)
					second.Close()
					checkServer(true)

					third, err := openssl.DialSession("tcp", addr, clientCtxFor(t, version), 0, session)
					require.NoError(t, err)
					require.True(t, third.ConnectionState().DidResume, "DialSession")
					get(t, third)
					third.Close()
					checkServer(true)
				})
			}
		}
	}
}

// TestResumptionOfOurServer: our mutual-TLS server resumes the sessions
// of crypto/tls's ClientSessionCache and of s_client's -sess_out/-sess_in
// (the reported bug: without a session id context the second handshake
// failed with internal_error).
func TestResumptionOfOurServer(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		sslCtx := ctxOf(t, pki, version)
		sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
		addr, results := startOurServer(t, sslCtx)

		ca, cert, key := pemFiles(t, clientPKI)
		sessFile := filepath.Join(t.TempDir(), "session.pem")
		for i, sessArg := range []string{"-sess_out", "-sess_in"} {
			c := tlstest.Started(t)(peer.OpenSSLClient(t.Context(), addr, ca, "-cert", cert, "-key", key, versionFlag(version), sessArg, sessFile))
			require.NoError(t, c.Send(request))
			code, err := c.Wait(tlstest.Timeout)
			require.NoError(t, err)
			require.Equal(t, 0, code, "s_client's exit code")
			want := []string{"New, ", "Reused, "}[i]
			require.Contains(t, c.Output(), want+"TLSv1.", "s_client with %s", sessArg)
			s := nextServed(t, results)
			require.Equal(t, i == 1, s.resumed)
			require.NotZero(t, s.peerCerts)
		}

		cfg := &tls.Config{
			RootCAs: pki.Pool, ServerName: "localhost",
			Certificates:       []tls.Certificate{clientPKI.TLSCert},
			ClientSessionCache: tls.NewLRUClientSessionCache(4),
		}
		for i, want := range []bool{false, true} {
			c, err := tls.Dial("tcp", addr, cfg)
			require.NoError(t, err)
			require.NoError(t, c.SetDeadline(time.Now().Add(tlstest.Timeout)))
			get(t, c)
			require.Equal(t, want, c.ConnectionState().DidResume, "connection %d", i)
			c.Close()
			s := nextServed(t, results)
			require.Equal(t, want, s.resumed)
			require.NotZero(t, s.peerCerts)
		}
	})
}

// TestResumptionOtherServer: a session from one server offered to another
// gives a full handshake, not an error.
func TestResumptionOtherServer(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		addr, _ := startOurServer(t, ctxOf(t, pki, version))
		session := firstSession(t, addr, clientCtxFor(t, version))
		for _, srv := range resumeServers {
			t.Run(srv.name, func(t *testing.T) {
				other, _ := srv.start(t, version, false)
				c, err := openssl.DialSession("tcp", other, clientCtxFor(t, version), 0, session)
				require.NoError(t, err)
				require.False(t, c.ConnectionState().DidResume)
				get(t, c)
				c.Close()
			})
		}
	})
}

// TestResumptionExpired: a session older than the server's SetTimeout gives
// a full handshake. OpenSSL counts whole seconds and expires a session
// once more than the timeout has passed, so the test waits until two
// seconds after the session was made: a fact of the clock, not a race.
func TestResumptionExpired(t *testing.T) {
	for _, version := range tlstest.Versions {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel()
			sslCtx := ctxOf(t, pki, version)
			require.Equal(t, 2*time.Hour, sslCtx.SetTimeout(time.Second), "OpenSSL's default")
			require.Equal(t, time.Second, sslCtx.GetTimeout())
			addr, results := startOurServer(t, sslCtx)
			session := firstSession(t, addr, clientCtxFor(t, version))
			nextServed(t, results)
			expired := time.Unix(time.Now().Unix()+2, 0).Add(100 * time.Millisecond)
			time.Sleep(time.Until(expired))

			c, err := openssl.DialSession("tcp", addr, clientCtxFor(t, version), 0, session)
			require.NoError(t, err)
			require.False(t, c.ConnectionState().DidResume)
			get(t, c)
			c.Close()
			require.False(t, nextServed(t, results).resumed)
		})
	}
}

// TestGetSessionBeforeTicket: on TLS 1.3 the tickets arrive with the first
// Read; a session taken before is not resumable, and GetSession says so
// instead of returning bytes that would not resume. A connection closed
// before its tickets arrived leaves the client session cache empty: the
// next Dial makes a full handshake, without error.
func TestGetSessionBeforeTicket(t *testing.T) {
	addr, _ := startOurServer(t, ctxOf(t, pki, tls.VersionTLS13))
	cached := withSessionCache(t, clientCtxFor(t, tls.VersionTLS13), 4)
	dial := func(wantResumed bool) *openssl.Conn {
		c, err := openssl.Dial("tcp", addr, cached, 0)
		require.NoError(t, err)
		require.Equal(t, wantResumed, c.ConnectionState().DidResume)
		return c
	}

	closedEarly := dial(false)
	_, err := closedEarly.GetSession()
	require.ErrorIs(t, err, openssl.ErrSessionNotResumable)
	closedEarly.Close()

	reads := dial(false) // nothing was cached
	_, err = reads.GetSession()
	require.ErrorIs(t, err, openssl.ErrSessionNotResumable)
	get(t, reads)
	session, err := reads.GetSession()
	require.NoError(t, err)
	require.NotEmpty(t, session)
	reads.Close()

	dial(true).Close()
}

// TestServerSessionSettings: the server's session switches do what they
// say, seen from a client that offers the previous session.
func TestServerSessionSettings(t *testing.T) {
	cases := []struct {
		name    string
		version uint16
		set     func(t *testing.T, c *openssl.Ctx)
		resumes bool
	}{
		{"no tickets, server cache", tls.VersionTLS12, func(t *testing.T, c *openssl.Ctx) {
			c.SetOptions(openssl.NoTicket)
		}, true},
		{"no tickets, cache off", tls.VersionTLS12, func(t *testing.T, c *openssl.Ctx) {
			c.SetOptions(openssl.NoTicket)
			require.Equal(t, openssl.SessionCacheServer, c.SetSessionCacheMode(openssl.SessionCacheOff))
			require.Equal(t, openssl.SessionCacheOff, c.GetSessionCacheMode())
		}, false},
		{"cache size", tls.VersionTLS12, func(t *testing.T, c *openssl.Ctx) {
			c.SetOptions(openssl.NoTicket)
			require.Equal(t, 20480, c.SessSetCacheSize(1), "OpenSSL's default")
			require.Equal(t, 1, c.SessGetCacheSize())
		}, true},
		{"session id", tls.VersionTLS13, func(t *testing.T, c *openssl.Ctx) {
			require.NoError(t, c.SetSessionId([]byte("service A")))
		}, true},
		{"TLS 1.3 tickets off", tls.VersionTLS13, func(t *testing.T, c *openssl.Ctx) {
			require.NoError(t, c.SetNumTickets(0))
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sslCtx := ctxOf(t, pki, tc.version)
			tc.set(t, sslCtx)
			addr, _ := startOurServer(t, sslCtx)
			cached := withSessionCache(t, clientCtxFor(t, tc.version), 1)
			for i, want := range []bool{false, tc.resumes} {
				c, err := openssl.Dial("tcp", addr, cached, 0)
				require.NoError(t, err)
				require.Equal(t, want, c.ConnectionState().DidResume, "connection %d", i)
				get(t, c)
				_, err = c.GetSession()
				if tc.resumes {
					require.NoError(t, err)
				} else if tc.version == tls.VersionTLS13 {
					require.ErrorIs(t, err, openssl.ErrSessionNotResumable)
				}
				c.Close()
			}
		})
	}
}

// TestSessionErrors: bad sessions and bad settings are errors, not crashes.
func TestSessionErrors(t *testing.T) {
	sslCtx := ctxOf(t, pki, 0)
	require.Error(t, sslCtx.SetSessionId(make([]byte, 33)))
	require.Error(t, sslCtx.SetSessionId(nil))
	require.Error(t, sslCtx.SetNumTickets(-1))

	c, _ := tlstest.TCPPair(t)
	conn, err := openssl.Client(c, sslCtx)
	require.NoError(t, err)
	defer conn.Close()
	err = conn.SetSession([]byte("not a session"))
	var e *openssl.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, "set session", e.Op)
	require.Error(t, conn.SetSession(nil))
	_, err = conn.GetSession()
	require.ErrorIs(t, err, openssl.ErrSessionNotResumable)
}

// TestClientSessionCacheLRU: a cache of one session keeps the last
// server's; a session it evicted is not offered again, and every session
// it drops is freed: it holds one reference per entry, none once
// SetClientSessionCache replaces or removes it.
func TestClientSessionCacheLRU(t *testing.T) {
	tlstest.EachVersion(t, func(t *testing.T, version uint16) {
		// Not parallel: the count of live sessions is the process's.
		a, _ := startOurServer(t, ctxOf(t, pki, version))
		b, _ := startOurServer(t, ctxOf(t, pki, version))
		cached := withSessionCache(t, clientCtxFor(t, version), 1)
		before := openssl.LiveClientSessions()
		dial := func(addr string, wantResumed bool) {
			t.Helper()
			c, err := openssl.Dial("tcp", addr, cached, 0)
			require.NoError(t, err)
			require.Equal(t, wantResumed, c.ConnectionState().DidResume)
			get(t, c) // TLS 1.3 tickets arrive on the way
			c.Close()
			require.Equal(t, before+1, openssl.LiveClientSessions(), "sessions held after a connection to %s", addr)
		}
		dial(a, false)
		dial(b, false) // evicts a's
		dial(a, false)
		dial(a, true)
		dial(b, false)

		cached.SetClientSessionCache(1) // a new, empty cache
		require.Equal(t, before, openssl.LiveClientSessions(), "sessions held after the cache was replaced")
		dial(b, false)
		cached.SetClientSessionCache(0)
		require.Equal(t, before, openssl.LiveClientSessions(), "sessions held after the cache was removed")
		c, err := openssl.Dial("tcp", b, cached, 0)
		require.NoError(t, err)
		require.False(t, c.ConnectionState().DidResume, "Dial without a cache")
		get(t, c)
		c.Close()
		require.Equal(t, before, openssl.LiveClientSessions(), "sessions held without a cache")
	})
}

// TestClientSessionCacheConcurrent: dials that share a cache, while it is
// replaced and removed under them, all succeed, and the sessions they
// stored are freed (under the race detector and asan this also catches a
// session freed while offered).
func TestClientSessionCacheConcurrent(t *testing.T) {
	const dialers, dials = 4, 8
	addr, results := startOurServer(t, ctxOf(t, pki, tls.VersionTLS13))
	cached := withSessionCache(t, clientCtxFor(t, tls.VersionTLS13), 2)
	before := openssl.LiveClientSessions()
	errs := make(chan error, dialers)
	for range dialers {
		go func() {
			errs <- func() error {
				for range dials {
					c, err := openssl.Dial("tcp", addr, cached, 0)
					if err != nil {
						return err
					}
					_, err = io.WriteString(c, request)
					if err == nil {
						_, err = io.ReadAll(c) // TLS 1.3 tickets arrive on the way
					}
					c.Close()
					if err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	// Each connection the server finished replaces the cache (capacity 0
	// removes it), so that dials load, offer and fill caches being closed.
	for swaps, running := 0, dialers; running > 0; {
		select {
		case s := <-results:
			require.NoError(t, s.err, "server")
			swaps++
			cached.SetClientSessionCache(swaps % 3)
		case err := <-errs:
			require.NoError(t, err)
			running--
		case <-time.After(tlstest.Timeout):
			t.Fatal("the dialers did not finish")
		}
	}
	cached.SetClientSessionCache(0)
	require.Equal(t, before, openssl.LiveClientSessions())
}
