package openssl_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/tlstest"
)

// The fuzz targets of this file feed hostile input to the certificate and
// key loaders and to a Conn talking to a misbehaving peer. Their seed
// corpora live in testdata/fuzz/<target>/ and run with every go test; make
// fuzz runs the fuzzing engine on each target.

// fuzzWait bounds every wait of one fuzz input. Each peer closes TCP after
// its bytes, so nothing waits this long unless something hangs.
const fuzzWait = 5 * time.Second

// fuzzCloseTimeout is the ClosePolicy timeout of the fuzzed Conns.
const fuzzCloseTimeout = 2 * time.Second

// requireTyped fails t unless err is nil, io.EOF, or an *openssl.Error
// whose Op is set: the package returns no untyped error.
func requireTyped(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || err == io.EOF {
		return
	}
	var e *openssl.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: untyped error %T: %v", what, err, err)
	}
	if e.Op == "" {
		t.Fatalf("%s: *openssl.Error without Op: %v", what, err)
	}
}

// FuzzLoadCertificateFromPEM: any input gives a certificate or an
// *openssl.Error, never a panic, a crash or a password prompt; a loaded
// certificate converts to crypto/x509's form or fails cleanly.
func FuzzLoadCertificateFromPEM(f *testing.F) {
	f.Add(pki.CertPEM)
	f.Add(pki.KeyPEM)
	f.Fuzz(func(t *testing.T, data []byte) {
		cert, err := openssl.LoadCertificateFromPEM(data)
		if err != nil {
			requireTyped(t, "LoadCertificateFromPEM", err)
			if cert != nil {
				t.Fatalf("LoadCertificateFromPEM returned a certificate and an error: %v", err)
			}
			return
		}
		x, err := cert.X509()
		if err == nil && x == nil {
			t.Fatal("X509 returned neither a certificate nor an error")
		}
		if bytes.Equal(data, pki.CertPEM) && (err != nil || !bytes.Equal(x.Raw, pki.Leaf.Raw)) {
			t.Fatalf("pki's certificate did not round-trip: %v", err)
		}
	})
}

// FuzzLoadPrivateKeyFromPEM: any input gives a key or an *openssl.Error,
// never a panic, a crash or a password prompt; a loaded key is usable by a
// Ctx, which accepts it exactly when it matches the Ctx's certificate.
func FuzzLoadPrivateKeyFromPEM(f *testing.F) {
	f.Add(pki.KeyPEM)
	f.Add(pki.CertPEM)
	sslCtx, err := openssl.NewCtx()
	if err != nil {
		f.Fatal(err)
	}
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	if err != nil {
		f.Fatal(err)
	}
	if err := sslCtx.UseCertificate(cert); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := openssl.LoadPrivateKeyFromPEM(data)
		if err != nil {
			requireTyped(t, "LoadPrivateKeyFromPEM", err)
			if key != nil {
				t.Fatalf("LoadPrivateKeyFromPEM returned a key and an error: %v", err)
			}
			return
		}
		err = sslCtx.UsePrivateKey(key)
		requireTyped(t, "UsePrivateKey", err)
		if bytes.Equal(data, pki.KeyPEM) && err != nil {
			t.Fatalf("pki's key does not match pki's certificate: %v", err)
		}
	})
}

// TestLoadPEMNeverPrompts loads the encrypted PEM seeds (a certificate block
// with "Proc-Type: 4,ENCRYPTED" headers, legacy and PKCS#8 encrypted keys) in
// a child process that has no controlling terminal and a stdin that stays
// open: OpenSSL's default password callback would read the pass phrase from
// stdin there and block. FuzzLoadCertificateFromPEM found that hang.
func TestLoadPEMNeverPrompts(t *testing.T) {
	if os.Getenv("CLOSENOTIFY_PEM_CHILD") == "1" {
		for _, seed := range []string{
			"FuzzLoadCertificateFromPEM/encrypted-hdr-cert",
			"FuzzLoadPrivateKeyFromPEM/encrypted-hdr-cert",
			"FuzzLoadCertificateFromPEM/key-legacy-encrypted",
			"FuzzLoadPrivateKeyFromPEM/key-legacy-encrypted",
			"FuzzLoadPrivateKeyFromPEM/key-pkcs8-encrypted",
		} {
			data := readSeed(t, seed)
			var err error
			if strings.HasPrefix(seed, "FuzzLoadCertificateFromPEM/") {
				_, err = openssl.LoadCertificateFromPEM(data)
			} else {
				_, err = openssl.LoadPrivateKeyFromPEM(data)
			}
			if err == nil {
				t.Errorf("%s: loaded without a password", seed)
			}
			requireTyped(t, seed, err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadPEMNeverPrompts$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "CLOSENOTIFY_PEM_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no /dev/tty
	stdin, err := cmd.StdinPipe()                        // open, never written
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(tlstest.Timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("loading encrypted PEM blocked (waiting for a pass phrase?):\n%s", out.Bytes())
	}
	if err != nil || bytes.Contains(out.Bytes(), []byte("pass phrase")) ||
		!bytes.Contains(out.Bytes(), []byte("--- PASS: TestLoadPEMNeverPrompts")) {
		t.Fatalf("child: %v\n%s", err, out.Bytes())
	}
}

// readSeed returns the []byte value of a seed corpus file, "target/name".
func readSeed(t *testing.T, seed string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", filepath.FromSlash(seed)))
	if err != nil {
		t.Fatal(err)
	}
	_, lit, ok := strings.Cut(string(raw), "\n[]byte(")
	if !ok {
		t.Fatalf("%s: no []byte value", seed)
	}
	s, err := strconv.Unquote(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(lit), ")")))
	if err != nil {
		t.Fatalf("%s: %v", seed, err)
	}
	return []byte(s)
}

// Phases of FuzzPeerBytes: when the hostile peer's bytes arrive.
const (
	// phaseBeforeHandshake: a raw TCP client sends the bytes to our server
	// instead of a ClientHello.
	phaseBeforeHandshake = iota
	// phaseAfterClientHello: a raw TCP server reads our client's
	// ClientHello and answers with the bytes.
	phaseAfterClientHello
	// phaseAfterHandshake: a crypto/tls peer completes the handshake and
	// sends "hello"; then the bytes are written raw into the TCP stream
	// while we Read.
	phaseAfterHandshake
	// phaseAfterCloseNotify: as phaseAfterHandshake, but we call Shutdown:
	// the bytes arrive after our close_notify.
	phaseAfterCloseNotify
	numPhases
)

// Flags of FuzzPeerBytes.
const (
	flagWeAreServer = 1 << iota // phases after the handshake: our role
	flagTLS12                   // both sides limited to TLS 1.2
)

// fuzzPeerEnv is what FuzzPeerBytes builds once per process: building a Ctx
// takes longer than a whole fuzz input.
type fuzzPeerEnv struct {
	ln *net.TCPListener
	// sslCtxs[flags&flagTLS12][server]
	sslCtxs [2][2]*openssl.Ctx
}

func newFuzzPeerEnv(f *testing.F) *fuzzPeerEnv {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	env := &fuzzPeerEnv{ln: l.(*net.TCPListener)}
	for v := range 2 {
		for server := range 2 {
			sslCtx := tlstest.ClientCtx(f)
			if server == 1 {
				sslCtx = tlstest.ServerCtx(f)
			}
			if v == 1 {
				if err := sslCtx.SetMaxProtoVersion(tls.VersionTLS12); err != nil {
					f.Fatal(err)
				}
			}
			sslCtx.SetClosePolicy(openssl.ClosePolicy{Timeout: fuzzCloseTimeout})
			env.sslCtxs[v][server] = sslCtx
		}
	}
	return env
}

// pair returns a TCP connection on 127.0.0.1 made through env's listener.
// Both ends are closed when t ends; the peer's end with SO_LINGER 0, so that
// thousands of inputs leave no TIME_WAIT sockets behind.
func (env *fuzzPeerEnv) pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	if err := env.ln.SetDeadline(time.Now().Add(fuzzWait)); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", env.ln.Addr().String(), fuzzWait)
	if err != nil {
		t.Fatal(err)
	}
	s, err := env.ln.AcceptTCP()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s
}

// FuzzPeerBytes: whatever a hostile peer sends, before, during or after the
// handshake or after our close_notify, no call of our Conn panics, hangs or
// returns an untyped error; no forged close_notify or data gets through;
// Close returns within its policy's timeout and frees the SSL object.
func FuzzPeerBytes(f *testing.F) {
	env := newFuzzPeerEnv(f)
	f.Add(byte(phaseAfterHandshake), byte(0), []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, phase, flags byte, data []byte) {
		phase %= numPhases
		v := 0
		version := uint16(tls.VersionTLS13)
		if flags&flagTLS12 != 0 {
			v, version = 1, tls.VersionTLS12
		}
		weAreServer := flags&flagWeAreServer != 0
		switch phase {
		case phaseBeforeHandshake:
			weAreServer = true
		case phaseAfterClientHello:
			weAreServer = false
		}
		sslBefore, _ := openssl.LiveObjects()

		c, s := env.pair(t)
		ourSock, peerSock := c, s
		newOurs := openssl.Client
		server := 0
		if weAreServer {
			ourSock, peerSock = s, c
			newOurs, server = openssl.Server, 1
		}
		ours, err := newOurs(ourSock, env.sslCtxs[v][server])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ours.Close() }) // after a failure; else a no-op
		deadline := time.Now().Add(fuzzWait)
		if err := ours.SetDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		if err := peerSock.SetDeadline(deadline); err != nil {
			t.Fatal(err)
		}

		// The peer's goroutine writes its bytes, half-closes TCP and reads
		// whatever we send until we close.
		peerDone := make(chan struct{})
		hostile := func(before func() error) {
			defer close(peerDone)
			if before != nil && before() != nil {
				return
			}
			peerSock.Write(data)
			peerSock.CloseWrite()
			io.Copy(io.Discard, peerSock)
		}

		switch phase {
		case phaseBeforeHandshake, phaseAfterClientHello:
			var readHello func() error
			if phase == phaseAfterClientHello {
				readHello = func() error {
					hdr := make([]byte, 5)
					if _, err := io.ReadFull(peerSock, hdr); err != nil {
						return err
					}
					_, err := io.CopyN(io.Discard, peerSock, int64(hdr[3])<<8|int64(hdr[4]))
					return err
				}
			}
			go hostile(readHello)
			err := ours.Handshake()
			requireTyped(t, "Handshake", err)
			if err == nil {
				// Not expected of random bytes; still bounded below.
				_, err = ours.Read(make([]byte, 1024))
				requireTyped(t, "Read", err)
			} else if errors.Is(err, openssl.ErrHandshakeIncomplete) || isTimeout(err) {
				t.Fatalf("Handshake did not end with the peer's FIN: %v", err)
			}

		case phaseAfterHandshake, phaseAfterCloseNotify:
			var peer *tls.Conn
			if weAreServer {
				peer = tls.Client(peerSock, &tls.Config{
					RootCAs: pki.Pool, ServerName: "localhost",
					MinVersion: version, MaxVersion: version,
				})
			} else {
				peer = tls.Server(peerSock, &tls.Config{
					Certificates: []tls.Certificate{pki.TLSCert},
					MinVersion:   version, MaxVersion: version,
				})
			}
			handshakeDone := make(chan error, 1)
			go func() { handshakeDone <- peer.Handshake() }()
			if err := ours.Handshake(); err != nil {
				t.Fatalf("our handshake: %v", err)
			}
			if err := <-handshakeDone; err != nil {
				t.Fatalf("peer handshake: %v", err)
			}
			go hostile(func() error {
				_, err := peer.Write([]byte("hello"))
				return err
			})
			if phase == phaseAfterHandshake {
				fuzzReadAll(t, ours)
			} else {
				fuzzShutdown(t, ours)
			}
		}

		closed := make(chan error, 1)
		go func() { closed <- ours.Close() }()
		select {
		case err := <-closed:
			requireTyped(t, "Close", err)
		case <-time.After(fuzzCloseTimeout + 2*time.Second):
			t.Fatal("Close did not return within its policy's timeout + 2s")
		}
		select {
		case <-peerDone:
		case <-time.After(fuzzWait + time.Second):
			t.Fatal("the peer's goroutine did not end")
		}
		if sslAfter, _ := openssl.LiveObjects(); sslAfter != sslBefore {
			t.Fatalf("live SSL objects: %d before, %d after Close", sslBefore, sslAfter)
		}
	})
}

// fuzzReadAll reads until an error: it must come after exactly the "hello"
// the peer sent through TLS, be an *openssl.Error and not io.EOF (the raw
// bytes cannot forge a close_notify) nor a timeout (the peer closed TCP).
// A Write after it fails the same way or succeeds.
func fuzzReadAll(t *testing.T, ours *openssl.Conn) {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		var n int
		n, err = ours.Read(buf)
		got = append(got, buf[:n]...)
	}
	requireTyped(t, "Read", err)
	switch {
	case err == nil:
		t.Fatalf("100 Reads succeeded and returned %q", got)
	case err == io.EOF:
		t.Fatalf("raw bytes forged a close_notify (Read returned io.EOF after %q)", got)
	case isTimeout(err):
		t.Fatalf("Read did not end with the peer's FIN: %v", err)
	}
	if string(got) != "hello" {
		t.Fatalf("Read returned %q before %v; want exactly \"hello\"", got, err)
	}
	_, err = ours.Write([]byte("x"))
	requireTyped(t, "Write", err)
}

// fuzzShutdown calls Shutdown: the peer's raw bytes arrive after our
// close_notify, so it must fail with an *openssl.Error (the bytes cannot
// forge the peer's close_notify) other than a timeout, after discarding
// exactly the "hello" the peer sent first.
func fuzzShutdown(t *testing.T, ours *openssl.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
	defer cancel()
	err := ours.Shutdown(ctx)
	requireTyped(t, "Shutdown", err)
	switch {
	case err == nil || err == io.EOF:
		t.Fatalf("raw bytes forged the peer's close_notify (Shutdown returned %v)", err)
	case errors.Is(err, openssl.ErrShutdownTimeout):
		t.Fatalf("Shutdown did not end with the peer's FIN: %v", err)
	}
	if n := ours.DiscardedBytes(); n != int64(len("hello")) {
		t.Fatalf("Shutdown discarded %d bytes, want %d (then failed with %v)", n, len("hello"), err)
	}
	_, err = ours.Write([]byte("x"))
	if !errors.Is(err, openssl.ErrWriteAfterShutdown) {
		t.Fatalf("Write after Shutdown: %v, want ErrWriteAfterShutdown", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
