//! A little-endian byte codec for checkpoints: a [`Writer`] over a caller's `&mut [u8]`, a
//! [`Reader`] over `&[u8]`, and a checksummed, versioned frame around a payload.
//!
//! # Encoding
//!
//! Every value is little-endian, with no padding and no alignment: `u8`, `u16`, `u32`, `u64`,
//! `f32` and `f64` as their IEEE bits, `bf16`/`f16` as their 16-bit patterns. A slice is written as
//! its elements back to back; the reader is told how many elements to read (a format that needs
//! lengths writes them itself, for example with [`Writer::put_u64`], and checks them on the way
//! back with [`Reader::expect_u64`]). Floating-point values round-trip bit for bit, NaN payloads
//! included.
//!
//! # Frame
//!
//! [`write_header`] and [`Writer::finish`] wrap a payload as
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic bytes (chosen by the format) |
//! | 4 | 4 | format version, `u32` |
//! | 8 | 8 | payload length `n` in bytes, `u64` |
//! | 16 | `n` | payload |
//! | 16 + `n` | 4 | CRC-32 (IEEE, see [`crate::train::crc`]) of bytes `0 .. 16 + n` |
//!
//! so the frame is [`frame_len`]`(n) = n + 20` bytes. [`verify`] (and [`read_header`], which
//! calls it) checks, in this order, the magic bytes, the length of the fixed header, the version,
//! that the input holds the whole frame, and the checksum, and returns the first failure as a
//! typed [`CheckpointError`]. Bytes after the frame are ignored, so a frame can live at the start
//! of a larger fixed-size buffer. Because the whole frame is checked *before* the payload is handed
//! out, a decoder that reads from [`read_header`]'s [`Reader`] only ever sees bytes that passed the
//! checksum; if it also validates shapes before it writes into its destination, a rejected
//! checkpoint changes nothing.
//!
//! CRC-32 detects every error burst of at most 32 bits (so every single corrupted byte) and any
//! other corruption with probability `1 − 2⁻³²`.
//!
//! # Atomicity
//!
//! Every `put_*` and `get_*` call checks that the whole value fits before it touches anything: on
//! [`CheckpointError::BufferTooSmall`] / [`CheckpointError::Truncated`] nothing was written or read
//! and the position is unchanged.

use half::{bf16, f16};

use super::crc::{crc32, Crc32};
use super::CheckpointError;

/// Bytes of the frame header: magic (4), version (4), payload length (8).
pub const HEADER_LEN: usize = 16;
/// Bytes of the frame trailer: the CRC-32.
pub const TRAILER_LEN: usize = 4;

/// The size of a frame holding a `payload`-byte payload (`payload + 20`), saturating at
/// `usize::MAX`; usable in a `const` to size a `static` buffer.
pub const fn frame_len(payload: usize) -> usize {
    payload
        .saturating_add(HEADER_LEN)
        .saturating_add(TRAILER_LEN)
}

/// `count · size` in bytes, or `usize::MAX` if that overflows (no buffer is that large, so the
/// size check fails with an honest "needed").
#[inline]
fn bytes_for(count: usize, size: usize) -> usize {
    count.saturating_mul(size)
}

/// Writes little-endian values into a caller-provided buffer, keeping a running CRC-32 of what it
/// wrote. Made by [`Writer::new`] (a bare payload) or [`write_header`] (a frame).
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    /// The next byte to write.
    pos: usize,
    /// One past the last byte payload writes may use (room for the trailer is kept in a frame).
    limit: usize,
    /// CRC-32 of the bytes written through `put_*`.
    crc: Crc32,
    /// The magic bytes `finish` writes to close a frame (`None`: no frame).
    frame_magic: Option<[u8; 4]>,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`, with no header.
    pub fn new(buf: &'a mut [u8]) -> Self {
        let limit = buf.len();
        Self {
            buf,
            pos: 0,
            limit,
            crc: Crc32::new(),
            frame_magic: None,
        }
    }

    /// Bytes written so far (for a framed writer, including the header).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes that can still be written (for a framed writer, leaving room for the trailer).
    pub fn remaining(&self) -> usize {
        self.limit - self.pos
    }

    /// The CRC-32 of every byte written by the `put_*` methods so far (for a framed writer: the
    /// payload so far, without the header).
    pub fn crc(&self) -> u32 {
        self.crc.finish()
    }

    /// Claims `n` bytes, fills them with `fill`, and adds them to the running CRC; writes nothing
    /// if they do not fit.
    #[inline]
    fn put_with(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), CheckpointError> {
        let available = self.remaining();
        if n > available {
            return Err(CheckpointError::BufferTooSmall {
                needed: n,
                available,
            });
        }
        let dst = &mut self.buf[self.pos..self.pos + n];
        fill(dst);
        self.crc.update(dst);
        self.pos += n;
        Ok(())
    }

    /// Writes raw bytes.
    pub fn put_bytes(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        self.put_with(bytes.len(), |d| d.copy_from_slice(bytes))
    }

    /// Writes a `u8`.
    pub fn put_u8(&mut self, v: u8) -> Result<(), CheckpointError> {
        self.put_bytes(&[v])
    }

    /// Writes a `u16`, little-endian.
    pub fn put_u16(&mut self, v: u16) -> Result<(), CheckpointError> {
        self.put_bytes(&v.to_le_bytes())
    }

    /// Writes a `u32`, little-endian.
    pub fn put_u32(&mut self, v: u32) -> Result<(), CheckpointError> {
        self.put_bytes(&v.to_le_bytes())
    }

    /// Writes a `u64`, little-endian.
    pub fn put_u64(&mut self, v: u64) -> Result<(), CheckpointError> {
        self.put_bytes(&v.to_le_bytes())
    }

    /// Writes an `f32` as its IEEE bits, little-endian.
    pub fn put_f32(&mut self, v: f32) -> Result<(), CheckpointError> {
        self.put_u32(v.to_bits())
    }

    /// Writes an `f64` as its IEEE bits, little-endian.
    pub fn put_f64(&mut self, v: f64) -> Result<(), CheckpointError> {
        self.put_u64(v.to_bits())
    }

    /// Writes every element of `xs` (4 bytes each), or nothing if they do not all fit.
    pub fn put_f32s(&mut self, xs: &[f32]) -> Result<(), CheckpointError> {
        self.put_with(bytes_for(xs.len(), 4), |d| {
            for (c, x) in d.chunks_exact_mut(4).zip(xs) {
                c.copy_from_slice(&x.to_bits().to_le_bytes());
            }
        })
    }

    /// Writes every element of `xs` (8 bytes each), or nothing if they do not all fit.
    pub fn put_f64s(&mut self, xs: &[f64]) -> Result<(), CheckpointError> {
        self.put_with(bytes_for(xs.len(), 8), |d| {
            for (c, x) in d.chunks_exact_mut(8).zip(xs) {
                c.copy_from_slice(&x.to_bits().to_le_bytes());
            }
        })
    }

    /// Writes every element of `xs` (2 bytes each), or nothing if they do not all fit.
    pub fn put_bf16s(&mut self, xs: &[bf16]) -> Result<(), CheckpointError> {
        self.put_with(bytes_for(xs.len(), 2), |d| {
            for (c, x) in d.chunks_exact_mut(2).zip(xs) {
                c.copy_from_slice(&x.to_bits().to_le_bytes());
            }
        })
    }

    /// Writes every element of `xs` (2 bytes each), or nothing if they do not all fit.
    pub fn put_f16s(&mut self, xs: &[f16]) -> Result<(), CheckpointError> {
        self.put_with(bytes_for(xs.len(), 2), |d| {
            for (c, x) in d.chunks_exact_mut(2).zip(xs) {
                c.copy_from_slice(&x.to_bits().to_le_bytes());
            }
        })
    }

    /// Ends the encoding and returns the number of bytes used. For a writer made by
    /// [`write_header`], first writes the magic bytes, fills in the payload length and appends the
    /// CRC-32 trailer (room for it was reserved, so this cannot fail).
    pub fn finish(self) -> usize {
        let Some(magic) = self.frame_magic else {
            return self.pos;
        };
        self.buf[..4].copy_from_slice(&magic);
        let payload = (self.pos - HEADER_LEN) as u64;
        self.buf[8..HEADER_LEN].copy_from_slice(&payload.to_le_bytes());
        let crc = crc32(&self.buf[..self.pos]);
        self.buf[self.pos..self.pos + TRAILER_LEN].copy_from_slice(&crc.to_le_bytes());
        self.pos + TRAILER_LEN
    }
}

/// Starts a frame at the start of `buf`: writes the version, reserves the magic bytes, the length
/// field and the trailer, and returns the writer for the payload; close it with
/// [`Writer::finish`]. Fails with [`CheckpointError::BufferTooSmall`] (writing nothing) if `buf`
/// cannot hold even an empty frame.
///
/// The magic bytes stay zero until [`Writer::finish`] writes them, so a frame whose encoding was
/// abandoned (an error, a reset) is rejected as [`CheckpointError::WrongMagic`], and starting a
/// frame over an older one invalidates the older one at once (unless the format's magic is four
/// zero bytes).
pub fn write_header(
    buf: &mut [u8],
    magic: [u8; 4],
    version: u32,
) -> Result<Writer<'_>, CheckpointError> {
    let empty = frame_len(0);
    if buf.len() < empty {
        return Err(CheckpointError::BufferTooSmall {
            needed: empty,
            available: buf.len(),
        });
    }
    buf[..4].fill(0);
    buf[4..8].copy_from_slice(&version.to_le_bytes());
    buf[8..HEADER_LEN].fill(0);
    let limit = buf.len() - TRAILER_LEN;
    Ok(Writer {
        buf,
        pos: HEADER_LEN,
        limit,
        crc: Crc32::new(),
        frame_magic: Some(magic),
    })
}

/// Reads little-endian values from a byte slice, keeping a running CRC-32 of what it read.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    /// The next byte to read.
    pos: usize,
    /// CRC-32 of the bytes read so far.
    crc: Crc32,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf` (no header: see [`read_header`] for a frame).
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            crc: Crc32::new(),
        }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The CRC-32 of every byte read so far.
    pub fn crc(&self) -> u32 {
        self.crc.finish()
    }

    /// The next `n` bytes, or [`CheckpointError::Truncated`] (reading nothing) if fewer remain.
    pub fn get_bytes(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        let available = self.remaining();
        if n > available {
            return Err(CheckpointError::Truncated {
                needed: n,
                available,
            });
        }
        let buf: &'a [u8] = self.buf;
        let s = &buf[self.pos..self.pos + n];
        self.crc.update(s);
        self.pos += n;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    #[inline]
    fn get_array<const N: usize>(&mut self) -> Result<[u8; N], CheckpointError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.get_bytes(N)?);
        Ok(a)
    }

    /// Reads a `u8`.
    pub fn get_u8(&mut self) -> Result<u8, CheckpointError> {
        Ok(self.get_array::<1>()?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn get_u16(&mut self) -> Result<u16, CheckpointError> {
        Ok(u16::from_le_bytes(self.get_array()?))
    }

    /// Reads a little-endian `u32`.
    pub fn get_u32(&mut self) -> Result<u32, CheckpointError> {
        Ok(u32::from_le_bytes(self.get_array()?))
    }

    /// Reads a little-endian `u64`.
    pub fn get_u64(&mut self) -> Result<u64, CheckpointError> {
        Ok(u64::from_le_bytes(self.get_array()?))
    }

    /// Reads an `f32` from its little-endian IEEE bits.
    pub fn get_f32(&mut self) -> Result<f32, CheckpointError> {
        Ok(f32::from_bits(self.get_u32()?))
    }

    /// Reads an `f64` from its little-endian IEEE bits.
    pub fn get_f64(&mut self) -> Result<f64, CheckpointError> {
        Ok(f64::from_bits(self.get_u64()?))
    }

    /// Reads a `u64` and checks that it equals `expected`, naming `field` in the
    /// [`CheckpointError::WrongShape`] otherwise (for lengths and counts the decoder knows).
    pub fn expect_u64(
        &mut self,
        field: &'static str,
        expected: u64,
    ) -> Result<(), CheckpointError> {
        let found = self.get_u64()?;
        if found == expected {
            Ok(())
        } else {
            Err(CheckpointError::WrongShape {
                field,
                expected,
                found,
            })
        }
    }

    /// Fills `out` with the next `out.len()` values (4 bytes each); on
    /// [`CheckpointError::Truncated`], `out` is untouched.
    pub fn get_f32s(&mut self, out: &mut [f32]) -> Result<(), CheckpointError> {
        let src = self.get_bytes(bytes_for(out.len(), 4))?;
        for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }

    /// Fills `out` with the next `out.len()` values (8 bytes each); on
    /// [`CheckpointError::Truncated`], `out` is untouched.
    pub fn get_f64s(&mut self, out: &mut [f64]) -> Result<(), CheckpointError> {
        let src = self.get_bytes(bytes_for(out.len(), 8))?;
        for (o, c) in out.iter_mut().zip(src.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            *o = f64::from_le_bytes(a);
        }
        Ok(())
    }

    /// Fills `out` with the next `out.len()` values (2 bytes each); on
    /// [`CheckpointError::Truncated`], `out` is untouched.
    pub fn get_bf16s(&mut self, out: &mut [bf16]) -> Result<(), CheckpointError> {
        let src = self.get_bytes(bytes_for(out.len(), 2))?;
        for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
            *o = bf16::from_bits(u16::from_le_bytes([c[0], c[1]]));
        }
        Ok(())
    }

    /// Fills `out` with the next `out.len()` values (2 bytes each); on
    /// [`CheckpointError::Truncated`], `out` is untouched.
    pub fn get_f16s(&mut self, out: &mut [f16]) -> Result<(), CheckpointError> {
        let src = self.get_bytes(bytes_for(out.len(), 2))?;
        for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
            *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
        }
        Ok(())
    }

    /// Ends decoding: [`CheckpointError::TrailingBytes`] if anything was left unread (the input
    /// was written for a different shape or format).
    pub fn finish(self) -> Result<(), CheckpointError> {
        match self.remaining() {
            0 => Ok(()),
            unread => Err(CheckpointError::TrailingBytes { unread }),
        }
    }
}

/// A frame that passed [`verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The format version in the header.
    pub version: u32,
    /// The payload, checksum verified.
    pub payload: &'a [u8],
    /// The whole frame's length in bytes (header, payload and trailer); later input bytes are not
    /// part of it.
    pub len: usize,
}

/// Checks a frame at the start of `bytes` (see the [module documentation](self) for the layout
/// and the order of the checks) and returns it, or the first problem found.
pub fn verify(bytes: &[u8], magic: [u8; 4], version: u32) -> Result<Frame<'_>, CheckpointError> {
    if bytes.len() >= 4 && bytes[..4] != magic {
        let mut found = [0u8; 4];
        found.copy_from_slice(&bytes[..4]);
        return Err(CheckpointError::WrongMagic {
            expected: magic,
            found,
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(CheckpointError::Truncated {
            needed: HEADER_LEN,
            available: bytes.len(),
        });
    }
    let found = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if found != version {
        return Err(CheckpointError::UnsupportedVersion {
            expected: version,
            found,
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..HEADER_LEN]);
    let payload = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
    let total = frame_len(payload);
    if total > bytes.len() {
        return Err(CheckpointError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    }
    let end = HEADER_LEN + payload;
    let computed = crc32(&bytes[..end]);
    let t = &bytes[end..total];
    let stored = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    if stored != computed {
        return Err(CheckpointError::ChecksumMismatch { stored, computed });
    }
    Ok(Frame {
        version: found,
        payload: &bytes[HEADER_LEN..end],
        len: total,
    })
}

/// [`verify`]s the frame at the start of `bytes` and returns a [`Reader`] over its payload.
pub fn read_header(
    bytes: &[u8],
    magic: [u8; 4],
    version: u32,
) -> Result<Reader<'_>, CheckpointError> {
    Ok(Reader::new(verify(bytes, magic, version)?.payload))
}
