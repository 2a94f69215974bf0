package peer

import (
	"testing"
)

// StartT is Start for tests: it fails t at once if the program cannot be
// started, and at cleanup kills the process group and, if t failed, logs
// the program's output. The process is also killed when t's context is
// done, just before cleanup.
func StartT(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	p, err := Start(t.Context(), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, p)
	return p
}

// OpenSSLServerT is OpenSSLServer for tests, with the cleanup of StartT.
// It fails t at once if the server does not start listening.
func OpenSSLServerT(t testing.TB, port int, certFile, keyFile string, extra ...string) *Process {
	t.Helper()
	p, err := OpenSSLServer(t.Context(), port, certFile, keyFile, extra...)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, p)
	return p
}

// OpenSSLClientT is OpenSSLClient for tests, with the cleanup of StartT.
func OpenSSLClientT(t testing.TB, addr, caFile string, extra ...string) *Process {
	t.Helper()
	p, err := OpenSSLClient(t.Context(), addr, caFile, extra...)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, p)
	return p
}

func cleanup(t testing.TB, p *Process) {
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s (pid %d):\n%s", p.Name(), p.Pid(), p.Output())
		}
	})
}
