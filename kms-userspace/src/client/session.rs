//! One client connection, as vlmcs does it: bind (NDR32 + NDR64 + BTFN
//! offered), an alter_context for NDR32 when the server preferred NDR64,
//! then requests; every reply is checked the way a real client checks it.

use std::{net::SocketAddr, time::Duration};

use bytes::BytesMut;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::timeout,
};

use crate::{
    kms::{
        message::RequestBase,
        protocol::{self, Ciphers, VerifiedResponse},
    },
    rpc::{
        bind::{self, AckBody, BindBody, ContextElement},
        call::{self, Request, Response},
        ndr::Ndr,
        pdu::{self, Header, flags, ptype},
        syntax::{self, KMS_INTERFACE, NDR32, NDR64},
    },
};

/// How the client binds.
#[derive(Clone, Copy, Debug)]
pub struct BindOptions {
    pub ndr64: bool,
    pub btfn: bool,
    pub multiplex: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("timed out waiting for the server")]
    Timeout,
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection")]
    Closed,
    #[error("bad reply: {0}")]
    Protocol(String),
    #[error("server fault 0x{0:08X}")]
    Fault(u32),
    #[error("server refused the activation: HRESULT 0x{0:08X} ({name})", name = crate::kms::hresult::name(*.0))]
    Refused(u32),
    #[error("response failed verification: {0}")]
    Verify(#[from] protocol::VerifyError),
    #[error(
        "server reports {count} active clients, below the product's required {required} (client error 0xC004F038)"
    )]
    CountTooLow { count: u32, required: u32 },
}

fn protocol_error(what: impl Into<String>) -> ClientError {
    ClientError::Protocol(what.into())
}

pub struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    timeout: Duration,
    /// Context used for the first request (NDR32, as vlmcs) and later ones.
    first: (u16, Ndr),
    later: (u16, Ndr),
    requests_sent: u32,
}

/// Connects from `source` (any port) when given, else from the default.
async fn connect(addr: SocketAddr, source: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

impl Connection {
    /// Connects and binds; `call_id` is the client's running call id (vlmcs
    /// keeps counting across reconnects).
    pub async fn open(
        addr: SocketAddr,
        source: Option<std::net::IpAddr>,
        opts: BindOptions,
        limit: Duration,
        call_id: u32,
    ) -> Result<Self, ClientError> {
        let stream = timeout(limit, connect(addr, source))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|e| ClientError::Connect(addr, e))?;
        stream.set_nodelay(true)?;
        let mut conn = Connection {
            stream,
            buf: BytesMut::with_capacity(512),
            timeout: limit,
            first: (0, Ndr::Ndr32),
            later: (0, Ndr::Ndr32),
            requests_sent: 0,
        };
        conn.bind(opts, call_id).await?;
        Ok(conn)
    }

    async fn bind(&mut self, opts: BindOptions, call_id: u32) -> Result<(), ClientError> {
        let element = |id, syntax| ContextElement {
            id,
            abstract_syntax: KMS_INTERFACE,
            transfer_syntaxes: vec![syntax],
        };
        let mut contexts = vec![element(0, NDR32)];
        if opts.ndr64 {
            contexts.push(element(1, NDR64));
        }
        if opts.btfn {
            contexts.push(element(
                contexts.len() as u16,
                syntax::btfn(syntax::BTFN_FEATURES),
            ));
        }
        let body = BindBody {
            max_xmit: 5840,
            max_recv: 5840,
            assoc_group: 0,
            contexts: contexts.clone(),
        };
        let bind_flags = flags::FIRST_LAST | if opts.multiplex { flags::CONC_MPX } else { 0 };
        self.send(&Header::new(ptype::BIND, bind_flags, call_id).encode_with(&body.encode()))
            .await?;
        let (header, ack_body) = self.receive().await?;
        let ack = expect_ack(&header, &ack_body, ptype::BIND_ACK, call_id, contexts.len())?;
        if (header.flags & flags::CONC_MPX != 0) != opts.multiplex {
            return Err(protocol_error("bind_ack does not echo the multiplex flag"));
        }
        if ack.assoc_group == 0 {
            return Err(protocol_error("bind_ack carries association group 0"));
        }
        let mut ndr32 = None;
        let mut ndr64 = None;
        for (offered, result) in contexts.iter().zip(&ack.results) {
            check_result(offered, result)?;
            if result.result == bind::ACCEPTANCE {
                match result.syntax {
                    s if s == NDR32 => ndr32 = Some(offered.id),
                    _ => ndr64 = Some(offered.id),
                }
            }
        }
        if ndr32.is_none() && ndr64.is_none() {
            return Err(protocol_error("server accepted no transfer syntax"));
        }
        if ndr32.is_none() {
            // The server preferred NDR64: bind NDR32 too, as vlmcs does.
            let alter = BindBody {
                max_xmit: 5840,
                max_recv: 5840,
                assoc_group: 0,
                contexts: vec![element(0, NDR32)],
            };
            self.send(
                &Header::new(ptype::ALTER_CONTEXT, bind_flags, call_id)
                    .encode_with(&alter.encode()),
            )
            .await?;
            let (header, body) = self.receive().await?;
            let ack = expect_ack(&header, &body, ptype::ALTER_CONTEXT_RESP, call_id, 1)?;
            if header.flags & flags::CONC_MPX != 0 {
                return Err(protocol_error("alter_context_resp sets the multiplex flag"));
            }
            if ack.results[0].result == bind::ACCEPTANCE && ack.results[0].syntax == NDR32 {
                ndr32 = Some(0);
            }
        }
        self.first = match (ndr32, ndr64) {
            (Some(id), _) => (id, Ndr::Ndr32),
            (None, Some(id)) => (id, Ndr::Ndr64),
            (None, None) => unreachable!("checked above"),
        };
        self.later = ndr64.map_or(self.first, |id| (id, Ndr::Ndr64));
        Ok(())
    }

    /// One activation on this connection; verifies everything.
    pub async fn activate(
        &mut self,
        ciphers: &Ciphers,
        base: &RequestBase,
        call_id: u32,
    ) -> Result<VerifiedResponse, ClientError> {
        let (context, ndr) = if self.requests_sent == 0 {
            self.first
        } else {
            self.later
        };
        self.requests_sent += 1;
        let (payload, pending) = protocol::encode_request(ciphers, base, &mut rand::rng());
        self.send(&Request::encode(
            call_id,
            context,
            &ndr.encode_request(&payload),
        ))
        .await?;
        let (header, body) = self.receive().await?;
        if header.call_id != call_id {
            return Err(protocol_error(format!(
                "reply call_id {} differs from request's {call_id}",
                header.call_id
            )));
        }
        match header.ptype {
            ptype::RESPONSE => {}
            ptype::FAULT => return Err(ClientError::Fault(call::decode_fault(&body).unwrap_or(0))),
            other => {
                return Err(protocol_error(format!(
                    "expected a response PDU, got type {other}"
                )));
            }
        }
        check_reply_header(&header)?;
        let response = Response::decode(&body).map_err(|e| protocol_error(e.to_string()))?;
        if response.context_id != context {
            return Err(protocol_error(
                "response names another presentation context",
            ));
        }
        if response.cancel_count != 0 {
            return Err(protocol_error("response cancel_count is not 0"));
        }
        if response.alloc_hint as usize != response.stub.len() {
            return Err(protocol_error("alloc_hint differs from the stub length"));
        }
        let kms = ndr
            .decode_response(response.stub)
            .map_err(|e| protocol_error(e.to_string()))?;
        let kms = kms.map_err(ClientError::Refused)?;
        let verified = protocol::verify_response(ciphers, &pending, &kms)?;
        if verified.base.count < base.n_policy {
            return Err(ClientError::CountTooLow {
                count: verified.base.count,
                required: base.n_policy,
            });
        }
        Ok(verified)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| ClientError::Timeout)??;
        Ok(())
    }

    /// Reads one complete PDU.
    async fn receive(&mut self) -> Result<(Header, Vec<u8>), ClientError> {
        const REPLY_TYPES: [u8; 5] = [
            ptype::RESPONSE,
            ptype::FAULT,
            ptype::BIND_ACK,
            ptype::BIND_NAK,
            ptype::ALTER_CONTEXT_RESP,
        ];
        loop {
            if let Some(len) =
                pdu::frame(&self.buf, &REPLY_TYPES).map_err(|e| protocol_error(e.to_string()))?
            {
                let frame = self.buf.split_to(len);
                let (header, body) =
                    call::split(&frame).ok_or_else(|| protocol_error("truncated PDU"))?;
                return Ok((header, body.to_vec()));
            }
            let n = timeout(self.timeout, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| ClientError::Timeout)??;
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}

/// What vlmcs requires of every reply header.
fn check_reply_header(header: &Header) -> Result<(), ClientError> {
    if header.drep != pdu::DREP_LE
        || header.auth_length != 0
        || (header.rpc_vers, header.rpc_vers_minor) != (5, 0)
    {
        return Err(protocol_error(
            "reply header is not RPC 5.0 / little-endian / unauthenticated",
        ));
    }
    Ok(())
}

fn expect_ack(
    header: &Header,
    body: &[u8],
    want: u8,
    call_id: u32,
    results: usize,
) -> Result<AckBody, ClientError> {
    if header.ptype != want {
        return Err(protocol_error(format!(
            "expected PDU type {want}, got {}",
            header.ptype
        )));
    }
    if header.call_id != call_id {
        return Err(protocol_error("bind reply call_id differs"));
    }
    check_reply_header(header)?;
    let ack = AckBody::decode(body).map_err(|e| protocol_error(e.to_string()))?;
    if ack.results.len() != results {
        return Err(protocol_error(format!(
            "{} bind results for {results} contexts",
            ack.results.len()
        )));
    }
    Ok(ack)
}

/// The result rules vlmcs checks: accepted results echo the offered syntax,
/// rejections are zeroed with reason 2, BTFN is acknowledged with mask 3.
fn check_result(offered: &ContextElement, result: &bind::ContextResult) -> Result<(), ClientError> {
    let syntax = offered.transfer_syntaxes[0];
    let ok = match result.result {
        bind::ACCEPTANCE => {
            result.reason == 0
                && result.syntax == syntax
                && syntax::btfn_features(&syntax).is_none()
        }
        bind::NEGOTIATE_ACK => {
            syntax::btfn_features(&syntax).is_some()
                && result.reason == syntax::BTFN_FEATURES
                && result.syntax == syntax::SyntaxId::ZERO
        }
        bind::PROVIDER_REJECTION => {
            result.reason == bind::TRANSFER_SYNTAXES_NOT_SUPPORTED
                && result.syntax == syntax::SyntaxId::ZERO
        }
        _ => false,
    };
    if !ok {
        return Err(protocol_error(format!(
            "unexpected bind result {}/{} for context {}",
            result.result, result.reason, offered.id
        )));
    }
    Ok(())
}
