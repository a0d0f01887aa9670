//! Setting keys in one section of an ini file (pgbouncer's) while keeping
//! everything else as it was: comments, blank lines, the order of keys and
//! sections, and the spelling of lines not changed. A key already there is
//! changed where it stands (its first occurrence; later duplicates, which
//! would win in pgbouncer, are removed); a new key goes after the section's
//! last key. The reference's ini library drops every comment and moves each
//! key it sets to the end.

use anyhow::{bail, Result};

/// `text` with `settings` set in `[section]` (made at the end if missing).
pub fn set(text: &str, section: &str, settings: &[(String, String)]) -> Result<String> {
    for (key, value) in settings {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '*')
        {
            bail!("{key:?} is not an ini key");
        }
        if value.chars().any(|c| c.is_control()) {
            bail!("the value of {key} holds a control character (a newline?)");
        }
    }
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header = |l: &str| {
        let t = l.trim();
        (t.starts_with('[') && t.ends_with(']')).then(|| t[1..t.len() - 1].trim().to_string())
    };
    let start = lines
        .iter()
        .position(|l| header(l).is_some_and(|h| h.eq_ignore_ascii_case(section)));
    let start = match start {
        Some(i) => i,
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[{section}]"));
            lines.len() - 1
        }
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| header(l).is_some())
        .map_or(lines.len(), |i| start + 1 + i);
    let key_of = |l: &str| -> Option<String> {
        let t = l.trim_start();
        if t.starts_with(';') || t.starts_with('#') {
            return None;
        }
        let (k, _) = t.split_once('=')?;
        Some(k.trim().to_ascii_lowercase())
    };
    let mut body: Vec<String> = lines[start + 1..end].to_vec();
    for (key, value) in settings {
        let wanted = key.to_ascii_lowercase();
        let line = format!("{key} = {value}");
        let mut found = false;
        body.retain_mut(|l| {
            if key_of(l).as_deref() != Some(wanted.as_str()) {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            *l = line.clone();
            true
        });
        if !found {
            let after = body
                .iter()
                .rposition(|l| key_of(l).is_some())
                .map_or(0, |i| i + 1);
            body.insert(after, line);
        }
    }
    let mut out: Vec<String> = lines[..=start].to_vec();
    out.extend(body);
    out.extend(lines[end..].iter().cloned());
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// The value of `key` in `[section]`, as written (quotes kept).
pub fn get(text: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            inside = t[1..t.len() - 1].trim().eq_ignore_ascii_case(section);
            continue;
        }
        if !inside || t.starts_with(';') || t.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = t.split_once('=') {
            if k.trim().eq_ignore_ascii_case(key) {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
