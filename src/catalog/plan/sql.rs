//! SQL text built only from fixed keywords, escaped names and literals.

use super::REDACTED;
use postgres_protocol::escape::{escape_identifier, escape_literal};

/// SQL text under construction, with its redacted twin.
pub(super) struct Sql {
    pub(super) text: String,
    pub(super) redacted: String,
    pub(super) secret: bool,
}

impl Sql {
    pub(super) fn new(keywords: &'static str) -> Self {
        Self {
            text: keywords.to_string(),
            redacted: keywords.to_string(),
            secret: false,
        }
    }

    /// Fixed SQL text.
    pub(super) fn kw(mut self, keywords: &'static str) -> Self {
        self.push(keywords);
        self
    }

    /// An identifier, quoted.
    pub(super) fn ident(mut self, name: &str) -> Self {
        self.push(&escape_identifier(name));
        self
    }

    /// SQL produced by [`crate::options`] or from integers: already safe.
    pub(super) fn safe(mut self, rendered: &str) -> Self {
        self.push(rendered);
        self
    }

    /// A string literal, escaped.
    pub(super) fn lit(mut self, value: &str) -> Self {
        self.push(&escape_literal(value));
        self
    }

    /// A secret string literal: written escaped, shown as `<redacted>`.
    pub(super) fn secret(mut self, value: &str) -> Self {
        self.text.push_str(&escape_literal(value));
        self.redacted.push_str(REDACTED);
        self.secret = true;
        self
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.redacted.push_str(s);
    }
}
