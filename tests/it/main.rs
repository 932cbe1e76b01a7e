//! keygate's integration tests: one test binary, one module per subject
//! (`cargo test --test it e2e::` runs one), so `common` and the keygate
//! library are compiled into one test program, not one per file. A new
//! subject is a new module here; a new test of an old one goes in its
//! module.
//!
//! `common` has the world they run in (`World`: a temp HOME, the test CA,
//! the real OAuth server, the git server, gnome-keyring on demand; or
//! `World::offline`, and `World::offline_with_stale_account`, where a
//! refresh is due), the stored record they seed (`Record`), the throwaway
//! local user of the cross-user tests (`LocalUser`) and the stand-ins.
//!
//! They share one process: its threads run tests of every module side by
//! side. A test that changes what the process or the user share (the
//! user's kernel keyring, the open-file limit) says so where it does it.

// Unix only: the test world runs Linux git, gnome-keyring and Unix file
// modes. On Windows, .ci/windows.sh runs keygate.exe end to end instead.
#![cfg(unix)]

mod common;
mod proxy_support;

mod browser;
mod cargo;
mod ci_identity;
mod containers;
mod docs;
mod doctor;
mod e2e;
mod faults;
mod files;
mod flows;
mod forges;
// Linux only: gnome-keyring on a private D-Bus, and the kernel's keyring.
#[cfg(target_os = "linux")]
mod keyring;
mod login_modes;
// Linux only: man-db renders the pages.
#[cfg(target_os = "linux")]
mod man;
// Run by .ci/package only, against the installed Debian package.
#[cfg(target_os = "linux")]
mod package;
mod packages;
mod proxy;
mod proxy_attacks;
mod quick;
mod resolve;
mod secrets;
mod setup;
