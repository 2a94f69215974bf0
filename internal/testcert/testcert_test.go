package testcert_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/testcert"
)

// wait bounds every step that is expected to succeed.
const wait = 10 * time.Second

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	before := time.Now()
	b, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	if !slices.Equal(b.Leaf.DNSNames, []string{"localhost"}) {
		t.Errorf("DNSNames = %q, want [localhost]", b.Leaf.DNSNames)
	}
	if len(b.Leaf.IPAddresses) != 1 || !b.Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("IPAddresses = %v, want [127.0.0.1]", b.Leaf.IPAddresses)
	}
	wantEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if !slices.Equal(b.Leaf.ExtKeyUsage, wantEKU) {
		t.Errorf("ExtKeyUsage = %v, want %v", b.Leaf.ExtKeyUsage, wantEKU)
	}
	// Certificates carry whole seconds.
	lo := before.Add(-time.Hour).Add(-time.Second)
	hi := after.Add(-time.Hour)
	if nb := b.Leaf.NotBefore; nb.Before(lo) || nb.After(hi) {
		t.Errorf("NotBefore = %v, want between %v and %v", nb, lo, hi)
	}
	lo = before.Add(24 * time.Hour).Add(-time.Second)
	hi = after.Add(24 * time.Hour)
	if na := b.Leaf.NotAfter; na.Before(lo) || na.After(hi) {
		t.Errorf("NotAfter = %v, want between %v and %v", na, lo, hi)
	}
	if b.Leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if !b.CA.IsCA {
		t.Error("CA is not a CA")
	}
	pub, ok := b.Leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key is %T, want ECDSA P-256", b.Leaf.PublicKey)
	}
	if _, ok := b.TLSCert.PrivateKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("TLSCert.PrivateKey is %T, want *ecdsa.PrivateKey", b.TLSCert.PrivateKey)
	}
	if _, err := b.Leaf.Verify(x509.VerifyOptions{Roots: b.Pool, DNSName: "localhost"}); err != nil {
		t.Errorf("leaf does not verify against Pool: %v", err)
	}
	if _, err := b.Leaf.Verify(x509.VerifyOptions{Roots: b.Pool, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("leaf does not verify for 127.0.0.1: %v", err)
	}
	if !bytes.Equal(b.ChainPEM, append(slices.Clone(b.CertPEM), b.CAPEM...)) {
		t.Error("ChainPEM is not CertPEM followed by CAPEM")
	}
	if !bytes.HasPrefix(b.KeyPEM, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("KeyPEM does not start with a PKCS#8 header: %q", b.KeyPEM[:min(40, len(b.KeyPEM))])
	}
}

func TestNewHosts(t *testing.T) {
	t.Parallel()
	b, err := testcert.New("example.test", "::1", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Leaf.DNSNames, []string{"example.test"}) {
		t.Errorf("DNSNames = %q, want [example.test]", b.Leaf.DNSNames)
	}
	if len(b.Leaf.IPAddresses) != 2 || !b.Leaf.IPAddresses[0].Equal(net.IPv6loopback) ||
		!b.Leaf.IPAddresses[1].Equal(net.IPv4(10, 1, 2, 3)) {
		t.Errorf("IPAddresses = %v, want [::1 10.1.2.3]", b.Leaf.IPAddresses)
	}
	if b.Leaf.Subject.CommonName != "example.test" {
		t.Errorf("CommonName = %q, want example.test", b.Leaf.Subject.CommonName)
	}
	if _, err := testcert.New("localhost", ""); err == nil {
		t.Error(`New("localhost", "") succeeded, want an error`)
	}
}

func TestNewRSA(t *testing.T) {
	t.Parallel()
	b, err := testcert.NewRSA(2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := b.Leaf.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != 2048 {
		t.Errorf("leaf key is %T, want 2048-bit RSA", b.Leaf.PublicKey)
	}
	if _, ok := b.CA.PublicKey.(*rsa.PublicKey); !ok {
		t.Errorf("CA key is %T, want RSA", b.CA.PublicKey)
	}
	if b.Leaf.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Error("RSA leaf lacks KeyEncipherment")
	}
	if _, err := testcert.NewRSA(512); err == nil {
		t.Error("NewRSA(512) succeeded, want an error")
	}
}

// handshake runs a crypto/tls server with serverCfg and a client with
// clientCfg over TCP on 127.0.0.1, exchanges one message each way, and
// returns the server's view of the connection and the client's and the
// server's handshake errors.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		state tls.ConnectionState
		err   error
	}
	serverDone := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverDone <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		sc := tls.Server(c, serverCfg)
		if err := sc.Handshake(); err != nil {
			serverDone <- result{err: err}
			return
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
			serverDone <- result{err: errors.Join(errors.New("server did not read ping"), err)}
			return
		}
		if _, err := sc.Write([]byte("pong")); err != nil {
			serverDone <- result{err: err}
			return
		}
		serverDone <- result{state: sc.ConnectionState(), err: sc.Close()}
	}()

	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: wait}, Config: clientCfg}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	var clientErr error
	c, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		clientErr = err
	} else {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte("ping")); err != nil {
			clientErr = err
		} else {
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
				clientErr = errors.Join(errors.New("client did not read pong"), err)
			}
		}
		c.Close()
	}
	r := <-serverDone
	return r.state, clientErr, r.err
}

func TestTLSHandshake(t *testing.T) {
	t.Parallel()
	ecdsaBundle, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	rsaBundle, err := testcert.NewRSA(2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		b          *testcert.Bundle
		serverName string
		version    uint16
	}{
		{"ECDSA/localhost/TLS1.3", ecdsaBundle, "localhost", tls.VersionTLS13},
		{"ECDSA/127.0.0.1/TLS1.2", ecdsaBundle, "127.0.0.1", tls.VersionTLS12},
		{"RSA/localhost/TLS1.3", rsaBundle, "localhost", tls.VersionTLS13},
		{"RSA/127.0.0.1/TLS1.2", rsaBundle, "127.0.0.1", tls.VersionTLS12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			serverCfg := &tls.Config{Certificates: []tls.Certificate{tc.b.TLSCert}}
			clientCfg := &tls.Config{RootCAs: tc.b.Pool, ServerName: tc.serverName, MaxVersion: tc.version}
			state, clientErr, serverErr := handshake(t, serverCfg, clientCfg)
			if clientErr != nil || serverErr != nil {
				t.Fatalf("client error %v, server error %v", clientErr, serverErr)
			}
			if state.Version != tc.version {
				t.Errorf("version %x, want %x", state.Version, tc.version)
			}
		})
	}
}

func TestTLSHandshakeWrongName(t *testing.T) {
	t.Parallel()
	b, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	serverCfg := &tls.Config{Certificates: []tls.Certificate{b.TLSCert}}
	clientCfg := &tls.Config{RootCAs: b.Pool, ServerName: "other.test"}
	_, clientErr, _ := handshake(t, serverCfg, clientCfg)
	var hostErr x509.HostnameError
	if !errors.As(clientErr, &hostErr) {
		t.Fatalf("client error %v, want an x509.HostnameError", clientErr)
	}
}

func TestClientBundle(t *testing.T) {
	t.Parallel()
	b, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.ClientBundle("client1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cb.Leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage = %v, want [ClientAuth]", cb.Leaf.ExtKeyUsage)
	}
	if cb.Leaf.Subject.CommonName != "client1" {
		t.Errorf("CommonName = %q, want client1", cb.Leaf.Subject.CommonName)
	}
	if cb.CA != b.CA || !bytes.Equal(cb.CAPEM, b.CAPEM) || cb.Pool != b.Pool {
		t.Error("client bundle does not share the CA")
	}
	if bytes.Equal(cb.KeyPEM, b.KeyPEM) {
		t.Error("client bundle reuses the server key")
	}
	if _, err := b.ClientBundle(""); err == nil {
		t.Error(`ClientBundle("") succeeded, want an error`)
	}

	t.Run("mutual TLS", func(t *testing.T) {
		t.Parallel()
		serverCfg := &tls.Config{
			Certificates: []tls.Certificate{b.TLSCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    b.Pool,
		}
		clientCfg := &tls.Config{RootCAs: b.Pool, ServerName: "localhost", Certificates: []tls.Certificate{cb.TLSCert}}
		state, clientErr, serverErr := handshake(t, serverCfg, clientCfg)
		if clientErr != nil || serverErr != nil {
			t.Fatalf("client error %v, server error %v", clientErr, serverErr)
		}
		if len(state.PeerCertificates) == 0 || state.PeerCertificates[0].Subject.CommonName != "client1" {
			t.Errorf("server saw peer certificates %v, want client1", state.PeerCertificates)
		}
	})

	t.Run("client certificate is no server certificate", func(t *testing.T) {
		t.Parallel()
		serverCfg := &tls.Config{Certificates: []tls.Certificate{cb.TLSCert}}
		clientCfg := &tls.Config{RootCAs: b.Pool, ServerName: "client1"}
		_, clientErr, _ := handshake(t, serverCfg, clientCfg)
		var invalid x509.CertificateInvalidError
		if !errors.As(clientErr, &invalid) || invalid.Reason != x509.IncompatibleUsage {
			t.Fatalf("client error %v, want an x509 IncompatibleUsage error", clientErr)
		}
	})
}

// runOpenSSL runs the openssl command with args, at most wait long, and
// returns its combined output.
func runOpenSSL(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	out, err := exec.CommandContext(ctx, "openssl", args...).CombinedOutput()
	return string(out), err
}

func TestWriteFilesOpenSSLVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path, name string
		want       []byte
	}{
		{b.CAFile, "ca.pem", b.CAPEM},
		{b.CertFile, "cert.pem", b.CertPEM},
		{b.KeyFile, "key.pem", b.KeyPEM},
		{b.ChainFile, "chain.pem", b.ChainPEM},
	} {
		if f.path != filepath.Join(dir, f.name) {
			t.Errorf("file name %q, want %q", f.path, filepath.Join(dir, f.name))
			continue
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f.name, fi.Mode().Perm())
		}
		got, err := os.ReadFile(f.path)
		if err != nil || !bytes.Equal(got, f.want) {
			t.Errorf("%s holds %d bytes (error %v), want the %d bytes of the bundle", f.name, len(got), err, len(f.want))
		}
	}

	out, err := runOpenSSL(t, "verify", "-CAfile", b.CAFile, b.CertFile)
	if err != nil || out != b.CertFile+": OK\n" {
		t.Errorf("openssl verify: %v, output %q, want %q", err, out, b.CertFile+": OK\n")
	}
	out, err = runOpenSSL(t, "verify", "-CAfile", b.CAFile, "-purpose", "sslserver", "-verify_hostname", "localhost", b.CertFile)
	if err != nil || out != b.CertFile+": OK\n" {
		t.Errorf("openssl verify -purpose sslserver: %v, output %q", err, out)
	}
	// The key file must be the key of the certificate.
	out, err = runOpenSSL(t, "x509", "-in", b.CertFile, "-noout", "-pubkey")
	if err != nil {
		t.Fatalf("openssl x509: %v: %s", err, out)
	}
	fromKey, err := runOpenSSL(t, "pkey", "-in", b.KeyFile, "-pubout")
	if err != nil || fromKey != out {
		t.Errorf("openssl pkey -pubout: %v; public key %q, want the certificate's %q", err, fromKey, out)
	}

	// Another CA does not verify the leaf.
	other, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFiles(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	out, err = runOpenSSL(t, "verify", "-CAfile", other.CAFile, b.CertFile)
	if err == nil || !strings.Contains(out, "unable to get local issuer certificate") {
		t.Errorf("openssl verify with another CA: %v, output %q; want a failure", err, out)
	}

	// The client certificate verifies for client use.
	cb, err := b.ClientBundle("client1")
	if err != nil {
		t.Fatal(err)
	}
	if err := cb.WriteFiles(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	out, err = runOpenSSL(t, "verify", "-CAfile", b.CAFile, "-purpose", "sslclient", cb.CertFile)
	if err != nil || out != cb.CertFile+": OK\n" {
		t.Errorf("openssl verify of client certificate: %v, output %q", err, out)
	}
}

func TestWriteFilesErrors(t *testing.T) {
	t.Parallel()
	b, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if err := b.WriteFiles(missing); err == nil {
		t.Error("WriteFiles into a missing directory succeeded")
	}
	if b.CAFile != "" || b.CertFile != "" || b.KeyFile != "" || b.ChainFile != "" {
		t.Error("WriteFiles set file names despite failing")
	}
	if err := (&testcert.Bundle{}).WriteFiles(t.TempDir()); err == nil {
		t.Error("WriteFiles of an empty Bundle succeeded")
	}
}

// TestNewWithIntermediate: the leaf verifies against Pool (the CA only)
// with the intermediate among the intermediates, as a chain of three, and
// not without it; ChainPEM and TLSCert carry leaf and intermediate, and
// ClientBundle is signed by the intermediate too.
func TestNewWithIntermediate(t *testing.T) {
	t.Parallel()
	b, err := testcert.NewWithIntermediate()
	if err != nil {
		t.Fatal(err)
	}
	if b.Intermediate == nil || !b.Intermediate.IsCA || b.Intermediate.MaxPathLen != 0 || !b.Intermediate.MaxPathLenZero {
		t.Fatalf("Intermediate = %v, want a CA that signs no CAs", b.Intermediate)
	}
	if b.Intermediate.Subject.CommonName != "closenotify test intermediate CA" {
		t.Errorf("intermediate CommonName = %q", b.Intermediate.Subject.CommonName)
	}
	if !b.CA.IsCA || b.CA.MaxPathLen != 1 {
		t.Errorf("CA MaxPathLen = %d, want 1", b.CA.MaxPathLen)
	}
	if err := b.Intermediate.CheckSignatureFrom(b.CA); err != nil {
		t.Errorf("the CA did not sign the intermediate: %v", err)
	}
	if err := b.Leaf.CheckSignatureFrom(b.Intermediate); err != nil {
		t.Errorf("the intermediate did not sign the leaf: %v", err)
	}
	if !bytes.Equal(b.IntermediatePEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Intermediate.Raw})) {
		t.Error("IntermediatePEM is not the intermediate")
	}
	if !bytes.Equal(b.ChainPEM, append(slices.Clone(b.CertPEM), b.IntermediatePEM...)) {
		t.Error("ChainPEM is not CertPEM followed by IntermediatePEM")
	}
	if want := [][]byte{b.Leaf.Raw, b.Intermediate.Raw}; !slices.EqualFunc(b.TLSCert.Certificate, want, bytes.Equal) {
		t.Error("TLSCert.Certificate is not the leaf followed by the intermediate")
	}

	cb, err := b.ClientBundle("client1")
	if err != nil {
		t.Fatal(err)
	}
	if cb.CA != b.CA || cb.Pool != b.Pool || cb.Intermediate != b.Intermediate || !bytes.Equal(cb.IntermediatePEM, b.IntermediatePEM) {
		t.Error("client bundle does not share the CA and the intermediate")
	}
	if want := [][]byte{cb.Leaf.Raw, b.Intermediate.Raw}; !slices.EqualFunc(cb.TLSCert.Certificate, want, bytes.Equal) {
		t.Error("client TLSCert.Certificate is not the leaf followed by the intermediate")
	}

	intermediates := x509.NewCertPool()
	intermediates.AddCert(b.Intermediate)
	for _, tc := range []struct {
		name  string
		leaf  *x509.Certificate
		usage x509.ExtKeyUsage
	}{
		{"server", b.Leaf, x509.ExtKeyUsageServerAuth},
		{"client", cb.Leaf, x509.ExtKeyUsageClientAuth},
	} {
		opts := x509.VerifyOptions{Roots: b.Pool, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{tc.usage}}
		chains, err := tc.leaf.Verify(opts)
		if err != nil {
			t.Fatalf("%s: leaf does not verify with the intermediate: %v", tc.name, err)
		}
		want := []*x509.Certificate{tc.leaf, b.Intermediate, b.CA}
		if len(chains) != 1 || !slices.EqualFunc(chains[0], want, (*x509.Certificate).Equal) {
			t.Errorf("%s: verified chains %v, want [[leaf intermediate CA]]", tc.name, chains)
		}
		opts.Intermediates = nil
		var unknown x509.UnknownAuthorityError
		if _, err := tc.leaf.Verify(opts); !errors.As(err, &unknown) {
			t.Errorf("%s: without the intermediate: %v, want an x509.UnknownAuthorityError", tc.name, err)
		}
	}
}
