// Package grpccreds provides gRPC transport credentials that make TLS
// connections with the openssl package, for clients and servers of
// google.golang.org/grpc, as grpc's credentials.NewTLS does with
// crypto/tls. It is a module of its own, so that the openssl module does
// not depend on grpc.
//
//	sslCtx, _ := openssl.NewCtx() // a certificate and key, trusted CAs...
//	creds, _ := grpccreds.New(sslCtx, 0)
//	srv := grpc.NewServer(grpc.Creds(creds))
//	conn, _ := grpc.NewClient("localhost:443", grpc.WithTransportCredentials(creds))
//
// Connections close as their Ctx's ClosePolicy says: a server's
// GracefulStop and a client's Close end each with close_notify.
package grpccreds

import (
	"context"
	"errors"
	"net"
	"net/url"

	"google.golang.org/grpc/credentials"

	"github.com/closenotify/openssl"
)

// ErrNoALPN: the peer did not negotiate "h2" by ALPN, which gRPC requires
// (grpc's own TLS credentials refuse it the same way).
var ErrNoALPN = errors.New("grpccreds: the peer did not negotiate h2 by ALPN")

// creds is a credentials.TransportCredentials over an openssl.Ctx.
type creds struct {
	sslCtx     *openssl.Ctx      // constant; shared by clones
	flags      openssl.DialFlags // constant
	serverName string            // OverrideServerName's; Info reports it
}

// New returns transport credentials for clients and servers whose
// connections are made with sslCtx, which it sets to offer and accept only
// "h2" by ALPN (SetNextProtos), as gRPC requires. A server needs a
// certificate and key in sslCtx, and VerifyPeer with
// VerifyFailIfNoPeerCert for mutual TLS. A client verifies the server's
// certificate against sslCtx's trusted CAs and against the host name of
// the authority it dials, and sends it as SNI, as openssl.Dial does,
// unless flags has openssl.InsecureSkipHostVerification (and
// DisableSNI).
func New(sslCtx *openssl.Ctx, flags openssl.DialFlags) (credentials.TransportCredentials, error) {
	if sslCtx == nil {
		return nil, errors.New("grpccreds: nil Ctx")
	}
	if err := sslCtx.SetNextProtos([]string{"h2"}); err != nil {
		return nil, err
	}
	return &creds{sslCtx: sslCtx, flags: flags}, nil
}

// ClientHandshake runs the TLS handshake as a client on rawConn, bounded
// by ctx and rawConn's deadlines, and returns the *openssl.Conn and a
// credentials.TLSInfo. Like openssl.Dial it sends SNI for authority's
// host (what gRPC dials, or what OverrideServerName or grpc.WithAuthority
// said) and fails the handshake when the server's certificate does not
// verify against the Ctx's trusted CAs or does not match that host,
// unless the flags say otherwise (Conn.SetServerName). A server that did
// not negotiate "h2" is refused with ErrNoALPN. On failure the connection
// is closed.
func (c *creds) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	host, _, err := net.SplitHostPort(authority)
	if err != nil {
		host = authority // no port
	}
	conn, err := openssl.Client(rawConn, c.sslCtx)
	if err != nil {
		return nil, nil, err
	}
	if err := c.setServerName(conn, host); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return handshake(ctx, conn)
}

// handshake runs conn's handshake within ctx and its deadlines, and
// requires "h2"; on failure it closes conn.
func handshake(ctx context.Context, conn *openssl.Conn) (net.Conn, credentials.AuthInfo, error) {
	err := conn.HandshakeContext(ctx)
	state := conn.ConnectionState()
	if err == nil && state.NegotiatedProtocol != "h2" {
		err = ErrNoALPN
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, tlsInfo(state), nil
}

// setServerName arranges SNI and the verification of host as the flags
// say, as openssl.Dial does.
func (c *creds) setServerName(conn *openssl.Conn, host string) error {
	sni := c.flags&openssl.DisableSNI == 0 && net.ParseIP(host) == nil && host != ""
	switch {
	case c.flags&openssl.InsecureSkipHostVerification == 0:
		if c.flags&openssl.DisableSNI != 0 {
			return errors.New("grpccreds: DisableSNI needs InsecureSkipHostVerification (Conn.SetServerName sends SNI)")
		}
		return conn.SetServerName(host)
	case sni:
		return conn.SetTlsExtHostName(host)
	}
	return nil
}

// ServerHandshake runs the TLS handshake as a server on rawConn, bounded
// by the deadline gRPC sets on it (grpc.ConnectionTimeout), and returns
// the *openssl.Conn and a credentials.TLSInfo. A client that did not
// negotiate "h2" is refused with ErrNoALPN; on failure the connection is
// closed.
func (c *creds) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, err := openssl.Server(rawConn, c.sslCtx)
	if err != nil {
		return nil, nil, err
	}
	return handshake(context.Background(), conn)
}

// tlsInfo is the AuthInfo of a connection: credentials.TLSInfo, as grpc's
// own TLS credentials give it, so that interceptors that read the peer's
// certificates from peer.FromContext(ctx).AuthInfo.(credentials.TLSInfo)
// work unchanged. The SPIFFE ID is the leaf's one URI SAN with the
// "spiffe" scheme, as grpc takes it.
func tlsInfo(state openssl.ConnectionState) credentials.TLSInfo {
	info := credentials.TLSInfo{
		State:          state.TLSConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}
	if len(state.PeerCertificates) > 0 {
		info.SPIFFEID = spiffeID(state.PeerCertificates[0].URIs)
	}
	return info
}

func spiffeID(uris []*url.URL) *url.URL {
	var id *url.URL
	for _, u := range uris {
		if u.Scheme != "spiffe" {
			continue
		}
		if id != nil {
			return nil // more than one: none is the identity
		}
		id = u
	}
	return id
}

// Info returns the protocol information as grpc's TLS credentials do:
// "tls", version "1.2" (the minimum), and the server name
// OverrideServerName set, which gRPC then uses as the authority.
func (c *creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{
		SecurityProtocol: "tls",
		SecurityVersion:  "1.2",
		ServerName:       c.serverName,
	}
}

// Clone returns a copy that shares the Ctx: OverrideServerName on one
// does not change the other.
func (c *creds) Clone() credentials.TransportCredentials {
	clone := *c
	return &clone
}

// OverrideServerName sets the name the client verifies the server's
// certificate against, through the authority gRPC derives from Info.
//
// Deprecated: as in grpc, use grpc.WithAuthority instead.
func (c *creds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
