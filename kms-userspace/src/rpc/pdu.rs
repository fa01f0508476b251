//! The connection-oriented DCE/RPC common header (spec 3.1-3.2) and framing:
//! finding where one PDU ends in a byte stream.

pub const HEADER_LEN: usize = 16;
/// The largest PDU accepted (and the max_xmit/max_recv Windows offers). KMS
/// PDUs are under 320 bytes; anything bigger than this closes the connection.
pub const MAX_FRAG: usize = 5840;
/// Little-endian integers, ASCII, IEEE floats.
pub const DREP_LE: [u8; 4] = [0x10, 0, 0, 0];

pub mod ptype {
    pub const REQUEST: u8 = 0;
    pub const RESPONSE: u8 = 2;
    pub const FAULT: u8 = 3;
    pub const BIND: u8 = 11;
    pub const BIND_ACK: u8 = 12;
    pub const BIND_NAK: u8 = 13;
    pub const ALTER_CONTEXT: u8 = 14;
    pub const ALTER_CONTEXT_RESP: u8 = 15;
}

pub mod flags {
    pub const FIRST_FRAG: u8 = 0x01;
    pub const LAST_FRAG: u8 = 0x02;
    pub const CONC_MPX: u8 = 0x10;
    pub const DID_NOT_EXECUTE: u8 = 0x20;
    pub const OBJECT_UUID: u8 = 0x80;
    pub const FIRST_LAST: u8 = FIRST_FRAG | LAST_FRAG;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub rpc_vers: u8,
    pub rpc_vers_minor: u8,
    pub ptype: u8,
    pub flags: u8,
    pub drep: [u8; 4],
    pub frag_length: u16,
    pub auth_length: u16,
    pub call_id: u32,
}

impl Header {
    /// A header as this implementation sends it: RPC 5.0, little-endian, no auth.
    pub fn new(ptype: u8, flags: u8, call_id: u32) -> Self {
        Header {
            rpc_vers: 5,
            rpc_vers_minor: 0,
            ptype,
            flags,
            drep: DREP_LE,
            frag_length: 0,
            auth_length: 0,
            call_id,
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            rpc_vers: b[0],
            rpc_vers_minor: b[1],
            ptype: b[2],
            flags: b[3],
            drep: [b[4], b[5], b[6], b[7]],
            frag_length: u16::from_le_bytes([b[8], b[9]]),
            auth_length: u16::from_le_bytes([b[10], b[11]]),
            call_id: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        })
    }

    /// Writes the header followed by `body`, filling in frag_length.
    pub fn encode_with(mut self, body: &[u8]) -> Vec<u8> {
        let total = HEADER_LEN + body.len();
        self.frag_length = u16::try_from(total).expect("PDUs we build are small");
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&[self.rpc_vers, self.rpc_vers_minor, self.ptype, self.flags]);
        out.extend_from_slice(&self.drep);
        out.extend_from_slice(&self.frag_length.to_le_bytes());
        out.extend_from_slice(&self.auth_length.to_le_bytes());
        out.extend_from_slice(&self.call_id.to_le_bytes());
        out.extend_from_slice(body);
        out
    }
}

/// Why a byte stream cannot be framed into PDUs; the connection is closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frag_length {0} is shorter than the 16-byte header")]
    TooShort(u16),
    #[error("frag_length {0} exceeds the {MAX_FRAG}-byte maximum")]
    TooLong(u16),
    #[error("unsupported PDU type {0}")]
    UnknownType(u8),
}

/// The length of the first complete PDU in `buf`, `Ok(None)` if more bytes
/// are needed. Unknown PDU types are refused as soon as the header is in,
/// without waiting for a body that may never come.
pub fn frame(buf: &[u8], accepted_types: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(header) = Header::decode(buf) else {
        return Ok(None);
    };
    if !accepted_types.contains(&header.ptype) {
        return Err(FrameError::UnknownType(header.ptype));
    }
    let len = header.frag_length as usize;
    if len < HEADER_LEN {
        return Err(FrameError::TooShort(header.frag_length));
    }
    if len > MAX_FRAG {
        return Err(FrameError::TooLong(header.frag_length));
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Little-endian reads at fixed offsets, `None` past the end.
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_TYPES: [u8; 3] = [ptype::REQUEST, ptype::BIND, ptype::ALTER_CONTEXT];

    #[test]
    fn frames_wait_for_the_whole_pdu() {
        let pdu = Header::new(ptype::BIND, 3, 2).encode_with(&[0u8; 56]);
        assert_eq!(frame(&pdu[..8], &SERVER_TYPES), Ok(None));
        assert_eq!(frame(&pdu[..40], &SERVER_TYPES), Ok(None));
        assert_eq!(frame(&pdu, &SERVER_TYPES), Ok(Some(72)));
        let mut two = pdu.clone();
        two.extend_from_slice(&pdu);
        assert_eq!(frame(&two, &SERVER_TYPES), Ok(Some(72)));
    }

    #[test]
    fn bad_lengths_and_types_are_refused_from_the_header_alone() {
        let mut pdu = Header::new(ptype::BIND, 3, 2).encode_with(&[]);
        pdu[8] = 8;
        assert_eq!(frame(&pdu, &SERVER_TYPES), Err(FrameError::TooShort(8)));
        pdu[8..10].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(frame(&pdu, &SERVER_TYPES), Err(FrameError::TooLong(0xffff)));
        pdu[2] = 1;
        assert_eq!(frame(&pdu, &SERVER_TYPES), Err(FrameError::UnknownType(1)));
        assert_eq!(
            frame(b"GET / HTTP/1.1\r\nHost", &SERVER_TYPES),
            Err(FrameError::UnknownType(b'T'))
        );
    }
}
