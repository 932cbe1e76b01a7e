//! `keygate status`: the accounts keygate holds tokens for, as lines or
//! `--json`. Never a secret: only whether each token is there.

use std::io::Write;

use serde::Serialize;

use super::CommandError;
use crate::config::{self, ClientIdSource, GitConfig, Provider};
use crate::oauth::{federation, register};
use crate::session;
use crate::store::{self, AccountKey, TokenRecord, TokenStore, unix_now};
use crate::text;

#[derive(Serialize)]
struct AccountStatus<'a> {
    server: &'a str,
    account: &'a str,
    store: &'a str,
    grant: &'a str,
    token_type: &'a str,
    access_token_present: bool,
    expires_at: Option<u64>,
    expires_in_seconds: Option<i64>,
    refresh_token_present: bool,
    /// When the refresh token itself dies, where the server said.
    refresh_token_expires_at: Option<u64>,
    /// The server's error code when it refused the refresh token.
    refresh_token_rejected: Option<&'a str>,
    scopes: &'a [String],
    /// Where the client id keygate uses for this server comes from now:
    /// `config`, `environment`, `baked-in`, `registered`; `null` when
    /// nothing configures the server any more.
    client_id_from: Option<ClientIdSource>,
    /// Where the CI id token its grant presents comes from, found now
    /// (or why none is), for an account whose grant presents one.
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token_source: Option<String>,
}

/// `Some` for a server whose grant presents the CI job's id token: where
/// that token comes from here and now, or why there is none.
fn id_token_source(provider: &Provider) -> Option<String> {
    federation::source_here(provider).map(|found| match found {
        Ok(source) => source,
        Err(why) => format!("none ({why})"),
    })
}

/// Lists the accounts in `config`'s store on `output`.
pub fn status(config: &GitConfig, json: bool, mut output: impl Write) -> Result<(), CommandError> {
    let store = store::open_for(config)?;
    let mut records = store.list()?;
    records.sort_by(|a, b| (&a.server, &a.account).cmp(&(&b.server, &b.account)));
    let now = unix_now();
    let providers = config::configured_providers(config);
    let source_for = |server: &str| {
        providers
            .iter()
            .find(|p| p.server.as_str().trim_end_matches('/') == server)
            .and_then(id_token_source)
    };
    let accounts: Vec<AccountStatus<'_>> = records
        .iter()
        .map(|r| AccountStatus {
            id_token_source: source_for(&r.server),
            server: &r.server,
            account: &r.account,
            store: store.kind(),
            grant: &r.grant,
            token_type: &r.token_type,
            access_token_present: r.access_token.is_some(),
            expires_at: r.expires_at,
            expires_in_seconds: r.expires_at.map(|at| seconds_left(at, now)),
            refresh_token_present: r.refresh_token.is_some(),
            refresh_token_expires_at: r.refresh_token_expires_at,
            refresh_token_rejected: r.refresh_token_rejected.as_deref(),
            scopes: &r.scopes,
            client_id_from: client_id_source(config, store.as_ref(), r),
        })
        .collect();
    if json {
        serde_json::to_writer_pretty(&mut output, &accounts)?;
        writeln!(output)?;
        return Ok(());
    }
    if accounts.is_empty() {
        writeln!(output, "no accounts ({} store)", store.kind())?;
    }
    // Before its first exchange a CI server has no account yet: say
    // where its id token would come from all the same.
    for provider in &providers {
        let server = provider.server.as_str().trim_end_matches('/');
        if records.iter().any(|r| r.server == server) {
            continue;
        }
        if let Some(source) = id_token_source(provider) {
            writeln!(
                output,
                "{server}  grant={}  no token yet  id token: {}",
                provider.policy.grant.name(),
                text::escape(&source)
            )?;
        }
    }
    for (account, record) in accounts.iter().zip(&records) {
        let who = if account.account.is_empty() {
            "(default)"
        } else {
            account.account
        };
        let id_token = account
            .id_token_source
            .as_deref()
            .map(|source| format!("  id token: {}", text::escape(source)))
            .unwrap_or_default();
        writeln!(
            output,
            "{}  {}  store={}  grant={}  {}  refresh token: {}  client id: {}{id_token}",
            account.server,
            who,
            account.store,
            account.grant,
            describe_expiry(record),
            describe_refresh_token(record),
            account
                .client_id_from
                .map_or("not configured", ClientIdSource::name),
        )?;
    }
    Ok(())
}

/// Where the client id for `record`'s server and account comes from, as
/// the configuration resolves it today; a client registered at an issuer
/// is looked up in the store, never at the server.
fn client_id_source(
    config: &GitConfig,
    store: &dyn TokenStore,
    record: &TokenRecord,
) -> Option<ClientIdSource> {
    let key = AccountKey {
        server: record.server.clone(),
        account: record.account.clone(),
    };
    let url = url::Url::parse(&key.login_url()).ok()?;
    let provider = Provider::resolve(config, &url).ok().flatten()?;
    let source = provider.client.client_id_source;
    if source == ClientIdSource::Unset
        && provider.endpoints.issuer.is_some()
        && register::load(&provider, store).ok().flatten().is_some()
    {
        return Some(ClientIdSource::Registered);
    }
    Some(source)
}

fn describe_refresh_token(record: &TokenRecord) -> String {
    if record.refresh_token.is_none() {
        return "no".to_owned();
    }
    if let Some(code) = &record.refresh_token_rejected {
        return format!("rejected ({}), run `keygate login`", text::escape(code));
    }
    match record.refresh_token_expires_at {
        None => "yes".to_owned(),
        Some(at) => {
            let left = seconds_left(at, unix_now());
            let date = session::utc_date(at);
            if left <= 0 {
                format!("expired {date}, run `keygate login`")
            } else {
                format!("yes, expires in {} ({date})", human(left))
            }
        }
    }
}

/// The access token's state in words; `keygate login` says it too.
pub(super) fn describe_expiry(record: &TokenRecord) -> String {
    if record.access_token.is_none() {
        return "access token dropped".to_owned();
    }
    match record.expires_at {
        None => "access token does not expire".to_owned(),
        Some(at) => {
            let left = seconds_left(at, unix_now());
            if left <= 0 {
                format!("access token expired {} ago", human(-left))
            } else {
                format!("access token expires in {}", human(left))
            }
        }
    }
}

/// Negative once past; a stored instant is not trusted to fit an i64.
fn seconds_left(at: u64, now: u64) -> i64 {
    let signed = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    signed(at).saturating_sub(signed(now))
}

fn human(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 3 * 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human(59), "59s");
        assert_eq!(human(119), "119s");
        assert_eq!(human(120), "2m");
        assert_eq!(human(7_199), "119m");
        assert_eq!(human(7_200), "2h0m");
        assert_eq!(human(3 * 86_400 + 3_600), "3d1h");
    }

    #[test]
    fn seconds_left_survive_instants_past_i64() {
        assert_eq!(seconds_left(100, 40), 60);
        assert_eq!(seconds_left(40, 100), -60);
        assert_eq!(seconds_left(u64::MAX, 0), i64::MAX);
        assert_eq!(seconds_left(0, u64::MAX), -i64::MAX);
    }
}
