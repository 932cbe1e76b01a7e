//! Which `section.<url>.*` settings apply to a URL, ranked the way git's
//! urlmatch ranks them (`git config --get-urlmatch`).

use std::collections::HashMap;

use url::Url;

use crate::gitconfig::{GitConfig, split_key};

/// URL-matched reading, the way `git config --get-urlmatch` works.
impl GitConfig {
    /// Every variable of `section` that applies to `url`, each taken from
    /// the most specific matching `section.<url>.variable`, as
    /// `git config --get-urlmatch section url` would list them.
    pub fn for_url(&self, section: &str, url: &Url) -> HashMap<String, String> {
        let mut best: HashMap<String, (Specificity, String)> = HashMap::new();
        for (key, value) in &self.entries {
            let Some((s, subsection, variable)) = split_key(key) else {
                continue;
            };
            if !s.eq_ignore_ascii_case(section) {
                continue;
            }
            let specificity = match subsection {
                None => Specificity::default(),
                Some(pattern) => match match_url(pattern, url) {
                    Some(specificity) => specificity,
                    None => continue,
                },
            };
            let variable = variable.to_ascii_lowercase();
            match best.get(&variable) {
                Some((current, _)) if *current > specificity => {}
                _ => {
                    best.insert(variable, (specificity, value.clone()));
                }
            }
        }
        best.into_iter().map(|(k, (_, v))| (k, v)).collect()
    }

    /// Whether any `keygate.<url>.*` section could apply to this origin.
    pub(super) fn has_section_for(&self, url: &Url) -> bool {
        self.entries.iter().any(|(key, _)| {
            split_key(key).is_some_and(|(s, sub, _)| {
                s.eq_ignore_ascii_case("keygate")
                    && sub.is_some_and(|pattern| match_url(pattern, url).is_some())
            })
        })
    }
}

/// Whether a config URL (`credential.<pattern>.*`) applies to `url`, as
/// git's urlmatch decides: `keygate doctor` lists the helpers git runs.
pub(crate) fn url_matches(pattern: &str, url: &Url) -> bool {
    match_url(pattern, url).is_some()
}

/// The subsection of the `section.<pattern>` whose keys win for `url` (the
/// most specific; the later one on a tie), for `keygate doctor` to name.
pub(crate) fn winning_subsection(config: &GitConfig, section: &str, url: &Url) -> Option<String> {
    let mut best: Option<(Specificity, &str)> = None;
    for (key, _) in &config.entries {
        let Some((s, Some(pattern), _)) = split_key(key) else {
            continue;
        };
        if !s.eq_ignore_ascii_case(section) {
            continue;
        }
        if let Some(specificity) = match_url(pattern, url)
            && best.is_none_or(|(current, _)| specificity >= current)
        {
            best = Some((specificity, pattern));
        }
    }
    best.map(|(_, pattern)| pattern.to_owned())
}

/// Ordered as git's urlmatch ranks candidates: host match, then path
/// length, then whether a user name matched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Specificity {
    host_exact: bool,
    host_len: usize,
    path_len: usize,
    user_matched: bool,
}

/// Matches a config URL (`https://*.example.com:8443/org`) against a
/// request URL: scheme and port must agree, host exactly or by `*` per
/// label, path as a prefix at a `/` boundary, user only if given.
pub(super) fn match_url(pattern: &str, url: &Url) -> Option<Specificity> {
    let pattern = Url::parse(pattern).ok()?;
    if pattern.scheme() != url.scheme() {
        return None;
    }
    if pattern.port_or_known_default() != url.port_or_known_default() {
        return None;
    }
    let user_matched = if pattern.username().is_empty() {
        false
    } else if pattern.username() == url.username() {
        true
    } else {
        return None;
    };
    let pattern_host = pattern.host_str()?;
    let host = url.host_str()?;
    let host_exact = pattern_host.eq_ignore_ascii_case(host);
    if !host_exact {
        let pattern_labels: Vec<&str> = pattern_host.split('.').collect();
        let labels: Vec<&str> = host.split('.').collect();
        if pattern_labels.len() != labels.len()
            || !pattern_labels
                .iter()
                .zip(&labels)
                .all(|(p, l)| *p == "*" || p.eq_ignore_ascii_case(l))
        {
            return None;
        }
    }
    let pattern_path = pattern.path().trim_end_matches('/');
    let path = url.path();
    let path_matches = pattern_path.is_empty()
        || path == pattern_path
        || path
            .strip_prefix(pattern_path)
            .is_some_and(|rest| rest.starts_with('/'));
    if !path_matches {
        return None;
    }
    Some(Specificity {
        host_exact,
        host_len: pattern_host.len(),
        path_len: pattern_path.len(),
        user_matched,
    })
}

/// The origin (`scheme://host[:port]`) of a URL, which accounts are kept under.
pub fn origin_of(url: &Url) -> Url {
    let mut origin = url.clone();
    origin.set_path("");
    origin.set_query(None);
    origin.set_fragment(None);
    // Cannot fail for http(s) URLs, the only ones resolved here.
    let _ = origin.set_username("");
    let _ = origin.set_password(None);
    origin
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{config, url};

    #[test]
    fn longer_path_wins_and_port_must_match() {
        let c = config(&[
            ("keygate.https://git.example.com/org.clientid", "org"),
            ("keygate.https://git.example.com.clientid", "host"),
            ("keygate.https://git.example.com:8443.clientid", "port"),
        ]);
        let get = |u: &str| c.for_url("keygate", &url(u)).remove("clientid");
        assert_eq!(
            get("https://git.example.com/org/repo.git").as_deref(),
            Some("org")
        );
        assert_eq!(
            get("https://git.example.com/other").as_deref(),
            Some("host")
        );
        assert_eq!(
            get("https://git.example.com:8443/org").as_deref(),
            Some("port")
        );
        assert_eq!(
            get("https://git.example.com/organisation").as_deref(),
            Some("host")
        );
        assert_eq!(get("http://git.example.com/org").as_deref(), None);
    }

    #[test]
    fn wildcard_host_and_user_match() {
        let c = config(&[
            ("keygate.https://*.example.com.clientid", "wild"),
            ("keygate.https://alice@git.example.com.clientid", "alice"),
        ]);
        let get = |u: &str| c.for_url("keygate", &url(u)).remove("clientid");
        assert_eq!(get("https://git.example.com/").as_deref(), Some("wild"));
        assert_eq!(
            get("https://alice@git.example.com/").as_deref(),
            Some("alice")
        );
        assert_eq!(get("https://a.b.example.com/").as_deref(), None);
    }

    #[test]
    fn later_entry_wins_on_equal_specificity() {
        let c = config(&[
            ("keygate.https://h.example.clientid", "first"),
            ("keygate.https://h.example.clientid", "second"),
        ]);
        let got = c
            .for_url("keygate", &url("https://h.example/"))
            .remove("clientid");
        assert_eq!(got.as_deref(), Some("second"));
    }
}
