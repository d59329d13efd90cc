//! The error type of checkpoint encoding and decoding.

use core::fmt;

/// Why a checkpoint could not be written or read. A decoder that returns one of these has not
/// changed anything it decodes into (see [`crate::train::bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointError {
    /// The output buffer cannot hold the value being written; nothing of that value was written.
    BufferTooSmall {
        /// Bytes the write needs.
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// The input ends before the value being read (or before the end of the frame its header
    /// announces).
    Truncated {
        /// Bytes the read needs (saturated at `usize::MAX` for a length that does not fit).
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// The input does not start with the expected magic bytes: not a checkpoint of this kind.
    WrongMagic {
        /// The magic bytes the reader expects.
        expected: [u8; 4],
        /// The first four bytes of the input.
        found: [u8; 4],
    },
    /// The header names a format version this reader does not read.
    UnsupportedVersion {
        /// The version this reader reads.
        expected: u32,
        /// The version in the header.
        found: u32,
    },
    /// The CRC-32 stored after the payload differs from the CRC-32 of the header and payload: the
    /// bytes were corrupted.
    ChecksumMismatch {
        /// The value stored in the trailer.
        stored: u32,
        /// The value computed from the bytes.
        computed: u32,
    },
    /// The payload has bytes left after the decoder read everything it expected.
    TrailingBytes {
        /// Bytes not read.
        unread: usize,
    },
    /// A decoded count or length differs from the one the decoder requires (for example a state
    /// buffer saved for another parameter count).
    WrongShape {
        /// What was decoded (for example `"state length"`).
        field: &'static str,
        /// The value the decoder requires.
        expected: u64,
        /// The value in the input.
        found: u64,
    },
    /// A decoded value is outside the set of valid values (for example an unknown tag).
    InvalidValue {
        /// What was decoded.
        field: &'static str,
    },
    /// A decoded hyper-parameter failed the crate's validation.
    Kernel(crate::Error),
}

impl From<crate::Error> for CheckpointError {
    fn from(e: crate::Error) -> Self {
        CheckpointError::Kernel(e)
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CheckpointError::BufferTooSmall { needed, available } => write!(
                f,
                "checkpoint buffer too small: {needed} bytes needed, {available} available"
            ),
            CheckpointError::Truncated { needed, available } => write!(
                f,
                "checkpoint truncated: {needed} bytes needed, {available} available"
            ),
            CheckpointError::WrongMagic { expected, found } => write!(
                f,
                "not a checkpoint: magic bytes {found:02x?}, expected {expected:02x?}"
            ),
            CheckpointError::UnsupportedVersion { expected, found } => write!(
                f,
                "checkpoint format version {found} is not supported (this reader reads version {expected})"
            ),
            CheckpointError::ChecksumMismatch { stored, computed } => write!(
                f,
                "checkpoint corrupted: stored CRC-32 {stored:#010x}, computed {computed:#010x}"
            ),
            CheckpointError::TrailingBytes { unread } => {
                write!(f, "checkpoint payload has {unread} unexpected trailing bytes")
            }
            CheckpointError::WrongShape {
                field,
                expected,
                found,
            } => write!(
                f,
                "checkpoint {field} is {found}, expected {expected}"
            ),
            CheckpointError::InvalidValue { field } => {
                write!(f, "checkpoint {field} has an invalid value")
            }
            CheckpointError::Kernel(e) => write!(f, "checkpoint holds an invalid setting: {e}"),
        }
    }
}

impl core::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            CheckpointError::Kernel(e) => Some(e),
            _ => None,
        }
    }
}
