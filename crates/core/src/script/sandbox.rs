//! Runs a piece of work in a forked child process, so that whatever the work does to its process — a stack
//! overflow, an abort, running out of memory or of CPU time — the caller survives and gets an error.
//!
//! The caller is usually a Postgres backend. A backend that dies by a signal makes the postmaster restart
//! the whole cluster, and a stack overflow cannot be caught in-process; a child that dies is just a child
//! that died. The child inherits the backend's memory (copy-on-write) but none of its duties: it runs no
//! Postgres signal handler, touches no shared memory, runs no exit hook (it leaves with `_exit`), and
//! returns its result through a pipe, serialized as JSON.
//!
//! `fork` in a multithreaded process leaves the child with only the forking thread, and any lock another
//! thread held at that moment stays held for ever. The child here allocates (glibc's `fork` makes `malloc`
//! safe in the child) and may start a thread, which is fine when the parent is single-threaded: a Postgres
//! backend is, at the times this is called (pg_nango's only helper thread, the record hasher, lives only
//! inside a record write). In a multithreaded process (the unit tests) a child that hangs on such a lock is
//! killed at the wall-clock deadline.

use std::io;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a sandboxed child may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Address space the child may map beyond what it inherits from its parent (`RLIMIT_AS`).
    pub memory: u64,
    /// CPU time, in seconds (`RLIMIT_CPU`): the child gets `SIGXCPU` at this, `SIGKILL` a second later.
    pub cpu_seconds: u64,
    /// Wall-clock time after which the parent kills the child (a child blocked on nothing CPU-bound).
    pub wall: Duration,
    /// The most bytes of serialized result the parent reads; a child that writes more is killed.
    pub max_output: usize,
}

/// Why a sandboxed run gave no result.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The pipe or the child could not be created.
    #[error("could not start a child process: {0}")]
    Start(io::Error),
    /// The child died by this signal: a crash (`SIGSEGV`, `SIGBUS` for a stack overflow, `SIGABRT` for an
    /// abort, including a failed allocation), or `SIGKILL` (the memory or CPU limit, or the OOM killer).
    #[error("the child process died by signal {0}")]
    Crashed(i32),
    /// The child used up its CPU time (`SIGXCPU`) or passed the wall-clock deadline.
    #[error("the child process ran out of time")]
    OutOfTime,
    /// The child was stopped by a signal sent to the caller's process group (`SIGINT`, `SIGTERM`,
    /// `SIGQUIT`): Postgres sends those for a cancel, a terminate or a shutdown.
    #[error("the child process was interrupted by signal {0}")]
    Interrupted(i32),
    /// The child wrote more than [`Limits::max_output`] bytes.
    #[error("the child process wrote more than {0} bytes")]
    OutputTooLarge(usize),
    /// The child exited without a readable result (its work panicked, or the pipe failed).
    #[error("the child process gave no result ({0})")]
    NoResult(String),
}

/// Exit status of a child whose work panicked or whose result could not be written.
const CHILD_FAILED: i32 = 101;

/// Runs `work` in a forked child process under `limits` and returns its result.
///
/// Must be called from the thread that should be the child's only thread; see the module documentation for
/// why the process should be single-threaded.
pub fn run_isolated<T: Serialize + DeserializeOwned>(
    limits: &Limits,
    work: impl FnOnce() -> T,
) -> Result<T, SandboxError> {
    // Everything the child needs is computed before the fork.
    let memory_limit = inherited_address_space().map(|size| size.saturating_add(limits.memory));
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SandboxError::Start(io::Error::last_os_error()));
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the signal sets live on this stack. All signals are blocked across the fork so that no
    // handler of the parent's can run in the child before the child resets them; the parent restores its
    // mask at once.
    let (pid, fork_error) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        let pid = libc::fork();
        if pid == 0 {
            libc::close(read_fd);
            child(parent, write_fd, memory_limit, limits.cpu_seconds, work);
        }
        // Read before the calls below can change errno.
        let fork_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        libc::close(write_fd);
        (pid, fork_error)
    };
    if pid < 0 {
        // SAFETY: the read end is ours and closed once.
        unsafe { libc::close(read_fd) };
        return Err(SandboxError::Start(fork_error));
    }
    let read = read_all(read_fd, limits);
    // SAFETY: the read end is ours and closed once.
    unsafe { libc::close(read_fd) };
    if read.is_err() {
        // SAFETY: `pid` is our child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = wait(pid);
    let output = read?;
    match status {
        Some(status) if libc::WIFSIGNALED(status) => {
            return Err(match libc::WTERMSIG(status) {
                libc::SIGXCPU => SandboxError::OutOfTime,
                signal @ (libc::SIGINT | libc::SIGTERM | libc::SIGQUIT) => {
                    SandboxError::Interrupted(signal)
                }
                signal => SandboxError::Crashed(signal),
            });
        }
        Some(status) if libc::WEXITSTATUS(status) != 0 => {
            return Err(SandboxError::NoResult(format!(
                "exit status {}",
                libc::WEXITSTATUS(status)
            )));
        }
        // Exited with 0, or already reaped by someone else (SIGCHLD ignored): the output decides.
        _ => {}
    }
    serde_json::from_slice(&output).map_err(|e| SandboxError::NoResult(e.to_string()))
}

/// The child's side: drops the parent's signal handling, limits itself, runs `work`, writes its result to
/// `write_fd` and leaves with `_exit`. Never returns.
///
/// # Safety
/// Only to be called in a freshly forked child, with every signal blocked.
unsafe fn child<T: Serialize>(
    parent: libc::pid_t,
    write_fd: libc::c_int,
    memory_limit: Option<u64>,
    cpu_seconds: u64,
    work: impl FnOnce() -> T,
) -> ! {
    // SAFETY (whole block): plain system calls on values owned here; the process is ours alone.
    unsafe {
        // Every handler back to its default (the parent's are Postgres'). Signals 32 and 33, which glibc
        // keeps for itself, refuse the call, which is fine.
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..=libc::SIGRTMAX() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        // Unblocked: the faults a crash raises, the CPU limit, and what Postgres sends a backend's process
        // group to cancel or end it (the child then ends with it). Everything else (a configuration reload's
        // SIGHUP, SIGUSR1, SIGPIPE, …) stays blocked and pending, harmless.
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut mask);
        for signal in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGABRT,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGTRAP,
            libc::SIGSYS,
            libc::SIGXCPU,
            libc::SIGXFSZ,
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGQUIT,
        ] {
            libc::sigdelset(&mut mask, signal);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
        // The child dies with the thread that forked it, so a killed backend leaves nothing behind.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(CHILD_FAILED);
        }
        // None of the parent's descriptors (client socket, log pipe aside from stderr, other children's
        // pipes) is the child's business. close_range needs Linux 5.9; without it they stay open, unused.
        if write_fd > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (write_fd - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (write_fd + 1) as u32, u32::MAX, 0u32);
        // Lowers a limit to `soft`/`hard` (never raises it: an unprivileged process cannot).
        let limit = |resource, soft: u64, hard: u64| {
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(resource, &mut current) == 0 {
                let hard = current.rlim_max.min(hard);
                let wanted = libc::rlimit {
                    rlim_cur: current.rlim_cur.min(soft).min(hard),
                    rlim_max: hard,
                };
                libc::setrlimit(resource, &wanted);
            }
        };
        // A crash should not write a core file of the parent's size.
        limit(libc::RLIMIT_CORE, 0, 0);
        if let Some(memory) = memory_limit {
            limit(libc::RLIMIT_AS, memory, memory);
        }
        // A forked child's CPU time starts at zero. The soft limit sends SIGXCPU, the hard one a second
        // later SIGKILL.
        limit(libc::RLIMIT_CPU, cpu_seconds, cpu_seconds.saturating_add(1));
        let status = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .ok()
            .and_then(|result| serde_json::to_vec(&result).ok())
        {
            Some(bytes) if write_fully(write_fd, &bytes) => 0,
            _ => CHILD_FAILED,
        };
        libc::_exit(status)
    }
}

/// Writes all of `bytes` to `fd`; false if the pipe failed.
fn write_fully(fd: libc::c_int, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: writes from a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

/// Reads `fd` to its end, within the limits' deadline and output bound.
fn read_all(fd: libc::c_int, limits: &Limits) -> Result<Vec<u8>, SandboxError> {
    let deadline = Instant::now() + limits.wall;
    let mut output = Vec::new();
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SandboxError::OutOfTime);
        }
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polls one descriptor described on this stack.
        let ready =
            unsafe { libc::poll(&mut poll, 1, left.as_millis().min(60_000) as libc::c_int) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SandboxError::NoResult(error.to_string()));
        }
        if ready == 0 {
            continue;
        }
        // SAFETY: reads into a live buffer of the given length.
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        match n {
            0 => return Ok(output),
            n if n < 0 => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(SandboxError::NoResult(error.to_string()));
                }
            }
            n => {
                if output.len() + n as usize > limits.max_output {
                    return Err(SandboxError::OutputTooLarge(limits.max_output));
                }
                output.extend_from_slice(&buffer[..n as usize]);
            }
        }
    }
}

/// Waits for the child `pid`; its status, or `None` if it was reaped elsewhere.
fn wait(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, writing its status here.
        let done = unsafe { libc::waitpid(pid, &mut status, 0) };
        if done == pid {
            return Some(status);
        }
        if done < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// The size of this process' address space (what a child inherits and [`Limits::memory`] adds to).
fn inherited_address_space() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        memory: 1 << 30,
        cpu_seconds: 5,
        wall: Duration::from_secs(20),
        max_output: 1 << 20,
    };

    #[test]
    fn returns_the_childs_result() {
        let parent = std::process::id();
        let (value, child) = run_isolated(&LIMITS, || (vec![1, 2, 3], std::process::id())).unwrap();
        assert_eq!(value, vec![1, 2, 3]);
        assert_ne!(child, parent, "the work ran in another process");
    }

    #[test]
    fn a_crash_is_an_error_and_the_caller_survives() {
        let crashed = run_isolated(&LIMITS, || -> u8 { std::process::abort() });
        assert!(
            matches!(crashed, Err(SandboxError::Crashed(libc::SIGABRT))),
            "{crashed:?}"
        );
        let segfault = run_isolated(&LIMITS, || -> u8 {
            // SAFETY: not safe at all, on purpose: the child dies of it.
            unsafe { libc::raise(libc::SIGSEGV) };
            0
        });
        assert!(
            matches!(segfault, Err(SandboxError::Crashed(libc::SIGSEGV))),
            "{segfault:?}"
        );
    }

    #[test]
    fn a_panic_is_an_error() {
        let panicked = run_isolated(&LIMITS, || -> u8 { panic!("inside the child") });
        assert!(
            matches!(panicked, Err(SandboxError::NoResult(_))),
            "{panicked:?}"
        );
    }

    #[test]
    fn memory_and_output_are_bounded() {
        let greedy = run_isolated(&LIMITS, || std::hint::black_box(vec![7u8; 3 << 30]).len());
        assert!(
            matches!(greedy, Err(SandboxError::Crashed(_))),
            "{greedy:?}"
        );
        let chatty = run_isolated(&LIMITS, || "x".repeat(2 << 20));
        assert!(
            matches!(chatty, Err(SandboxError::OutputTooLarge(_))),
            "{chatty:?}"
        );
    }

    #[test]
    fn cpu_time_is_bounded() {
        let limits = Limits {
            cpu_seconds: 1,
            ..LIMITS
        };
        let started = Instant::now();
        let spinning = run_isolated(&limits, || {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
            #[allow(unreachable_code)]
            n
        });
        assert!(
            matches!(spinning, Err(SandboxError::OutOfTime)),
            "{spinning:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
