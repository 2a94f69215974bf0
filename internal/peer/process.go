package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrTimeout is wrapped by the errors that WaitFor, WaitForAfter, Wait and
// the OpenSSL constructors return when their timeout passes first.
var ErrTimeout = errors.New("peer: timeout")

// killTimeout bounds how long Kill waits for the killed processes to be
// reaped and to close their output.
const killTimeout = 10 * time.Second

// SendTimeout bounds how long Send waits for room in the standard input
// pipe of a program that does not read it.
const SendTimeout = 10 * time.Second

// Process is a running peer program. It is the leader of its own process
// group. Its standard output and standard error share one buffer, in the
// order the program wrote them; its standard input is a pipe.
//
// The methods of a Process may be called from several goroutines at once.
type Process struct {
	name string    // constant
	cmd  *exec.Cmd // constant after Start
	pgid int       // constant after Start
	out  *output   // has its own lock
	outR *os.File  // read end of the output pipe; constant

	stdinMu     sync.Mutex
	stdin       *os.File // write end of the input pipe; constant; used under stdinMu
	stdinClosed bool     // protected by stdinMu

	exited  chan struct{} // closed once the leader has been reaped
	waitErr error         // set before exited is closed

	killOnce sync.Once

	addr string // set by the server constructors before they return; constant afterwards
}

// Start runs name with args as the leader of a new process group. Its
// standard input is a pipe that Send writes to and CloseStdin closes; its
// standard output and standard error both go into the buffer that Output,
// WaitFor and WaitForAfter read. Start returns as soon as the program has
// been started: it does not wait for any output.
//
// When ctx is done, the whole process group is killed with SIGKILL. The
// caller must call Kill (or Wait until exit) in every case; internal/tlstest
// does that when it closes a pair. Kill is not automatic if the calling program itself dies:
// Linux's parent-death signal follows the forking thread, not the process,
// and would kill a peer early whenever the Go runtime ends that thread.
//
// Start returns an error if the pipes cannot be made or the program cannot
// be started (for example, name is not found in PATH); nothing is left
// running then.
func Start(ctx context.Context, name string, args ...string) (*Process, error) {
	return start(ctx, name, name, args)
}

// start is Start with a display name for messages, which differs from name
// when a wrapper such as stdbuf runs the program.
func start(ctx context.Context, display, name string, args []string) (*Process, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("peer: output pipe for %s: %w", display, err)
	}
	// Our own pipe rather than cmd.StdinPipe: an *os.File pipe takes write
	// deadlines, which bound Send.
	inR, inW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("peer: stdin pipe for %s: %w", display, err)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdin = inR
	cmd.Stdout = outW
	cmd.Stderr = outW
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	err = cmd.Start()
	// The child has its own copies; without closing ours the output never
	// reaches EOF and the input never breaks.
	inR.Close()
	outW.Close()
	if err != nil {
		outR.Close()
		inW.Close()
		return nil, fmt.Errorf("peer: starting %s: %w", display, err)
	}
	p := &Process{
		name:   display,
		cmd:    cmd,
		pgid:   cmd.Process.Pid,
		out:    newOutput(),
		outR:   outR,
		stdin:  inW,
		exited: make(chan struct{}),
	}
	go func() {
		io.Copy(p.out, outR)
		p.out.end()
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
		p.closeStdin()
	}()
	return p, nil
}

// Name returns the program name given to Start, or "openssl s_server" and
// "openssl s_client" for the OpenSSL constructors.
func (p *Process) Name() string { return p.name }

// Pid returns the process id of the program, which is also its process
// group id.
func (p *Process) Pid() int { return p.pgid }

// Addr returns the host:port a server peer listens on, as set by
// OpenSSLServer. It is empty for a process made by Start.
func (p *Process) Addr() string { return p.addr }

// Exited returns a channel that is closed once the program has exited and
// been reaped. Output may still be arriving then; Wait waits for both.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Output returns everything the program has written to standard output and
// standard error so far.
func (p *Process) Output() string { return p.out.String() }

// Mark returns the current length of the output, for WaitForAfter.
func (p *Process) Mark() int { return len(p.out.String()) }

// WaitFor waits until the output contains substr and returns nil. It returns
// an error, which quotes the whole output, if the output ends (the program
// and every process holding its output have exited) without substr, or if
// timeout passes first; the timeout error wraps ErrTimeout. It never waits
// longer than timeout and wakes on every write rather than polling.
func (p *Process) WaitFor(substr string, timeout time.Duration) error {
	return p.WaitForAfter(0, substr, timeout)
}

// WaitForAfter is like WaitFor but looks only at the output after the first
// mark bytes, as returned by an earlier Mark. It is for text a program
// prints more than once.
func (p *Process) WaitForAfter(mark int, substr string, timeout time.Duration) error {
	if err := p.out.waitFor(mark, substr, timeout); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}

// Send writes s to the program's standard input. It returns an error if the
// input was closed (by CloseStdin, or because the program exited), if the
// program has closed it (EPIPE), or if the pipe stays full for SendTimeout
// because the program does not read; in the last case part of s may have
// been written.
func (p *Process) Send(s string) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdinClosed {
		return fmt.Errorf("peer: writing to %s: standard input is closed", p.name)
	}
	p.stdin.SetWriteDeadline(time.Now().Add(SendTimeout))
	if _, err := io.WriteString(p.stdin, s); err != nil {
		return fmt.Errorf("peer: writing to %s: %w", p.name, err)
	}
	return nil
}

// CloseStdin closes the program's standard input, so that its next read
// returns end of file. It returns an error if the input is already closed,
// by an earlier CloseStdin or because the program exited.
func (p *Process) CloseStdin() error {
	if !p.closeStdin() {
		return fmt.Errorf("peer: closing stdin of %s: already closed", p.name)
	}
	return nil
}

// closeStdin closes the input pipe unless it is closed, and reports whether
// it did.
func (p *Process) closeStdin() bool {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdinClosed {
		return false
	}
	p.stdinClosed = true
	p.stdin.Close()
	return true
}

// Wait waits at most timeout for the program to exit and for its output to
// end, so that Output is complete when it returns. It returns the exit code
// and a nil error if the program exited by itself, whatever the code. It
// returns -1 and an error naming the signal if the program was killed by a
// signal (including by Kill or by the context given to Start). It returns -1
// and an error wrapping ErrTimeout if the program is still running when
// timeout passes, or if it exited but another process still holds its
// output; the program is left running then.
func (p *Process) Wait(timeout time.Duration) (exitCode int, err error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		return -1, fmt.Errorf("%w: %s still running after %v", ErrTimeout, p.name, timeout)
	}
	select {
	case <-p.out.ended:
	case <-timer.C:
		return -1, fmt.Errorf("%w: %s exited but its output was still open after %v", ErrTimeout, p.name, timeout)
	}
	state := p.cmd.ProcessState
	if state == nil {
		return -1, fmt.Errorf("peer: waiting for %s: %w", p.name, p.waitErr)
	}
	if code := state.ExitCode(); code >= 0 {
		return code, nil
	}
	return -1, fmt.Errorf("peer: %s: %v", p.name, state)
}

// Kill sends SIGKILL to the program's process group, then waits until the
// program has been reaped and its output has ended. If that takes longer
// than 10 seconds (a process left the group but keeps the output open), Kill
// stops reading the output and returns. Kill is idempotent and may be called
// after the program has exited; only the first call does anything.
func (p *Process) Kill() {
	p.killOnce.Do(func() {
		// The group id stays allocated while any member lives, so this
		// reaches children even after the leader has been reaped. ESRCH
		// (nobody left) is the expected error and is ignored.
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		timer := time.NewTimer(killTimeout)
		defer timer.Stop()
		select {
		case <-p.exited:
		case <-timer.C:
			return
		}
		select {
		case <-p.out.ended:
		case <-timer.C:
			// Unblocks the copying goroutine, which then ends the output.
			p.outR.Close()
		}
	})
}
