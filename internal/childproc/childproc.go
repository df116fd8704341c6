// Package childproc runs the servers the test harnesses start (Prosody,
// ejabberd, redis-server) as child processes in their own process group, and stops
// them: SIGTERM with a grace period, then SIGKILL to the whole group.
package childproc

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"time"
)

// ErrIgnoredTerm is returned by Stop when the process did not exit within
// the grace period after SIGTERM and was killed.
var ErrIgnoredTerm = errors.New("did not exit after SIGTERM, killed")

// Process is one run of a child process. Its goroutine (waiting for the
// process) exits when the process does.
type Process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	started time.Time
}

// Start starts cmd in its own process group (killed with the test binary
// on Linux); after, if not nil, runs once the process has been reaped,
// before Done is closed.
func Start(cmd *exec.Cmd, after func()) (*Process, error) {
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), started: time.Now()}
	go func() {
		p.err = cmd.Wait()
		if after != nil {
			after()
		}
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether Done is closed.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process ended (cmd.Wait's error); read it after Done.
func (p *Process) Err() error { return p.err }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Started is when Start started the process.
func (p *Process) Started() time.Time { return p.started }

// Signal sends sig to the process alone (not its group).
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// SignalGroup sends sig to the process's group (the process leads it),
// falling back to the process itself.
func (p *Process) SignalGroup(sig syscall.Signal) {
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, sig); err != nil {
		_ = syscall.Kill(pid, sig)
	}
}

// Stop ends the process and waits until it is reaped: graceful sends
// SIGTERM and allows grace before SIGKILL (then the error wraps
// ErrIgnoredTerm); otherwise SIGKILL at once, as in a crash. It fails when
// even SIGKILL did not end it within grace.
func (p *Process) Stop(graceful bool, grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	if graceful {
		p.SignalGroup(syscall.SIGTERM)
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
		}
	}
	p.SignalGroup(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(grace):
		return fmt.Errorf("pid %d still not reaped %v after SIGKILL", p.cmd.Process.Pid, grace)
	}
	if graceful {
		return fmt.Errorf("%w within %v", ErrIgnoredTerm, grace)
	}
	return nil
}

// FreeLoopbackPort asks the kernel for a port on 127.0.0.1 that is free
// now, for a child process to listen on. Another process may take it
// before the child binds it; the harnesses retry on a new port.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}
