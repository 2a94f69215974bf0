package openssl

import "crypto/tls"

// TLSConnectionState returns s in crypto/tls's form, for APIs that take a
// tls.ConnectionState, such as net/http's Request.TLS and Response.TLS or
// grpc's credentials.TLSInfo. Version, CipherSuite (CipherSuiteID),
// NegotiatedProtocol, ServerName, PeerCertificates, VerifiedChains,
// DidResume and HandshakeComplete are copied; NegotiatedProtocolIsMutual is
// true (it is deprecated and always true in crypto/tls).
// SignedCertificateTimestamps, OCSPResponse, TLSUnique, ECHAccepted and
// CurveID are left zero. VerifiedChains is nil on a resumed session, where
// crypto/tls would give the chains stored in the session (see
// [ConnectionState].VerifiedChains).
func (s ConnectionState) TLSConnectionState() tls.ConnectionState {
	return tls.ConnectionState{
		Version:                    s.Version,
		HandshakeComplete:          s.HandshakeComplete,
		DidResume:                  s.DidResume,
		CipherSuite:                s.CipherSuiteID,
		NegotiatedProtocol:         s.NegotiatedProtocol,
		NegotiatedProtocolIsMutual: s.HandshakeComplete,
		ServerName:                 s.ServerName,
		PeerCertificates:           s.PeerCertificates,
		VerifiedChains:             s.VerifiedChains,
	}
}

// TLSConnectionState returns the connection's state in crypto/tls's form:
// ConnectionState().TLSConnectionState(). Its name and type are those of
// the method net/http and x/net/http2 look for on a connection that is not
// a *tls.Conn; see the httpssl package for how they use it.
func (c *Conn) TLSConnectionState() tls.ConnectionState {
	return c.ConnectionState().TLSConnectionState()
}
