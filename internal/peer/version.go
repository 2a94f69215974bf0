package peer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ExpectOpenSSLEnv names the environment variable that says which OpenSSL
// series a test run must use, such as "3.5": make test-openssl-3.5 sets it
// when it builds and links the package against its own OpenSSL and puts
// that OpenSSL's openssl program first in PATH. libssl.so.3 has the same
// soname in every 3.x release, so a run whose library path misses the
// intended OpenSSL silently runs against the system's instead.
const ExpectOpenSSLEnv = "CLOSENOTIFY_EXPECT_OPENSSL"

// CheckOpenSSLVersions checks the libssl the package runs with (lib, the
// text of openssl.Version) and the openssl program on PATH, which runs the
// s_server and s_client peers. Both must be OpenSSL 3; when
// ExpectOpenSSLEnv is set, both must be of the series it names.
func CheckOpenSSLVersions(ctx context.Context, lib string) error {
	want := "OpenSSL 3."
	if series := os.Getenv(ExpectOpenSSLEnv); series != "" {
		want = "OpenSSL " + series + "."
	}
	if !strings.HasPrefix(lib, want) {
		return fmt.Errorf("peer: the package runs with %q, not %s (%s=%q): the library path (rpath or LD_LIBRARY_PATH) does not reach the intended OpenSSL",
			lib, strings.TrimSuffix(want, "."), ExpectOpenSSLEnv, os.Getenv(ExpectOpenSSLEnv))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "openssl", "version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("peer: openssl version: %w: %s", err, out)
	}
	if !strings.HasPrefix(string(out), want) {
		return fmt.Errorf("peer: the openssl program on PATH is %q, not %s (%s=%q)",
			strings.TrimSpace(string(out)), strings.TrimSuffix(want, "."), ExpectOpenSSLEnv, os.Getenv(ExpectOpenSSLEnv))
	}
	return nil
}
