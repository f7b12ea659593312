//! The codec: the only file in the project that names `bincode`.
//!
//! It owns two things:
//!
//! * the **record body** encoding used inside the journal's stored values
//!   (bincode 2, big-endian, fixed-width integers — a layout simple enough
//!   to be described byte by byte in `docs/journal-format.md`), and
//! * the **payload helpers** [`encode_payload`] / [`decode_payload`] that the
//!   rest of the project uses for its own (opaque to the journal) payloads
//!   (bincode 2 `standard()` configuration: little-endian varints).
//!
//! Swapping the codec means rewriting this file only. No bincode type leaks
//! through the public API: errors are carried as [`CodecError`] strings.

use bincode::de::BorrowDecoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{BorrowDecode, Decode, Encode};

/// Upper bound on the bytes the payload decoder may claim (allocate) while
/// decoding one payload. Protects against corrupt length prefixes asking
/// for absurd allocations.
pub const PAYLOAD_DECODE_LIMIT: usize = 64 * 1024 * 1024;

/// Fixed number of bytes the record body adds to the payload:
/// seq (8) + job (16) + job_seq (8) + timestamp (8) + payload_format (2) +
/// payload length (8).
pub const BODY_FIXED_LEN: usize = 8 + 16 + 8 + 8 + 2 + 8;

/// Errors of the codec. Messages come from the underlying codec library but
/// its types are not exposed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Encoding a value failed.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding.
    #[error("decode failed: {0}")]
    Decode(String),
    /// A valid value was decoded but bytes were left over.
    #[error("{extra} trailing byte(s) after the encoded value")]
    TrailingBytes {
        /// How many bytes were not consumed.
        extra: usize,
    },
}

fn body_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_big_endian()
        .with_fixed_int_encoding()
}

fn payload_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<PAYLOAD_DECODE_LIMIT>()
}

/// Encodes a caller payload with the project's payload codec
/// (bincode 2, `standard()` configuration).
///
/// # Errors
/// [`CodecError::Encode`] if the value cannot be represented (e.g. a
/// serializer error raised by the value itself).
pub fn encode_payload<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, payload_config())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a caller payload produced by [`encode_payload`]. All bytes must be
/// consumed.
///
/// # Errors
/// [`CodecError::Decode`] for malformed input (never panics, never allocates
/// more than [`PAYLOAD_DECODE_LIMIT`]), [`CodecError::TrailingBytes`] if
/// the value ends before the input does.
pub fn decode_payload<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, payload_config())
        .map_err(|e: DecodeError| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

/// The record body: every envelope field except the format-version prefix
/// and the trailing hash. Borrowing the payload keeps decoding zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Body<'a> {
    pub(crate) seq: u64,
    pub(crate) job: [u8; 16],
    pub(crate) job_seq: u64,
    pub(crate) timestamp: i64,
    pub(crate) payload_format: u16,
    pub(crate) payload: &'a [u8],
}

impl Encode for Body<'_> {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.seq.encode(encoder)?;
        self.job.encode(encoder)?;
        self.job_seq.encode(encoder)?;
        self.timestamp.encode(encoder)?;
        self.payload_format.encode(encoder)?;
        self.payload.encode(encoder)
    }
}

impl<'de, C> BorrowDecode<'de, C> for Body<'de> {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(
        decoder: &mut D,
    ) -> Result<Self, DecodeError> {
        Ok(Body {
            seq: u64::decode(decoder)?,
            job: <[u8; 16]>::decode(decoder)?,
            job_seq: u64::decode(decoder)?,
            timestamp: i64::decode(decoder)?,
            payload_format: u16::decode(decoder)?,
            payload: <&'de [u8]>::borrow_decode(decoder)?,
        })
    }
}

/// Appends the encoded body to `out`.
pub(crate) fn encode_body_into(body: &Body<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::encode_into_std_write(body, out, body_config())
        .map(|_| ())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a body that must occupy `bytes` exactly.
pub(crate) fn decode_body(bytes: &[u8]) -> Result<Body<'_>, CodecError> {
    let (body, used): (Body<'_>, usize) = bincode::borrow_decode_from_slice(bytes, body_config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(payload: &[u8]) -> Body<'_> {
        Body {
            seq: 0x0102_0304_0506_0708,
            job: [0xAA; 16],
            job_seq: 3,
            timestamp: -2,
            payload_format: 0x0A0B,
            payload,
        }
    }

    #[test]
    fn body_layout_is_fixed_width_big_endian() -> Result<(), CodecError> {
        let mut out = Vec::new();
        encode_body_into(&sample(b"xy"), &mut out)?;
        let mut expected = Vec::new();
        expected.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        expected.extend_from_slice(&[0xAA; 16]);
        expected.extend_from_slice(&3u64.to_be_bytes());
        expected.extend_from_slice(&(-2i64).to_be_bytes());
        expected.extend_from_slice(&0x0A0Bu16.to_be_bytes());
        expected.extend_from_slice(&2u64.to_be_bytes());
        expected.extend_from_slice(b"xy");
        assert_eq!(out, expected);
        assert_eq!(out.len(), BODY_FIXED_LEN + 2);
        Ok(())
    }

    #[test]
    fn body_rejects_trailing_and_truncated() -> Result<(), CodecError> {
        let mut out = Vec::new();
        encode_body_into(&sample(b"abc"), &mut out)?;
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(
            decode_body(&longer),
            Err(CodecError::TrailingBytes { extra: 1 })
        );
        for cut in 0..out.len() {
            assert!(decode_body(&out[..cut]).is_err(), "cut at {cut}");
        }
        Ok(())
    }

    #[test]
    fn huge_length_prefix_is_an_error_not_an_allocation() {
        let mut out = Vec::new();
        out.extend_from_slice(&[0u8; BODY_FIXED_LEN - 8]);
        out.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(decode_body(&out).is_err());
        // Payload helper: a Vec<u8> claiming 2^62 elements.
        let mut bad = vec![0xFFu8];
        bad.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode_payload::<Vec<u8>>(&bad).is_err());
        assert!(decode_payload::<String>(&bad).is_err());
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Payload {
        Started { name: String, attempt: u32 },
        Output(Vec<String>),
        Done,
    }

    #[test]
    fn payload_round_trip_and_trailing() -> Result<(), CodecError> {
        let p = Payload::Started {
            name: "x".into(),
            attempt: 2,
        };
        let bytes = encode_payload(&p)?;
        assert_eq!(decode_payload::<Payload>(&bytes)?, p);
        let mut longer = bytes.clone();
        longer.push(9);
        assert_eq!(
            decode_payload::<Payload>(&longer),
            Err(CodecError::TrailingBytes { extra: 1 })
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn body_round_trips(
            seq in any::<u64>(), job in any::<[u8; 16]>(), job_seq in any::<u64>(),
            timestamp in any::<i64>(), payload_format in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let body = Body { seq, job, job_seq, timestamp, payload_format, payload: &payload };
            let mut out = Vec::new();
            encode_body_into(&body, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(out.len(), BODY_FIXED_LEN + payload.len());
            let back = decode_body(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, body);
        }

        #[test]
        fn decode_body_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_body(&bytes);
        }

        #[test]
        fn payload_round_trips(
            strings in proptest::collection::vec(".*", 0..8),
            attempt in any::<u32>(),
        ) {
            let values = vec![
                Payload::Output(strings.clone()),
                Payload::Started { name: strings.concat(), attempt },
                Payload::Done,
            ];
            for v in values {
                let bytes = encode_payload(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let back: Payload = decode_payload(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(back, v);
            }
        }

        #[test]
        fn decode_payload_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_payload::<Payload>(&bytes);
            let _ = decode_payload::<(String, Vec<u64>, Option<u8>)>(&bytes);
        }
    }
}
