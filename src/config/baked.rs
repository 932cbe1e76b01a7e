//! OAuth clients baked into this build by whoever packaged it (build.rs
//! writes them from `KEYGATE_CLIENTS_FILE`): the zero-configuration
//! start on the forges a packager registered apps with. Git config wins
//! over them; they are matched against a URL as `keygate.<url>` is.

use url::Url;

use super::matching::{Specificity, match_url};

/// One `[keygate "URL"]` section of the packager's file.
pub(super) struct Baked {
    pub url: &'static str,
    pub client_id: &'static str,
    /// The secret a forge wants even from a native app (GitHub's, for the
    /// code exchange; Bitbucket's consumers), public by the nature of an
    /// app shipped to everyone, and still kept out of logs and output.
    pub client_secret: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/baked_clients.rs"));

// build.rs's reader of the packager's file, here for its tests.
#[cfg(test)]
#[path = "baked_file.rs"]
mod file;

/// The baked client for `url`: the most specific entry that matches it,
/// the later on a tie, as git picks among `keygate.<url>` sections.
pub(super) fn for_url(url: &Url) -> Option<&'static Baked> {
    best_match(BAKED, url)
}

fn best_match<'a>(entries: &'a [Baked], url: &Url) -> Option<&'a Baked> {
    let mut best: Option<(Specificity, &Baked)> = None;
    for entry in entries {
        if let Some(specificity) = match_url(entry.url, url)
            && best.is_none_or(|(current, _)| specificity >= current)
        {
            best = Some((specificity, entry));
        }
    }
    best.map(|(_, entry)| entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRIES: &[Baked] = &[
        Baked {
            url: "https://github.com",
            client_id: "Ov23-baked",
            client_secret: Some("public-secret"),
        },
        Baked {
            url: "https://git.example.com:8443/team",
            client_id: "team-app",
            client_secret: None,
        },
        Baked {
            url: "https://git.example.com:8443",
            client_id: "host-app",
            client_secret: None,
        },
    ];

    fn id(url: &str) -> Option<&'static str> {
        best_match(ENTRIES, &Url::parse(url).unwrap()).map(|b| b.client_id)
    }

    #[test]
    fn a_baked_client_is_matched_as_git_matches_a_section() {
        assert_eq!(id("https://github.com/org/repo.git"), Some("Ov23-baked"));
        // The port counts, and so does the scheme.
        assert_eq!(id("https://github.com:8443/org/repo.git"), None);
        assert_eq!(id("http://github.com/org/repo.git"), None);
        // A longer path wins, whatever the order.
        assert_eq!(
            id("https://git.example.com:8443/team/x.git"),
            Some("team-app")
        );
        assert_eq!(
            id("https://git.example.com:8443/other/x.git"),
            Some("host-app")
        );
        assert_eq!(id("https://gitlab.com/x.git"), None);
    }

    #[test]
    fn the_packagers_file_is_git_config_with_client_keys_only() {
        let entries = file::parse(
            "# for the preset forges\n\
             [keygate \"https://github.com\"]\n\
             \tclientId = Ov23-baked\n\
             \tclientSecret = public-secret\n\
             \n\
             [keygate \"https://gitlab.com\"]\n\
             \tclientid = gl-app\n",
        )
        .unwrap();
        let got: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.url.as_str(),
                    e.client_id.as_deref(),
                    e.client_secret.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "https://github.com",
                    Some("Ov23-baked"),
                    Some("public-secret")
                ),
                ("https://gitlab.com", Some("gl-app"), None),
            ]
        );
        for (text, line, says) in [
            (
                "[keygate \"https://x\"]\n\tscopes = repo\n",
                2,
                "only clientId and clientSecret",
            ),
            (
                "[keygate \"http://x\"]\n\tclientId = a\n",
                1,
                "not an https:// URL",
            ),
            ("[credential \"https://x\"]\n", 1, "expected a section"),
            ("clientId = a\n", 1, "before any"),
            (
                "[keygate \"https://x\"]\n\tclientSecret = s\n",
                1,
                "has no clientId",
            ),
            (
                "[keygate \"https://x\"]\n\tclientId = \"a\"\n",
                2,
                "written bare",
            ),
            (
                "[keygate \"https://x\"]\n\tclientId = a\n\tclientId = b\n",
                3,
                "twice",
            ),
            (
                "[keygate \"https://x\"]\n\tclientId = a\n[keygate \"https://x\"]\n",
                3,
                "named already",
            ),
        ] {
            let (at, why) = file::parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} parsed"));
            assert_eq!(at, line, "{text:?}: {why}");
            assert!(why.contains(says), "{text:?}: {why}");
        }
    }
}
