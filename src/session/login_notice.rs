//! The notice, at most once a day in a login's last week, that it ends
//! soon, and the dates it is told in.

use super::lock::lock_name;
use super::login_command;
use crate::store::{self, AccountKey, TokenRecord};

/// How long before the refresh token dies `get` starts saying so.
const NOTICE_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// And how often it says it.
const NOTICE_EVERY_SECS: u64 = 24 * 3600;

/// In the last week of the refresh token's life, says once a day when
/// a new login will be needed. Costs one comparison otherwise: the
/// day's note is read only inside that week.
pub(super) fn warn_if_login_ends_soon(key: &AccountKey, record: &TokenRecord, now: u64) {
    let Some(ends) = record.refresh_token_expires_at else {
        return;
    };
    if ends > now.saturating_add(NOTICE_WINDOW_SECS)
        || ends <= now
        || record.refresh_token_rejected.is_some()
    {
        return;
    }
    let Ok(dir) = store::data_dir().map(|d| d.join("notices")) else {
        return;
    };
    let path = dir.join(format!("{}.last", lock_name(key)));
    let last = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if last.is_some_and(|last| now < last.saturating_add(NOTICE_EVERY_SECS)) {
        return;
    }
    // Noted first: a notice that cannot be remembered is not repeated
    // on every git command either.
    if crate::sys::create_private_dir(&dir)
        .and_then(|()| crate::sys::write_private_atomically(&path, now.to_string().as_bytes()))
        .is_err()
    {
        return;
    }
    crate::text::notice(&format!(
        "the login for {} ends {} (its refresh token expires then); run `{}` before that to keep git working without a prompt",
        key.label(),
        describe_instant(ends, now),
        login_command(&key.login_url())
    ));
}

/// "in 3 days (2026-12-05 14:00 UTC)".
fn describe_instant(at: u64, now: u64) -> String {
    let left = at.saturating_sub(now);
    let relative = match left {
        s if s >= 2 * 86_400 => format!("in {} days", s / 86_400),
        s if s >= 7200 => format!("in {} hours", s / 3600),
        s if s >= 120 => format!("in {} minutes", s / 60),
        s if s >= 60 => "in 1 minute".to_owned(),
        _ => "in less than a minute".to_owned(),
    };
    format!("{relative} ({})", utc_date(at))
}

/// `YYYY-MM-DD HH:MM UTC` for Unix seconds (Howard Hinnant's
/// days-to-civil algorithm; no calendar crate for one line).
pub fn utc_date(at: u64) -> String {
    let days = i64::try_from(at / 86_400).unwrap_or(0);
    let secs = at % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_796_000_000), "2026-11-30 00:53 UTC");
    }

    #[test]
    fn instants_read_as_a_person_says_them() {
        let at = |left: u64| describe_instant(1_796_000_000 + left, 1_796_000_000);
        assert!(at(3 * 86_400).starts_with("in 3 days ("));
        assert!(at(5 * 3600).starts_with("in 5 hours ("));
        assert!(at(90 * 60).starts_with("in 90 minutes ("));
        assert!(at(90).starts_with("in 1 minute ("), "{}", at(90));
        assert!(at(30).starts_with("in less than a minute ("), "{}", at(30));
    }
}
