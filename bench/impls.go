package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	ours "github.com/closenotify/openssl"
	gossl "github.com/libp2p/go-openssl"
)

// The Go implementations a child process can run. Every TLS one is set up
// the same way: TLS 1.3 only, TLS_AES_128_GCM_SHA256, X25519, the server's
// ECDSA P-256 certificate verified by the client against the CA, and no
// session tickets unless the workload is resumption. What a binding offers
// no call for (go-openssl: cipher suites, groups, the number of TLS 1.3
// tickets) comes from the OpenSSL config file the driver writes
// (opensslConf), which applies to every SSL_CTX in the process, the C
// program's too.

// goImpl is one Go implementation of the client and server ends.
type goImpl struct {
	// client wraps a connected socket as a client. It verifies the chain;
	// the host name only where dial does (the bulk and ping-pong
	// workloads do not time the handshake).
	client func(c net.Conn) (net.Conn, error)
	server func(c net.Conn) (net.Conn, error)
	// dial connects to addr and completes a verifying client handshake,
	// host name (127.0.0.1) included: the handshake workloads time it.
	dial func(addr string) (net.Conn, error)
	// resumingDialer returns a dial function that resumes the session of
	// its previous connection and reports whether it did; nil when the
	// implementation has no client session API (plain TCP).
	resumingDialer func() func(addr string) (net.Conn, bool, error)
}

// errNoSessionAPI is the result of resumption for an implementation
// without a client session API.
var errNoSessionAPI = errors.New("no client session API")

// certFiles are the PEM files the driver writes into the certificate
// directory, and their contents.
type certFiles struct {
	ca, cert, key   string
	certPEM, keyPEM []byte
	caPEM           []byte
}

func certFilesIn(dir string) certFiles {
	return certFiles{
		ca:   filepath.Join(dir, "ca.pem"),
		cert: filepath.Join(dir, "cert.pem"),
		key:  filepath.Join(dir, "key.pem"),
	}
}

// read loads the files' contents.
func (f *certFiles) read() (err error) {
	if f.caPEM, err = os.ReadFile(f.ca); err != nil {
		return err
	}
	if f.certPEM, err = os.ReadFile(f.cert); err != nil {
		return err
	}
	f.keyPEM, err = os.ReadFile(f.key)
	return err
}

// handshaker is what every TLS conn here offers.
type handshaker interface{ Handshake() error }

// newGoImpl builds the named implementation from the files in certDir.
// resumption enables session tickets on the server (crypto/tls; the
// OpenSSL ones take it from the config file).
func newGoImpl(name, certDir string, resumption bool) (*goImpl, error) {
	files := certFilesIn(certDir)
	if err := files.read(); err != nil {
		return nil, err
	}
	switch name {
	case "tcp":
		return &goImpl{
			client: func(c net.Conn) (net.Conn, error) { return c, nil },
			server: func(c net.Conn) (net.Conn, error) { return c, nil },
			dial:   func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) },
		}, nil
	case "go":
		return newCryptoTLS(files, resumption)
	case "ours":
		return newOurs(files, resumption)
	case "gossl":
		return newGoOpenSSL(files)
	}
	return nil, fmt.Errorf("unknown Go implementation %q", name)
}

func newCryptoTLS(files certFiles, resumption bool) (*goImpl, error) {
	cert, err := tls.X509KeyPair(files.certPEM, files.keyPEM)
	if err != nil {
		return nil, err
	}
	pool := newPool(files.caPEM)
	// X25519 alone: Go would otherwise offer X25519MLKEM768 first, which
	// OpenSSL 3.0 lacks and which costs more.
	curves := []tls.CurveID{tls.X25519}
	serverConfig := &tls.Config{
		Certificates:           []tls.Certificate{cert},
		MinVersion:             tls.VersionTLS13,
		CurvePreferences:       curves,
		SessionTicketsDisabled: !resumption,
	}
	clientConfig := func() *tls.Config {
		return &tls.Config{
			RootCAs:          pool,
			ServerName:       "127.0.0.1",
			MinVersion:       tls.VersionTLS13,
			CurvePreferences: curves,
		}
	}
	plain := clientConfig()
	return &goImpl{
		client: func(c net.Conn) (net.Conn, error) { return tls.Client(c, plain), nil },
		server: func(c net.Conn) (net.Conn, error) { return tls.Server(c, serverConfig), nil },
		dial:   func(addr string) (net.Conn, error) { return tls.Dial("tcp", addr, plain) },
		resumingDialer: func() func(string) (net.Conn, bool, error) {
			cfg := clientConfig()
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			return func(addr string) (net.Conn, bool, error) {
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					return nil, false, err
				}
				return c, c.ConnectionState().DidResume, nil
			}
		},
	}, nil
}

func newOurs(files certFiles, resumption bool) (*goImpl, error) {
	common := func() (*ours.Ctx, error) {
		ctx, err := ours.NewCtx()
		if err != nil {
			return nil, err
		}
		if err := ctx.SetMinProtoVersion(tls.VersionTLS13); err != nil {
			return nil, err
		}
		if err := ctx.SetCipherSuites("TLS_AES_128_GCM_SHA256"); err != nil {
			return nil, err
		}
		if err := ctx.SetGroups("X25519"); err != nil {
			return nil, err
		}
		return ctx, nil
	}
	srv, err := common()
	if err != nil {
		return nil, err
	}
	cert, err := ours.LoadCertificateFromPEM(files.certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ours.LoadPrivateKeyFromPEM(files.keyPEM)
	if err != nil {
		return nil, err
	}
	if err := srv.UseCertificate(cert); err != nil {
		return nil, err
	}
	if err := srv.UsePrivateKey(key); err != nil {
		return nil, err
	}
	if !resumption {
		if err := srv.SetNumTickets(0); err != nil {
			return nil, err
		}
	}
	newClient := func() (*ours.Ctx, error) {
		cli, err := common()
		if err != nil {
			return nil, err
		}
		if err := cli.LoadVerifyLocations(files.ca, ""); err != nil {
			return nil, err
		}
		cli.SetVerifyMode(ours.VerifyPeer)
		return cli, nil
	}
	cli, err := newClient()
	if err != nil {
		return nil, err
	}
	resumingCli, err := newClient()
	if err != nil {
		return nil, err
	}
	// As crypto/tls's ClientSessionCache: Dial offers the session last
	// received from the same address.
	resumingCli.SetClientSessionCache(1)
	return &goImpl{
		client: func(c net.Conn) (net.Conn, error) { return ours.Client(c, cli) },
		server: func(c net.Conn) (net.Conn, error) { return ours.Server(c, srv) },
		dial:   func(addr string) (net.Conn, error) { return ours.Dial("tcp", addr, cli, 0) },
		resumingDialer: func() func(string) (net.Conn, bool, error) {
			return func(addr string) (net.Conn, bool, error) {
				c, err := ours.Dial("tcp", addr, resumingCli, 0)
				if err != nil {
					return nil, false, err
				}
				return c, c.ConnectionState().DidResume, nil
			}
		},
	}, nil
}

func newGoOpenSSL(files certFiles) (*goImpl, error) {
	srv, err := gossl.NewCtxFromFiles(files.cert, files.key)
	if err != nil {
		return nil, err
	}
	cli, err := gossl.NewCtx()
	if err != nil {
		return nil, err
	}
	for _, ctx := range []*gossl.Ctx{srv, cli} {
		if !ctx.SetMinProtoVersion(gossl.TLS1_3_VERSION) {
			return nil, errors.New("go-openssl: cannot set TLS 1.3 as the minimum")
		}
	}
	if err := cli.LoadVerifyLocations(files.ca, ""); err != nil {
		return nil, err
	}
	cli.SetVerify(gossl.VerifyPeer, nil)
	return &goImpl{
		client: func(c net.Conn) (net.Conn, error) { return gossl.Client(c, cli) },
		server: func(c net.Conn) (net.Conn, error) { return gossl.Server(c, srv) },
		dial:   func(addr string) (net.Conn, error) { return gossl.Dial("tcp", addr, cli, 0) },
		resumingDialer: func() func(string) (net.Conn, bool, error) {
			var mu sync.Mutex
			var session []byte
			return func(addr string) (net.Conn, bool, error) {
				mu.Lock()
				s := session
				mu.Unlock()
				c, err := gossl.DialSession("tcp", addr, cli, 0, s)
				if err != nil {
					return nil, false, err
				}
				return &gosslSessionConn{Conn: c, save: func(b []byte) {
					mu.Lock()
					session = b
					mu.Unlock()
				}}, c.SessionReused(), nil
			}
		},
	}, nil
}

// gosslSessionConn keeps go-openssl's session when the connection is
// closed: TLS 1.3 tickets arrive after the handshake, so the session is
// taken once the client has read the server's close_notify.
type gosslSessionConn struct {
	*gossl.Conn
	save func([]byte)
}

func (c *gosslSessionConn) Close() error {
	if s, err := c.Conn.GetSession(); err == nil {
		c.save(s)
	}
	return c.Conn.Close()
}
