//! The packager's clients file (`KEYGATE_CLIENTS_FILE`), read by
//! build.rs, which includes this file; the library compiles it only for
//! its tests. No dependencies: build.rs has none.

/// One `[keygate "URL"]` section.
pub struct Entry {
    pub url: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub line: usize,
}

/// The subset of git config syntax the file may use: comments, section
/// headers `[keygate "https://host"]`, and bare `clientId = value` and
/// `clientSecret = value` lines. Anything else is refused, so that a
/// packager never believes another key was baked in.
pub fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut entries: Vec<Entry> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let url = header
                .strip_suffix("\"]")
                .and_then(|h| h.trim_start().strip_prefix("keygate"))
                .and_then(|h| h.trim_start().strip_prefix('"'))
                .ok_or((
                    line,
                    "expected a section [keygate \"https://host\"]".to_owned(),
                ))?;
            let host = url.strip_prefix("https://").unwrap_or_default();
            if host.is_empty() || host.starts_with('/') || url.contains(['"', '\\', ' ', '\t']) {
                return Err((line, format!("{url:?} is not an https:// URL")));
            }
            if let Some(earlier) = entries.iter().find(|e| e.url == url) {
                return Err((
                    line,
                    format!("{url} was named already on line {}", earlier.line),
                ));
            }
            entries.push(Entry {
                url: url.to_owned(),
                client_id: None,
                client_secret: None,
                line,
            });
            continue;
        }
        let (key, value) = trimmed
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or((
                line,
                "expected clientId = VALUE or clientSecret = VALUE".to_owned(),
            ))?;
        if value.is_empty() || value.contains(['"', '\\', '#', ';', ' ', '\t']) {
            return Err((
                line,
                format!("the value of {key} must be written bare: no quotes, spaces, # or ;"),
            ));
        }
        let entry = entries
            .last_mut()
            .ok_or((line, format!("{key} before any [keygate \"URL\"] section")))?;
        let slot = match key.to_ascii_lowercase().as_str() {
            "clientid" => &mut entry.client_id,
            "clientsecret" => &mut entry.client_secret,
            _ => {
                return Err((
                    line,
                    format!("{key}: only clientId and clientSecret can be baked in"),
                ));
            }
        };
        if slot.is_some() {
            return Err((line, format!("{key} given twice for {}", entry.url)));
        }
        *slot = Some(value.to_owned());
    }
    if let Some(entry) = entries.iter().find(|e| e.client_id.is_none()) {
        return Err((entry.line, format!("{} has no clientId", entry.url)));
    }
    Ok(entries)
}
