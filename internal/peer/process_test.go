package peer_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closenotify/openssl/internal/peer"
	"github.com/closenotify/openssl/internal/tlstest"
)

func TestSendWaitForCloseStdin(t *testing.T) {
	t.Parallel()
	p := tlstest.Started(t)(peer.Start(t.Context(), "cat"))
	if err := p.Send("hello\n"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor("hello\n", wait); err != nil {
		t.Fatal(err)
	}
	m := p.Mark()
	if m != len("hello\n") {
		t.Errorf("Mark = %d, want %d", m, len("hello\n"))
	}
	if err := p.Send("hello\n"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitForAfter(m, "hello\n", wait); err != nil {
		t.Fatal(err)
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	if err := p.CloseStdin(); err == nil {
		t.Error("second CloseStdin succeeded")
	}
	code, err := p.Wait(wait)
	if code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v; want 0, nil", code, err)
	}
	if got := p.Output(); got != "hello\nhello\n" {
		t.Errorf("Output = %q, want %q", got, "hello\nhello\n")
	}
	if err := p.Send("late\n"); err == nil {
		t.Error("Send after exit succeeded")
	}
}

func TestWaitForTimeout(t *testing.T) {
	t.Parallel()
	p := tlstest.Started(t)(peer.Start(t.Context(), "cat"))
	if err := p.Send("something\n"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor("something\n", wait); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := p.WaitFor("never", 100*time.Millisecond)
	if !errors.Is(err, peer.ErrTimeout) {
		t.Fatalf("WaitFor = %v, want ErrTimeout", err)
	}
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond || elapsed > wait {
		t.Errorf("WaitFor returned after %v, want about 100ms", elapsed)
	}
	if !strings.Contains(err.Error(), "something") {
		t.Errorf("error %q does not quote the output", err)
	}
	// Text already seen before the mark does not count.
	if err := p.WaitForAfter(p.Mark(), "something", 50*time.Millisecond); !errors.Is(err, peer.ErrTimeout) {
		t.Errorf("WaitForAfter(Mark) = %v, want ErrTimeout", err)
	}
}

func TestWaitForOutputEnded(t *testing.T) {
	t.Parallel()
	p := tlstest.Started(t)(peer.Start(t.Context(), "sh", "-c", "echo out; echo err >&2; echo out2"))
	err := p.WaitFor("never", time.Minute)
	if err == nil || errors.Is(err, peer.ErrTimeout) {
		t.Fatalf("WaitFor = %v, want an output-ended error", err)
	}
	if got := p.Output(); got != "out\nerr\nout2\n" {
		t.Errorf("Output = %q, want stdout and stderr in order", got)
	}
	if code, err := p.Wait(wait); code != 0 || err != nil {
		t.Errorf("Wait = %d, %v; want 0, nil", code, err)
	}
}

func TestWaitExitCode(t *testing.T) {
	t.Parallel()
	p := tlstest.Started(t)(peer.Start(t.Context(), "sh", "-c", "exit 3"))
	if code, err := p.Wait(wait); code != 3 || err != nil {
		t.Errorf("Wait = %d, %v; want 3, nil", code, err)
	}
	select {
	case <-p.Exited():
	default:
		t.Error("Exited not closed after Wait")
	}
}

func TestWaitTimeoutThenKill(t *testing.T) {
	t.Parallel()
	p := tlstest.Started(t)(peer.Start(t.Context(), "cat"))
	code, err := p.Wait(50 * time.Millisecond)
	if code != -1 || !errors.Is(err, peer.ErrTimeout) {
		t.Fatalf("Wait = %d, %v; want -1, ErrTimeout", code, err)
	}
	p.Kill()
	p.Kill() // idempotent
	code, err = p.Wait(wait)
	if code != -1 || err == nil || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Wait after Kill = %d, %v; want -1 and signal: killed", code, err)
	}
}

func TestKillWholeGroup(t *testing.T) {
	t.Parallel()
	// The background sleep is in the shell's process group and holds the
	// output pipe open; the output ends only once it is dead.
	p := tlstest.Started(t)(peer.Start(t.Context(), "sh", "-c", `sleep 300 & echo "child=$!"; wait`))
	if err := p.WaitFor("\n", wait); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(p.Output())
	child, err := strconv.Atoi(strings.TrimPrefix(line, "child="))
	if err != nil {
		t.Fatalf("shell printed %q", line)
	}
	pgid, err := syscall.Getpgid(child)
	if err != nil || pgid != p.Pid() {
		t.Fatalf("child %d is in group %d (%v), want %d", child, pgid, err, p.Pid())
	}
	if pgid == syscall.Getpgrp() {
		t.Fatal("peer shares the test's process group")
	}
	p.Kill()
	// Wait needs the output to have ended: a Wait that succeeds at once
	// proves that the grandchild has exited too.
	if code, err := p.Wait(time.Second); code != -1 || errors.Is(err, peer.ErrTimeout) {
		t.Fatalf("Wait after Kill = %d, %v; want -1 and signal: killed", code, err)
	}
}

func TestContextKills(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	p, err := peer.Start(ctx, "cat")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	cancel()
	code, err := p.Wait(wait)
	if code != -1 || err == nil || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Wait after cancel = %d, %v; want -1 and signal: killed", code, err)
	}
}

func TestStartMissingProgram(t *testing.T) {
	t.Parallel()
	p, err := peer.Start(t.Context(), "closenotify-no-such-program")
	if err == nil {
		p.Kill()
		t.Fatal("Start of a missing program succeeded")
	}
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("Start = %v, want exec.ErrNotFound", err)
	}
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	p := tlstest.Started(t)(peer.Start(t.Context(), "sleep", "300")) // never reads its input
	start := time.Now()
	err := p.Send(strings.Repeat("x", 1<<20)) // more than a pipe holds
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Send = %v, want a deadline error", err)
	}
	if elapsed := time.Since(start); elapsed < peer.SendTimeout {
		t.Fatalf("Send gave up after %v, want %v", elapsed, peer.SendTimeout)
	}
}
