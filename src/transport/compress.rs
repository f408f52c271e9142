//! Compression of an HTTP stream's body, frame by frame: [`negotiate`] picks the encoding a
//! request asks for, and a [`Codec`] compresses each frame as it goes out, flushed, so that a
//! paced chunk decodes on arrival exactly as it would uncompressed.
//!
//! One compressed stream serves a whole response and keeps its context from frame to frame:
//! a paced event is mostly the event before it, which is where the ratio comes from. zlib is
//! set small (level 1, a 512-byte window, memory level 2; BENCHMARKS.md, "Compression"), and
//! a stream that waits long between frames holds no compressor meanwhile: only the last 512
//! bytes of text, which the next frame's compressor is given to refer back into. The gzip framing (the
//! header, the CRC and the length at the end) is written here around raw deflate, so that
//! one deflate stream can be made by several compressors in turn.
//!
//! Streams are offered gzip only. br keeps no context between flushes at the qualities whose
//! memory a held stream can afford, and zstd's smallest compressor is three times gzip's;
//! every browser that offers them offers gzip at the same weight.

use std::io;

use bytes::{Bytes, BytesMut};
use chunkstream_zlib::{Deflate, Wrapper, crc32};
use poem::http::{HeaderMap, header};

use crate::streams::Encoding;

/// zlib's settings for a stream: level, window bits, memory level.
const GZIP: (u8, u8, u8) = (1, 9, 2);

/// The window: the text a compressor may refer back into.
const WINDOW: usize = 1 << GZIP.1;

/// A gzip header: deflate, no name, no time, from an unknown system (RFC 1952).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// How a stream's frames go out.
pub enum Codec {
    /// As they are.
    Identity,
    /// gzip, one deflate stream for the whole response.
    Gzip(Gzip),
}

/// A gzip stream, written frame by frame (see the module's text).
#[derive(Default)]
pub struct Gzip {
    /// The compressor, kept while frames follow one another flat out.
    deflate: Option<Deflate>,
    /// The last [`WINDOW`] bytes of text compressed.
    window: Vec<u8>,
    /// CRC-32 of the text so far.
    crc: u32,
    /// Length of the text so far, modulo 2^32.
    length: u32,
    started: bool,
}

/// What follows a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// The next frame, soon: the compressor is kept.
    Soon,
    /// The next frame, after a long wait: the compressor is let go meanwhile (making one
    /// again costs about a flush's work, which a stream this slow spends rarely).
    Later,
    /// Nothing: it was the last.
    End,
}

impl Codec {
    /// The codec for `encoding` (identity for any it does not make).
    pub fn new(encoding: Encoding) -> Self {
        match encoding {
            Encoding::Gzip => Codec::Gzip(Gzip::default()),
            _ => Codec::Identity,
        }
    }

    /// The encoding the frames go out in.
    pub fn encoding(&self) -> Encoding {
        match self {
            Codec::Identity => Encoding::Identity,
            Codec::Gzip(_) => Encoding::Gzip,
        }
    }

    /// `frame` as it goes out, followed by what `then` says: compressed and flushed, and at
    /// the `End` with the compressed stream's end. Empty only if nothing is to be sent.
    pub fn frame(&mut self, frame: BytesMut, then: Then) -> io::Result<Bytes> {
        match self {
            Codec::Identity => Ok(frame.freeze()),
            Codec::Gzip(gzip) => gzip.frame(&frame, then),
        }
    }
}

impl Gzip {
    fn frame(&mut self, text: &[u8], then: Then) -> io::Result<Bytes> {
        if text.is_empty() && then != Then::End {
            return Ok(Bytes::new());
        }
        let mut deflate = match self.deflate.take() {
            Some(deflate) => deflate,
            None => self.compressor().map_err(io::Error::other)?,
        };
        // Compressed, a frame is a fraction of its size: a paced event a few dozen bytes.
        let mut out = Vec::with_capacity(text.len() / 4 + 64);
        if !std::mem::replace(&mut self.started, true) {
            out.extend_from_slice(&GZIP_HEADER);
        }
        deflate.flush(text, &mut out);
        self.crc = crc32(self.crc, text);
        self.length = self.length.wrapping_add(text.len() as u32);
        self.remember(text);
        match then {
            Then::End => {
                deflate.finish(&mut out);
                out.extend_from_slice(&self.crc.to_le_bytes());
                out.extend_from_slice(&self.length.to_le_bytes());
            }
            Then::Soon => self.deflate = Some(deflate),
            // The window is all the next frame's compressor needs.
            Then::Later => {}
        }
        Ok(Bytes::from(out))
    }

    /// A compressor that goes on where the last one stopped.
    fn compressor(&self) -> Result<Deflate, chunkstream_zlib::Error> {
        let (level, window, memory) = GZIP;
        let mut deflate = Deflate::new(Wrapper::Raw, level, window, memory)?;
        if !self.window.is_empty() {
            deflate.set_dictionary(&self.window)?;
        }
        Ok(deflate)
    }

    /// Keeps the last [`WINDOW`] bytes of the text, `text` the newest.
    fn remember(&mut self, text: &[u8]) {
        if text.len() >= WINDOW {
            self.window.clear();
            self.window.extend_from_slice(&text[text.len() - WINDOW..]);
            return;
        }
        let keep = WINDOW - text.len();
        if self.window.len() > keep {
            self.window.drain(..self.window.len() - keep);
        }
        self.window.extend_from_slice(text);
    }
}

/// The encoding to send a stream in, from the request's `Accept-Encoding` (RFC 9110
/// §12.5.3): gzip when the client weighs it above zero and no less than identity; identity
/// otherwise, also when the client accepts neither (an answer it can read beats a 406).
pub fn negotiate(headers: &HeaderMap) -> Encoding {
    let mut gzip = None;
    let mut identity = None;
    let mut any = None;
    let items = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for item in items {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let Some(weight) = weight(parts) else {
            continue;
        };
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut identity
        } else if coding == "*" {
            &mut any
        } else {
            continue;
        };
        // A coding listed twice keeps its first weight.
        slot.get_or_insert(weight);
    }
    let gzip = gzip.or(any).unwrap_or(0);
    // Identity is acceptable unless excluded, by name or by `*;q=0` without its name.
    let identity = identity.or(any.filter(|&q| q == 0)).unwrap_or(1);
    if gzip > 0 && gzip >= identity {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// The weight of a list element, in thousandths, from its parameters: 1000 when it has no
/// `q`, `None` when its `q` is malformed (the element is then ignored).
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut weight = 1000;
    for param in params {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        weight = qvalue(value.trim())?;
    }
    Some(weight)
}

/// A `qvalue` (RFC 9110 §12.4.2: `0` or `1` with up to three decimals, at most 1) in
/// thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn negotiated(values: &[&str]) -> Encoding {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        negotiate(&headers)
    }

    #[test]
    fn gzip_when_asked_and_weighed_no_less_than_identity() {
        use Encoding::{Gzip, Identity};
        let cases = [
            (&[][..], Identity),
            (&[""][..], Identity),
            (&["gzip, deflate, br, zstd"][..], Gzip),
            (&["deflate, gzip, br, zstd"][..], Gzip),
            (&["br, zstd"][..], Identity),
            (&["GZIP"][..], Gzip),
            (&["x-gzip"][..], Gzip),
            (&["identity"][..], Identity),
            (&["*"][..], Gzip),
            (&["*;q=0"][..], Identity),
            (&["gzip;q=0"][..], Identity),
            (&["gzip; q=0"][..], Identity),
            (&["gzip;q=0.000"][..], Identity),
            (&["gzip;q=0.001"][..], Gzip),
            (&["gzip;q=0.5, identity;q=1"][..], Identity),
            (&["gzip;q=1, identity;q=0.5"][..], Gzip),
            (&["gzip;q=0.5, identity;q=0.5"][..], Gzip),
            (&["identity;q=0, gzip;q=0.2"][..], Gzip),
            (&["*;q=0, gzip"][..], Gzip),
            (&["gzip;q=0, *"][..], Identity),
            (&["br", "gzip"][..], Gzip),
            (&["gzip;q=0", "gzip"][..], Identity),
        ];
        for (values, expected) in cases {
            assert_eq!(negotiated(values), expected, "{values:?}");
        }
    }

    #[test]
    fn malformed_weights_are_ignored_with_their_element() {
        for value in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.0001",
            "gzip;q=",
            "gzip;q=abc",
            "gzip;q=.5",
            "gzip;q",
            "gzip;q=-0",
        ] {
            assert_eq!(negotiated(&[value]), Encoding::Identity, "{value}");
        }
        assert_eq!(negotiated(&["gzip;level=1"]), Encoding::Gzip);
        assert_eq!(negotiated(&["gzip;q=2, gzip;q=1"]), Encoding::Gzip);
    }

    #[test]
    fn each_frame_decodes_on_arrival_and_the_last_ends_the_gzip_stream() {
        let mut sizes = Vec::new();
        for then in [Then::Soon, Then::Later] {
            let mut codec = Codec::new(Encoding::Gzip);
            assert_eq!(codec.encoding(), Encoding::Gzip);
            let mut wire = Vec::new();
            let mut plain = Vec::new();
            for i in 0..100 {
                let event = format!("event: chunk\ndata: {{\"index\":{i}}}\nid: {i}\n\n");
                plain.extend_from_slice(event.as_bytes());
                let frame = codec.frame(BytesMut::from(event.as_bytes()), then).unwrap();
                wire.extend_from_slice(&frame);
                // What has arrived so far decodes to every event so far.
                assert_eq!(gunzip_prefix(&wire), plain, "{then:?}, event {i}");
            }
            let ended = wire.len();
            wire.extend_from_slice(&codec.frame(BytesMut::new(), Then::End).unwrap());
            assert_eq!(gunzip_whole(&wire), plain, "{then:?}");
            assert!(
                ended < plain.len() / 2,
                "{then:?}: {ended} bytes for {}",
                plain.len()
            );
            sizes.push(ended);
        }
        // A paced stream's compressor, let go between frames, loses none of the context.
        assert!(
            sizes[1] * 100 <= sizes[0] * 105,
            "flowing and paced: {sizes:?}"
        );
        let mut identity = Codec::new(Encoding::Identity);
        assert_eq!(
            &identity.frame(BytesMut::from("abc"), Then::End).unwrap()[..],
            b"abc"
        );
    }

    #[test]
    fn the_window_keeps_the_last_bytes_of_the_text() {
        let mut gzip = Gzip::default();
        let text: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        for piece in text.chunks(37) {
            gzip.remember(piece);
        }
        assert_eq!(gzip.window, text[text.len() - WINDOW..]);
        gzip.remember(&text);
        assert_eq!(gzip.window, text[text.len() - WINDOW..]);
    }

    /// What a gzip decoder makes of an unfinished stream so far.
    fn gunzip_prefix(wire: &[u8]) -> Vec<u8> {
        // The gzip header is 10 bytes; what follows is raw deflate, flushed.
        let mut out = Vec::new();
        chunkstream_zlib::Inflate::raw(15)
            .expect("an inflater")
            .inflate(&wire[10..], &mut out, usize::MAX)
            .expect("valid so far");
        out
    }

    /// A finished gzip stream's data, its trailer's CRC and length checked.
    fn gunzip_whole(wire: &[u8]) -> Vec<u8> {
        let body = gunzip_prefix(&wire[..wire.len() - 8]);
        let crc = u32::from_le_bytes(wire[wire.len() - 8..][..4].try_into().expect("4 bytes"));
        let length = u32::from_le_bytes(wire[wire.len() - 4..].try_into().expect("4 bytes"));
        assert_eq!(crc, crc32(0, &body), "the trailer's CRC");
        assert_eq!(length as usize, body.len(), "the trailer's length");
        body
    }
}
