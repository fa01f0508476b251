//! Property tests: every message type survives encode → decode, and no byte
//! string can make a decoder (or the server's RPC session) panic.

use kms_userspace::{
    kms::{
        message::{RequestBase, ResponseBase, Version},
        protocol::{self, Ciphers, DecodedRequest},
    },
    rpc::{
        bind::{AckBody, BindBody, ContextElement, ContextResult, Offer},
        call::Response,
        ndr::Ndr,
        pdu::{self, Header},
        session::{RpcOptions, SERVER_PDU_TYPES, Session},
        syntax::SyntaxId,
    },
};
use proptest::prelude::*;
use uuid::Uuid;

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V4), Just(Version::V5), Just(Version::V6)]
}

prop_compose! {
    fn request_base()(
        version in version(), vm in 0u32..2, status in any::<u32>(), expiration in any::<u32>(),
        app in uuid(), act in uuid(), kms in uuid(), cmid in uuid(), n in any::<u32>(),
        time in any::<u64>(), prev in uuid(), name in proptest::collection::vec(any::<u8>(), 128),
    ) -> RequestBase {
        RequestBase {
            version, vm_info: vm, license_status: status, binding_expiration: expiration,
            app_id: app, act_id: act, kms_id: kms, cmid, n_policy: n, client_time: time,
            cmid_prev: prev, workstation_raw: name.try_into().unwrap(),
        }
    }
}

prop_compose! {
    fn response_base()(
        version in version(), epid in "[0-9A-Za-z.-]{1,63}", cmid in uuid(), time in any::<u64>(),
        count in any::<u32>(), a in any::<u32>(), r in any::<u32>(),
    ) -> ResponseBase {
        ResponseBase { version, epid, cmid, client_time: time, count, activation_interval: a, renewal_interval: r }
    }
}

fn syntax() -> impl Strategy<Value = SyntaxId> {
    (uuid(), any::<u32>()).prop_map(|(uuid, version)| SyntaxId { uuid, version })
}

prop_compose! {
    fn bind_body()(
        max_xmit in any::<u16>(), max_recv in any::<u16>(), assoc_group in any::<u32>(),
        contexts in proptest::collection::vec(
            (any::<u16>(), syntax(), proptest::collection::vec(syntax(), 0..3)), 0..5),
    ) -> BindBody {
        BindBody {
            max_xmit, max_recv, assoc_group,
            contexts: contexts.into_iter().map(|(id, abstract_syntax, transfer_syntaxes)| ContextElement { id, abstract_syntax, transfer_syntaxes }).collect(),
        }
    }
}

proptest! {
    #[test]
    fn request_base_round_trips(base in request_base()) {
        prop_assert_eq!(RequestBase::decode(&base.encode()).unwrap(), base);
    }

    #[test]
    fn response_base_round_trips(base in response_base()) {
        let mut bytes = Vec::new();
        base.encode(&mut bytes);
        let (decoded, len) = ResponseBase::decode(&bytes).unwrap();
        prop_assert_eq!(len, bytes.len());
        prop_assert_eq!(decoded, base);
    }

    #[test]
    fn bind_and_ack_bodies_round_trip(body in bind_body(), port in 0u16..=65535, alter in any::<bool>()) {
        prop_assert_eq!(BindBody::decode(&body.encode()).unwrap(), body.clone());
        let results = body.contexts.iter().map(|c| ContextResult { result: c.id % 4, reason: c.id / 4, syntax: c.abstract_syntax }).collect();
        let ack = AckBody {
            max_xmit: body.max_xmit, max_recv: body.max_recv, assoc_group: body.assoc_group,
            sec_addr: if alter { Vec::new() } else { port.to_string().into_bytes() }, results,
        };
        prop_assert_eq!(AckBody::decode(&ack.encode()).unwrap(), ack);
    }

    #[test]
    fn ndr_stubs_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..400), ndr64 in any::<bool>(), hresult in 1u32..) {
        let ndr = if ndr64 { Ndr::Ndr64 } else { Ndr::Ndr32 };
        let request = ndr.encode_request(&payload);
        prop_assert_eq!(ndr.decode_request(&request).unwrap(), &payload[..]);
        prop_assert_eq!(ndr.decode_response(&ndr.encode_response(Ok(&payload))).unwrap(), Ok(payload.clone()));
        prop_assert_eq!(ndr.decode_response(&ndr.encode_response(Err(hresult))).unwrap(), Err(hresult));
    }

    #[test]
    fn kms_requests_and_responses_round_trip_through_the_crypto(base in request_base(), response in response_base(), hwid in any::<[u8; 8]>()) {
        let ciphers = Ciphers::new();
        let (payload, pending) = protocol::encode_request(&ciphers, &base, &mut rand::rng());
        let decoded: DecodedRequest = protocol::decode_request(&ciphers, &payload).unwrap();
        prop_assert_eq!(&decoded.base, &base);
        prop_assert!(decoded.integrity_ok);
        let response = ResponseBase { version: base.version, cmid: base.cmid, client_time: base.client_time, ..response };
        let answer = protocol::encode_response(&ciphers, &decoded, &response, hwid, &mut rand::rng());
        let verified = protocol::verify_response(&ciphers, &pending, &answer).unwrap();
        prop_assert_eq!(verified.base, response);
        prop_assert_eq!(verified.hwid, (base.version == Version::V6).then_some(hwid));
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let ciphers = Ciphers::new();
        let _ = protocol::decode_request(&ciphers, &bytes);
        let _ = RequestBase::decode(&bytes);
        let _ = ResponseBase::decode(&bytes);
        let _ = BindBody::decode(&bytes);
        let _ = AckBody::decode(&bytes);
        let _ = Response::decode(&bytes);
        let _ = Ndr::Ndr32.decode_request(&bytes);
        let _ = Ndr::Ndr64.decode_response(&bytes);
        let _ = pdu::frame(&bytes, &SERVER_PDU_TYPES);
    }

    /// Arbitrary PDUs (valid headers with any type, flags and body) into a
    /// server session: it replies or asks to close, never panics.
    #[test]
    fn server_session_survives_arbitrary_pdus(
        pdus in proptest::collection::vec((prop_oneof![Just(0u8), Just(11), Just(14)], any::<u8>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..400)), 1..6)
    ) {
        let ciphers = Ciphers::new();
        let mut session = Session::new(RpcOptions { offer: Offer { ndr64: true, btfn: true } }, 1, 1688);
        for (ptype, flags, call_id, body) in pdus {
            let pdu = Header::new(ptype, flags, call_id).encode_with(&body);
            if let Ok(Some(len)) = pdu::frame(&pdu, &SERVER_PDU_TYPES) {
                let _ = session.handle(&pdu[..len], |call| {
                    let payload = call.payload.map_err(|_| 0x8007000Du32)?;
                    protocol::decode_request(&ciphers, payload).map(|_| Vec::new()).map_err(|_| 0x8007000D)
                });
            }
        }
    }
}
