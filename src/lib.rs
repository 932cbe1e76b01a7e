//! keygate: OAuth 2.0 tokens for HTTPS git, kept fresh in the OS keychain.
//!
//! Layers, top to bottom (nothing imports upward, no cycles): `commands`
//! → `proxy`, `helper` → `session` → `oauth`, `store`, `config`,
//! `credential`, `cargo_credential`, `docker_credential` → `gitconfig`, `secret`, `http`, `text`, `clock` →
//! `sys` (the platform, which imports nothing of keygate's). Within the middle layer
//! imports run `oauth` → `store` → `config` (`oauth` and `store` read
//! their settings from `config`), never back.

// Input, the network, the keychain and the filesystem can all fail: library
// code says how, it does not panic. Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cargo_credential;
pub mod clock;
pub mod commands;
pub mod config;
pub mod credential;
pub mod docker_credential;
pub mod gitconfig;
pub mod helper;
pub mod http;
pub mod oauth;
pub mod proxy;
pub mod secret;
pub mod session;
pub mod store;
pub mod sys;
pub mod text;
