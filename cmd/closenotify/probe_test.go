package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// probeTimeout is --timeout in these tests: the idle phase waits that long.
const probeTimeout = time.Second

// probeFiles writes the default PKI's files for the probe's --cafile and
// the process servers.
func probeFiles(t *testing.T) tlstest.Files {
	f, err := tlstest.WriteFiles(tlstest.DefaultPKI(), t.TempDir())
	require.NoError(t, err)
	return f
}

// probePhaseAt runs one phase of the probe against addr and returns its
// report, checking the handshake's part of the report.
func probePhaseAt(t *testing.T, f tlstest.Files, addr, phase string, http bool) phaseReport {
	t.Helper()
	rep, err := runProbe(probeOptions{
		addr: addr, serverName: "localhost", caFile: f.CA,
		timeout: probeTimeout, phases: []string{phase}, http: http,
	})
	require.NoError(t, err)
	require.Len(t, rep.Phases, 1)
	require.Contains(t, []string{"TLS 1.2", "TLS 1.3"}, rep.Version)
	require.NotEmpty(t, rep.Cipher)
	return rep.Phases[0]
}

// probeWant is what a phase must report.
type probeWant struct {
	event, tcp string
	data       int64
	steps      []string
}

var (
	answered     = []string{"SSL_shutdown=0", "SSL_read=ZERO_RETURN", "SSL_shutdown=1"}
	halfAnswered = []string{"SSL_shutdown=0", "shutdown(SHUT_WR)", "SSL_read=ZERO_RETURN", "SSL_shutdown=1"}
	silent       = []string{"SSL_read=WANT_READ (timeout)"}
)

func requirePhase(t *testing.T, want probeWant, got phaseReport) {
	t.Helper()
	require.Equal(t, want.event, got.Event, "event; report %+v", got)
	require.Equal(t, want.tcp, got.TCP, "TCP; report %+v", got)
	require.Equal(t, want.data, got.DataBytes, "data bytes; report %+v", got)
	require.Equal(t, want.steps, got.Steps, "steps; report %+v", got)
	require.Empty(t, got.Error)
	require.Less(t, got.AfterUS, (probeTimeout + time.Second).Microseconds())
}

// serveTLS accepts connections on 127.0.0.1 until cleanup and runs handle
// on each, wrapped by wrap (crypto/tls's or ours).
func serveTLS(t *testing.T, wrap func(net.Conn) net.Conn, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := l.Accept()
			if err != nil {
				return
			}
			raw.SetDeadline(time.Now().Add(tlstest.Timeout))
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := wrap(raw)
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String()
}

func goTLS(c net.Conn) net.Conn {
	return tls.Server(c, &tls.Config{Certificates: []tls.Certificate{tlstest.DefaultPKI().TLSCert}})
}

// idleThenClose reads until our close_notify or 100 ms of silence, then
// returns: the deferred Close ends the connection.
func idleThenClose(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	io.Copy(io.Discard, c)
}

// TestProbeGoServers: crypto/tls servers, and one that keeps sending
// after our close_notify.
func TestProbeGoServers(t *testing.T) {
	f := probeFiles(t)
	answers := serveTLS(t, goTLS, func(c net.Conn) { io.Copy(io.Discard, c) })
	chatty := serveTLS(t, goTLS, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Write(make([]byte, 10000)) // after our close_notify
	})
	for _, tc := range []struct {
		name, addr, phase string
		want              probeWant
	}{
		{"crypto/tls", answers, "close", probeWant{"close_notify", "fin", 0, answered}},
		{"crypto/tls", answers, "half-close", probeWant{"close_notify", "fin", 0, halfAnswered}},
		{"crypto/tls", answers, "idle", probeWant{"none", "", 0, silent}},
		{"keeps sending", chatty, "close", probeWant{"close_notify", "fin", 10000, answered}},
	} {
		t.Run(tc.name+"/"+tc.phase, func(t *testing.T) {
			requirePhase(t, tc.want, probePhaseAt(t, f, tc.addr, tc.phase, false))
		})
	}
}

// TestProbeOurServer: our own server under each ClosePolicy, closing after
// our close_notify or 100 ms of silence; and, with SetLinger(0), a server
// that resets.
func TestProbeOurServer(t *testing.T) {
	f := probeFiles(t)
	sslCtx := tlstest.ServerCtx(t)
	alert := probeWant{"close_notify", "fin", 0, nil}
	for _, tc := range []struct {
		name   string
		policy openssl.ClosePolicy
		linger bool
		close  probeWant // the close phase; the idle phase has no SSL steps
	}{
		{"default", openssl.ClosePolicy{}, false, alert},
		{"WaitForPeer", openssl.ClosePolicy{WaitForPeer: true, Timeout: 300 * time.Millisecond}, false, alert},
		{"Lingering", openssl.ClosePolicy{Lingering: true, Timeout: 300 * time.Millisecond}, false, alert},
		{"DrainSendQueue", openssl.ClosePolicy{DrainSendQueue: true}, false, alert},
		{"Quiet", openssl.ClosePolicy{Quiet: true}, false, probeWant{"eof", "", 0, nil}},
		{"SetLinger(0)", openssl.ClosePolicy{}, true, probeWant{"reset", "", 0, nil}},
	} {
		addr := serveTLS(t, func(c net.Conn) net.Conn {
			conn, err := openssl.Server(c, sslCtx)
			if err != nil {
				panic(err)
			}
			conn.SetClosePolicy(tc.policy)
			if tc.linger {
				conn.SetLinger(0)
			}
			return conn
		}, idleThenClose)
		t.Run(tc.name+"/close", func(t *testing.T) {
			want := tc.close
			want.steps = map[string][]string{
				"close_notify": answered,
				"eof":          {"SSL_shutdown=0", "SSL_read=SYSCALL/EOF"},
				"reset":        {"SSL_shutdown=0", "SSL_read=SYSCALL/ECONNRESET"},
			}[want.event]
			requirePhase(t, want, probePhaseAt(t, f, addr, "close", false))
		})
		t.Run(tc.name+"/idle", func(t *testing.T) {
			want := tc.close
			want.steps = map[string][]string{
				"close_notify": {"SSL_read=ZERO_RETURN"},
				"eof":          {"SSL_read=SYSCALL/EOF"},
				"reset":        {"SSL_read=SYSCALL/ECONNRESET"},
			}[want.event]
			requirePhase(t, want, probePhaseAt(t, f, addr, "idle", false))
		})
	}
}

// TestProbeProcessServers: openssl s_server and gnutls-serv, one server
// process per phase (s_server serves one connection).
func TestProbeProcessServers(t *testing.T) {
	f := probeFiles(t)
	servers := map[string]func(t *testing.T) string{
		"s_server": func(t *testing.T) string {
			return tlstest.Started(t)(peer.OpenSSLServer(t.Context(), f.Cert, f.Key)).Addr()
		},
		"gnutls-serv": func(t *testing.T) string {
			return tlstest.Started(t)(peer.GnuTLSServer(t.Context(), f.Cert, f.Key)).Addr()
		},
	}
	for _, name := range []string{"s_server", "gnutls-serv"} {
		for _, tc := range []struct {
			phase string
			want  probeWant
		}{
			{"close", probeWant{"close_notify", "fin", 0, answered}},
			{"half-close", probeWant{"close_notify", "fin", 0, halfAnswered}},
			{"idle", probeWant{"none", "", 0, silent}},
		} {
			t.Run(name+"/"+tc.phase, func(t *testing.T) {
				requirePhase(t, tc.want, probePhaseAt(t, f, servers[name](t), tc.phase, false))
			})
		}
	}
}

// TestProbeHTTP: --http against Go's net/http over crypto/tls: a request
// before our close_notify, and a "Connection: close" request, after which
// net/http sends close_notify and closes TCP.
func TestProbeHTTP(t *testing.T) {
	f := probeFiles(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{tlstest.DefaultPKI().TLSCert}})
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello\n")
	}), ErrorLog: nil}
	served := tlstest.Go(func() error { return srv.Serve(l) })
	t.Cleanup(func() {
		srv.Close()
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})
	requirePhase(t, probeWant{"close_notify", "fin", 0, append([]string{"HTTP 200"}, answered...)},
		probePhaseAt(t, f, l.Addr().String(), "close", true))
	requirePhase(t, probeWant{"close_notify", "fin", 0, []string{"HTTP 200", "SSL_read=ZERO_RETURN"}},
		probePhaseAt(t, f, l.Addr().String(), "http-close", true))
}

// TestProbeCommand: the command line, the table and --json; a silent
// server (it accepts TCP and never answers) fails the probe within its
// timeout instead of hanging.
func TestProbeCommand(t *testing.T) {
	f := probeFiles(t)
	addr := serveTLS(t, goTLS, func(c net.Conn) { io.Copy(io.Discard, c) })
	var out, errOut bytes.Buffer
	code := runMain([]string{"probe", "--cafile", f.CA, "--servername", "localhost", "--timeout", "300ms", addr, "--json"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	var rep probeReport
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	require.Equal(t, []string{"close", "half-close", "idle"}, []string{rep.Phases[0].Phase, rep.Phases[1].Phase, rep.Phases[2].Phase})

	out.Reset()
	require.Equal(t, 0, runMain([]string{"probe", "--cafile", f.CA, "--servername", "localhost", "--timeout", "300ms", "--phase", "close", addr}, &out, &errOut))
	require.Contains(t, out.String(), "sent close_notify")
	require.Contains(t, out.String(), "SSL_shutdown=0, SSL_read=ZERO_RETURN, SSL_shutdown=1")

	require.Equal(t, 2, runMain([]string{"probe"}, io.Discard, io.Discard))
	require.Equal(t, 2, runMain([]string{"probe", "--phase", "nope", addr}, io.Discard, io.Discard))

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	accepted := tlstest.Go(func() error {
		c, err := silent.Accept()
		if err == nil {
			io.Copy(io.Discard, c) // until the probe gives up and closes
			c.Close()
		}
		return err
	})
	errOut.Reset()
	tlstest.Within(t, 300*time.Millisecond+2*time.Second, "probe of a silent server", func() {
		code = runMain([]string{"probe", "--insecure", "--timeout", "300ms", silent.Addr().String()}, io.Discard, &errOut)
	})
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "handshake")
	tlstest.Wait(t, accepted, "the silent server's accept")
}

// TestProbePython: Python's ssl server, told to read to our close_notify
// and then either to unwrap (its close_notify; the TCP connection stays
// open) or to close (no close_notify: the probe sees a truncation).
func TestProbePython(t *testing.T) {
	f := probeFiles(t)
	for _, tc := range []struct {
		then string
		want probeWant
	}{
		{peer.PythonCmdUnwrap, probeWant{"close_notify", "open", 0, answered}},
		{peer.PythonCmdClose, probeWant{"eof", "", 0, []string{"SSL_shutdown=0", "SSL_read=SYSCALL/EOF"}}},
	} {
		t.Run(tc.then[:len(tc.then)-1], func(t *testing.T) {
			p := tlstest.Started(t)(peer.PythonServer(t.Context(), f.Cert, f.Key, peer.PythonOptions{}))
			require.NoError(t, p.Send(peer.PythonCmdRecvAll+tc.then))
			requirePhase(t, tc.want, probePhaseAt(t, f, p.Addr(), "close", false))
		})
	}
}
