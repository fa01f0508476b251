//! NDR encoding of the one KMS call, RequestActivation (spec 3.11), in both
//! transfer syntaxes: the request stub (a conformant byte array) and the
//! response stub (size, unique pointer, array, HRESULT).

use super::pdu::{u32_at, u64_at};

/// The transfer syntax a presentation context was accepted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ndr {
    Ndr32,
    Ndr64,
}

impl std::fmt::Display for Ndr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ndr::Ndr32 => "NDR32",
            Ndr::Ndr64 => "NDR64",
        })
    }
}

/// The referent id of the response's unique pointer.
const REFERENT: u32 = 0x0002_0000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StubError {
    #[error("stub of {0} bytes is too short for its header")]
    TooShort(usize),
    #[error("array size {size} and conformance {conformance} differ")]
    SizeMismatch { size: u64, conformance: u64 },
    #[error("array of {size} bytes overruns a stub of {len} bytes")]
    Overrun { size: u64, len: usize },
    #[error("response pointer referent {0:#x} is not the expected 0x20000")]
    BadReferent(u64),
    #[error("response stub is {got} bytes, expected {want}")]
    WrongLength { got: usize, want: usize },
    #[error("non-zero alignment padding in the response stub")]
    NonZeroPadding,
}

impl Ndr {
    /// Offset of the array in a request stub.
    fn request_header_len(self) -> usize {
        match self {
            Ndr::Ndr32 => 8,
            Ndr::Ndr64 => 16,
        }
    }

    /// The KMS request bytes inside a request stub. Trailing bytes after the
    /// array are tolerated (some RPC stacks add them).
    pub fn decode_request(self, stub: &[u8]) -> Result<&[u8], StubError> {
        let (size, conformance) = match self {
            Ndr::Ndr32 => (
                u32_at(stub, 0).map(u64::from),
                u32_at(stub, 4).map(u64::from),
            ),
            // The size is an int32 followed by alignment padding; reading
            // 8 bytes would let junk in the padding change it.
            Ndr::Ndr64 => (u32_at(stub, 0).map(u64::from), u64_at(stub, 8)),
        };
        let (Some(size), Some(conformance)) = (size, conformance) else {
            return Err(StubError::TooShort(stub.len()));
        };
        if size != conformance {
            return Err(StubError::SizeMismatch { size, conformance });
        }
        let start = self.request_header_len();
        let end = start as u64 + size;
        if end > stub.len() as u64 {
            return Err(StubError::Overrun {
                size,
                len: stub.len(),
            });
        }
        Ok(&stub[start..end as usize])
    }

    pub fn encode_request(self, payload: &[u8]) -> Vec<u8> {
        let n = payload.len() as u32;
        let mut out = Vec::with_capacity(payload.len() + 16);
        out.extend_from_slice(&n.to_le_bytes());
        match self {
            Ndr::Ndr32 => out.extend_from_slice(&n.to_le_bytes()),
            Ndr::Ndr64 => {
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&u64::from(n).to_le_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// A response stub: the KMS response, or a NULL pointer and the HRESULT.
    pub fn encode_response(self, result: Result<&[u8], u32>) -> Vec<u8> {
        let mut out = Vec::with_capacity(360);
        match (self, result) {
            (Ndr::Ndr32, Ok(payload)) => {
                let n = payload.len() as u32;
                for v in [n, REFERENT, n] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(payload);
            }
            (Ndr::Ndr64, Ok(payload)) => {
                let n = payload.len() as u32;
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&u64::from(REFERENT).to_le_bytes());
                out.extend_from_slice(&u64::from(n).to_le_bytes());
                out.extend_from_slice(payload);
            }
            (Ndr::Ndr32, Err(_)) => out.extend_from_slice(&[0; 8]),
            (Ndr::Ndr64, Err(_)) => out.extend_from_slice(&[0; 16]),
        }
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(&result.err().unwrap_or(0).to_le_bytes());
        out
    }

    /// Client side: the KMS response (or the server's HRESULT) from a response
    /// stub, checking every field a real client checks.
    pub fn decode_response(self, stub: &[u8]) -> Result<Result<Vec<u8>, u32>, StubError> {
        let (size, referent, head) = match self {
            Ndr::Ndr32 => (
                u32_at(stub, 0).map(u64::from),
                u32_at(stub, 4).map(u64::from),
                8,
            ),
            Ndr::Ndr64 => (u32_at(stub, 0).map(u64::from), u64_at(stub, 8), 16),
        };
        let (Some(size), Some(referent)) = (size, referent) else {
            return Err(StubError::TooShort(stub.len()));
        };
        if referent == 0 {
            // Error layout: size 0, NULL pointer, HRESULT.
            let hresult = u32_at(stub, head).ok_or(StubError::TooShort(stub.len()))?;
            if stub.len() != head + 4 {
                return Err(StubError::WrongLength {
                    got: stub.len(),
                    want: head + 4,
                });
            }
            return Ok(Err(hresult));
        }
        if referent != u64::from(REFERENT) {
            return Err(StubError::BadReferent(referent));
        }
        let conformance = match self {
            Ndr::Ndr32 => u32_at(stub, 8).map(u64::from),
            Ndr::Ndr64 => u64_at(stub, 16),
        }
        .ok_or(StubError::TooShort(stub.len()))?;
        if conformance != size {
            return Err(StubError::SizeMismatch { size, conformance });
        }
        let start = head + if self == Ndr::Ndr32 { 4 } else { 8 };
        let end = start as u64 + size;
        let padded = end.next_multiple_of(4);
        let want = padded + 4;
        if stub.len() as u64 != want {
            return Err(StubError::WrongLength {
                got: stub.len(),
                want: want as usize,
            });
        }
        let (end, padded) = (end as usize, padded as usize);
        if stub[end..padded].iter().any(|&b| b != 0) {
            return Err(StubError::NonZeroPadding);
        }
        let hresult = u32_at(stub, padded).expect("length checked");
        if hresult != 0 {
            return Ok(Err(hresult));
        }
        Ok(Ok(stub[start..end].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stubs_match_the_spec_bytes() {
        assert_eq!(
            hex::encode(Ndr::Ndr32.encode_response(Err(0x8007000D))),
            "00000000000000000d000780"
        );
        assert_eq!(Ndr::Ndr64.encode_response(Err(0x8007000D)).len(), 20);
    }

    #[test]
    fn success_stub_sizes_match_the_spec() {
        // n = 260 (v6, 48-char ePID): NDR32 stub 16 + n, NDR64 28 + n.
        assert_eq!(Ndr::Ndr32.encode_response(Ok(&[1; 260])).len(), 276);
        assert_eq!(Ndr::Ndr64.encode_response(Ok(&[1; 260])).len(), 288);
        // n = 158 (v4): padded to 160 before the HRESULT.
        assert_eq!(
            Ndr::Ndr32.encode_response(Ok(&[1; 158])).len(),
            12 + 160 + 4
        );
    }

    #[test]
    fn request_and_response_stubs_round_trip() {
        for ndr in [Ndr::Ndr32, Ndr::Ndr64] {
            let payload = [7u8; 253];
            assert_eq!(
                ndr.decode_request(&ndr.encode_request(&payload)).unwrap(),
                &payload
            );
            assert_eq!(
                ndr.decode_response(&ndr.encode_response(Ok(&payload)))
                    .unwrap(),
                Ok(payload.to_vec())
            );
            assert_eq!(
                ndr.decode_response(&ndr.encode_response(Err(0xC004F042)))
                    .unwrap(),
                Err(0xC004F042)
            );
        }
    }

    #[test]
    fn inconsistent_request_stubs_are_typed_errors() {
        let mut stub = Ndr::Ndr32.encode_request(&[0; 10]);
        stub[4] = 11;
        assert_eq!(
            Ndr::Ndr32.decode_request(&stub),
            Err(StubError::SizeMismatch {
                size: 10,
                conformance: 11
            })
        );
        let mut stub = Ndr::Ndr32.encode_request(&[0; 10]);
        stub.truncate(12);
        assert_eq!(
            Ndr::Ndr32.decode_request(&stub),
            Err(StubError::Overrun { size: 10, len: 12 })
        );
        assert_eq!(
            Ndr::Ndr64.decode_request(&[0; 9]),
            Err(StubError::TooShort(9))
        );
    }
}
