//! Chunk encoding: a chunk's bytes (its text, its index, its JSON) written straight into an
//! outgoing buffer, for every transport.
//!
//! A chunk is only its index (see [`crate::generator`]); its bytes are made here, once, as
//! the transport writes them. [`ChunkWriter`] is fast for a run of consecutive chunks, the
//! common case: it counts the digits up instead of formatting each index anew
//! (BENCHMARKS.md, "What each change bought").

use bytes::{BufMut, BytesMut};

use crate::generator::Chunk;

/// The text every chunk starts with; the index follows it.
const TEXT_PREFIX: &[u8] = b"Data Chunk ";
/// The longest text: the prefix and the 20 digits of `u64::MAX`.
const TEXT_MAX: usize = TEXT_PREFIX.len() + 20;

/// Writes chunks' bytes (text, JSON, index) straight into an output buffer, fast for a run.
///
/// A transport keeps one per stream. It holds the text of the last chunk it wrote; when the
/// next chunk is the one after it, the digits are counted up in place (`…41` → `…42`,
/// `99` → `100`) instead of formatted anew, so a run of chunks costs a few instructions
/// each. Any other index is formatted with `itoa`. Nothing is allocated.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    /// `Data Chunk {index}` of `index`, in the first `len` bytes.
    text: [u8; TEXT_MAX],
    len: usize,
    /// The index whose text `text` holds, once one was written.
    index: Option<u64>,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        let mut text = [b'0'; TEXT_MAX];
        text[..TEXT_PREFIX.len()].copy_from_slice(TEXT_PREFIX);
        Self {
            text,
            len: TEXT_PREFIX.len() + 1,
            index: None,
        }
    }
}

/// Appends the first `len` bytes of `bytes`: all of them copied, then the rest cut off again
/// (`truncate` only lowers the length). A copy of a fixed size compiles to a few moves, where
/// a copy of a slice's length is a call to `memmove` (BENCHMARKS.md, "What each change
/// bought").
fn put_first<const N: usize>(bytes: &[u8; N], len: usize, out: &mut BytesMut) {
    out.extend_from_slice(bytes);
    out.truncate(out.len() - (N - len));
}

impl ChunkWriter {
    /// Appends the chunk's text, `Data Chunk {index}`.
    pub fn text(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.load(chunk.index);
        put_first(&self.text, self.len, out);
    }

    /// Appends the chunk's index in decimal.
    pub fn index(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.load(chunk.index);
        put_first(self.digits(), self.len - TEXT_PREFIX.len(), out);
    }

    /// Appends the chunk's JSON, `{"index":…,"text":"Data Chunk …"}`.
    ///
    /// The text holds only ASCII letters, digits and spaces, so nothing needs escaping.
    pub fn json(&mut self, chunk: Chunk, out: &mut BytesMut) {
        self.load(chunk.index);
        out.put_slice(b"{\"index\":");
        put_first(self.digits(), self.len - TEXT_PREFIX.len(), out);
        out.put_slice(b",\"text\":\"");
        put_first(&self.text, self.len, out);
        out.put_slice(b"\"}");
    }

    /// The room for the loaded index's digits (its first digits; what follows is stale).
    fn digits(&self) -> &[u8; 20] {
        self.text
            .last_chunk()
            .expect("the text ends in room for 20 digits")
    }

    /// Makes `text` hold the text of `index`.
    fn load(&mut self, index: u64) {
        match self.index {
            Some(last) if last == index => return,
            Some(last) if last.checked_add(1) == Some(index) => self.count_up(),
            _ => {
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(index).as_bytes();
                self.text[TEXT_PREFIX.len()..][..digits.len()].copy_from_slice(digits);
                self.len = TEXT_PREFIX.len() + digits.len();
            }
        }
        self.index = Some(index);
    }

    /// Adds one to the decimal digits in `text`. (Only called below `u64::MAX`, whose 20
    /// digits are the most `text` has room for.)
    fn count_up(&mut self) {
        let digits = &mut self.text[TEXT_PREFIX.len()..self.len];
        for digit in digits.iter_mut().rev() {
            if *digit < b'9' {
                *digit += 1;
                return;
            }
            *digit = b'0';
        }
        // They were all nines: 99 + 1 = 100.
        digits[0] = b'1';
        self.text[self.len] = b'0';
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::MAX_COUNT;

    #[test]
    fn chunk_encodings_match_the_contract() {
        let mut writer = ChunkWriter::default();
        let mut out = BytesMut::new();
        writer.text(Chunk { index: 42 }, &mut out);
        assert_eq!(&out[..], b"Data Chunk 42");
        out.clear();
        writer.json(Chunk { index: u64::MAX }, &mut out);
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            json,
            serde_json::json!({"index": u64::MAX, "text": format!("Data Chunk {}", u64::MAX)})
        );
    }

    #[test]
    fn the_writer_counts_up_across_every_carry_and_formats_any_jump() {
        // Runs across 9 → 10, 99 → 100, …, the largest count, and u64::MAX; then jumps back,
        // repeats and resumes, as a resumed stream or a second stream would.
        let mut indexes: Vec<u64> = (0..=10_001).collect();
        indexes.extend(MAX_COUNT - 10..=MAX_COUNT + 10);
        indexes.extend(u64::MAX - 12..=u64::MAX);
        indexes.extend([5, 5, 3, 999, 1000, 7, 0, 9_999_999_999, 10_000_000_000, 1]);
        let mut writer = ChunkWriter::default();
        for index in indexes {
            let chunk = Chunk { index };
            let mut text = BytesMut::new();
            writer.text(chunk, &mut text);
            assert_eq!(&text[..], chunk.to_string().as_bytes(), "text of {index}");
            let mut digits = BytesMut::new();
            writer.index(chunk, &mut digits);
            assert_eq!(&digits[..], index.to_string().as_bytes(), "index {index}");
            let mut json = BytesMut::new();
            writer.json(chunk, &mut json);
            let expected = format!(r#"{{"index":{index},"text":"Data Chunk {index}"}}"#);
            assert_eq!(&json[..], expected.as_bytes(), "JSON of {index}");
        }
    }
}
