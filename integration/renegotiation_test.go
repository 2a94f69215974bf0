package integration_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

// serverCmdRenegotiate makes s_server (TLS 1.2) send a HelloRequest; it
// prints ServerKeyUpdated's "SSL_do_handshake -> 1" once it has.
const serverCmdRenegotiate = "r\n"

// TestRenegotiationRequestDuringRead: s_server asks for a TLS 1.2
// renegotiation while our client reads. The HelloRequest is handled inside
// SSL_read (whose answer, a new ClientHello, is a read that needs a write);
// data after it goes through both ways and the shutdown completes.
// It runs on both of our paths: on the generic path, the new ClientHello
// goes out through the wrapper's Write from inside Read.
func TestRenegotiationRequestDuringRead(t *testing.T) {
	v := versions[0]
	require.Equal(t, "TLS1.2", v.name)
	tlstest.EachPath(t, func(t *testing.T, path tlstest.Path) {
		c, srv := sServerOn(t, v, path, nil)

		require.NoError(t, srv.Send(serverCmdRenegotiate))
		require.NoError(t, srv.WaitFor(peer.ServerKeyUpdated, wait))
		const line = "after the hello request\n"
		require.NoError(t, srv.Send(line))
		require.Equal(t, line, readN(t, c, len(line)))

		say(t, c, srv, "still talking\n")
		requireAnsweredBy(t, c, "Shutdown", srv, 0, peer.ServerCloseNotifyReceived)
	}, tlstest.Path.OnSocket)
}

// TestRenegotiationRequestAfterOurCloseNotify (matrix scenario 14): the
// HelloRequest is already in our socket when we send close_notify. OpenSSL
// ignores it after our alert, so Shutdown completes: s_server reads our
// close_notify and answers, nothing is discarded, no renegotiation starts.
func TestRenegotiationRequestAfterOurCloseNotify(t *testing.T) {
	v := versions[0]
	c, srv := sServer(t, v, nil)
	say(t, c, srv, "hello\n")
	mark := srv.Mark()
	require.NoError(t, srv.Send(serverCmdRenegotiate))
	require.NoError(t, srv.WaitForAfter(mark, peer.ServerKeyUpdated, wait))

	requireAnsweredBy(t, c, "Shutdown", srv, mark, peer.ServerCloseNotifyReceived)
}
