//! request, response and fault PDU bodies (spec 3.7-3.9).

use super::pdu::{HEADER_LEN, Header, flags, ptype, u16_at, u32_at};

/// NCA status codes sent in faults.
pub mod status {
    /// Request on a presentation context that was never accepted.
    pub const UNKNOWN_INTERFACE: u32 = 0x1C01_0003;
    /// Operation number out of range (KMS has only opnum 0).
    pub const OP_RANGE_ERROR: u32 = 0x1C01_0002;
    /// Protocol error (here: a fragmented request, which no KMS client sends).
    pub const PROTOCOL_ERROR: u32 = 0x1C01_000B;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("{what} body of {len} bytes is too short")]
    TooShort { what: &'static str, len: usize },
}

/// A request PDU's fields; `stub` borrows from the PDU.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub alloc_hint: u32,
    pub context_id: u16,
    pub opnum: u16,
    pub stub: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn decode(header: &Header, body: &'a [u8]) -> Result<Self, CallError> {
        let too_short = CallError::TooShort {
            what: "request",
            len: body.len(),
        };
        let (Some(alloc_hint), Some(context_id), Some(opnum)) =
            (u32_at(body, 0), u16_at(body, 4), u16_at(body, 6))
        else {
            return Err(too_short);
        };
        // An object UUID, if flagged, sits between the fixed fields and the stub.
        let stub_at = if header.flags & flags::OBJECT_UUID != 0 {
            24
        } else {
            8
        };
        let stub = body.get(stub_at..).ok_or(too_short)?;
        Ok(Request {
            alloc_hint,
            context_id,
            opnum,
            stub,
        })
    }

    pub fn encode(call_id: u32, context_id: u16, stub: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(8 + stub.len());
        body.extend_from_slice(&(stub.len() as u32).to_le_bytes());
        body.extend_from_slice(&context_id.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(stub);
        Header::new(ptype::REQUEST, flags::FIRST_LAST, call_id).encode_with(&body)
    }
}

/// A response PDU's fields (client side).
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub alloc_hint: u32,
    pub context_id: u16,
    pub cancel_count: u8,
    pub stub: &'a [u8],
}

impl<'a> Response<'a> {
    /// A response PDU: alloc_hint is the exact stub length.
    pub fn encode(call_id: u32, context_id: u16, stub: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(8 + stub.len());
        body.extend_from_slice(&(stub.len() as u32).to_le_bytes());
        body.extend_from_slice(&context_id.to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(stub);
        Header::new(ptype::RESPONSE, flags::FIRST_LAST, call_id).encode_with(&body)
    }

    pub fn decode(body: &'a [u8]) -> Result<Self, CallError> {
        let (Some(alloc_hint), Some(context_id), Some(&cancel_count), Some(stub)) =
            (u32_at(body, 0), u16_at(body, 4), body.get(6), body.get(8..))
        else {
            return Err(CallError::TooShort {
                what: "response",
                len: body.len(),
            });
        };
        Ok(Response {
            alloc_hint,
            context_id,
            cancel_count,
            stub,
        })
    }
}

/// A fault PDU, 32 bytes. Unlike vlmcsd it echoes the request's call_id and
/// sends a zero cancel count.
pub fn encode_fault(call_id: u32, status: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(&32u32.to_le_bytes());
    body.extend_from_slice(&[0; 4]);
    body.extend_from_slice(&status.to_le_bytes());
    body.extend_from_slice(&[0; 4]);
    Header::new(
        ptype::FAULT,
        flags::FIRST_LAST | flags::DID_NOT_EXECUTE,
        call_id,
    )
    .encode_with(&body)
}

/// The status of a fault PDU body.
pub fn decode_fault(body: &[u8]) -> Result<u32, CallError> {
    u32_at(body, 8).ok_or(CallError::TooShort {
        what: "fault",
        len: body.len(),
    })
}

/// Splits a complete PDU into its header and body.
pub fn split(pdu: &[u8]) -> Option<(Header, &[u8])> {
    let header = Header::decode(pdu)?;
    Some((header, pdu.get(HEADER_LEN..header.frag_length as usize)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_is_32_bytes_with_the_callers_call_id() {
        let fault = encode_fault(9, status::UNKNOWN_INTERFACE);
        assert_eq!(fault.len(), 32);
        let (header, body) = split(&fault).unwrap();
        assert_eq!(
            (header.ptype, header.flags, header.call_id),
            (ptype::FAULT, 0x23, 9)
        );
        assert_eq!(decode_fault(body), Ok(status::UNKNOWN_INTERFACE));
        assert_eq!(body[6], 0, "cancel count");
    }

    #[test]
    fn request_and_response_round_trip() {
        let pdu = Request::encode(3, 1, &[5; 20]);
        let (header, body) = split(&pdu).unwrap();
        let req = Request::decode(&header, body).unwrap();
        assert_eq!(
            (req.alloc_hint, req.context_id, req.opnum, req.stub),
            (20, 1, 0, &[5u8; 20][..])
        );
        let pdu = Response::encode(3, 1, &[6; 12]);
        let (_, body) = split(&pdu).unwrap();
        let resp = Response::decode(body).unwrap();
        assert_eq!(
            (
                resp.alloc_hint,
                resp.context_id,
                resp.cancel_count,
                resp.stub
            ),
            (12, 1, 0, &[6u8; 12][..])
        );
        assert!(Request::decode(&header, &[0; 7]).is_err());
    }
}
