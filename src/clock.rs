//! The time keygate judges tokens by: whole Unix seconds.
//!
//! A [`Clock`] is what the session reads the time from, so that tests can
//! put a token exactly at its stale instant. It is a struct around an
//! optional closure rather than a trait: the session takes it as a value
//! (no type parameter spreading through `Session`, no `Box<dyn Clock>` on
//! the quick path), the real clock is `None` and costs no allocation, and a
//! test clock is a closure over whatever it needs (an `AtomicU64` it
//! advances).

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, from the system clock; 0 before 1970 rather than a panic. The
/// plain function callers without a session use (the front program's
/// quick path must not pay for more than this call).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where the time comes from: the system clock unless built with
/// [`Clock::from_fn`].
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn Fn() -> u64 + Send + Sync>>);

impl Clock {
    /// The system clock ([`unix_now`]).
    pub const fn system() -> Self {
        Self(None)
    }

    /// A clock that reads `now`: a test's, fixed or advanced by hand.
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(now)))
    }

    pub fn now(&self) -> u64 {
        match &self.0 {
            None => unix_now(),
            Some(now) => now(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            None => "Clock::system",
            Some(_) => "Clock::from_fn",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn a_test_clock_reads_what_it_is_set_to() {
        let at = Arc::new(AtomicU64::new(6900));
        let clock = Clock::from_fn({
            let at = at.clone();
            move || at.load(Ordering::Relaxed)
        });
        assert_eq!(clock.now(), 6900);
        at.store(6901, Ordering::Relaxed);
        assert_eq!(clock.clone().now(), 6901);
        assert!(Clock::system().now() > 1_700_000_000);
    }
}
