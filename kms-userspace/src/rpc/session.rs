//! One connection's RPC state and the server's reaction to each PDU: the pure
//! core of the connection loop, with no I/O so it can be tested byte by byte.

use super::{
    bind::{self, AckBody, BindBody, Offer},
    call::{self, Request, Response, status},
    ndr::Ndr,
    pdu::{Header, flags, ptype},
};

/// The PDU types a server accepts; anything else closes the connection.
pub const SERVER_PDU_TYPES: [u8; 3] = [ptype::REQUEST, ptype::BIND, ptype::ALTER_CONTEXT];

/// Server-wide RPC settings.
#[derive(Clone, Debug)]
pub struct RpcOptions {
    pub offer: Offer,
}

/// What the KMS layer is asked to do with one request.
pub struct Call<'a> {
    pub ndr: Ndr,
    pub call_id: u32,
    /// The KMS payload, or why the stub could not be decoded.
    pub payload: Result<&'a [u8], super::ndr::StubError>,
}

/// The server's reaction to a PDU.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Reply(Vec<u8>),
    Close(CloseReason),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("malformed bind: {0}")]
    BadBind(#[from] bind::BindError),
    #[error("malformed request: {0}")]
    BadRequest(#[from] call::CallError),
}

/// Per-connection state: accepted contexts and the association group.
pub struct Session {
    options: RpcOptions,
    assoc_group: u32,
    /// ASCII decimal port the client connected to (bind_ack's sec_addr).
    port: Vec<u8>,
    contexts: Vec<(u16, Ndr)>,
}

impl Session {
    pub fn new(options: RpcOptions, assoc_group: u32, local_port: u16) -> Self {
        Session {
            options,
            assoc_group,
            port: local_port.to_string().into_bytes(),
            contexts: Vec::new(),
        }
    }

    fn context(&self, id: u16) -> Option<Ndr> {
        self.contexts
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, n)| *n)
    }

    /// Reacts to one complete PDU (framed by [`super::pdu::frame`] with
    /// [`SERVER_PDU_TYPES`]). `kms` answers a KMS call with a response
    /// payload or an HRESULT.
    pub fn handle(
        &mut self,
        pdu: &[u8],
        kms: impl FnOnce(Call<'_>) -> Result<Vec<u8>, u32>,
    ) -> Action {
        let Some((header, body)) = call::split(pdu) else {
            // Framing guarantees a whole PDU; treat anything else as garbage.
            return Action::Close(CloseReason::BadRequest(call::CallError::TooShort {
                what: "pdu",
                len: pdu.len(),
            }));
        };
        match header.ptype {
            ptype::BIND | ptype::ALTER_CONTEXT => self.bind(&header, body),
            _ => self.request(&header, body, kms),
        }
    }

    fn bind(&mut self, header: &Header, body: &[u8]) -> Action {
        let request = match BindBody::decode(body) {
            Ok(request) => request,
            Err(e) => return Action::Close(e.into()),
        };
        let (results, decided) = bind::negotiate(&request, self.options.offer);
        for (id, ndr) in decided {
            self.contexts.retain(|(c, _)| *c != id);
            if let Some(ndr) = ndr {
                self.contexts.push((id, ndr));
            }
        }
        let is_bind = header.ptype == ptype::BIND;
        let ack = AckBody {
            max_xmit: request.max_xmit,
            max_recv: request.max_recv,
            assoc_group: self.assoc_group,
            sec_addr: if is_bind {
                self.port.clone()
            } else {
                Vec::new()
            },
            results,
        };
        // bind_ack echoes the multiplex flag; alter_context_resp never sets it.
        let (reply_type, reply_flags) = if is_bind {
            (
                ptype::BIND_ACK,
                flags::FIRST_LAST | (header.flags & flags::CONC_MPX),
            )
        } else {
            (ptype::ALTER_CONTEXT_RESP, flags::FIRST_LAST)
        };
        Action::Reply(
            Header::new(reply_type, reply_flags, header.call_id).encode_with(&ack.encode()),
        )
    }

    fn request(
        &mut self,
        header: &Header,
        body: &[u8],
        kms: impl FnOnce(Call<'_>) -> Result<Vec<u8>, u32>,
    ) -> Action {
        let request = match Request::decode(header, body) {
            Ok(request) => request,
            Err(e) => return Action::Close(e.into()),
        };
        let fault = |code| Action::Reply(call::encode_fault(header.call_id, code));
        let Some(ndr) = self.context(request.context_id) else {
            return fault(status::UNKNOWN_INTERFACE);
        };
        if request.opnum != 0 {
            return fault(status::OP_RANGE_ERROR);
        }
        if header.flags & flags::FIRST_LAST != flags::FIRST_LAST {
            return fault(status::PROTOCOL_ERROR);
        }
        let answer = kms(Call {
            ndr,
            call_id: header.call_id,
            payload: ndr.decode_request(request.stub),
        });
        let stub = match &answer {
            Ok(payload) => ndr.encode_response(Ok(payload)),
            Err(hresult) => ndr.encode_response(Err(*hresult)),
        };
        Action::Reply(Response::encode(header.call_id, request.context_id, &stub))
    }
}
