//! keygate's integration tests: one test binary, one module per subject
//! (`cargo test --test it e2e::` runs one). The world they run in, and the
//! builders they share, are in `common`.
//!
//! They share one process: its threads run tests of every module side by
//! side. A test that changes what the process or the user share (the
//! user's kernel keyring, the open-file limit) says so where it does it.

// Unix only: the test world runs Linux git, gnome-keyring and Unix file
// modes. On Windows, .ci/windows.sh runs keygate.exe end to end instead.
#[cfg(unix)]
mod common;
#[cfg(unix)]
mod proxy_support;

#[cfg(unix)]
mod browser;
#[cfg(unix)]
mod e2e;
#[cfg(unix)]
mod faults;
#[cfg(unix)]
mod files;
#[cfg(unix)]
mod flows;
#[cfg(unix)]
mod forges;
// Linux only: gnome-keyring on a private D-Bus, and the kernel's keyring.
#[cfg(target_os = "linux")]
mod keyring;
#[cfg(unix)]
mod proxy;
#[cfg(unix)]
mod proxy_attacks;
// Unix only: a shell script stands in for keygate.
#[cfg(unix)]
mod quick;
#[cfg(unix)]
mod resolve;
#[cfg(unix)]
mod secrets;
#[cfg(unix)]
mod setup;
