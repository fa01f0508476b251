//! The KMS request and response structures (spec 4.2, 4.3), version-neutral
//! and in plaintext. Decoders check every length and return typed errors.

use uuid::Uuid;

/// Size of the request structure common to v4, v5 and v6.
pub const REQUEST_BASE_LEN: usize = 236;
/// Workstation name: 64 UTF-16 code units.
const WORKSTATION_LEN: usize = 128;
/// The ePID may have at most 63 characters plus its NUL (PIDSize ≤ 128).
pub const MAX_PID_SIZE: usize = 128;

/// KMS protocol version as on the wire: minor then major, both u16 LE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
}

impl Version {
    pub const V4: Version = Version { major: 4, minor: 0 };
    pub const V5: Version = Version { major: 5, minor: 0 };
    pub const V6: Version = Version { major: 6, minor: 0 };

    pub fn from_bytes(b: [u8; 4]) -> Self {
        Version {
            minor: u16::from_le_bytes([b[0], b[1]]),
            major: u16::from_le_bytes([b[2], b[3]]),
        }
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let [a, b] = self.minor.to_le_bytes();
        let [c, d] = self.major.to_le_bytes();
        [a, b, c, d]
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("KMS message too short: {len} bytes, need {need}")]
    TooShort { len: usize, need: usize },
    #[error("ePID size {0} is invalid (odd, zero or over 128 bytes)")]
    BadPidSize(usize),
    #[error("ePID is not NUL-terminated exactly at its end")]
    BadPidTerminator,
}

/// The 236-byte request base (spec 4.2). The workstation field is kept as
/// its raw 128 bytes: clients leave junk after the NUL and the v4 MAC and
/// v5/v6 ciphertext cover it, so it must survive a decode/encode round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestBase {
    pub version: Version,
    pub vm_info: u32,
    pub license_status: u32,
    pub binding_expiration: u32,
    pub app_id: Uuid,
    pub act_id: Uuid,
    pub kms_id: Uuid,
    pub cmid: Uuid,
    pub n_policy: u32,
    pub client_time: u64,
    pub cmid_prev: Uuid,
    pub workstation_raw: [u8; WORKSTATION_LEN],
}

/// Cursor over a byte slice whose reads are bounds-checked by the caller's
/// single length check; kept private so every use is covered by one.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let out = self.bytes[self.at..self.at + N]
            .try_into()
            .expect("length checked by caller");
        self.at += N;
        out
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn guid(&mut self) -> Uuid {
        Uuid::from_bytes_le(self.take())
    }
}

impl RequestBase {
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        if bytes.len() < REQUEST_BASE_LEN {
            return Err(MessageError::TooShort {
                len: bytes.len(),
                need: REQUEST_BASE_LEN,
            });
        }
        let mut r = Reader { bytes, at: 0 };
        Ok(RequestBase {
            version: Version::from_bytes(r.take()),
            vm_info: r.u32(),
            license_status: r.u32(),
            binding_expiration: r.u32(),
            app_id: r.guid(),
            act_id: r.guid(),
            kms_id: r.guid(),
            cmid: r.guid(),
            n_policy: r.u32(),
            client_time: r.u64(),
            cmid_prev: r.guid(),
            workstation_raw: r.take(),
        })
    }

    pub fn encode(&self) -> [u8; REQUEST_BASE_LEN] {
        let mut out = Vec::with_capacity(REQUEST_BASE_LEN);
        out.extend_from_slice(&self.version.to_bytes());
        out.extend_from_slice(&self.vm_info.to_le_bytes());
        out.extend_from_slice(&self.license_status.to_le_bytes());
        out.extend_from_slice(&self.binding_expiration.to_le_bytes());
        for id in [self.app_id, self.act_id, self.kms_id, self.cmid] {
            out.extend_from_slice(&id.to_bytes_le());
        }
        out.extend_from_slice(&self.n_policy.to_le_bytes());
        out.extend_from_slice(&self.client_time.to_le_bytes());
        out.extend_from_slice(&self.cmid_prev.to_bytes_le());
        out.extend_from_slice(&self.workstation_raw);
        out.try_into().expect("fields add up to 236 bytes")
    }

    /// The workstation name up to its first NUL (junk after it is ignored).
    pub fn workstation(&self) -> String {
        let units: Vec<u16> = self
            .workstation_raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    }

    /// A workstation field holding `name` (cut to 63 UTF-16 units), NUL, zeros.
    pub fn workstation_field(name: &str) -> [u8; WORKSTATION_LEN] {
        let mut raw = [0u8; WORKSTATION_LEN];
        for (i, unit) in name
            .encode_utf16()
            .take(WORKSTATION_LEN / 2 - 1)
            .enumerate()
        {
            raw[2 * i..2 * i + 2].copy_from_slice(&unit.to_le_bytes());
        }
        raw
    }
}

/// The response base (spec 4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseBase {
    pub version: Version,
    pub epid: String,
    pub cmid: Uuid,
    pub client_time: u64,
    pub count: u32,
    pub activation_interval: u32,
    pub renewal_interval: u32,
}

impl ResponseBase {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let pid: Vec<u16> = self.epid.encode_utf16().chain(std::iter::once(0)).collect();
        out.extend_from_slice(&self.version.to_bytes());
        out.extend_from_slice(&(2 * pid.len() as u32).to_le_bytes());
        for unit in pid {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        out.extend_from_slice(&self.cmid.to_bytes_le());
        out.extend_from_slice(&self.client_time.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.activation_interval.to_le_bytes());
        out.extend_from_slice(&self.renewal_interval.to_le_bytes());
    }

    /// Decodes a response base from the start of `bytes`; returns it and its length.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), MessageError> {
        if bytes.len() < 8 {
            return Err(MessageError::TooShort {
                len: bytes.len(),
                need: 8,
            });
        }
        let pid_size = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        if pid_size == 0 || !pid_size.is_multiple_of(2) || pid_size > MAX_PID_SIZE {
            return Err(MessageError::BadPidSize(pid_size));
        }
        let len = 8 + pid_size + 36;
        if bytes.len() < len {
            return Err(MessageError::TooShort {
                len: bytes.len(),
                need: len,
            });
        }
        let units: Vec<u16> = bytes[8..8 + pid_size]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let (last, chars) = units.split_last().expect("pid_size >= 2");
        if *last != 0 || chars.contains(&0) {
            return Err(MessageError::BadPidTerminator);
        }
        let mut r = Reader {
            bytes,
            at: 8 + pid_size,
        };
        let base = ResponseBase {
            version: Version::from_bytes(bytes[0..4].try_into().expect("4 bytes")),
            epid: String::from_utf16_lossy(chars),
            cmid: r.guid(),
            client_time: r.u64(),
            count: r.u32(),
            activation_interval: r.u32(),
            renewal_interval: r.u32(),
        };
        Ok((base, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_spec_request_and_reencodes_it_byte_for_byte() {
        // proto_v6.json, request_plain_hex.
        let hex = "000006000000000002000000c0a800003427c95582d6714d983ed6ec3f16059f9273e62da7b72a46b1ca108dd189f5884f13e258118e174d9cb291069c1511483043db5e0d2c314ea7a69ad570e9beb119000000807863c0d583dd0100000000000000000000000000000000630065006f002d006c006100700074006f0070002e00730061006d00730075006e0067002e006d0065000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
        let bytes = hex::decode(hex).unwrap();
        let req = RequestBase::decode(&bytes).unwrap();
        assert_eq!(req.version, Version::V6);
        assert_eq!(req.license_status, 2);
        assert_eq!(req.binding_expiration, 43200);
        assert_eq!(
            req.app_id.to_string(),
            "55c92734-d682-4d71-983e-d6ec3f16059f"
        );
        assert_eq!(
            req.kms_id.to_string(),
            "58e2134f-8e11-4d17-9cb2-91069c151148"
        );
        assert_eq!(req.n_policy, 25);
        assert_eq!(req.client_time, 134408517970000000);
        assert_eq!(req.workstation(), "ceo-laptop.samsung.me");
        assert_eq!(req.encode().to_vec(), bytes);
    }

    #[test]
    fn short_requests_are_a_typed_error() {
        assert_eq!(
            RequestBase::decode(&[0; 235]),
            Err(MessageError::TooShort {
                len: 235,
                need: 236
            })
        );
    }

    #[test]
    fn response_base_round_trips_and_rejects_bad_pids() {
        let base = ResponseBase {
            version: Version::V5,
            epid: "03612-00206-556-123727-03-1033-17763.0000-2972018".into(),
            cmid: Uuid::from_u128(7),
            client_time: 42,
            count: 50,
            activation_interval: 120,
            renewal_interval: 10080,
        };
        let mut out = Vec::new();
        base.encode(&mut out);
        assert_eq!(out.len(), 44 + 100);
        assert_eq!(ResponseBase::decode(&out).unwrap(), (base, 144));
        out[8] = 0; // a NUL inside the ePID
        out[9] = 0;
        assert_eq!(
            ResponseBase::decode(&out),
            Err(MessageError::BadPidTerminator)
        );
        out[4] = 130;
        assert_eq!(
            ResponseBase::decode(&out),
            Err(MessageError::BadPidSize(130))
        );
    }
}
