//! One table for every redaction lexer: lines in, lines out (each row is a
//! run of consecutive lines through one [`PasswordRedactor`], which also
//! masks connection strings).

use super::*;

#[test]
fn redaction_table() {
    let rows: &[(&str, &[&str], &[&str])] = &[
        (
            "a logged statement",
            &["LOG:  statement: CREATE ROLE \"a\" WITH LOGIN PASSWORD 'md5abc'"],
            &["LOG:  statement: CREATE ROLE \"a\" WITH LOGIN PASSWORD '<redacted>'"],
        ),
        (
            "an escape string with quotes inside",
            &["ALTER ROLE x PASSWORD E'se\\'cr''et' VALID UNTIL 'infinity'"],
            &["ALTER ROLE x PASSWORD '<redacted>' VALID UNTIL 'infinity'"],
        ),
        (
            "the word without a literal",
            &["password authentication failed for user \"x\""],
            &["password authentication failed for user \"x\""],
        ),
        (
            "an unterminated literal at the end of the input",
            &["PASSWORD 'unterminated secret"],
            &["PASSWORD '<redacted>'"],
        ),
        ("nothing secret", &["no secrets here"], &["no secrets here"]),
        (
            "keyword and literal on different lines",
            &[
                "LOG:  statement: ALTER ROLE x PASSWORD",
                "\t'hunter2'",
                "next",
            ],
            &[
                "LOG:  statement: ALTER ROLE x PASSWORD",
                "\t'<redacted>'",
                "next",
            ],
        ),
        (
            "keyword, blank line, E literal",
            &["ALTER ROLE x WITH password   ", "", "  E'hun\\'ter2' LOGIN"],
            &["ALTER ROLE x WITH password   ", "", "  '<redacted>' LOGIN"],
        ),
        (
            "a literal over three lines",
            &[
                "CREATE ROLE y PASSWORD 'first",
                "middle",
                "last' LOGIN",
                "after 'x'",
            ],
            &[
                "CREATE ROLE y PASSWORD '<redacted>'",
                "<redacted>'",
                "<redacted>' LOGIN",
                "after 'x'",
            ],
        ),
        (
            "two passwords on one line",
            &["PASSWORD 'a' PASSWORD 'b'"],
            &["PASSWORD '<redacted>' PASSWORD '<redacted>'"],
        ),
        (
            "primary_conninfo in a parameter change",
            &[r#"LOG:  parameter "primary_conninfo" changed to "host=p password = s3cret user=x""#],
            &[r#"LOG:  parameter "primary_conninfo" changed to "host=p password = *** user=x""#],
        ),
        (
            "URL user info",
            &["postgresql://no_user:secret@ps:6400"],
            &["postgresql://no_user:***@ps:6400"],
        ),
        (
            "URL without a password",
            &["postgresql://no_user@ps:6400"],
            &["postgresql://no_user@ps:6400"],
        ),
        (
            "a list of URLs",
            &["postgresql://a:s1@h1:1,postgresql://b:s2@h2:2/db"],
            &["postgresql://a:***@h1:1,postgresql://b:***@h2:2/db"],
        ),
        (
            "a URL parameter",
            &["postgresql://u@h/db?password=secret&sslmode=disable"],
            &["postgresql://u@h/db?password=***&sslmode=disable"],
        ),
        (
            "a keyword/value connstring",
            &["host=h password=secret user=u"],
            &["host=h password=*** user=u"],
        ),
        (
            "a quoted keyword value",
            &["host=h PASSWORD='se cr\\'et' user=u"],
            &["host=h PASSWORD=*** user=u"],
        ),
        (
            "an empty value",
            &["host=h password="],
            &["host=h password=***"],
        ),
        (
            "an unterminated quoted value",
            &["host=h password='unterminated"],
            &["host=h password=***"],
        ),
    ];
    for (name, input, expected) in rows {
        let mut r = PasswordRedactor::default();
        let got: Vec<String> = input.iter().map(|l| r.line(l)).collect();
        assert_eq!(&got, expected, "{name}");
    }
    // The single-line form knows nothing of earlier lines.
    assert_eq!(redact_passwords("\t'hunter2'"), "\t'hunter2'");
    assert_eq!(
        mask_connstring("host=h password=secret"),
        "host=h password=***"
    );
    // For argv: passwords emptied, so libpq reads them from the password file.
    for (input, want) in [
        ("postgresql://u:s3cret@h:1/db", "postgresql://u:@h:1/db"),
        (
            "postgresql://u@h/db?password=s3cret&x=y",
            "postgresql://u@h/db?password=&x=y",
        ),
        (
            "host=h password='s 3\\'cret' user=u",
            "host=h password='' user=u",
        ),
        ("host=h password=s3cret", "host=h password=''"),
        ("host=h user=u", "host=h user=u"),
    ] {
        assert_eq!(blank_password(input), want, "{input}");
    }
}

#[test]
fn a_secret_prints_redacted() {
    let s = crate::secret::Secret::new("hunter2");
    assert_eq!(
        format!("{s} {s:?} {:?}", Some(&s)),
        "<redacted> <redacted> Some(<redacted>)"
    );
    assert_eq!(s.expose(), "hunter2");
    let parsed: crate::secret::Secret = serde_json::from_str("\"hunter2\"").unwrap();
    assert_eq!(parsed, s);
}
