package tlstest

import (
	"crypto/tls"
	"testing"
)

// Role says which side of the handshake our Conn is; the peer takes the
// other.
type Role int

const (
	WeClient Role = iota // our Conn is the TLS client
	WeServer             // our Conn is the TLS server
)

// Roles are both roles, client first.
var Roles = []Role{WeClient, WeServer}

// Versions are the TLS versions every case runs over.
var Versions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// String returns "we-client" or "we-server".
func (r Role) String() string {
	if r == WeClient {
		return "we-client"
	}
	return "we-server"
}

// Case is one cell of a version × role table.
type Case struct {
	Version uint16 // a crypto/tls version constant; 0 means not limited
	Role    Role
}

// String returns the subtest name, such as "TLS 1.3/we-server".
func (c Case) String() string {
	return tls.VersionName(c.Version) + "/" + c.Role.String()
}

// Cases returns every Case of Versions × Roles, in the order Each runs
// them.
func Cases() []Case {
	var cs []Case
	for _, v := range Versions {
		for _, r := range Roles {
			cs = append(cs, Case{Version: v, Role: r})
		}
	}
	return cs
}

// Each runs f as a subtest named after each of [Cases].
func Each(t *testing.T, f func(t *testing.T, c Case)) {
	for _, c := range Cases() {
		t.Run(c.String(), func(t *testing.T) { f(t, c) })
	}
}

// EachVersion runs f as a subtest for each of [Versions].
func EachVersion(t *testing.T, f func(t *testing.T, version uint16)) {
	for _, v := range Versions {
		t.Run(tls.VersionName(v), func(t *testing.T) { f(t, v) })
	}
}
