//! Makes grpc-go's `scheme://host:port` authorities acceptable to the h2 crate.
//!
//! The grpc-go inside Debian's etcdctl 3.4 dials its per-endpoint clients
//! (`endpoint status`, `endpoint hashkv`, `defrag`, `snapshot save`, ...) with a
//! `passthrough:///http://host:port` target and sends `http://host:port` as the
//! HTTP/2 `:authority`. etcd's Go server never looks at it; the h2 crate rejects
//! it as a malformed authority and resets the stream (PROTOCOL_ERROR), so those
//! commands failed against us whenever the endpoints carried a scheme.
//!
//! [`AuthorityFix`] sits between the TCP stream and hyper and rewrites, in the
//! client's HEADERS frames, an `:authority` literal `scheme://rest` into
//! `______@rest` of the same length: a userinfo prefix the URI parser accepts
//! and nobody reads.
//!
//! Invariants:
//! - The decoded length of every header stays the same, so the HPACK dynamic
//!   tables of both ends keep equal sizes and evict the same entries; later
//!   requests that name the entry by index get the rewritten value.
//! - Only whole HEADERS frames with END_HEADERS are inspected. Anything the
//!   scanner does not fully understand (CONTINUATION frames, Huffman codes
//!   outside printable ASCII, a rewrite that would outgrow the frame limit)
//!   passes unchanged, and so does every byte of a connection that does not open
//!   with the HTTP/2 preface (the HTTP/1.1 gateway).
//! - Payloads of other frames go straight to the reader; they are never held
//!   back waiting for more input.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What every HTTP/2 connection starts with.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
const FRAME_HEADER_LEN: usize = 9;
/// Frame type of HEADERS.
const FRAME_HEADERS: u8 = 0x1;
/// HEADERS flags.
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Largest frame payload the server accepts (HTTP/2's default, which hyper keeps).
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// Bytes asked of the socket per read while frames are being examined.
const READ_CHUNK: usize = 16 * 1024;
/// HPACK static-table index of `:authority`.
const AUTHORITY_INDEX: u64 = 1;
/// Longest code of the HPACK Huffman code.
const MAX_HUFFMAN_CODE_BITS: u32 = 30;

/// HPACK's Huffman code (RFC 7541, Appendix B) for the bytes 0x20..=0x7e, as
/// `(bit length, code)`. Authorities are printable ASCII; a string using any
/// other symbol is left alone.
#[rustfmt::skip]
const PRINTABLE_CODES: [(u32, u32); 95] = [
    (6, 0b10100), (10, 0b1111111000), (10, 0b1111111001), (12, 0b111111111010),
    (13, 0b1111111111001), (6, 0b10101), (8, 0b11111000), (11, 0b11111111010), (10, 0b1111111010),
    (10, 0b1111111011), (8, 0b11111001), (11, 0b11111111011), (8, 0b11111010), (6, 0b10110),
    (6, 0b10111), (6, 0b11000), (5, 0b0), (5, 0b1), (5, 0b10), (6, 0b11001), (6, 0b11010),
    (6, 0b11011), (6, 0b11100), (6, 0b11101), (6, 0b11110), (6, 0b11111), (7, 0b1011100),
    (8, 0b11111011), (15, 0b111111111111100), (6, 0b100000), (12, 0b111111111011),
    (10, 0b1111111100), (13, 0b1111111111010), (6, 0b100001), (7, 0b1011101), (7, 0b1011110),
    (7, 0b1011111), (7, 0b1100000), (7, 0b1100001), (7, 0b1100010), (7, 0b1100011), (7, 0b1100100),
    (7, 0b1100101), (7, 0b1100110), (7, 0b1100111), (7, 0b1101000), (7, 0b1101001), (7, 0b1101010),
    (7, 0b1101011), (7, 0b1101100), (7, 0b1101101), (7, 0b1101110), (7, 0b1101111), (7, 0b1110000),
    (7, 0b1110001), (7, 0b1110010), (8, 0b11111100), (7, 0b1110011), (8, 0b11111101),
    (13, 0b1111111111011), (19, 0b1111111111111110000), (13, 0b1111111111100),
    (14, 0b11111111111100), (6, 0b100010), (15, 0b111111111111101), (5, 0b11), (6, 0b100011),
    (5, 0b100), (6, 0b100100), (5, 0b101), (6, 0b100101), (6, 0b100110), (6, 0b100111), (5, 0b110),
    (7, 0b1110100), (7, 0b1110101), (6, 0b101000), (6, 0b101001), (6, 0b101010), (5, 0b111),
    (6, 0b101011), (7, 0b1110110), (6, 0b101100), (5, 0b1000), (5, 0b1001), (6, 0b101101),
    (7, 0b1110111), (7, 0b1111000), (7, 0b1111001), (7, 0b1111010), (7, 0b1111011),
    (15, 0b111111111111110), (11, 0b11111111100), (14, 0b11111111111101), (13, 0b1111111111101),
];

/// Where the reader is in the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Still checking the first bytes against the HTTP/2 preface.
    Preface,
    /// Inside HTTP/2 framing.
    Frames,
    /// Not HTTP/2 (or gave up): bytes pass untouched.
    Passthrough,
}

/// A client stream whose HEADERS frames get grpc-go's scheme-carrying
/// authorities rewritten (see the module docs). Writes pass straight through.
pub struct AuthorityFix<T> {
    /// The socket.
    inner: T,
    /// Where the reader is in the connection.
    mode: Mode,
    /// Bytes read from `inner` and not examined yet.
    pending: Vec<u8>,
    /// Where reads from `inner` land before they join `pending`; allocated
    /// once, so a read does not zero a fresh buffer.
    scratch: Box<[u8]>,
    /// Examined bytes for the reader, from `out_pos` on.
    out: Vec<u8>,
    /// How much of `out` the reader already took.
    out_pos: usize,
    /// Payload bytes of the current frame that pass without examination.
    skip: usize,
    /// `inner` reached end of stream.
    eof: bool,
}

impl<T> AuthorityFix<T> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: T) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Preface,
            pending: Vec::new(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            out: Vec::new(),
            out_pos: 0,
            skip: 0,
            eof: false,
        }
    }

    /// Moves what `pending` holds into `out`, frame by frame, rewriting HEADERS.
    fn examine(&mut self) {
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            match self.mode {
                Mode::Passthrough => {
                    self.out.extend_from_slice(rest);
                    at = self.pending.len();
                    break;
                }
                Mode::Preface => {
                    let n = rest.len().min(PREFACE.len());
                    if rest[..n] != PREFACE[..n] {
                        self.mode = Mode::Passthrough;
                        continue;
                    }
                    if n < PREFACE.len() {
                        break;
                    }
                    self.out.extend_from_slice(PREFACE);
                    at += PREFACE.len();
                    self.mode = Mode::Frames;
                }
                Mode::Frames if self.skip > 0 => {
                    let n = self.skip.min(rest.len());
                    if n == 0 {
                        break;
                    }
                    self.out.extend_from_slice(&rest[..n]);
                    at += n;
                    self.skip -= n;
                }
                Mode::Frames => {
                    if rest.len() < FRAME_HEADER_LEN {
                        break;
                    }
                    let len = usize::from(rest[0]) << 16
                        | usize::from(rest[1]) << 8
                        | usize::from(rest[2]);
                    let (kind, flags) = (rest[3], rest[4]);
                    let whole_headers = kind == FRAME_HEADERS
                        && flags & FLAG_END_HEADERS != 0
                        && len <= MAX_FRAME_PAYLOAD;
                    if !whole_headers {
                        self.out.extend_from_slice(&rest[..FRAME_HEADER_LEN]);
                        at += FRAME_HEADER_LEN;
                        self.skip = len;
                        continue;
                    }
                    let Some(frame) = rest.get(..FRAME_HEADER_LEN + len) else {
                        break;
                    };
                    match rewrite_headers_frame(frame) {
                        Some(fixed) => self.out.extend_from_slice(&fixed),
                        None => self.out.extend_from_slice(frame),
                    }
                    at += frame.len();
                }
            }
        }
        self.pending.drain(..at);
    }

    /// Copies examined bytes to `buf`; false if there were none.
    fn drain_out(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.out_pos >= self.out.len() {
            return false;
        }
        let n = buf.remaining().min(self.out.len() - self.out_pos);
        buf.put_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        true
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AuthorityFix<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.drain_out(buf) || this.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.pending.is_empty() {
                // Nothing to examine: read straight into the caller's buffer.
                match this.mode {
                    Mode::Passthrough => return Pin::new(&mut this.inner).poll_read(cx, buf),
                    Mode::Frames if this.skip > 0 => {
                        let limit = this.skip.min(buf.remaining());
                        let mut direct = ReadBuf::new(buf.initialize_unfilled_to(limit));
                        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut direct))?;
                        let n = direct.filled().len();
                        buf.advance(n);
                        this.skip -= n;
                        return Poll::Ready(Ok(()));
                    }
                    _ => {}
                }
            }
            let mut chunk = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            let n = chunk.filled().len();
            this.pending.extend_from_slice(chunk.filled());
            if n == 0 {
                // End of stream: whatever is incomplete goes out as it is.
                this.eof = true;
                let rest = std::mem::take(&mut this.pending);
                this.out.extend_from_slice(&rest);
                continue;
            }
            this.examine();
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The HEADERS frame with its `:authority` fixed, or `None` to keep it as is.
fn rewrite_headers_frame(frame: &[u8]) -> Option<Vec<u8>> {
    let flags = frame[4];
    let payload = &frame[FRAME_HEADER_LEN..];
    let mut start = 0;
    let mut pad = 0;
    if flags & FLAG_PADDED != 0 {
        pad = usize::from(*payload.first()?);
        start = 1;
    }
    if flags & FLAG_PRIORITY != 0 {
        start += 5;
    }
    let end = payload.len().checked_sub(pad)?;
    let block = payload.get(start..end)?;
    let (span, value) = find_authority(block)?;
    let fixed = fix_authority(&value)?;

    let mut new_block = Vec::with_capacity(block.len() + fixed.len());
    new_block.extend_from_slice(&block[..span.start]);
    encode_int(fixed.len() as u64, 7, 0, &mut new_block);
    new_block.extend_from_slice(&fixed);
    new_block.extend_from_slice(&block[span.end..]);

    let new_len = start + new_block.len() + pad;
    if new_len > MAX_FRAME_PAYLOAD {
        return None;
    }
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + new_len);
    out.extend_from_slice(&(new_len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&frame[3..FRAME_HEADER_LEN]);
    out.extend_from_slice(&payload[..start]);
    out.extend_from_slice(&new_block);
    out.extend_from_slice(&payload[end..]);
    Some(out)
}

/// Finds the first `:authority` field given as a literal in an HPACK block:
/// the byte range of its value string and the decoded value.
fn find_authority(block: &[u8]) -> Option<(Range<usize>, Vec<u8>)> {
    let mut i = 0;
    while i < block.len() {
        let first = block[i];
        if first & 0x80 != 0 {
            // Indexed field.
            i += decode_int(&block[i..], 7)?.1;
            continue;
        }
        if first & 0xe0 == 0x20 {
            // Dynamic table size update.
            i += decode_int(&block[i..], 5)?.1;
            continue;
        }
        // A literal: with incremental indexing (6-bit name index), or without /
        // never indexed (4-bit name index).
        let prefix = if first & 0xc0 == 0x40 { 6 } else { 4 };
        let (name_index, n) = decode_int(&block[i..], prefix)?;
        i += n;
        let is_authority = if name_index == 0 {
            let name = string_span(&block[i..])?;
            let is_authority = names_authority(&block[i..i + name.end]);
            i += name.end;
            is_authority
        } else {
            name_index == AUTHORITY_INDEX
        };
        let value_start = i;
        if is_authority {
            let (value, n) = read_string(&block[i..])?;
            return Some((value_start..i + n, value));
        }
        // Other values are skipped undecoded: this runs on every request.
        i += string_span(&block[i..])?.end;
    }
    None
}

/// Whether an encoded HPACK string literal (prefix included) is `:authority`;
/// longer strings are rejected without decoding them.
fn names_authority(encoded: &[u8]) -> bool {
    const NAME: &[u8] = b":authority";
    encoded.len() <= NAME.len() + 1 && read_string(encoded).is_some_and(|(name, _)| name == NAME)
}

/// Where an HPACK string literal's bytes end (prefix included), undecoded.
fn string_span(buf: &[u8]) -> Option<Range<usize>> {
    let (len, n) = decode_int(buf, 7)?;
    let end = n.checked_add(usize::try_from(len).ok()?)?;
    (end <= buf.len()).then_some(n..end)
}

/// `scheme://rest` becomes `_..._@rest` of the same length; anything else is kept.
fn fix_authority(value: &[u8]) -> Option<Vec<u8>> {
    let at = value.windows(3).position(|w| w == b"://")?;
    let rest = &value[at + 3..];
    if at == 0 || rest.is_empty() {
        return None;
    }
    let mut fixed = vec![b'_'; at + 2];
    fixed.push(b'@');
    fixed.extend_from_slice(rest);
    Some(fixed)
}

/// Decodes an HPACK integer with an `prefix_bits`-bit prefix: (value, bytes used).
fn decode_int(buf: &[u8], prefix_bits: u32) -> Option<(u64, usize)> {
    let max_prefix = (1u64 << prefix_bits) - 1;
    let mut value = u64::from(*buf.first()?) & max_prefix;
    if value < max_prefix {
        return Some((value, 1));
    }
    let mut shift = 0;
    for (i, &byte) in buf.iter().enumerate().skip(1) {
        if shift > 56 {
            return None;
        }
        value += u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Appends an HPACK integer with an `prefix_bits`-bit prefix; `flags` fills the
/// first byte's bits above the prefix.
fn encode_int(mut value: u64, prefix_bits: u32, flags: u8, out: &mut Vec<u8>) {
    let max_prefix = (1u64 << prefix_bits) - 1;
    if value < max_prefix {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an HPACK string literal: (decoded bytes, bytes used).
fn read_string(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let huffman = *buf.first()? & 0x80 != 0;
    let span = string_span(buf)?;
    let end = span.end;
    let raw = &buf[span];
    let value = if huffman {
        huffman_decode(raw)?
    } else {
        raw.to_vec()
    };
    Some((value, end))
}

/// Decodes a Huffman-coded string of printable ASCII; `None` for anything else
/// or for invalid padding.
fn huffman_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        acc = (acc << 8) | u64::from(byte);
        bits += 8;
        while let Some((symbol, len)) = next_symbol(acc, bits) {
            out.push(symbol);
            bits -= len;
            acc &= (1u64 << bits) - 1;
        }
        if bits > MAX_HUFFMAN_CODE_BITS {
            return None;
        }
    }
    // What is left is padding: fewer than 8 bits, all ones.
    (bits < 8 && acc == (1u64 << bits) - 1).then_some(out)
}

/// The printable symbol whose code starts the `bits` low bits of `acc`.
fn next_symbol(acc: u64, bits: u32) -> Option<(u8, u32)> {
    PRINTABLE_CODES
        .iter()
        .zip(0x20u8..)
        .find(|((len, code), _)| *len <= bits && acc >> (bits - len) == u64::from(*code))
        .map(|(&(len, _), symbol)| (symbol, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Huffman-codes printable ASCII (the inverse of `huffman_decode`).
    fn huffman_encode(text: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        for &c in text {
            let (len, code) = PRINTABLE_CODES[usize::from(c - 0x20)];
            acc = (acc << len) | u64::from(code);
            bits += len;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            let pad = 8 - bits;
            out.push(((acc << pad) | ((1 << pad) - 1)) as u8);
        }
        out
    }

    /// An HPACK string literal.
    fn string(text: &[u8], huffman: bool) -> Vec<u8> {
        let body = if huffman {
            huffman_encode(text)
        } else {
            text.to_vec()
        };
        let mut out = Vec::new();
        encode_int(
            body.len() as u64,
            7,
            if huffman { 0x80 } else { 0 },
            &mut out,
        );
        out.extend_from_slice(&body);
        out
    }

    /// A header block as grpc-go writes one: `:method POST` indexed, `:scheme`
    /// indexed, a `:path` literal, then `:authority` as a literal with
    /// incremental indexing and the static name index.
    fn block(authority: &[u8], huffman: bool) -> Vec<u8> {
        let mut b = vec![0x83, 0x86];
        b.push(0x44); // :path, incremental indexing, name index 4
        b.extend(string(b"/etcdserverpb.Maintenance/Status", huffman));
        b.push(0x41); // :authority, incremental indexing, name index 1
        b.extend(string(authority, huffman));
        b.push(0x40); // a new name, incremental indexing
        b.extend(string(b"content-type", huffman));
        b.extend(string(b"application/grpc", huffman));
        b
    }

    /// A HEADERS frame on stream 1.
    fn headers_frame(block: &[u8], flags: u8) -> Vec<u8> {
        let mut f = (block.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([FRAME_HEADERS, flags, 0, 0, 0, 1]);
        f.extend_from_slice(block);
        f
    }

    /// The authority a rewritten HEADERS frame carries.
    fn authority_of(frame: &[u8]) -> Vec<u8> {
        find_authority(&frame[FRAME_HEADER_LEN..]).unwrap().1
    }

    #[test]
    fn huffman_round_trips_printable_ascii() {
        let all: Vec<u8> = (0x20..0x7f).collect();
        for text in [&b"http://127.0.0.1:2379"[..], b"", b"a", &all] {
            assert_eq!(huffman_decode(&huffman_encode(text)).as_deref(), Some(text));
        }
        // Padding of 8 or more bits, or padding that is not all ones, is invalid.
        let mut long_pad = huffman_encode(b"0");
        long_pad.push(0xff);
        assert_eq!(huffman_decode(&long_pad), None);
        assert_eq!(huffman_decode(&[0b0000_0000]), None);
    }

    #[test]
    fn integers_round_trip_across_the_prefix_boundary() {
        for prefix in [4, 5, 6, 7] {
            for value in [0, 1, 14, 15, 16, 126, 127, 128, 300, 16_384, 1 << 40] {
                let mut buf = Vec::new();
                encode_int(value, prefix, 0, &mut buf);
                assert_eq!(decode_int(&buf, prefix), Some((value, buf.len())));
            }
        }
        assert_eq!(decode_int(&[0x7f, 0x80], 7), None, "truncated");
    }

    #[test]
    fn a_scheme_in_the_authority_becomes_a_same_length_userinfo() {
        for huffman in [true, false] {
            let frame = headers_frame(&block(b"http://127.0.0.1:2379", huffman), FLAG_END_HEADERS);
            let fixed = rewrite_headers_frame(&frame).expect("rewritten");
            let authority = authority_of(&fixed);
            assert_eq!(authority, b"______@127.0.0.1:2379");
            assert_eq!(authority.len(), b"http://127.0.0.1:2379".len());
            let text = std::str::from_utf8(&authority).unwrap();
            assert!(text.parse::<axum::http::uri::Authority>().is_ok());
            // The frame length follows the new payload, and the other fields survive.
            let len = usize::from(fixed[1]) << 8 | usize::from(fixed[2]);
            assert_eq!(len, fixed.len() - FRAME_HEADER_LEN);
            assert!(fixed.ends_with(&string(b"application/grpc", huffman)));
        }
    }

    #[test]
    fn padding_and_priority_are_kept() {
        let b = block(b"https://[::1]:2379", true);
        let mut payload = vec![3u8]; // pad length
        payload.extend([0, 0, 0, 0, 16]); // priority
        payload.extend(&b);
        payload.extend([0, 0, 0]);
        let frame = headers_frame(&payload, FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY);
        let fixed = rewrite_headers_frame(&frame).expect("rewritten");
        assert_eq!(
            &fixed[FRAME_HEADER_LEN..FRAME_HEADER_LEN + 6],
            &[3, 0, 0, 0, 0, 16]
        );
        assert!(fixed.ends_with(&[0, 0, 0]));
        let inner = &fixed[FRAME_HEADER_LEN + 6..fixed.len() - 3];
        assert_eq!(find_authority(inner).unwrap().1, b"_______@[::1]:2379");
    }

    #[test]
    fn valid_or_unknown_authorities_are_left_alone() {
        for authority in [&b"127.0.0.1:2379"[..], b"localhost", b"://x", b"a://"] {
            let frame = headers_frame(&block(authority, true), FLAG_END_HEADERS);
            assert_eq!(rewrite_headers_frame(&frame), None, "{authority:?}");
        }
        // A block the scanner cannot parse (truncated string) is left alone.
        let frame = headers_frame(&[0x41, 0x85, b'a'], FLAG_END_HEADERS);
        assert_eq!(rewrite_headers_frame(&frame), None);
    }

    #[test]
    fn an_authority_with_a_literal_name_is_found_after_skipped_fields() {
        for huffman in [true, false] {
            let mut b = vec![0x40]; // a new name, incremental indexing
            b.extend(string(b"x-a-long-custom-header-name", huffman));
            b.extend(string(b"some value", huffman));
            b.push(0x10); // never indexed, new name
            b.extend(string(b":authority", huffman));
            b.extend(string(b"http://10.0.0.1:2379", huffman));
            let frame = headers_frame(&b, FLAG_END_HEADERS);
            let fixed = rewrite_headers_frame(&frame).expect("rewritten");
            assert_eq!(authority_of(&fixed), b"______@10.0.0.1:2379", "{huffman}");
        }
    }

    /// A reader that hands out its input a few bytes at a time.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let n = this
                .step
                .min(this.data.len() - this.at)
                .min(buf.remaining());
            buf.put_slice(&this.data[this.at..this.at + n]);
            this.at += n;
            Poll::Ready(Ok(()))
        }
    }

    async fn read_through(data: Vec<u8>, step: usize) -> Vec<u8> {
        let mut fix = AuthorityFix::new(Trickle { data, at: 0, step });
        let mut out = Vec::new();
        fix.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_connection_is_rewritten_whatever_the_read_sizes() {
        let headers = headers_frame(&block(b"http://127.0.0.1:2379", true), FLAG_END_HEADERS);
        let fixed = rewrite_headers_frame(&headers).unwrap();
        let data_frame = {
            let mut f = vec![0, 0, 5, 0x0, 0x1, 0, 0, 0, 1];
            f.extend(b"hello");
            f
        };
        let mut input = PREFACE.to_vec();
        input.extend(&data_frame);
        input.extend(&headers);
        input.extend(&data_frame);
        input.extend(&headers);
        let mut expected = PREFACE.to_vec();
        expected.extend(&data_frame);
        expected.extend(&fixed);
        expected.extend(&data_frame);
        expected.extend(&fixed);
        for step in [1, 2, 7, 9, 64, 100_000] {
            assert_eq!(
                read_through(input.clone(), step).await,
                expected,
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn http1_and_truncated_input_pass_untouched() {
        let http1 = b"POST /v3/kv/range HTTP/1.1\r\nHost: http://x\r\n\r\n{}".to_vec();
        assert_eq!(read_through(http1.clone(), 3).await, http1);
        let mut cut = PREFACE.to_vec();
        cut.extend(&headers_frame(&block(b"http://h:1", true), FLAG_END_HEADERS)[..12]);
        assert_eq!(read_through(cut.clone(), 5).await, cut);
    }
}
