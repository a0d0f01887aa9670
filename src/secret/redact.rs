//! The redaction lexers: text we did not write ourselves (postgres' log
//! lines, connection strings from a spec) is scrubbed of passwords before it
//! reaches our log or an error message.

/// What a redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// Where the `PASSWORD` lexer stands at the end of a line: statements
/// postgres logs may span lines, with the keyword on one and its literal on
/// the next, or a literal running over several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PasswordState {
    /// Outside any password.
    #[default]
    Normal,
    /// After a `PASSWORD` keyword, before its literal.
    AfterKeyword,
    /// Inside a password literal.
    InLiteral,
}

/// Redacts password literals line by line, carrying its [`PasswordState`]
/// from one line to the next.
#[derive(Debug, Default)]
pub struct PasswordRedactor {
    state: PasswordState,
}

impl PasswordRedactor {
    /// `line` with every password literal (and connection-string password)
    /// replaced; remembers an unfinished one for the next line.
    pub fn line(&mut self, line: &str) -> String {
        let (out, state) = redact_from(line, self.state);
        self.state = state;
        mask_connstring(&out)
    }

    /// Forgets an unfinished statement (after a line whose end was not seen).
    pub fn reset(&mut self) {
        self.state = PasswordState::Normal;
    }
}

/// Replaces the literal after every `PASSWORD` keyword with `'<redacted>'`, so
/// a statement postgres logs (e.g. with `log_statement`) never shows a
/// password, whatever its quoting. One line, on its own.
#[cfg(test)]
pub fn redact_passwords(line: &str) -> String {
    redact_from(line, PasswordState::Normal).0
}

/// The lexer: `line` redacted, starting in `state`, and the state at its end.
fn redact_from(line: &str, mut state: PasswordState) -> (String, PasswordState) {
    let lower = line.to_ascii_lowercase();
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    loop {
        match state {
            PasswordState::InLiteral => {
                let (end, closed) = literal_end(bytes, i);
                out.push_str(REDACTED);
                out.push('\'');
                i = end;
                if !closed {
                    return (out, PasswordState::InLiteral);
                }
                state = PasswordState::Normal;
            }
            PasswordState::AfterKeyword => {
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                out.push_str(&line[i..j]);
                if j == bytes.len() {
                    return (out, PasswordState::AfterKeyword);
                }
                // Optional E prefix of an escape string.
                let k = if matches!(bytes[j], b'E' | b'e') {
                    j + 1
                } else {
                    j
                };
                if bytes.get(k) == Some(&b'\'') {
                    out.push('\'');
                    i = k + 1;
                    state = PasswordState::InLiteral;
                } else {
                    i = j;
                    state = PasswordState::Normal;
                }
            }
            PasswordState::Normal => match lower[i..].find("password") {
                Some(found) => {
                    let kw_end = i + found + "password".len();
                    out.push_str(&line[i..kw_end]);
                    i = kw_end;
                    state = PasswordState::AfterKeyword;
                }
                None => {
                    out.push_str(&line[i..]);
                    return (out, PasswordState::Normal);
                }
            },
        }
    }
}

/// Inside a literal from `start`: the index just past its closing quote and
/// true, or the end of the line and false. `''` and `\'` do not close it.
fn literal_end(bytes: &[u8], start: usize) -> (usize, bool) {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return (i + 1, true),
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

/// A connection string fit for the log: the password (in a URL's user
/// info, a `password=` keyword or URL parameter) is replaced by `***`.
pub fn mask_connstring(connstring: &str) -> String {
    replace_passwords(connstring, "***", "***")
}

/// `connstring` with every password emptied (`user:@host`, `password=''`,
/// `?password=`), for a client tool's argv: libpq then takes the password
/// from the password file (`PGPASSFILE`).
pub fn blank_password(connstring: &str) -> String {
    let keyword = if connstring.contains("://") { "" } else { "''" };
    replace_passwords(connstring, "", keyword)
}

/// The lexer behind [`mask_connstring`] and [`blank_password`]: a URL's
/// user-info password becomes `in_url`, a `password=` value `value`.
fn replace_passwords(connstring: &str, in_url: &str, value: &str) -> String {
    // URL user info: scheme://user:password@host, for each URL of a list.
    let mut masked = String::with_capacity(connstring.len());
    let mut rest = connstring;
    while let Some(i) = rest.find("://") {
        masked.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest.find(['/', '?', ',', ' ']).unwrap_or(rest.len());
        let authority = &rest[..end];
        match authority
            .rfind('@')
            .and_then(|at| Some((at, authority[..at].find(':')?)))
        {
            Some((at, colon)) => {
                masked.push_str(&authority[..=colon]);
                masked.push_str(in_url);
                masked.push_str(&authority[at..]);
            }
            None => masked.push_str(authority),
        }
        rest = &rest[end..];
    }
    masked.push_str(rest);

    // password=... as a keyword (possibly quoted) or a URL parameter.
    let mut s = masked;
    let mut search = 0;
    // ASCII lowercasing keeps byte offsets.
    while let Some(i) = s[search..].to_ascii_lowercase().find("password") {
        // `password=x`, or `password = x` as libpq also accepts.
        let bytes = s.as_bytes();
        let skip_spaces = |mut k: usize| {
            while bytes.get(k).is_some_and(|b| *b == b' ' || *b == b'\t') {
                k += 1;
            }
            k
        };
        let after_keyword = search + i + "password".len();
        let eq = skip_spaces(after_keyword);
        if bytes.get(eq) != Some(&b'=') {
            search = after_keyword;
            continue;
        }
        let value_start = skip_spaces(eq + 1);
        let rest = &s.as_bytes()[value_start..];
        let len = if rest.first() == Some(&b'\'') {
            // Up to the closing quote; a backslash escapes the next byte.
            let mut j = 1;
            loop {
                match rest.get(j) {
                    None => break rest.len(),
                    Some(b'\\') => j += 2,
                    Some(b'\'') => break j + 1,
                    Some(_) => j += 1,
                }
            }
            .min(rest.len())
        } else {
            rest.iter()
                .position(|b| matches!(b, b' ' | b'&' | b'\t' | b'\n' | b','))
                .unwrap_or(rest.len())
        };
        s.replace_range(value_start..value_start + len, value);
        search = value_start + value.len();
    }
    s
}

#[cfg(test)]
mod tests;
