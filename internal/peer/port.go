package peer

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// listening waits until the server p listens, at most StartTimeout and
// never past ctx, with find, which learns the address from p's output or
// from /proc; Addr then returns that address. On error it kills p.
func listening(ctx context.Context, p *Process, find func(p *Process, timeout time.Duration) (string, error)) (*Process, error) {
	timeout := StartTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	addr, err := find(p, timeout)
	if err != nil {
		p.Kill()
		return nil, err
	}
	p.addr = addr
	return p, nil
}

// waitLine waits at most timeout until p has printed prefix and the rest
// of its line, and returns that rest without the newline.
func waitLine(p *Process, prefix string, timeout time.Duration) (string, error) {
	start := time.Now()
	if err := p.WaitFor(prefix, timeout); err != nil {
		return "", err
	}
	i := strings.Index(p.Output(), prefix) + len(prefix)
	if err := p.WaitForAfter(i, "\n", timeout-time.Since(start)); err != nil {
		return "", err
	}
	rest, _, _ := strings.Cut(p.Output()[i:], "\n")
	return rest, nil
}

// listenPollInterval is how often waitListening looks for the socket.
const listenPollInterval = 5 * time.Millisecond

// waitListening waits until process p holds a listening IPv4 TCP socket
// and returns 127.0.0.1 with its port. It is for servers that do not
// report the port the kernel chose: gnutls-serv prints 0 and s_server
// -quiet prints nothing. The kernel offers no event for another process's
// listen, so it looks again every listenPollInterval, at most timeout
// long. It returns an error if p exits or timeout passes first.
func waitListening(p *Process, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(listenPollInterval)
	defer tick.Stop()
	for {
		port, err := listeningPortOf(p.Pid())
		if err != nil {
			return "", err
		}
		if port != 0 {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
		select {
		case <-tick.C:
		case <-p.exited:
			return "", fmt.Errorf("peer: %s exited before listening; output was:\n%s", p.name, p.Output())
		case <-deadline.C:
			return "", fmt.Errorf("%w: %s not listening after %v; output was:\n%s", ErrTimeout, p.name, timeout, p.Output())
		}
	}
}

// listeningPortOf returns the port of the IPv4 TCP socket in state LISTEN
// that process pid holds, found by matching the socket inodes of its
// descriptors (/proc/PID/fd) with /proc/net/tcp, or 0 if it holds none.
func listeningPortOf(pid int) (int, error) {
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	inodes := make(map[string]bool)
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return 0, fmt.Errorf("peer: /proc/net/tcp: bad address %q", f[1])
		}
		return int(port), nil
	}
	return 0, nil
}

// StartServer is Start for a server program that does not report its
// address: it waits, at most StartTimeout and never past ctx, until the
// program listens on an IPv4 TCP port, and Addr then returns 127.0.0.1 with
// that port. On error nothing is left running.
func StartServer(ctx context.Context, name string, args ...string) (*Process, error) {
	p, err := Start(ctx, name, args...)
	if err != nil {
		return nil, err
	}
	return listening(ctx, p, waitListening)
}
