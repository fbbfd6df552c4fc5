//! The Confluent wire format: magic byte `0x00`, the schema id as a big-endian `u32`, then the
//! Avro binary body. Checked before any decoder reads a byte, so that a short, empty or
//! differently framed message is rejected with its reason instead of being misread.

/// Why a payload is not a frame socle can decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty payload (tombstone or missing value)")]
    Empty,
    #[error("payload of {0} bytes is shorter than the 5-byte header")]
    TooShort(usize),
    #[error("magic byte 0x01 (schema GUID framing) is not supported; use 0x00 with a schema id")]
    GuidFraming,
    #[error("unknown magic byte 0x{0:02x}: not a Confluent-framed message")]
    UnknownMagic(u8),
}

impl FrameError {
    /// A stable machine-readable code for dead-letter records and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::Empty => "frame.empty",
            FrameError::TooShort(_) => "frame.too_short",
            FrameError::GuidFraming => "frame.guid_unsupported",
            FrameError::UnknownMagic(_) => "frame.unknown_magic",
        }
    }
}

/// A checked frame: the schema id and the Avro body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub schema_id: u32,
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Checks `payload`'s header.
    ///
    /// # Errors
    /// See [`FrameError`].
    pub fn parse(payload: &'a [u8]) -> Result<Self, FrameError> {
        match payload {
            [] => Err(FrameError::Empty),
            [0x01, ..] => Err(FrameError::GuidFraming),
            [m, ..] if *m != 0 => Err(FrameError::UnknownMagic(*m)),
            [0, a, b, c, d, body @ ..] => Ok(Frame {
                schema_id: u32::from_be_bytes([*a, *b, *c, *d]),
                body,
            }),
            short => Err(FrameError::TooShort(short.len())),
        }
    }

    /// The frame for `body` written under `schema_id`.
    pub fn encode(schema_id: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + body.len());
        out.push(0);
        out.extend_from_slice(&schema_id.to_be_bytes());
        out.extend_from_slice(body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_well_formed_frame() {
        let bytes = Frame::encode(258, b"body");
        assert_eq!(
            Frame::parse(&bytes),
            Ok(Frame {
                schema_id: 258,
                body: b"body"
            })
        );
        assert_eq!(
            Frame::parse(&[0, 0, 0, 0, 7]),
            Ok(Frame {
                schema_id: 7,
                body: b""
            })
        );
    }

    #[test]
    fn rejects_every_malformed_header_with_its_reason() {
        assert_eq!(Frame::parse(&[]), Err(FrameError::Empty));
        assert_eq!(Frame::parse(&[0]), Err(FrameError::TooShort(1)));
        assert_eq!(Frame::parse(&[0, 0, 0, 1]), Err(FrameError::TooShort(4)));
        assert_eq!(Frame::parse(&[1; 21]), Err(FrameError::GuidFraming));
        assert_eq!(
            Frame::parse(b"{\"json\":1}"),
            Err(FrameError::UnknownMagic(b'{'))
        );
        assert_eq!(FrameError::GuidFraming.code(), "frame.guid_unsupported");
    }
}
