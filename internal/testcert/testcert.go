// Package testcert generates a throwaway public key infrastructure for tests:
// a certificate authority and certificates signed by it, or by an
// intermediate CA it signed, built in memory with crypto/x509. Nothing is
// read from or checked into the repository; WriteFiles puts the PEM files
// where command-line peers such as openssl s_server can read them.
package testcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Bundle is a CA and a leaf certificate for the given hosts (DNS names or
// IPs), signed by the CA or, in a bundle from [NewWithIntermediate], by an
// intermediate CA the CA signed.
//
// All fields are set by New, NewRSA, NewWithIntermediate and ClientBundle and
// must not be modified afterwards, except the file names, which WriteFiles
// sets.
type Bundle struct {
	CAPEM, CertPEM, KeyPEM []byte // PEM: CA cert, leaf cert, leaf private key (PKCS#8)
	ChainPEM               []byte // leaf followed by its issuer: the CA, or the intermediate
	Leaf                   *x509.Certificate
	CA                     *x509.Certificate
	TLSCert                tls.Certificate // leaf, its issuer (as in ChainPEM) and key, for crypto/tls
	Pool                   *x509.CertPool  // contains the CA only

	// Intermediate and IntermediatePEM are the intermediate CA that
	// signed the leaf, in a bundle from NewWithIntermediate or its
	// ClientBundle; nil otherwise.
	Intermediate    *x509.Certificate
	IntermediatePEM []byte

	// Filled by WriteFiles:
	CAFile, CertFile, KeyFile, ChainFile string

	issuer    *x509.Certificate             // signs the leaf and ClientBundle's: CA or Intermediate; constant
	issuerKey crypto.Signer                 // issuer's key; constant
	newKey    func() (crypto.Signer, error) // key type of this bundle; constant
}

// New returns a bundle whose CA and leaf keys are ECDSA P-256. The leaf
// covers hosts, each a DNS name or an IP address, and its common name is the
// first of them; with no hosts it covers "localhost" and "127.0.0.1". The
// leaf has the server and client authentication extended key usages; the CA
// can sign end-entity certificates only. Both are valid from one hour ago to
// 24 hours from now.
//
// New returns an error only if key generation or signing fails, or if a host
// is the empty string.
func New(hosts ...string) (*Bundle, error) {
	return newBundle(newECDSAKey, hosts, false)
}

// NewRSA is like New but uses RSA keys of the given size in bits for the CA
// and the leaf, whose key usage then also allows key encipherment. It returns an error if bits is below 1024 (crypto/rsa refuses
// smaller keys) or if key generation or signing fails.
func NewRSA(bits int, hosts ...string) (*Bundle, error) {
	if bits < 1024 {
		return nil, fmt.Errorf("testcert: RSA key size %d is below 1024 bits", bits)
	}
	return newBundle(func() (crypto.Signer, error) {
		return rsa.GenerateKey(rand.Reader, bits)
	}, hosts, false)
}

func newECDSAKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// NewWithIntermediate is like New, but the leaf is signed by an
// intermediate CA ("closenotify test intermediate CA") that the CA signed:
// a chain of three certificates. The CA may sign one level of CAs below it,
// the intermediate end-entity certificates only. Intermediate and
// IntermediatePEM hold the intermediate; ChainPEM and TLSCert carry the leaf
// followed by the intermediate, without the CA, as a server sends its
// chain; Pool holds the CA only, so that verification needs the
// intermediate from the peer. [Bundle.ClientBundle] of the result is signed
// by the intermediate too.
//
// NewWithIntermediate returns an error only if key generation or signing
// fails, or if a host is the empty string.
func NewWithIntermediate(hosts ...string) (*Bundle, error) {
	return newBundle(newECDSAKey, hosts, true)
}

func newBundle(newKey func() (crypto.Signer, error), hosts []string, intermediate bool) (*Bundle, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	// The root's path length allows exactly the CAs below it that the
	// bundle has.
	maxPathLen := 0
	if intermediate {
		maxPathLen = 1
	}
	ca, caDER, caKey, err := newCA(newKey, "CA", maxPathLen, nil, nil)
	if err != nil {
		return nil, err
	}
	b := &Bundle{
		CA:        ca,
		CAPEM:     pemEncode("CERTIFICATE", caDER),
		Pool:      x509.NewCertPool(),
		issuer:    ca,
		issuerKey: caKey,
		newKey:    newKey,
	}
	b.Pool.AddCert(ca)
	if intermediate {
		inter, interDER, interKey, err := newCA(newKey, "intermediate CA", 0, ca, caKey)
		if err != nil {
			return nil, err
		}
		b.Intermediate, b.IntermediatePEM = inter, pemEncode("CERTIFICATE", interDER)
		b.issuer, b.issuerKey = inter, interKey
	}
	leafTemplate, err := leafTemplate(hosts[0], hosts, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, err
	}
	if err := b.issue(leafTemplate); err != nil {
		return nil, err
	}
	return b, nil
}

// ClientBundle returns a bundle for the client side of mutual TLS: a new key
// and a certificate with common name name and only the client authentication
// extended key usage, signed by b's CA, or by b's intermediate when b has
// one. The key has the type and size of b's keys. The result shares b's CA,
// CAPEM, Pool and intermediate; its file names are empty until its own
// WriteFiles. A name that parses
// as an IP address is also put in the IP addresses, any other non-empty name
// in the DNS names.
//
// ClientBundle returns an error if name is empty or if key generation or
// signing fails.
func (b *Bundle) ClientBundle(name string) (*Bundle, error) {
	tmpl, err := leafTemplate(name, []string{name}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, err
	}
	c := &Bundle{
		CA:              b.CA,
		CAPEM:           b.CAPEM,
		Pool:            b.Pool,
		Intermediate:    b.Intermediate,
		IntermediatePEM: b.IntermediatePEM,
		issuer:          b.issuer,
		issuerKey:       b.issuerKey,
		newKey:          b.newKey,
	}
	if err := c.issue(tmpl); err != nil {
		return nil, err
	}
	return c, nil
}

// issue generates a key, signs tmpl with the issuer's key, and fills the
// leaf fields.
func (b *Bundle) issue(tmpl *x509.Certificate) error {
	key, err := b.newKey()
	if err != nil {
		return fmt.Errorf("testcert: generating leaf key: %w", err)
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		// RSA key exchange (TLS 1.2 without ECDHE) encrypts to the key.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := sign(tmpl, b.issuer, key.Public(), b.issuerKey)
	if err != nil {
		return fmt.Errorf("testcert: signing leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("testcert: parsing leaf certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("testcert: encoding leaf key: %w", err)
	}
	b.Leaf = leaf
	b.CertPEM = pemEncode("CERTIFICATE", der)
	b.KeyPEM = pemEncode("PRIVATE KEY", keyDER)
	b.ChainPEM = append(append([]byte{}, b.CertPEM...), pemEncode("CERTIFICATE", b.issuer.Raw)...)
	b.TLSCert = tls.Certificate{
		Certificate: [][]byte{der, b.issuer.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}
	return nil
}

// WriteFiles writes ca.pem, cert.pem, key.pem and chain.pem into dir, which
// must exist, each with mode 0600, and records their paths in CAFile,
// CertFile, KeyFile and ChainFile. An existing file of the same name is
// truncated and rewritten (its mode is left as it was). On error the file
// names are left unchanged and some files may have been written.
func (b *Bundle) WriteFiles(dir string) error {
	files := []struct {
		name string
		data []byte
	}{
		{"ca.pem", b.CAPEM},
		{"cert.pem", b.CertPEM},
		{"key.pem", b.KeyPEM},
		{"chain.pem", b.ChainPEM},
	}
	for _, f := range files {
		if len(f.data) == 0 {
			return fmt.Errorf("testcert: %s would be empty: bundle not made by New, NewRSA, NewWithIntermediate or ClientBundle", f.name)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("testcert: %w", err)
		}
	}
	b.CAFile = filepath.Join(dir, "ca.pem")
	b.CertFile = filepath.Join(dir, "cert.pem")
	b.KeyFile = filepath.Join(dir, "key.pem")
	b.ChainFile = filepath.Join(dir, "chain.pem")
	return nil
}

// newCA returns a new CA certificate with common name "closenotify test "
// followed by role, its DER and its key; it may sign maxPathLen levels of
// CAs below it. A nil parent makes it self-signed (a root); otherwise parent
// and parentKey sign it.
func newCA(newKey func() (crypto.Signer, error), role string, maxPathLen int, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, []byte, crypto.Signer, error) {
	cn := "closenotify test " + role
	key, err := newKey()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("testcert: generating %s key: %w", role, err)
	}
	notBefore, notAfter := validity()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"closenotify tests"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := sign(tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("testcert: signing %s certificate: %w", role, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("testcert: parsing %s certificate: %w", role, err)
	}
	return cert, der, key, nil
}

// leafTemplate returns an end-entity certificate template with common name cn
// covering hosts.
func leafTemplate(cn string, hosts []string, usage []x509.ExtKeyUsage) (*x509.Certificate, error) {
	notBefore, notAfter := validity()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"closenotify tests"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if h == "" {
			return nil, errors.New("testcert: empty host name")
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

// validity returns the validity period of every certificate: from one hour
// ago, which tolerates small clock differences, to 24 hours from now.
func validity() (notBefore, notAfter time.Time) {
	now := time.Now()
	return now.Add(-time.Hour), now.Add(24 * time.Hour)
}

// sign fills a random serial number into tmpl and returns the DER of the
// certificate for pub signed by parent's key.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
}

func pemEncode(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}
