//! Compression of an HTTP stream's body, frame by frame: [`negotiate`] picks the encoding a
//! request asks for, and a [`Codec`] compresses each frame as it goes out, flushed, so that a
//! paced chunk decodes on arrival exactly as it would uncompressed.
//!
//! One compressor serves a whole stream and keeps its context from frame to frame: a paced
//! event is mostly the event before it, which is where the ratio comes from. Its settings
//! (zlib level 1, a 512-byte window, memory level 2) keep what a held stream holds small:
//! the previous event is well inside the window (BENCHMARKS.md, "Compression").
//!
//! Streams are offered gzip only. br keeps no context between flushes at the qualities whose
//! memory a held stream can afford, and zstd's smallest compressor is three times gzip's;
//! every browser that offers them offers gzip at the same weight.

use bytes::{Bytes, BytesMut};
use chunkstream_zlib::{Deflate, Wrapper};
use poem::http::{HeaderMap, header};

use crate::streams::Encoding;

/// zlib's settings for a stream: level, window bits, memory level.
const GZIP: (u8, u8, u8) = (1, 9, 2);

/// How a stream's frames go out.
pub enum Codec {
    /// As they are.
    Identity,
    /// gzip, one compressor for the whole stream.
    Gzip(Deflate),
}

impl Codec {
    /// The codec for `encoding` (identity for any it does not make).
    pub fn new(encoding: Encoding) -> Self {
        match encoding {
            Encoding::Gzip => {
                let (level, window, memory) = GZIP;
                match Deflate::new(Wrapper::Gzip, level, window, memory) {
                    Ok(deflate) => Codec::Gzip(deflate),
                    // zlib could not allocate its state: the stream goes out uncompressed
                    // (the response's headers follow `Codec::encoding`).
                    Err(err) => {
                        tracing::warn!(%err, "cannot compress a stream");
                        Codec::Identity
                    }
                }
            }
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

    /// `frame` as it goes out: compressed and flushed, and, when it is the `last`, with the
    /// compressed stream's end. Empty only if nothing is to be sent.
    pub fn frame(&mut self, frame: BytesMut, last: bool) -> Bytes {
        let Codec::Gzip(deflate) = self else {
            return frame.freeze();
        };
        if frame.is_empty() && !last {
            return Bytes::new();
        }
        // Compressed, a frame is a fraction of its size: a paced event a few dozen bytes.
        let mut out = Vec::with_capacity(frame.len() / 4 + 64);
        deflate.flush(&frame, &mut out);
        if last {
            deflate.finish(&mut out);
        }
        Bytes::from(out)
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
        let mut codec = Codec::new(Encoding::Gzip);
        assert_eq!(codec.encoding(), Encoding::Gzip);
        let mut wire = Vec::new();
        let mut plain = Vec::new();
        for i in 0..100 {
            let event = format!("event: chunk\ndata: {{\"index\":{i}}}\nid: {i}\n\n");
            plain.extend_from_slice(event.as_bytes());
            wire.extend_from_slice(&codec.frame(BytesMut::from(event.as_bytes()), false));
            // What has arrived so far decodes to every event so far.
            assert_eq!(gunzip_prefix(&wire), plain, "event {i}");
        }
        wire.extend_from_slice(&codec.frame(BytesMut::new(), true));
        assert_eq!(gunzip_whole(&wire), plain);
        let mut identity = Codec::new(Encoding::Identity);
        assert_eq!(&identity.frame(BytesMut::from("abc"), true)[..], b"abc");
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

    /// A finished gzip stream's data, its trailer's length checked.
    fn gunzip_whole(wire: &[u8]) -> Vec<u8> {
        let body = gunzip_prefix(&wire[..wire.len() - 8]);
        let length = u32::from_le_bytes(wire[wire.len() - 4..].try_into().expect("4 bytes"));
        assert_eq!(length as usize, body.len(), "the trailer's length");
        body
    }
}
