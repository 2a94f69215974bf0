package peer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// listens on port 0, reads the port the kernel chose, and closes the
// listener. Another process may take the port before the caller uses it;
// where a program can report the port it bound, prefer port 0 (as
// OpenSSLServer does). It returns an error only if listening fails.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("peer: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// listenPollInterval is how often WaitListening rereads /proc/net/tcp.
const listenPollInterval = 5 * time.Millisecond

// WaitListening waits until some socket listens on TCP port on any IPv4
// address, or until the process p exits or timeout passes, which are errors.
// It is for programs that print nothing when ready (openssl s_server
// -quiet). The kernel offers no event for another process's listen, so it
// rereads /proc/net/tcp every listenPollInterval, at most timeout long.
func WaitListening(p *Process, port int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(listenPollInterval)
	defer tick.Stop()
	for {
		ok, err := listening(port)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-tick.C:
		case <-p.exited:
			return fmt.Errorf("peer: %s exited before listening on port %d; output was:\n%s", p.name, port, p.Output())
		case <-deadline.C:
			return fmt.Errorf("%w: %s not listening on port %d after %v; output was:\n%s", ErrTimeout, p.name, port, timeout, p.Output())
		}
	}
}

// listening reports whether /proc/net/tcp lists a socket in state LISTEN
// (0A) on port.
func listening(port int) (bool, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return false, fmt.Errorf("peer: %w", err)
	}
	defer f.Close()
	suffix := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && strings.HasSuffix(fields[1], suffix) && fields[3] == "0A" {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("peer: reading /proc/net/tcp: %w", err)
	}
	return false, nil
}
