//! Syntax identifiers (spec 3.3): the KMS interface, the NDR transfer
//! syntaxes and the Bind Time Feature Negotiation pseudo syntax.

use uuid::{Uuid, uuid};

/// A GUID plus version, 20 bytes on the wire (GUID in Microsoft byte order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntaxId {
    pub uuid: Uuid,
    pub version: u32,
}

impl SyntaxId {
    pub const ZERO: SyntaxId = SyntaxId {
        uuid: Uuid::nil(),
        version: 0,
    };

    pub fn decode(b: &[u8]) -> Option<Self> {
        let guid: [u8; 16] = b.get(..16)?.try_into().ok()?;
        let version = super::pdu::u32_at(b, 16)?;
        Some(SyntaxId {
            uuid: Uuid::from_bytes_le(guid),
            version,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.uuid.to_bytes_le());
        out.extend_from_slice(&self.version.to_le_bytes());
    }
}

/// The KMS activation interface, version 1.0 (major 1 in the low u16).
pub const KMS_INTERFACE: SyntaxId = SyntaxId {
    uuid: uuid!("51c82175-844e-4750-b0d8-ec255555bc06"),
    version: 1,
};
pub const NDR32: SyntaxId = SyntaxId {
    uuid: uuid!("8a885d04-1ceb-11c9-9fe8-08002b104860"),
    version: 2,
};
pub const NDR64: SyntaxId = SyntaxId {
    uuid: uuid!("71710533-beba-4937-8319-b5dbef9ccc36"),
    version: 1,
};
/// BTFN's first 8 wire bytes; bytes 8-9 carry the requested feature bits.
const BTFN_PREFIX: [u8; 8] = [0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45];
/// Security-context multiplexing | keep connection on orphan.
pub const BTFN_FEATURES: u16 = 0x0003;

/// The feature bits of a BTFN pseudo syntax, or `None` if `s` is not one.
pub fn btfn_features(s: &SyntaxId) -> Option<u16> {
    let b = s.uuid.to_bytes_le();
    (b[..8] == BTFN_PREFIX).then(|| u16::from_le_bytes([b[8], b[9]]))
}

/// The BTFN pseudo syntax requesting `features`.
pub fn btfn(features: u16) -> SyntaxId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&BTFN_PREFIX);
    b[8..10].copy_from_slice(&features.to_le_bytes());
    SyntaxId {
        uuid: Uuid::from_bytes_le(b),
        version: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_match_the_spec() {
        let mut out = Vec::new();
        KMS_INTERFACE.encode(&mut out);
        assert_eq!(
            hex::encode(&out),
            "7521c8514e845047b0d8ec255555bc0601000000"
        );
        assert_eq!(btfn_features(&btfn(3)), Some(3));
        assert_eq!(
            btfn(3).uuid.to_string(),
            "6cb71c2c-9812-4540-0300-000000000000"
        );
        assert_eq!(btfn_features(&NDR32), None);
    }
}
