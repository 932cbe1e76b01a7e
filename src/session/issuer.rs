//! Whose tokens a stored record holds: the issuer and client they were
//! issued by and to, judged against the configuration, so that tokens of
//! another server or client are never served or sent.

use crate::config::Provider;
use crate::store::{Issuer, TokenRecord};

/// Who issues `provider`'s tokens, to `client_id`: the configured client,
/// or the one registered at the issuer. From the configuration alone:
/// checking a cached token must not need the issuer's metadata or a
/// registered client. `None` for a provider that names no token endpoint
/// and no issuer, which never obtains tokens.
pub(super) fn issuer_of(provider: &Provider, client_id: &str) -> Option<Issuer> {
    let client_id = client_id.to_owned();
    match (&provider.endpoints.token_url, &provider.endpoints.issuer) {
        (Some(token_url), _) => Some(Issuer::Endpoint {
            token_url: token_url.to_string(),
            client_id,
        }),
        (None, Some(issuer)) => Some(Issuer::Discovered {
            issuer: issuer.clone(),
            client_id,
        }),
        (None, None) => None,
    }
}

/// Whether `record`'s tokens were issued where `provider` gets them; a
/// client registered at the issuer is compared once known ([`issued_to`]).
/// Records written before records named their issuer are accepted.
pub(super) fn issued_for(provider: &Provider, record: &TokenRecord) -> bool {
    record.issuer.as_ref().is_none_or(|recorded| {
        issuer_of(provider, &provider.client.client_id).is_some_and(|here| recorded.matches(&here))
    })
}

/// Whether `record`'s tokens went to the client `completed` (the provider
/// ready for the network) uses: the configuration cannot name a client
/// registered at the issuer, so [`issued_for`] lets any pass. A record
/// that names no client (written before they did, an empty id then meaning
/// a registered one) passed on its issuer alone, and its tokens go back to
/// that issuer, whose server binds them to their client.
pub(super) fn issued_to(record: &TokenRecord, completed: &Provider) -> bool {
    let recorded = record.issuer.as_ref().and_then(Issuer::client_id);
    let ours = recorded.is_none_or(|id| id == completed.client.client_id);
    if !ours {
        tracing::debug!(server = %record.server, "stored tokens were issued to another client; not presenting them");
    }
    ours
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::tests::provider;
    use crate::store;

    /// The regression of issue 19: a registered client's tokens were
    /// recorded as `{"token_url": ISSUER, "client_id": ""}`.
    #[test]
    fn a_registered_clients_id_is_recorded_with_its_issuer() {
        let registered = provider("keygate.https://g.example.issuer\nhttps://a.example\0");
        assert_eq!(
            issuer_of(&registered, "registered-1"),
            Some(Issuer::Discovered {
                issuer: "https://a.example".into(),
                client_id: "registered-1".into()
            })
        );
        let configured = provider(
            "keygate.https://g.example.tokenurl\nhttps://a.example/token\0\
             keygate.https://g.example.clientid\napp\0",
        );
        assert_eq!(
            issuer_of(&configured, &configured.client.client_id),
            Some(Issuer::Endpoint {
                token_url: "https://a.example/token".into(),
                client_id: "app".into()
            })
        );
    }

    #[test]
    fn records_of_every_form_are_checked_against_the_configuration() {
        let registered = provider("keygate.https://g.example.issuer\nhttps://a.example\0");
        let with = |issuer: Option<Issuer>| TokenRecord {
            issuer,
            ..store::test_record("https://g.example", "t")
        };
        let issued_to = |client: &str| {
            with(Some(Issuer::Discovered {
                issuer: "https://a.example".into(),
                client_id: client.into(),
            }))
        };
        assert!(issued_for(&registered, &with(None)));
        assert!(issued_for(&registered, &issued_to("registered-1")));
        let lost_client = with(Some(Issuer::Unlabelled {
            url: Some("https://a.example".into()),
            client_id: String::new(),
        }));
        assert!(issued_for(&registered, &lost_client));
        let elsewhere = with(Some(Issuer::Discovered {
            issuer: "https://b.example".into(),
            client_id: "registered-1".into(),
        }));
        assert!(!issued_for(&registered, &elsewhere));

        // A client configured for the issuer takes only its own tokens.
        let configured = provider(
            "keygate.https://g.example.issuer\nhttps://a.example\0\
             keygate.https://g.example.clientid\napp\0",
        );
        assert!(issued_for(&configured, &issued_to("app")));
        assert!(!issued_for(&configured, &issued_to("registered-1")));
        assert!(!issued_for(&configured, &lost_client));
    }
}
