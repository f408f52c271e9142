//! The negotiation of permessage-deflate (RFC 7692 §5, §7.1): which of a client's
//! `Sec-WebSocket-Extensions` offers this server accepts, and its answer in the `101`.
//!
//! The offers are read in the client's order and the first one this server can honour is
//! accepted; one it cannot is declined and the next one tried. With none acceptable, the
//! WebSocket is served uncompressed: an offer never fails a handshake. Every answer asks the
//! client to compress each message alone (`client_no_context_takeover`, which §7.1.1.2 lets a
//! server add), so that nothing of a client's messages is kept between them.

use std::fmt;

/// The extension's name.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The window this server compresses with, `2^9` bytes: zlib's smallest for raw deflate, and
/// enough for a stream of short, similar messages (BENCHMARKS.md, "Compression"). A
/// compressor may always use a smaller window than the client's decoder allows (§7.1.2.1).
pub const SERVER_WINDOW_BITS: u8 = 9;

/// An accepted offer: what it binds the server to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Agreed {
    /// The client asked the server to compress each message alone (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client limited the server's window, which the answer must confirm (§7.1.2.1).
    pub server_max_window_bits: bool,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` value of the `101`. It never limits the client's window
    /// (it may not unless asked, §7.1.2.2, and has no need to: see `inflate.rs`).
    pub fn answer(&self) -> String {
        let mut answer = String::from(PERMESSAGE_DEFLATE);
        if self.server_no_context_takeover {
            answer.push_str("; server_no_context_takeover");
        }
        answer.push_str("; client_no_context_takeover");
        if self.server_max_window_bits {
            answer.push_str(&format!("; server_max_window_bits={SERVER_WINDOW_BITS}"));
        }
        answer
    }
}

/// Why an offer is declined, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Declined {
    /// A parameter RFC 7692 does not define for an offer.
    Unknown(String),
    /// A parameter given twice.
    Repeated(String),
    /// A parameter's value is not what RFC 7692 allows (or one without a value has one).
    Invalid(String),
    /// `server_max_window_bits=8`: zlib cannot make raw deflate with a 256-byte window.
    Window8,
}

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Declined::Unknown(param) => write!(f, "unknown parameter `{param}`"),
            Declined::Repeated(param) => write!(f, "parameter `{param}` repeated"),
            Declined::Invalid(param) => write!(f, "invalid parameter `{param}`"),
            Declined::Window8 => f.write_str("a 256-byte window (zlib's smallest is 512)"),
        }
    }
}

/// The first permessage-deflate offer among `values` (every `Sec-WebSocket-Extensions` value,
/// in order) that this server accepts; `None`: serve the WebSocket uncompressed.
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Agreed> {
    for value in values {
        for offer in split_unquoted(value, ',') {
            let mut parts = split_unquoted(offer, ';');
            let name = parts.next().unwrap_or_default().trim();
            // Other extensions (`x-webkit-deflate-frame`, …) are not answered at all.
            if !name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
                continue;
            }
            match accept(parts) {
                Ok(agreed) => return Some(agreed),
                Err(declined) => {
                    tracing::debug!(offer = offer.trim(), %declined, "permessage-deflate declined");
                }
            }
        }
    }
    None
}

/// One offer's parameters, accepted or declined (RFC 7692 §7, before §7.1).
fn accept<'a>(params: impl Iterator<Item = &'a str>) -> Result<Agreed, Declined> {
    let mut agreed = Agreed::default();
    let mut seen = Vec::new();
    for param in params {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return Err(Declined::Repeated(name));
        }
        let invalid = || Declined::Invalid(param.to_owned());
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
            // The answer asks for it whether offered or not.
            ("client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(value)) => match window_bits(value) {
                Some(8) => return Err(Declined::Window8),
                // Any other limit is at least the window this server compresses with.
                Some(_) => agreed.server_max_window_bits = true,
                None => return Err(invalid()),
            },
            // Without a value: the client could limit its window if asked. It is not asked.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(value)) => {
                window_bits(value).ok_or_else(invalid)?;
            }
            (
                "server_no_context_takeover"
                | "client_no_context_takeover"
                | "server_max_window_bits",
                _,
            ) => return Err(invalid()),
            _ => return Err(Declined::Unknown(name)),
        }
        seen.push(name);
    }
    Ok(agreed)
}

/// A window size: `8` to `15` in decimal without a leading zero (§7.1.2.1), also as a quoted
/// string, which must read the same once unquoted (§7.1).
fn window_bits(value: &str) -> Option<u8> {
    let unquoted;
    let value = match value.strip_prefix('"') {
        Some(quoted) => {
            unquoted = unquote(quoted)?;
            unquoted.as_str()
        }
        None => value,
    };
    match value.as_bytes() {
        [digit @ b'8'..=b'9'] => Some(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Some(10 + digit - b'0'),
        _ => None,
    }
}

/// The text of a quoted string after its opening quote: up to the closing quote, which must
/// end it, with each `\` escape replaced by the character it escapes.
fn unquote(quoted: &str) -> Option<String> {
    let mut text = String::new();
    let mut chars = quoted.chars();
    loop {
        match chars.next()? {
            '"' => return chars.next().is_none().then_some(text),
            '\\' => text.push(chars.next()?),
            c => text.push(c),
        }
    }
}

/// Splits a header value at each `separator` outside a quoted string (RFC 9110 §5.6.4).
fn split_unquoted(value: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (at, c) in text.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                c if c == separator && !quoted => {
                    rest = Some(&text[at + c.len_utf8()..]);
                    return Some(&text[..at]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What this server answers to a header made of `values`.
    fn answer(values: &[&str]) -> Option<String> {
        negotiate(values.iter().copied()).map(|agreed| agreed.answer())
    }

    const PLAIN: &str = "permessage-deflate; client_no_context_takeover";

    #[test]
    fn browsers_and_libraries_get_compression_with_client_no_context_takeover() {
        let cases = [
            ("Chromium", "permessage-deflate; client_max_window_bits"),
            ("Firefox", "permessage-deflate"),
            (
                "python websockets",
                "permessage-deflate; client_max_window_bits",
            ),
            (
                "a client that compresses each message alone already",
                "permessage-deflate; client_no_context_takeover",
            ),
            ("any case", "PerMessage-Deflate; Client_Max_Window_Bits"),
            (
                "spaces around",
                "  permessage-deflate ;client_max_window_bits  ",
            ),
            (
                "a client window",
                "permessage-deflate; client_max_window_bits=10",
            ),
            (
                "a quoted client window",
                r#"permessage-deflate; client_max_window_bits="10""#,
            ),
            (
                "an escape in quotes",
                r#"permessage-deflate; client_max_window_bits="1\0""#,
            ),
        ];
        for (case, offer) in cases {
            assert_eq!(answer(&[offer]).as_deref(), Some(PLAIN), "{case}");
        }
    }

    #[test]
    fn server_parameters_are_honoured_and_confirmed() {
        let cases = [
            (
                "permessage-deflate; server_no_context_takeover",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            ),
            (
                "permessage-deflate; server_max_window_bits=15",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
            ),
            (
                "permessage-deflate; server_max_window_bits=9",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
            ),
            (
                r#"permessage-deflate; server_max_window_bits="12"; server_no_context_takeover; client_max_window_bits=15"#,
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9",
            ),
        ];
        for (offer, expected) in cases {
            assert_eq!(answer(&[offer]).as_deref(), Some(expected), "{offer}");
        }
    }

    #[test]
    fn an_offer_that_cannot_be_honoured_is_declined_and_nothing_answered() {
        let cases = [
            (
                "256-byte window",
                "permessage-deflate; server_max_window_bits=8",
            ),
            ("window 7", "permessage-deflate; client_max_window_bits=7"),
            ("window 16", "permessage-deflate; server_max_window_bits=16"),
            (
                "leading zero",
                "permessage-deflate; server_max_window_bits=09",
            ),
            (
                "not a number",
                "permessage-deflate; client_max_window_bits=large",
            ),
            ("empty value", "permessage-deflate; client_max_window_bits="),
            (
                "server window without a value",
                "permessage-deflate; server_max_window_bits",
            ),
            (
                "unclosed quote",
                r#"permessage-deflate; client_max_window_bits="10"#,
            ),
            (
                "text after the quote",
                r#"permessage-deflate; client_max_window_bits="10"x"#,
            ),
            (
                "a value for a flag",
                "permessage-deflate; server_no_context_takeover=1",
            ),
            (
                "a value for a flag",
                "permessage-deflate; client_no_context_takeover=true",
            ),
            ("unknown parameter", "permessage-deflate; foo"),
            (
                "unknown parameter with a value",
                "permessage-deflate; foo=1",
            ),
            (
                "repeated parameter",
                "permessage-deflate; client_max_window_bits; client_max_window_bits",
            ),
            (
                "repeated in another case",
                "permessage-deflate; server_no_context_takeover; SERVER_NO_CONTEXT_TAKEOVER",
            ),
            ("another extension only", "x-webkit-deflate-frame"),
            ("a longer name", "permessage-deflate-2"),
            ("nothing", ""),
            ("commas only", " , ,"),
        ];
        for (case, offer) in cases {
            assert_eq!(answer(&[offer]), None, "{case}: {offer}");
        }
        assert_eq!(answer(&[]), None, "no header");
    }

    #[test]
    fn the_first_acceptable_offer_wins_in_the_clients_order() {
        let cases: [(&str, &[&str], &str); 5] = [
            (
                "a declined offer, then a plain one",
                &["permessage-deflate; server_max_window_bits=8, permessage-deflate"],
                PLAIN,
            ),
            (
                "another extension first",
                &["x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover"],
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            ),
            (
                "two header lines",
                &[
                    "permessage-deflate; foo",
                    "permessage-deflate; server_max_window_bits=10",
                ],
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
            ),
            (
                "the first of two acceptable offers",
                &["permessage-deflate, permessage-deflate; server_no_context_takeover"],
                PLAIN,
            ),
            (
                "a comma inside a quoted value",
                &[
                    r#"foo; a="x, permessage-deflate; server_no_context_takeover", permessage-deflate"#,
                ],
                PLAIN,
            ),
        ];
        for (case, values, expected) in cases {
            assert_eq!(answer(values).as_deref(), Some(expected), "{case}");
        }
    }

    #[test]
    fn window_values_follow_the_rfc_grammar() {
        for (value, bits) in [("8", 8), ("9", 9), ("10", 10), ("15", 15), (r#""11""#, 11)] {
            assert_eq!(window_bits(value), Some(bits), "{value}");
        }
        for value in [
            "7", "16", "08", "010", "1", "", "+9", "9 ", r#""9"#, r#""""#,
        ] {
            assert_eq!(window_bits(value), None, "{value}");
        }
    }
}
