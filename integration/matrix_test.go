package integration_test

import (
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
)

// The shutdown matrix: every scenario against every peer it applies to, with
// us as client and as server, over TLS 1.2 and TLS 1.3. Each cell asserts
// exact outcomes on our side (ShutdownOnce sequences, errors.Is identities,
// bytes) and on the peer's (bytes received, how its reading ended). What
// each peer did is recorded and, with -matrix.readme, written into the
// README's table (matrix_readme_test.go).
//
// The scenarios' run functions are in matrix_scenarios_test.go, the peers
// in matrix_peers_test.go, matrix_gnutls_test.go and matrix_python_test.go,
// and the connections that need more than a TCP connection (a relay, a
// stalled or corked crypto/tls peer) in matrix_links_test.go.

// role is the part this package plays in a cell.
type role string

const (
	weClient role = "client"
	weServer role = "server"
)

// peerImpl is one TLS implementation of the matrix: a column of the README's
// table.
type peerImpl struct {
	name string
	// roles lists the roles we can play against it.
	roles []role
	// connect starts the peer against us for cell c, the client dialing
	// the server through via, and returns our Conn, handshake completed,
	// and the peer's side. Both end at cleanup.
	connect func(t *testing.T, c cell, via route) (*openssl.Conn, peerSide)
}

// route gives the address a client dials to reach the server listening at
// serverAddr: a relay's in front of it (tlstest.Spec.Via).
type route = func(serverAddr string) (string, error)

// direct is the route without anything in between: the client dials the
// server itself.
var direct route

// cell is one run of a scenario: a peer, our role, a TLS version.
type cell struct {
	peer *peerImpl
	ours role
	v    version
	// policy is the ClosePolicy of our Conn.
	policy openssl.ClosePolicy
	// midHandshake makes handshake run shutdownMidHandshake before and during
	// our handshake.
	midHandshake bool
}

// scenario is one row of the matrix.
type scenario struct {
	// id is the scenario number, with a letter for each of the
	// rows of one number ("7b"). The README reports the rows of a number
	// in one line.
	id   string
	name string
	// peers are the peers the row runs against.
	peers []*peerImpl
	// policy is the ClosePolicy of our Conn.
	policy openssl.ClosePolicy
	// midHandshake makes the cell start before our handshake completed
	// (see cell).
	midHandshake bool
	// connect, when set, joins our Conn and the peer instead of the peer's
	// own connect over a direct route.
	connect func(t *testing.T, c cell) (*openssl.Conn, peerSide)
	// run plays the scenario and returns what the README table reports of
	// the peer for it ("" for nothing).
	run func(t *testing.T, c *openssl.Conn, ps peerSide) string
}

// scenarioID is the form of a scenario's id: the number, then at most one
// letter.
var scenarioID = regexp.MustCompile(`^([1-9][0-9]*)[a-z]?$`)

// number is the scenario number of the row: its id without the
// letter (0 for a malformed id, which checkScenarioIDs reports).
func (sc scenario) number() int {
	m := scenarioID.FindStringSubmatch(sc.id)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The peer sets of the rows.
var (
	// everyPeer are the columns of the matrix, in the README's order.
	everyPeer = []*peerImpl{peerGo, peerSServer, peerSClient, peerGnuTLSServ, peerGnuTLSCli, peerPython}
	// relayedPeers are the peers the rows made by the relay run against.
	relayedPeers = []*peerImpl{peerGo, peerSServer, peerSClient}
	// goOnly is the crypto/tls peer alone, for the rows that need it in
	// this process.
	goOnly = []*peerImpl{peerGo}
)

const (
	// lingerTimeout is the Timeout of the close policies of scenario 17.
	lingerTimeout = 2 * time.Second
	// blockedCloseTimeout is the Timeout of the close policy of scenario 20.
	blockedCloseTimeout = time.Second
)

// scenarios are the rows of the matrix, by the numbers. Within a
// number the rows are in the order the README reports what they observed.
var scenarios = []scenario{
	{id: "1", name: "we_shut_down_first_peer_answers", peers: everyPeer, run: weShutDownFirst},
	{id: "2", name: "peer_shuts_down_first", peers: everyPeer, run: peerShutsDownFirst},
	{id: "3", name: "half_close_request_response", peers: everyPeer, run: halfCloseScenario},
	{id: "4", name: "peer_sends_after_our_close_notify", peers: everyPeer, run: peerSendsAfterOurCloseNotify},
	{id: "5", name: "peer_FIN_without_close_notify", peers: everyPeer, run: peerFINScenario},
	{id: "6", name: "FIN_in_the_middle_of_a_record", peers: relayedPeers, connect: connectRelayed, run: finMidRecord},
	{id: "7a", name: "relay_RST_while_we_read", peers: relayedPeers, connect: connectRelayed, run: relayRST},
	{id: "7b", name: "peer_RST_while_we_read", peers: everyPeer, run: peerRSTScenario},
	{id: "7c", name: "peer_RST_while_we_write", peers: everyPeer, run: peerRSTWhileWriting},
	{id: "7d", name: "peer_RST_while_we_wait_in_Shutdown", peers: everyPeer, run: peerRSTWhileShuttingDown},
	{id: "8", name: "peer_never_answers", peers: everyPeer, run: neverAnswersScenario},
	{id: "9", name: "peer_stops_reading_close_notify_full_buffer", peers: everyPeer, connect: connectFullBuffer, run: peerStopsReading},
	{id: "10", name: "both_shut_down_at_once", peers: everyPeer, run: bothShutDownAtOnce},
	{id: "11", name: "shutdown_during_handshake", peers: everyPeer, midHandshake: true, run: shutdownDuringHandshake},
	{id: "12", name: "close_notify_in_the_data_segment", peers: goOnly, connect: connectCorked, run: closeNotifyInDataSegment},
	{id: "15", name: "quiet_close", peers: everyPeer, policy: openssl.ClosePolicy{Quiet: true}, run: quietCloseScenario},
	{id: "16", name: "linger_0", peers: everyPeer, run: lingerZeroScenario},
	{id: "17a", name: "lingering_close_unread_input", peers: everyPeer,
		policy: openssl.ClosePolicy{Lingering: true, Timeout: lingerTimeout}, run: lingeringCloseUnreadInput},
	{id: "17b", name: "default_close_unread_input", peers: everyPeer,
		policy: openssl.ClosePolicy{Timeout: lingerTimeout}, run: defaultCloseUnreadInput},
	{id: "18a", name: "drain_send_queue_relay_stall", peers: relayedPeers, connect: connectRelayed,
		policy: openssl.ClosePolicy{DrainSendQueue: true, Timeout: wait}, run: drainSendQueueSlowReader},
	{id: "18b", name: "drain_send_queue_slow_reader", peers: everyPeer,
		policy: openssl.ClosePolicy{DrainSendQueue: true, Timeout: wait}, run: drainSendQueueSlowReader},
	{id: "19", name: "close_policy_wait_for_peer", peers: everyPeer,
		policy: openssl.ClosePolicy{WaitForPeer: true, Timeout: wait}, run: waitForPeerPolicy},
	{id: "20a", name: "close_while_write_blocked_relay_stall", peers: relayedPeers, connect: connectRelayed,
		policy: openssl.ClosePolicy{Timeout: blockedCloseTimeout}, run: closeWhileWriteBlocked},
	{id: "20b", name: "close_while_read_blocked", peers: everyPeer,
		policy: openssl.ClosePolicy{Timeout: blockedCloseTimeout}, run: closeWhileReadBlocked},
	{id: "20c", name: "close_while_write_blocked", peers: everyPeer,
		policy: openssl.ClosePolicy{Timeout: blockedCloseTimeout}, run: closeWhileWriteBlocked},
	{id: "20d", name: "close_while_shutdown_blocked", peers: everyPeer,
		policy: openssl.ClosePolicy{Timeout: blockedCloseTimeout}, run: closeWhileShutdownBlocked},
}

var matrixReadme = flag.String("matrix.readme", "", "write the observed peer table into this README file")

func TestMatrix(t *testing.T) {
	require.NoError(t, checkScenarioIDs(scenarios))
	for _, p := range everyPeer {
		for _, r := range p.roles {
			for _, v := range versions {
				for _, sc := range scenarios {
					if !slices.Contains(sc.peers, p) {
						continue
					}
					name := fmt.Sprintf("%s/we_are_%s/%s/%s_%s", p.name, r, v.name, sc.id, sc.name)
					t.Run(name, func(t *testing.T) {
						c := cell{peer: p, ours: r, v: v, policy: sc.policy, midHandshake: sc.midHandshake}
						var conn *openssl.Conn
						var ps peerSide
						if sc.connect != nil {
							conn, ps = sc.connect(t, c)
						} else {
							conn, ps = p.connect(t, c, direct)
						}
						what := sc.run(t, conn, ps)
						if what != "" {
							t.Logf("observed: %s", what)
						}
						observe(p.name, sc.id, what)
					})
				}
			}
		}
	}
	if *matrixReadme != "" && !t.Failed() {
		require.NoError(t, writeReadmeTable(*matrixReadme))
	}
}

// checkScenarioIDs reports an id of rows that repeats or is not of the
// form scenarioID.
func checkScenarioIDs(rows []scenario) error {
	seen := map[string]bool{}
	for _, sc := range rows {
		switch {
		case !scenarioID.MatchString(sc.id):
			return fmt.Errorf("scenario id %q is not a number and at most one letter", sc.id)
		case seen[sc.id]:
			return fmt.Errorf("scenario id %q repeats", sc.id)
		}
		seen[sc.id] = true
	}
	return nil
}
