//! keygate's settings: git config, read once, matched against a URL the
//! way git matches `http.<url>.*`, with built-in presets underneath.

mod baked;
mod resolve;

pub use resolve::*;
