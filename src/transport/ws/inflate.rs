//! [`Inflating`]: the client's compressed messages (RFC 7692 §7.2.2) inflated on their way to
//! tungstenite, which knows no extension and refuses RSV1 itself.
//!
//! The connection's bytes pass through this reader, which follows the client's frames. The
//! frames of a compressed message are taken whole (each at most [`MAX_INCOMING`] bytes),
//! unmasked, inflated and handed on as the frames tungstenite would have read had the client
//! not compressed: RSV1 clear, masked with a zero key. Every other frame passes untouched,
//! so tungstenite judges it as ever: RSV1 on a control or continuation frame, or on any
//! frame when nothing was negotiated, is its 1002; text that is not UTF-8 once inflated, its
//! 1007. What only this reader can see ends the stream with an [`io::Error`] carrying a
//! [`Refused`]: a message that inflates past [`MAX_INCOMING`] bytes (1009), or data that
//! does not inflate (1002).
//!
//! The server asks every client to compress each message alone (`client_no_context_takeover`),
//! so an inflater lives only while a compressed message is read, and between messages this
//! reader holds no buffer.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BufMut, BytesMut};
use chunkstream_zlib::{self as zlib, Inflate};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::socket::MAX_INCOMING;

/// The inflater's window, `2^12` bytes. A message shares nothing with the ones before it and
/// may not inflate past [`MAX_INCOMING`] bytes, so no valid back-reference reaches farther
/// than that, whatever window the client compressed with; a larger window would only cost
/// memory.
const WINDOW_BITS: u8 = MAX_INCOMING.trailing_zeros() as u8;
const _: () = assert!(MAX_INCOMING == 1 << WINDOW_BITS && WINDOW_BITS >= 9 && WINDOW_BITS <= 15);

/// What §7.2.2 appends to a message's data before inflating it: the end of a sync flush.
const FLUSH_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The opcodes this reader tells apart (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;

/// A compressed message this reader refused: the stream ends with the close code it calls
/// for (see [`Ending::of`](super::Ending::of)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A compressed frame, or a message once inflated, over [`MAX_INCOMING`] bytes: 1009.
    #[error("a compressed frame or an inflated message over the size limit")]
    TooLarge,
    /// Compressed data that does not inflate: 1002.
    #[error("compressed data that does not inflate")]
    Corrupt,
}

impl Refused {
    /// The refusal `err` carries, if it is one.
    pub fn of(err: &io::Error) -> Option<Self> {
        err.get_ref()?.downcast_ref().copied()
    }
}

impl From<Refused> for io::Error {
    fn from(refused: Refused) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, refused)
    }
}

/// A connection whose compressed client messages are inflated as tungstenite reads them.
/// Writes pass straight through: the server's compressed messages leave as tungstenite
/// frames with RSV1 set (see `deflate.rs`).
pub struct Inflating<S> {
    io: S,
    /// Whether frames are followed: not when nothing was negotiated, nor once a message was
    /// refused (tungstenite has stopped reading; what follows is only drained).
    follow: bool,
    /// Where the next byte of input falls.
    at: At,
    /// The message that a frame without FIN left open.
    open: Option<Open>,
    /// Read, but not yet handed on: a frame head cut by a read, or a compressed frame not yet
    /// whole.
    input: BytesMut,
    /// Ready for tungstenite.
    output: BytesMut,
    /// The error to report once `output` has been read: a refused message.
    refused: Option<io::Error>,
}

/// Where a byte of input falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a frame.
    Head,
    /// In the payload of a frame that passes untouched, with this many bytes of it to go.
    Passing(u64),
}

/// A message open across frames.
enum Open {
    /// Not compressed: its frames pass untouched.
    Plain,
    /// Compressed: its inflater, and how many bytes it has made so far.
    Compressed(Inflate, usize),
}

/// A client frame's head (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    fin: bool,
    /// RSV1, the bit that marks a compressed message.
    rsv1: bool,
    /// RSV2 or RSV3, which no extension here defines.
    rsv23: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// The payload's length.
    len: u64,
    /// The head's own length.
    size: usize,
}

impl Head {
    /// The head at the start of `bytes`, or `None` if it is not all there yet.
    fn parse(bytes: &[u8]) -> Option<Self> {
        let [first, second, rest @ ..] = bytes else {
            return None;
        };
        let masked = second & 0x80 != 0;
        let (len, rest) = match second & 0x7f {
            126 => {
                let (len, rest) = rest.split_first_chunk::<2>()?;
                (u64::from(u16::from_be_bytes(*len)), rest)
            }
            127 => {
                let (len, rest) = rest.split_first_chunk::<8>()?;
                (u64::from_be_bytes(*len), rest)
            }
            len => (u64::from(len), rest),
        };
        let mask = if masked {
            Some(*rest.split_first_chunk::<4>()?.0)
        } else {
            None
        };
        let size = bytes.len() - rest.len() + if masked { 4 } else { 0 };
        Some(Self {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            rsv23: first & 0x30 != 0,
            opcode: first & 0x0f,
            mask,
            len,
            size,
        })
    }
}

impl<S> Inflating<S> {
    /// `io`, whose compressed client messages are inflated if permessage-deflate was agreed
    /// (`deflate`); otherwise every byte passes untouched.
    pub fn new(io: S, deflate: bool) -> Self {
        Self {
            io,
            follow: deflate,
            at: At::Head,
            open: None,
            input: BytesMut::new(),
            output: BytesMut::new(),
            refused: None,
        }
    }

    /// Whether the frame `head` starts is part of a compressed message that is this reader's
    /// to inflate. Anything else is tungstenite's to judge, a misused RSV1 included.
    fn is_compressed(&self, head: &Head) -> bool {
        let well_formed = head.mask.is_some() && !head.rsv23;
        match head.opcode {
            TEXT | BINARY => well_formed && head.rsv1 && self.open.is_none(),
            CONTINUATION => {
                well_formed && !head.rsv1 && matches!(self.open, Some(Open::Compressed(..)))
            }
            _ => false,
        }
    }

    /// Moves what can be judged of `input` to `output`: frames that pass as they are, and
    /// compressed frames once whole, inflated. Stops at a refusal.
    fn judge(&mut self) -> io::Result<()> {
        loop {
            match self.at {
                At::Passing(rest) => {
                    if self.input.is_empty() {
                        return Ok(());
                    }
                    let n = rest.min(self.input.len() as u64);
                    self.pass(n as usize);
                    self.at = match rest - n {
                        0 => At::Head,
                        rest => At::Passing(rest),
                    };
                }
                At::Head => {
                    let Some(head) = Head::parse(&self.input) else {
                        return Ok(());
                    };
                    if self.is_compressed(&head) {
                        if !self.inflate_frame(&head)? {
                            return Ok(());
                        }
                    } else {
                        self.follow_plain(&head);
                        self.pass(head.size);
                        self.at = At::Passing(head.len);
                    }
                }
            }
        }
    }

    /// Keeps track of the open message past a frame that passes untouched.
    fn follow_plain(&mut self, head: &Head) {
        match head.opcode {
            TEXT | BINARY => self.open = (!head.fin).then_some(Open::Plain),
            CONTINUATION if head.fin => self.open = None,
            _ => {}
        }
    }

    /// Hands on the next `n` bytes of input as they are.
    fn pass(&mut self, n: usize) {
        let bytes = self.input.split_to(n);
        self.output.extend_from_slice(&bytes);
    }

    /// Inflates the compressed frame `head` starts, once it is whole in `input` (returns
    /// whether it was), and hands on the plain frame it makes.
    fn inflate_frame(&mut self, head: &Head) -> io::Result<bool> {
        let len = usize::try_from(head.len)
            .ok()
            .filter(|&len| len <= MAX_INCOMING)
            .ok_or(Refused::TooLarge)?;
        if self.input.len() < head.size + len {
            self.input.reserve(head.size + len - self.input.len());
            return Ok(false);
        }
        let mut payload = self.input.split_to(head.size + len).split_off(head.size);
        let mask = head.mask.expect("a compressed frame is masked");
        for (byte, key) in payload.iter_mut().zip(mask.iter().cycle()) {
            *byte ^= key;
        }
        let (mut inflater, made) = match self.open.take() {
            Some(Open::Compressed(inflater, made)) => (inflater, made),
            _ => (Inflate::raw(WINDOW_BITS).map_err(inflate_error)?, 0),
        };
        let limit = MAX_INCOMING - made;
        let mut data = Vec::new();
        inflater
            .inflate(&payload, &mut data, limit)
            .map_err(inflate_error)?;
        if head.fin {
            inflater
                .inflate(&FLUSH_TAIL, &mut data, limit)
                .map_err(inflate_error)?;
        } else {
            self.open = Some(Open::Compressed(inflater, made + data.len()));
        }
        // The frame as an uncompressed client would have sent it: RSV1 clear, and masked,
        // as tungstenite requires of a client, with a key that leaves the payload as it is.
        self.output.put_u8((u8::from(head.fin) << 7) | head.opcode);
        match data.len() {
            len @ 0..=125 => self.output.put_u8(0x80 | len as u8),
            len => {
                self.output.put_u8(0x80 | 126);
                self.output
                    .put_u16(u16::try_from(len).expect("at most MAX_INCOMING"));
            }
        }
        self.output.put_slice(&[0; 4]);
        self.output.put_slice(&data);
        Ok(true)
    }
}

/// What zlib's failure to inflate a client's message means for the stream.
fn inflate_error(err: zlib::Error) -> io::Error {
    match err {
        zlib::Error::TooLarge => Refused::TooLarge.into(),
        zlib::Error::Corrupt => Refused::Corrupt.into(),
        // No fault of the client's (the settings are fixed): the connection just ends.
        zlib::Error::Settings | zlib::Error::Memory => {
            io::Error::new(io::ErrorKind::OutOfMemory, err)
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inflating<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                if this.output.is_empty() {
                    // Between messages, no buffer is held.
                    this.output = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            if let Some(err) = this.refused.take() {
                return Poll::Ready(Err(err));
            }
            if !this.follow || buf.remaining() == 0 {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            // Read into the caller's buffer, then take the bytes back to judge them.
            let start = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            let read = &buf.filled()[start..];
            if read.is_empty() {
                // The end of input. A frame it cut short is not whole, for tungstenite either:
                // the peer left without a closing handshake.
                this.input = BytesMut::new();
                return Poll::Ready(Ok(()));
            }
            this.input.extend_from_slice(read);
            buf.set_filled(start);
            if let Err(err) = this.judge() {
                // tungstenite stops reading at the error: what follows is only drained.
                this.follow = false;
                this.input = BytesMut::new();
                this.refused = Some(err);
            }
            if this.input.is_empty() {
                this.input = BytesMut::new();
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inflating<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
