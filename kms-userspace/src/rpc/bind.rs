//! bind / alter_context and their acknowledgements (spec 3.4-3.6), and
//! presentation-context negotiation.

use super::{
    ndr::Ndr,
    pdu::{u16_at, u32_at},
    syntax::{self, KMS_INTERFACE, NDR32, NDR64, SyntaxId},
};

/// Presentation result codes.
pub const ACCEPTANCE: u16 = 0;
pub const PROVIDER_REJECTION: u16 = 2;
pub const NEGOTIATE_ACK: u16 = 3;
/// Rejection reasons.
pub const ABSTRACT_SYNTAX_NOT_SUPPORTED: u16 = 1;
pub const TRANSFER_SYNTAXES_NOT_SUPPORTED: u16 = 2;

const ELEMENT_HEAD: usize = 24;
const SYNTAX_LEN: usize = 20;
const RESULT_LEN: usize = 24;

#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    #[error("bind body of {0} bytes is shorter than its fixed part")]
    TooShort(usize),
    #[error("context element {index} overruns the PDU")]
    ElementOverrun { index: usize },
    #[error("bind_ack results overrun the PDU")]
    ResultsOverrun,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextElement {
    pub id: u16,
    pub abstract_syntax: SyntaxId,
    pub transfer_syntaxes: Vec<SyntaxId>,
}

/// The body of a bind or alter_context PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindBody {
    pub max_xmit: u16,
    pub max_recv: u16,
    pub assoc_group: u32,
    pub contexts: Vec<ContextElement>,
}

impl BindBody {
    pub fn decode(body: &[u8]) -> Result<Self, BindError> {
        let (Some(max_xmit), Some(max_recv), Some(assoc_group), Some(&count)) = (
            u16_at(body, 0),
            u16_at(body, 2),
            u32_at(body, 4),
            body.get(8),
        ) else {
            return Err(BindError::TooShort(body.len()));
        };
        let mut contexts = Vec::with_capacity(count as usize);
        let mut at = 12;
        for index in 0..count as usize {
            let overrun = BindError::ElementOverrun { index };
            let head = body.get(at..at + ELEMENT_HEAD).ok_or(overrun)?;
            let n = head[2] as usize;
            let syntaxes = body
                .get(at + ELEMENT_HEAD..at + ELEMENT_HEAD + n * SYNTAX_LEN)
                .ok_or(overrun)?;
            contexts.push(ContextElement {
                id: u16::from_le_bytes([head[0], head[1]]),
                abstract_syntax: SyntaxId::decode(&head[4..]).ok_or(overrun)?,
                transfer_syntaxes: syntaxes
                    .chunks_exact(SYNTAX_LEN)
                    .filter_map(SyntaxId::decode)
                    .collect(),
            });
            at += ELEMENT_HEAD + n * SYNTAX_LEN;
        }
        Ok(BindBody {
            max_xmit,
            max_recv,
            assoc_group,
            contexts,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.contexts.len() * 44);
        out.extend_from_slice(&self.max_xmit.to_le_bytes());
        out.extend_from_slice(&self.max_recv.to_le_bytes());
        out.extend_from_slice(&self.assoc_group.to_le_bytes());
        out.extend_from_slice(&[self.contexts.len() as u8, 0, 0, 0]);
        for c in &self.contexts {
            out.extend_from_slice(&c.id.to_le_bytes());
            out.extend_from_slice(&[c.transfer_syntaxes.len() as u8, 0]);
            c.abstract_syntax.encode(&mut out);
            for s in &c.transfer_syntaxes {
                s.encode(&mut out);
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextResult {
    pub result: u16,
    pub reason: u16,
    pub syntax: SyntaxId,
}

impl ContextResult {
    fn rejected(reason: u16) -> Self {
        ContextResult {
            result: PROVIDER_REJECTION,
            reason,
            syntax: SyntaxId::ZERO,
        }
    }
    fn accepted(syntax: SyntaxId) -> Self {
        ContextResult {
            result: ACCEPTANCE,
            reason: 0,
            syntax,
        }
    }
}

/// The body of a bind_ack or alter_context_resp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckBody {
    pub max_xmit: u16,
    pub max_recv: u16,
    pub assoc_group: u32,
    /// Secondary address without its NUL: the port as ASCII in a bind_ack,
    /// empty in an alter_context_resp.
    pub sec_addr: Vec<u8>,
    pub results: Vec<ContextResult>,
}

impl AckBody {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.results.len() * RESULT_LEN);
        out.extend_from_slice(&self.max_xmit.to_le_bytes());
        out.extend_from_slice(&self.max_recv.to_le_bytes());
        out.extend_from_slice(&self.assoc_group.to_le_bytes());
        let addr_len = if self.sec_addr.is_empty() {
            0
        } else {
            self.sec_addr.len() + 1
        };
        out.extend_from_slice(&(addr_len as u16).to_le_bytes());
        out.extend_from_slice(&self.sec_addr);
        if addr_len > 0 {
            out.push(0);
        }
        // Results start 4-aligned from the PDU start (16-byte header + body).
        out.resize((16 + out.len()).next_multiple_of(4) - 16, 0);
        out.extend_from_slice(&[self.results.len() as u8, 0, 0, 0]);
        for r in &self.results {
            out.extend_from_slice(&r.result.to_le_bytes());
            out.extend_from_slice(&r.reason.to_le_bytes());
            r.syntax.encode(&mut out);
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, BindError> {
        let (Some(max_xmit), Some(max_recv), Some(assoc_group), Some(addr_len)) = (
            u16_at(body, 0),
            u16_at(body, 2),
            u32_at(body, 4),
            u16_at(body, 8),
        ) else {
            return Err(BindError::TooShort(body.len()));
        };
        let addr_len = addr_len as usize;
        let addr = body
            .get(10..10 + addr_len)
            .ok_or(BindError::TooShort(body.len()))?;
        let sec_addr = addr.split(|&b| b == 0).next().unwrap_or_default().to_vec();
        let at = (16 + 10 + addr_len).next_multiple_of(4) - 16;
        let count = *body.get(at).ok_or(BindError::TooShort(body.len()))? as usize;
        let raw = body
            .get(at + 4..at + 4 + count * RESULT_LEN)
            .ok_or(BindError::ResultsOverrun)?;
        let results = raw
            .chunks_exact(RESULT_LEN)
            .map(|r| ContextResult {
                result: u16::from_le_bytes([r[0], r[1]]),
                reason: u16::from_le_bytes([r[2], r[3]]),
                syntax: SyntaxId::decode(&r[4..]).expect("24-byte chunk"),
            })
            .collect();
        Ok(AckBody {
            max_xmit,
            max_recv,
            assoc_group,
            sec_addr,
            results,
        })
    }
}

/// What the server offers in negotiation.
#[derive(Clone, Copy, Debug)]
pub struct Offer {
    pub ndr64: bool,
    pub btfn: bool,
}

/// Applies the negotiation rules of spec 3.5 to every element: one result
/// per element, in order, and the contexts that were accepted (a rejected
/// element removes an earlier acceptance of the same id).
pub fn negotiate(body: &BindBody, offer: Offer) -> (Vec<ContextResult>, Vec<(u16, Option<Ndr>)>) {
    // Preferring NDR64 means refusing NDR32 when the same PDU offers NDR64.
    let ndr64_offered = offer.ndr64
        && body
            .contexts
            .iter()
            .any(|c| c.abstract_syntax == KMS_INTERFACE && c.transfer_syntaxes.contains(&NDR64));
    let mut results = Vec::with_capacity(body.contexts.len());
    let mut contexts = Vec::with_capacity(body.contexts.len());
    for element in &body.contexts {
        if element.abstract_syntax.uuid != KMS_INTERFACE.uuid {
            results.push(ContextResult::rejected(ABSTRACT_SYNTAX_NOT_SUPPORTED));
            contexts.push((element.id, None));
            continue;
        }
        let chosen = element.transfer_syntaxes.iter().find_map(|s| {
            if *s == NDR32 && !ndr64_offered {
                Some((ContextResult::accepted(NDR32), Some(Ndr::Ndr32)))
            } else if *s == NDR64 && offer.ndr64 {
                Some((ContextResult::accepted(NDR64), Some(Ndr::Ndr64)))
            } else if let Some(bits) = syntax::btfn_features(s).filter(|_| offer.btfn) {
                let ack = ContextResult {
                    result: NEGOTIATE_ACK,
                    reason: bits & syntax::BTFN_FEATURES,
                    syntax: SyntaxId::ZERO,
                };
                Some((ack, None))
            } else {
                None
            }
        });
        let (result, ndr) = chosen.unwrap_or((
            ContextResult::rejected(TRANSFER_SYNTAXES_NOT_SUPPORTED),
            None,
        ));
        results.push(result);
        contexts.push((element.id, ndr));
    }
    (results, contexts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(id: u16, syntax: SyntaxId) -> ContextElement {
        ContextElement {
            id,
            abstract_syntax: KMS_INTERFACE,
            transfer_syntaxes: vec![syntax],
        }
    }

    fn windows_bind() -> BindBody {
        BindBody {
            max_xmit: 5840,
            max_recv: 5840,
            assoc_group: 0,
            contexts: vec![
                element(0, NDR32),
                element(1, NDR64),
                element(2, syntax::btfn(3)),
            ],
        }
    }

    #[test]
    fn windows_bind_is_160_bytes_and_round_trips() {
        let body = windows_bind();
        let bytes = body.encode();
        assert_eq!(16 + bytes.len(), 160);
        assert_eq!(BindBody::decode(&bytes).unwrap(), body);
    }

    #[test]
    fn prefer_ndr64_rejects_ndr32_and_acks_btfn() {
        let (results, contexts) = negotiate(
            &windows_bind(),
            Offer {
                ndr64: true,
                btfn: true,
            },
        );
        let codes: Vec<(u16, u16)> = results.iter().map(|r| (r.result, r.reason)).collect();
        assert_eq!(codes, vec![(2, 2), (0, 0), (3, 3)]);
        assert_eq!(contexts, vec![(0, None), (1, Some(Ndr::Ndr64)), (2, None)]);
    }

    #[test]
    fn ndr32_only_server_accepts_ndr32_and_rejects_the_rest_when_btfn_is_off() {
        let (results, contexts) = negotiate(
            &windows_bind(),
            Offer {
                ndr64: false,
                btfn: false,
            },
        );
        let codes: Vec<(u16, u16)> = results.iter().map(|r| (r.result, r.reason)).collect();
        assert_eq!(codes, vec![(0, 0), (2, 2), (2, 2)]);
        assert_eq!(results[0].syntax, NDR32);
        assert_eq!(contexts[0], (0, Some(Ndr::Ndr32)));
    }

    #[test]
    fn unknown_interface_is_rejected_with_reason_1() {
        let mut body = windows_bind();
        body.contexts[0].abstract_syntax.uuid = uuid::Uuid::from_u128(1);
        let (results, _) = negotiate(
            &body,
            Offer {
                ndr64: false,
                btfn: true,
            },
        );
        assert_eq!((results[0].result, results[0].reason), (2, 1));
    }

    #[test]
    fn ack_is_108_bytes_on_port_1688_and_on_a_five_digit_port() {
        let (results, _) = negotiate(
            &windows_bind(),
            Offer {
                ndr64: true,
                btfn: true,
            },
        );
        for port in ["1688", "21002"] {
            let ack = AckBody {
                max_xmit: 5840,
                max_recv: 5840,
                assoc_group: 7,
                sec_addr: port.as_bytes().to_vec(),
                results: results.clone(),
            };
            let bytes = ack.encode();
            assert_eq!(16 + bytes.len(), 108, "port {port}");
            assert_eq!(AckBody::decode(&bytes).unwrap(), ack);
        }
    }

    #[test]
    fn truncated_elements_are_typed_errors() {
        let bytes = windows_bind().encode();
        assert_eq!(
            BindBody::decode(&bytes[..40]),
            Err(BindError::ElementOverrun { index: 0 })
        );
        assert_eq!(BindBody::decode(&bytes[..5]), Err(BindError::TooShort(5)));
    }
}
