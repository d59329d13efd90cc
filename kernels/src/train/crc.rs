//! CRC-32 as zlib, PNG, gzip and Ethernet compute it (IEEE 802.3): reflected input and output,
//! polynomial `0x04C11DB7` (reflected `0xEDB88320`), initial value and final xor `0xFFFFFFFF`.
//! The check value of the ASCII string `"123456789"` is `0xCBF43926`.
//!
//! Table-driven, one byte per lookup, with the 256-entry table computed at compile time (1 KiB of
//! read-only data). Incremental: feeding the bytes in any number of pieces gives the same value
//! as feeding them at once.
//!
//! ```
//! use descent_kernels::train::Crc32;
//!
//! assert_eq!(Crc32::new().update(b"123456789").finish(), 0xCBF4_3926);
//! let mut crc = Crc32::new();
//! crc.update(b"1234").update(b"56789");
//! assert_eq!(crc.finish(), 0xCBF4_3926);
//! ```

/// The reflected IEEE polynomial.
const POLY: u32 = 0xEDB8_8320;

/// `TABLE[b]` is the CRC register after shifting the byte `b` through an all-zero register.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC-32 (IEEE). [`Crc32::finish`] does not consume it, so a running value can be read
/// and then extended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crc32 {
    /// The register before the final xor.
    state: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// The CRC of no bytes so far.
    pub const fn new() -> Self {
        Self { state: 0xFFFF_FFFF }
    }

    /// Feeds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        let mut c = self.state;
        for &b in bytes {
            c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.state = c;
        self
    }

    /// The CRC-32 of every byte fed so far.
    #[inline]
    pub const fn finish(&self) -> u32 {
        !self.state
    }
}

/// The CRC-32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    Crc32::new().update(bytes).finish()
}
