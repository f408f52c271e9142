//! An SSE client that parses as the WHATWG spec says (`EventSource`'s algorithm): lines
//! end in CRLF, LF or CR; `data` lines accumulate; `id` persists across events; an event
//! is dispatched on a blank line; comments are ignored (here: recorded, to test keep-alive).
//!
//! [`Parser::lenient`] parses as two common clients stray from the spec (httpx-sse, and
//! @microsoft/fetch-event-source, which many LLM front ends use): every blank line
//! dispatches a `message`, even for a block without data, and the id to resume from is
//! taken when its line is read, not when its event is dispatched.

use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `event:`, or `message` when absent.
    pub event: String,
    /// The `data:` lines joined with LF.
    pub data: String,
    /// The last event ID in force when the event was dispatched.
    pub last_event_id: String,
    /// When it was dispatched, since the connection was opened.
    pub at: Duration,
}

/// What the parser saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A dispatched event.
    Event(Event),
    /// A comment line (`: …`), and when it arrived.
    Comment(String, Duration),
    /// A `retry:` field with a valid value.
    Retry(u64),
}

/// The incremental parser.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
    data: String,
    event: String,
    /// The id of the last `id:` line read.
    id_buffer: String,
    /// The id a reconnecting client sends back.
    last_event_id: String,
    /// True after a CR, so that a following LF is not a second line end.
    after_cr: bool,
    /// Parse as httpx-sse and fetch-event-source do (see the module).
    lenient: bool,
}

impl Parser {
    /// A parser with the two clients' deviations from the spec.
    pub fn lenient() -> Self {
        Self {
            lenient: true,
            ..Self::default()
        }
    }

    /// The id a client would send as `Last-Event-ID` if the connection were cut now.
    pub fn resume_id(&self) -> &str {
        &self.last_event_id
    }

    /// Feeds bytes; returns what became complete.
    pub fn feed(&mut self, bytes: &[u8], at: Duration) -> Vec<Item> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = String::from_utf8(std::mem::take(&mut self.buf))
                        .expect("event streams are UTF-8");
                    self.line(&line, at, &mut out);
                }
                _ => self.buf.push(b),
            }
        }
        out
    }

    fn line(&mut self, line: &str, at: Duration, out: &mut Vec<Item>) {
        if line.is_empty() {
            self.last_event_id = self.id_buffer.clone();
            if !self.data.is_empty() || self.lenient {
                self.data.pop(); // the trailing LF
                out.push(Item::Event(Event {
                    event: if self.event.is_empty() {
                        "message".into()
                    } else {
                        self.event.clone()
                    },
                    data: std::mem::take(&mut self.data),
                    last_event_id: self.last_event_id.clone(),
                    at,
                }));
            }
            self.data.clear();
            self.event.clear();
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Item::Comment(comment.trim_start().to_owned(), at));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.id_buffer = value.to_owned();
                if self.lenient {
                    self.last_event_id = value.to_owned();
                }
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                out.push(Item::Retry(value.parse().expect("digits")));
            }
            _ => {}
        }
    }
}

/// Reads an event stream with `parser` until it ends or `stop` says so; returns everything
/// seen.
pub async fn read_until<S, B, E>(
    mut parser: Parser,
    body: S,
    opened: Instant,
    mut stop: impl FnMut(&[Item]) -> bool,
) -> Vec<Item>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut body = std::pin::pin!(body);
    while let Some(bytes) = body.next().await {
        let bytes = bytes.expect("body bytes");
        items.extend(parser.feed(bytes.as_ref(), opened.elapsed()));
        if stop(&items) {
            break;
        }
    }
    items
}

/// The events among `items`.
pub fn events(items: &[Item]) -> Vec<&Event> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// The `chunk` events' indexes, checking each event's data against its id.
pub fn chunk_indexes(items: &[Item]) -> Vec<u64> {
    events(items)
        .into_iter()
        .filter(|e| e.event == "chunk")
        .map(|e| {
            let json: serde_json::Value = serde_json::from_str(&e.data).expect("chunk JSON");
            let index = json["index"].as_u64().expect("index");
            assert_eq!(json["text"], format!("Data Chunk {index}"));
            assert_eq!(e.last_event_id, index.to_string(), "id is the index");
            index
        })
        .collect()
}

#[test]
fn parser_follows_the_spec() {
    let mut p = Parser::default();
    let at = Duration::ZERO;
    let items = p.feed(
        b"retry: 500\r\n\r\n: hi\rid: 7\nevent: chunk\ndata: a\ndata:b\n\ndata: c\r\n\r\n",
        at,
    );
    let ev = |event: &str, data: &str, id: &str| {
        Item::Event(Event {
            event: event.into(),
            data: data.into(),
            last_event_id: id.into(),
            at,
        })
    };
    assert_eq!(
        items,
        vec![
            Item::Retry(500),
            Item::Comment("hi".into(), at),
            ev("chunk", "a\nb", "7"),
            ev("message", "c", "7"),
        ]
    );
    // Split anywhere, even between CR and LF, the result is the same.
    let mut p = Parser::default();
    let mut items = p.feed(b"id: 1\r", at);
    items.extend(p.feed(b"\ndata: x\r", at));
    items.extend(p.feed(b"\n\r\n", at));
    assert_eq!(items, vec![ev("message", "x", "1")]);
}

#[test]
fn the_lenient_parser_strays_as_those_clients_do() {
    let at = Duration::ZERO;
    let bytes = b"retry: 500\n\n: keep-alive\n\nid: 4\ndata: x\n";
    let mut strict = Parser::default();
    let mut lenient = Parser::lenient();
    let strict_items = strict.feed(bytes, at);
    let lenient_items = lenient.feed(bytes, at);
    // A block without data: nothing for the spec, an empty message for those clients.
    assert_eq!(events(&strict_items).len(), 0);
    assert_eq!(events(&lenient_items).len(), 2);
    assert!(events(&lenient_items).iter().all(|e| e.data.is_empty()));
    // Cut before the event's blank line: the spec resumes from the id before it.
    assert_eq!(strict.resume_id(), "");
    assert_eq!(lenient.resume_id(), "4");
}
