package openssl_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
)

// certFromGo issues a certificate from tmpl with a new P-256 key, and
// returns it loaded by OpenSSL and parsed by crypto/x509.
func certFromGo(t testing.TB, ca *goCA, tmpl *x509.Certificate) (*openssl.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	certPEM := ca.issue(t, tmpl, key.Public())
	cert, err := openssl.LoadCertificateFromPEM(certPEM)
	require.NoError(t, err)
	goCert, err := cert.X509()
	require.NoError(t, err)
	return cert, goCert
}

func TestNameEntriesEqualCryptoX509(t *testing.T) {
	ca := newGoCA(t)
	cert, goCert := certFromGo(t, ca, &x509.Certificate{Subject: pkix.Name{
		CommonName:         "Zürich service",
		Country:            []string{"CH"},
		Organization:       []string{"Ünïcode AG", "second org"},
		OrganizationalUnit: []string{"ops"},
		Locality:           []string{"Zürich"},
		Province:           []string{"ZH"},
		SerialNumber:       "42",
	}})
	subject, err := cert.GetSubjectName()
	require.NoError(t, err)
	s := goCert.Subject
	for nid, want := range map[openssl.NID]string{
		openssl.NID_commonName:             s.CommonName,
		openssl.NID_countryName:            s.Country[0],
		openssl.NID_organizationName:       s.Organization[0], // the first of two
		openssl.NID_organizationalUnitName: s.OrganizationalUnit[0],
		openssl.NID_localityName:           s.Locality[0],
		openssl.NID_stateOrProvinceName:    s.Province[0],
		openssl.NID_serialNumber:           s.SerialNumber,
	} {
		got, ok := subject.GetEntry(nid)
		require.True(t, ok, "NID %d", nid)
		require.Equal(t, want, got, "NID %d", nid)
	}
	_, ok := subject.GetEntry(openssl.NID_pkcs9_emailAddress)
	require.False(t, ok)

	issuer, err := cert.GetIssuerName()
	require.NoError(t, err)
	cn, ok := issuer.GetEntry(openssl.NID_commonName)
	require.True(t, ok)
	require.Equal(t, ca.cert.Subject.CommonName, cn)
	_, ok = issuer.GetEntry(openssl.NID_organizationName)
	require.False(t, ok)
}

func TestCertificateMarshalPEM(t *testing.T) {
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	got, err := cert.MarshalPEM()
	require.NoError(t, err)
	require.Equal(t, string(pki.CertPEM), string(got))
	der, err := cert.MarshalDER()
	require.NoError(t, err)
	require.Equal(t, pki.Leaf.Raw, der)
}

func TestCertificatePublicKey(t *testing.T) {
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	pub, err := cert.PublicKey()
	require.NoError(t, err)
	require.Equal(t, openssl.KeyTypeEC, pub.KeyType())
	der, err := pub.MarshalPKIXPublicKeyDER()
	require.NoError(t, err)
	require.Equal(t, mustMarshalPKIX(t, pki.Leaf.PublicKey), der)
}

func TestGetSerialNumberHex(t *testing.T) {
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("%X", pki.Leaf.SerialNumber.Bytes()), cert.GetSerialNumberHex())
}

func TestCertificateChecks(t *testing.T) {
	ca := newGoCA(t)
	cert, goCert := certFromGo(t, ca, &x509.Certificate{
		Subject:        pkix.Name{CommonName: "cn.example"},
		DNSNames:       []string{"example.com", "*.wild.example"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("2001:db8::1")},
		EmailAddresses: []string{"ops@example.com"},
	})
	for _, tc := range []struct {
		name  string
		check func() error
		match bool
		// goHost, when set, is checked with crypto/x509's VerifyHostname,
		// which must agree.
		goHost string
	}{
		{"DNS name", func() error { return cert.CheckHost("example.com", 0) }, true, "example.com"},
		{"DNS name, other case", func() error { return cert.CheckHost("EXAMPLE.com", 0) }, true, "EXAMPLE.com"},
		{"other name", func() error { return cert.CheckHost("example.org", 0) }, false, "example.org"},
		{"wildcard", func() error { return cert.CheckHost("a.wild.example", 0) }, true, "a.wild.example"},
		{"wildcard covers one label", func() error { return cert.CheckHost("a.b.wild.example", 0) }, false, "a.b.wild.example"},
		{"wildcard with NoWildcards", func() error { return cert.CheckHost("a.wild.example", openssl.NoWildcards) }, false, ""},
		{"common name ignored beside DNS names", func() error { return cert.CheckHost("cn.example", 0) }, false, "cn.example"},
		{"common name with AlwaysCheckSubject", func() error { return cert.CheckHost("cn.example", openssl.AlwaysCheckSubject) }, true, ""},
		{"IPv4", func() error { return cert.CheckIP(net.ParseIP("10.0.0.1"), 0) }, true, "10.0.0.1"},
		{"other IPv4", func() error { return cert.CheckIP(net.ParseIP("10.0.0.2"), 0) }, false, "10.0.0.2"},
		{"IPv6", func() error { return cert.CheckIP(net.ParseIP("2001:db8::1"), 0) }, true, "2001:db8::1"},
		{"IP as host name", func() error { return cert.CheckHost("10.0.0.1", 0) }, false, ""},
		{"VerifyHostname IP", func() error { return cert.VerifyHostname("10.0.0.1") }, true, "10.0.0.1"},
		{"VerifyHostname bracketed IPv6", func() error { return cert.VerifyHostname("[2001:db8::1]") }, true, "[2001:db8::1]"},
		{"VerifyHostname name", func() error { return cert.VerifyHostname("x.wild.example") }, true, "x.wild.example"},
		{"VerifyHostname mismatch", func() error { return cert.VerifyHostname("localhost") }, false, "localhost"},
		{"email", func() error { return cert.CheckEmail("ops@example.com", 0) }, true, ""},
		{"other email", func() error { return cert.CheckEmail("dev@example.com", 0) }, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check()
			if tc.goHost != "" {
				require.Equal(t, tc.match, goCert.VerifyHostname(tc.goHost) == nil, "crypto/x509 disagrees")
			}
			if tc.match {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, openssl.ValidationError)
			var e *openssl.Error
			require.ErrorAs(t, err, &e)
		})
	}
}

func TestCertificateCheckBadArguments(t *testing.T) {
	cert, err := openssl.LoadCertificateFromPEM(pki.CertPEM)
	require.NoError(t, err)
	for name, err := range map[string]error{
		"empty host":  cert.CheckHost("", 0),
		"empty email": cert.CheckEmail("", 0),
		"nil IP":      cert.CheckIP(nil, 0),
	} {
		var e *openssl.Error
		require.ErrorAs(t, err, &e, name)
		require.False(t, errors.Is(err, openssl.ValidationError), name)
	}
	// A name with a NUL byte is refused, though its prefix would match.
	err = cert.CheckHost("localhost\x00.evil", 0)
	require.EqualError(t, err, "openssl: check host: malformed name (such as one with a NUL byte)")
}

// TestParsedCertificatesShared: a certificate is parsed once while a parsed
// copy is in use. Two OpenSSL objects of the same certificate, and the
// chains of two connections to the same server, give the same
// *x509.Certificate; another certificate gives another. Once nothing holds
// the parsed certificate, its cache entry goes.
func TestParsedCertificatesShared(t *testing.T) {
	b, err := testcert.New() // certificates no other test parses
	require.NoError(t, err)
	load := func(pem []byte) *x509.Certificate {
		t.Helper()
		cert, err := openssl.LoadCertificateFromPEM(pem)
		require.NoError(t, err)
		parsed, err := cert.X509()
		require.NoError(t, err)
		return parsed
	}
	leaf := load(b.CertPEM)
	require.Same(t, leaf, load(b.CertPEM), "the same certificate loaded twice")
	ca := load(b.CAPEM)
	require.NotSame(t, leaf, ca)
	require.Equal(t, b.Leaf.Raw, leaf.Raw)

	addr, results := startGoServer(t, &tls.Config{Certificates: []tls.Certificate{b.TLSCert}})
	client := ctxOf(t, b, 0)
	var chains [2][]*x509.Certificate
	for i := range chains {
		c, err := openssl.Dial("tcp", addr, client, 0)
		require.NoError(t, err)
		chains[i] = c.ConnectionState().PeerCertificates
		get(t, c)
		c.Close()
		nextServed(t, results)
	}
	require.Len(t, chains[0], 2, "leaf and CA")
	require.Same(t, leaf, chains[0][0], "the server's certificate on a connection")
	require.Same(t, ca, chains[0][1], "the CA's certificate on a connection")
	for i := range chains[0] {
		require.Same(t, chains[0][i], chains[1][i], "certificate %d on two connections", i)
	}

	der := leaf.Raw
	leaf, ca, chains = nil, nil, [2][]*x509.Certificate{}
	for i := 0; openssl.CertificateCached(der); i++ {
		// The entry's cleanup runs after a collection finds the
		// certificate unreachable, on the runtime's cleanup goroutine.
		require.Less(t, i, 100, "the cache entry outlived its certificate")
		runtime.GC()
		runtime.Gosched()
	}
}
