//! What the proxy, a long-running process, asks of the platform.

/// Raises the soft limit on open files towards `wanted`, as far as the hard
/// limit allows; where there is no such limit, or it cannot be read,
/// nothing changes.
pub fn raise_open_file_limit(wanted: u64) {
    #[cfg(unix)]
    {
        let wanted = libc::rlim_t::try_from(wanted).unwrap_or(libc::rlim_t::MAX);
        // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
        unsafe {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
                limit.rlim_cur = wanted.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = wanted;
}

/// Returns once the process is asked to stop: SIGTERM or SIGINT on Unix,
/// Ctrl-C elsewhere.
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Listens for SIGINT, SIGTERM and SIGHUP (Ctrl-C elsewhere) from this
/// call on, not from the first poll: a wait that prints "press Ctrl-C to
/// cancel" must already catch it. The future returns at the first of
/// them. SIGHUP counts because a Ctrl-C at git's terminal stops git at
/// once, and the terminal that closes behind it hangs up on keygate while
/// it is still cleaning up. Call it inside a tokio runtime.
pub fn termination() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        let hang_up = signal(SignalKind::hangup());
        async move {
            let recv = async |signal: std::io::Result<tokio::signal::unix::Signal>| match signal {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                // Not listening: the signal's default action stands.
                Err(_) => std::future::pending().await,
            };
            tokio::select! {
                () = recv(interrupt) => {}
                () = recv(terminate) => {}
                () = recv(hang_up) => {}
            }
        }
    }
    #[cfg(windows)]
    {
        let ctrl_c = tokio::signal::windows::ctrl_c();
        async move {
            match ctrl_c {
                Ok(mut ctrl_c) => {
                    ctrl_c.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        }
    }
    #[cfg(not(any(unix, windows)))]
    std::future::pending::<()>()
}

/// Takes `names` out of this process's environment, so that no process
/// keygate starts (git, a browser) inherits them, and returns their
/// values (an empty one as `None`).
///
/// # Safety, kept here
///
/// Changing the environment races with any other thread reading it (Rust
/// 2024 makes `remove_var` unsafe for that reason). Windows guards its
/// environment itself, so removal is always sound there. On Linux the
/// variables are removed only while the kernel counts one thread in this
/// process. Elsewhere there is no cheap count: keygate calls this as the
/// first line of `main`, before it starts any thread, and a [`Once`]
/// makes sure no later call removes anything.
///
/// [`Once`]: std::sync::Once
pub fn take_env_vars<const N: usize>(names: [&str; N]) -> [Option<String>; N] {
    static FIRST_CALL: std::sync::Once = std::sync::Once::new();
    let values = names.map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    if values.iter().any(Option::is_some) {
        FIRST_CALL.call_once(|| {
            if only_thread() {
                for (name, value) in names.iter().zip(&values) {
                    if value.is_some() {
                        // SAFETY: no other thread exists to read the
                        // environment meanwhile (see above), or the
                        // platform guards it.
                        unsafe { std::env::remove_var(name) };
                    }
                }
            }
        });
    }
    values
}

/// Whether removing an environment variable now is sound: Windows guards
/// its environment; Linux counts this process's threads in /proc; other
/// platforms are taken at the word of the one caller, main's first line.
fn only_thread() -> bool {
    if cfg!(windows) {
        return true;
    }
    if cfg!(target_os = "linux") {
        return std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
            status
                .lines()
                .any(|line| line.split_whitespace().collect::<Vec<_>>() == ["Threads:", "1"])
        });
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_test_process_has_threads_so_linux_keeps_the_variable() {
        if cfg!(target_os = "linux") {
            // The test harness runs each test on a thread of its own.
            assert!(!super::only_thread());
        }
    }
}
