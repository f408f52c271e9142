//! Streaming deflate for long-lived streams: C zlib, with the window and memory levels chosen
//! by the caller, every write flushed so that what was written decodes on arrival.
//!
//! [`Deflate`] compresses (gzip for HTTP's `Content-Encoding`, raw for the WebSocket's
//! permessage-deflate) and keeps its context from one flush to the next, which is where a
//! stream of small, similar writes gets its ratio. [`Inflate`] decompresses raw deflate with a
//! bound on what it produces.
//!
//! This crate is the only place chunkstream calls C. zlib's memory goes through Rust's
//! allocator (the process's jemalloc), so that it is counted and placed like every other
//! allocation.

use std::{
    alloc::{self, Layout},
    ffi::{c_int, c_void},
    fmt, mem, ptr,
};

use libz_sys as z;

/// What wraps the deflate data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapper {
    /// A gzip header and trailer (`Content-Encoding: gzip`).
    Gzip,
    /// None: raw deflate (RFC 7692's permessage-deflate).
    Raw,
}

impl Wrapper {
    /// zlib's `windowBits` argument for a window of `2^bits` bytes.
    fn window_bits(self, bits: u8) -> c_int {
        match self {
            Wrapper::Gzip => 16 + c_int::from(bits),
            Wrapper::Raw => -c_int::from(bits),
        }
    }
}

/// A zlib call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A setting out of zlib's range.
    Settings,
    /// zlib could not allocate its state.
    Memory,
    /// The compressed input is not valid deflate data.
    Corrupt,
    /// Inflating would produce more than the limit allows.
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Settings => "zlib settings out of range",
            Error::Memory => "zlib could not allocate its state",
            Error::Corrupt => "invalid deflate data",
            Error::TooLarge => "inflated data over the limit",
        })
    }
}

impl std::error::Error for Error {}

/// A compressor that keeps its context across writes.
pub struct Deflate {
    /// Boxed: zlib's state points back at its stream, which must therefore never move.
    stream: Box<z::z_stream>,
}

// SAFETY: the stream is owned and only used through `&mut self`; zlib keeps no
// thread-affine state.
unsafe impl Send for Deflate {}

impl Deflate {
    /// A compressor at `level` (1-9) with a window of `2^window_bits` bytes (9-15) and zlib's
    /// `mem_level` (1-9). Its state takes about `2^(window_bits+2) + 2^(mem_level+9)` bytes
    /// plus 6 KiB.
    pub fn new(wrapper: Wrapper, level: u8, window_bits: u8, mem_level: u8) -> Result<Self, Error> {
        if !(1..=9).contains(&level)
            || !(9..=15).contains(&window_bits)
            || !(1..=9).contains(&mem_level)
        {
            return Err(Error::Settings);
        }
        let stream = initialised(|stream| {
            // SAFETY: `stream` is a fresh, boxed z_stream whose allocators are ours; the
            // version and size are those of the zlib headers libz-sys was built against.
            unsafe {
                z::deflateInit2_(
                    stream,
                    c_int::from(level),
                    z::Z_DEFLATED,
                    wrapper.window_bits(window_bits),
                    c_int::from(mem_level),
                    z::Z_DEFAULT_STRATEGY,
                    z::zlibVersion(),
                    mem::size_of::<z::z_stream>() as c_int,
                )
            }
        })?;
        Ok(Self { stream })
    }

    /// Compresses `input` and flushes (a sync flush): everything written so far decodes from
    /// what has been appended to `out`.
    pub fn flush(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.run(input, out, z::Z_SYNC_FLUSH);
    }

    /// Ends the compressed stream (for gzip, its trailer); nothing may follow.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.run(&[], out, z::Z_FINISH);
    }

    /// Gives a fresh raw compressor the text that came before it (at most its window's
    /// worth, the last bytes), so that it can refer to it: with it, a stream whose
    /// compressor was let go goes on as if it never had been.
    pub fn set_dictionary(&mut self, text: &[u8]) -> Result<(), Error> {
        let length = u32::try_from(text.len()).map_err(|_| Error::Settings)?;
        // SAFETY: zlib reads `length` bytes of `text`, which outlives the call.
        let status = unsafe { z::deflateSetDictionary(&mut *self.stream, text.as_ptr(), length) };
        if status == z::Z_OK {
            Ok(())
        } else {
            Err(Error::Settings)
        }
    }

    /// Starts afresh, forgetting the context (with the same settings).
    pub fn reset(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2_.
        unsafe { z::deflateReset(&mut *self.stream) };
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>, flush: c_int) {
        let stream = &mut *self.stream;
        stream.next_in = input.as_ptr().cast_mut();
        stream.avail_in = u32::try_from(input.len()).expect("an input under 4 GiB");
        loop {
            // Compressed, a write is smaller than its input; a little room is enough and the
            // loop asks for more when it is not.
            out.reserve(input.len() / 4 + 64);
            let room = out.capacity() - out.len();
            // SAFETY: zlib writes at most `avail_out` bytes at `next_out`, inside `out`'s
            // spare capacity, and reads `avail_in` bytes of `input`, which outlives the call.
            let status = unsafe {
                stream.next_out = out.as_mut_ptr().add(out.len());
                stream.avail_out = room as u32;
                z::deflate(stream, flush)
            };
            let written = room - stream.avail_out as usize;
            // SAFETY: zlib initialised the `written` bytes after the old length.
            unsafe { out.set_len(out.len() + written) };
            // With a flush, zlib is done once it left room unused; Z_BUF_ERROR only says
            // that nothing was left to do.
            let done = status == z::Z_STREAM_END
                || (stream.avail_in == 0 && stream.avail_out != 0)
                || status == z::Z_BUF_ERROR;
            debug_assert!(
                matches!(status, z::Z_OK | z::Z_STREAM_END | z::Z_BUF_ERROR),
                "deflate: {status}"
            );
            if done {
                break;
            }
        }
        stream.next_in = ptr::null_mut();
        stream.next_out = ptr::null_mut();
        stream.avail_in = 0;
    }
}

impl Drop for Deflate {
    fn drop(&mut self) {
        // SAFETY: initialised by deflateInit2_, ended once.
        unsafe { z::deflateEnd(&mut *self.stream) };
    }
}

/// The CRC-32 of `bytes` following `crc` (0 to begin), as gzip's trailer holds it.
pub fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    bytes.chunks(u32::MAX as usize).fold(crc, |crc, part| {
        // SAFETY: zlib reads `part.len()` bytes of `part`.
        unsafe { z::crc32(crc.into(), part.as_ptr(), part.len() as u32) as u32 }
    })
}

/// A decompressor of raw deflate data, bounded.
pub struct Inflate {
    stream: Box<z::z_stream>,
}

// SAFETY: as for `Deflate`.
unsafe impl Send for Inflate {}

impl Inflate {
    /// A decompressor of raw deflate with windows up to `2^window_bits` bytes (9-15).
    pub fn raw(window_bits: u8) -> Result<Self, Error> {
        if !(9..=15).contains(&window_bits) {
            return Err(Error::Settings);
        }
        let stream = initialised(|stream| {
            // SAFETY: as in `Deflate::new`.
            unsafe {
                z::inflateInit2_(
                    stream,
                    Wrapper::Raw.window_bits(window_bits),
                    z::zlibVersion(),
                    mem::size_of::<z::z_stream>() as c_int,
                )
            }
        })?;
        Ok(Self { stream })
    }

    /// Decompresses `input`, appending to `out`, which may not grow past `limit` bytes.
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
        let stream = &mut *self.stream;
        stream.next_in = input.as_ptr().cast_mut();
        stream.avail_in = u32::try_from(input.len()).map_err(|_| Error::TooLarge)?;
        let result = loop {
            // One byte past the limit tells "over it" from "exactly at it".
            let room_to_limit = limit.saturating_add(1).saturating_sub(out.len());
            if room_to_limit == 0 {
                break Err(Error::TooLarge);
            }
            out.reserve((input.len() * 4 + 64).min(room_to_limit));
            let room = (out.capacity() - out.len()).min(room_to_limit);
            // SAFETY: as in `Deflate::run`.
            let status = unsafe {
                stream.next_out = out.as_mut_ptr().add(out.len());
                stream.avail_out = room as u32;
                z::inflate(stream, z::Z_SYNC_FLUSH)
            };
            let written = room - stream.avail_out as usize;
            // SAFETY: zlib initialised the `written` bytes after the old length.
            unsafe { out.set_len(out.len() + written) };
            match status {
                z::Z_OK | z::Z_BUF_ERROR if stream.avail_in == 0 && stream.avail_out != 0 => {
                    break Ok(());
                }
                z::Z_STREAM_END => break Ok(()),
                z::Z_OK | z::Z_BUF_ERROR => {}
                z::Z_MEM_ERROR => break Err(Error::Memory),
                _ => break Err(Error::Corrupt),
            }
        };
        stream.next_in = ptr::null_mut();
        stream.next_out = ptr::null_mut();
        stream.avail_in = 0;
        if out.len() > limit {
            return Err(Error::TooLarge);
        }
        result
    }
}

impl Drop for Inflate {
    fn drop(&mut self) {
        // SAFETY: initialised by inflateInit2_, ended once.
        unsafe { z::inflateEnd(&mut *self.stream) };
    }
}

/// A z_stream whose memory comes from Rust's allocator, initialised by `init` (zlib's
/// status back).
fn initialised(init: impl FnOnce(&mut z::z_stream) -> c_int) -> Result<Box<z::z_stream>, Error> {
    let mut stream = Box::new(z::z_stream {
        next_in: ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: ptr::null_mut(),
        state: ptr::null_mut(),
        zalloc,
        zfree,
        opaque: ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    });
    match init(&mut stream) {
        z::Z_OK => Ok(stream),
        z::Z_MEM_ERROR => Err(Error::Memory),
        _ => Err(Error::Settings),
    }
}

/// Bytes before each block zlib gets: they hold the block's size, for `zfree`.
const HEADER: usize = 16;

/// zlib's allocator: Rust's, with the size kept in front of the block.
unsafe extern "C" fn zalloc(_opaque: *mut c_void, items: z::uInt, size: z::uInt) -> *mut c_void {
    let Some(bytes) = (items as usize)
        .checked_mul(size as usize)
        .and_then(|n| n.checked_add(HEADER))
    else {
        return ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(bytes, HEADER) else {
        return ptr::null_mut();
    };
    // SAFETY: `layout` has a non-zero size; the header is aligned for a usize.
    unsafe {
        let block = alloc::alloc(layout);
        if block.is_null() {
            return ptr::null_mut();
        }
        block.cast::<usize>().write(bytes);
        block.add(HEADER).cast()
    }
}

/// Frees what [`zalloc`] gave.
unsafe extern "C" fn zfree(_opaque: *mut c_void, address: *mut c_void) {
    if address.is_null() {
        return;
    }
    // SAFETY: `address` came from `zalloc`, `HEADER` bytes into a block whose size is
    // written at its start, with the same alignment.
    unsafe {
        let block = address.cast::<u8>().sub(HEADER);
        let bytes = block.cast::<usize>().read();
        alloc::dealloc(block, Layout::from_size_align_unchecked(bytes, HEADER));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consecutive SSE events, as a paced stream sends them.
    fn event(i: u64) -> Vec<u8> {
        format!("event: chunk\ndata: {{\"index\":{i},\"text\":\"Data Chunk {i}\"}}\nid: {i}\n\n")
            .into_bytes()
    }

    #[test]
    fn each_flush_decodes_on_arrival_and_the_context_carries_over() {
        let mut deflate = Deflate::new(Wrapper::Raw, 1, 9, 2).expect("a compressor");
        let mut inflate = Inflate::raw(15).expect("a decompressor");
        let mut plain = Vec::new();
        let mut wire = 0;
        for i in 1000..3000 {
            let mut out = Vec::new();
            deflate.flush(&event(i), &mut out);
            wire += out.len();
            let before = plain.len();
            inflate
                .inflate(&out, &mut plain, usize::MAX)
                .expect("valid data");
            assert_eq!(plain[before..], event(i), "event {i} whole, on arrival");
        }
        let identity: usize = (1000..3000).map(|i| event(i).len()).sum();
        assert!(
            wire * 3 < identity,
            "context kept: {wire} bytes for {identity}"
        );
    }

    #[test]
    fn gzip_finishes_with_a_trailer_and_reset_forgets_the_context() {
        let mut deflate = Deflate::new(Wrapper::Gzip, 6, 15, 8).expect("a compressor");
        let mut out = Vec::new();
        deflate.flush(b"hello ", &mut out);
        deflate.flush(b"hello", &mut out);
        deflate.finish(&mut out);
        assert_eq!(&out[..2], [0x1f, 0x8b], "the gzip magic");
        // The trailer: CRC-32 and length of "hello hello".
        assert_eq!(&out[out.len() - 4..], 11u32.to_le_bytes());
        let mut raw = Deflate::new(Wrapper::Raw, 1, 9, 1).expect("a compressor");
        let (mut first, mut again) = (Vec::new(), Vec::new());
        raw.flush(&event(7), &mut first);
        raw.reset();
        raw.flush(&event(7), &mut again);
        assert_eq!(
            first, again,
            "after a reset the same input compresses the same"
        );
    }

    #[test]
    fn inflate_is_bounded_and_refuses_garbage() {
        let mut deflate = Deflate::new(Wrapper::Raw, 6, 15, 8).expect("a compressor");
        let mut bomb = Vec::new();
        deflate.flush(&vec![b'a'; 100_000], &mut bomb);
        let mut out = Vec::new();
        let inflated = Inflate::raw(15).expect("").inflate(&bomb, &mut out, 4096);
        assert_eq!(inflated, Err(Error::TooLarge));
        assert!(out.len() <= 4097, "{}", out.len());
        let mut out = Vec::new();
        let exact = Inflate::raw(15)
            .expect("")
            .inflate(&bomb, &mut out, 100_000);
        assert_eq!(
            (exact, out.len()),
            (Ok(()), 100_000),
            "exactly at the limit"
        );
        let garbage = Inflate::raw(15)
            .expect("")
            .inflate(&[0xff; 32], &mut Vec::new(), 4096);
        assert_eq!(garbage, Err(Error::Corrupt));
    }

    #[test]
    fn a_compressor_given_the_text_before_goes_on_where_another_stopped() {
        let mut inflate = Inflate::raw(15).expect("a decompressor");
        let mut plain = Vec::new();
        let mut first = Deflate::new(Wrapper::Raw, 1, 9, 2).expect("a compressor");
        let mut wire = Vec::new();
        first.flush(&event(1), &mut wire);
        inflate
            .inflate(&wire, &mut plain, usize::MAX)
            .expect("valid");
        // A new compressor, given the text so far, refers back into it...
        let mut second = Deflate::new(Wrapper::Raw, 1, 9, 2).expect("a compressor");
        second.set_dictionary(&event(1)).expect("a dictionary");
        let mut more = Vec::new();
        second.flush(&event(2), &mut more);
        // ...so its output is as small as the first compressor's would have been.
        let mut same = Vec::new();
        first.flush(&event(2), &mut same);
        assert_eq!(more.len(), same.len());
        inflate
            .inflate(&more, &mut plain, usize::MAX)
            .expect("valid");
        assert_eq!(plain, [event(1), event(2)].concat());
        assert_eq!(crc32(0, b"hello hello"), 0x12da640);
        assert_eq!(
            crc32(crc32(0, b"hello "), b"hello"),
            crc32(0, b"hello hello")
        );
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        assert_eq!(
            Deflate::new(Wrapper::Raw, 1, 8, 1).err(),
            Some(Error::Settings),
            "zlib cannot make a raw 256-byte window"
        );
        assert!(Deflate::new(Wrapper::Gzip, 0, 9, 1).is_err());
        assert!(Deflate::new(Wrapper::Gzip, 1, 9, 10).is_err());
        assert!(Inflate::raw(16).is_err());
    }
}
