//! The captured vlmcs ↔ vlmcsd sessions (tests/vectors, from the spec's
//! reference implementation) replayed through our decoder, server and client
//! verifier. See tests/vectors/README.md for the files.
//!
//! Random per run, hence compared by verification rather than byte for byte:
//! the bind_ack assoc_group, the v5/v6 salt and hash, the v6 response IV and
//! HMAC, and vlmcsd's uninitialised padding bytes.

use std::{fs, path::PathBuf};

use kms_userspace::{
    activation::KmsService,
    catalog::catalog,
    kms::{
        message::Version,
        protocol::{self, Ciphers, PendingRequest},
    },
    policy::{Policy, PolicySettings, Whitelist, epid::Randomization},
    rpc::{
        bind::{self, AckBody, BindBody, Offer},
        call::{self, Response},
        ndr::Ndr,
        pdu::ptype,
        session::{Action, RpcOptions, Session},
        syntax::{NDR32, NDR64},
    },
};
use serde_json::Value;

fn all_vectors() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn client_sessions() -> Vec<Value> {
    all_vectors()
        .into_iter()
        .filter(|v| !v["name"].as_str().unwrap().starts_with("malformed_"))
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

/// The server our vlmcsd command line describes (`-N`, `-B`, `-K`; `-r0`).
fn server_for(vector: &Value) -> (KmsService, RpcOptions) {
    let cmd = vector["server_command"].as_str().unwrap();
    let flag = |f: &str| cmd.split_whitespace().any(|w| w == f);
    let whitelist = (0..=3).find(|l| flag(&format!("-K{l}"))).unwrap_or(0);
    let mut settings = PolicySettings {
        whitelist: Whitelist(whitelist),
        ..PolicySettings::default()
    };
    settings.epid.randomization = Randomization::Fixed;
    let policy = Policy::new(catalog(), settings, &mut rand::rng()).unwrap();
    let offer = Offer {
        ndr64: !flag("-N0"),
        btfn: !flag("-B0"),
    };
    (KmsService::new(catalog(), policy), RpcOptions { offer })
}

/// Contexts accepted by a recorded bind_ack / alter_context_resp.
fn accepted(request: &[u8], ack: &[u8]) -> Vec<(u16, Ndr)> {
    let body = BindBody::decode(&request[16..]).unwrap();
    let ack = AckBody::decode(&ack[16..]).unwrap();
    body.contexts
        .iter()
        .zip(&ack.results)
        .filter(|(_, r)| r.result == bind::ACCEPTANCE)
        .map(|(c, r)| {
            (
                c.id,
                if r.syntax == NDR64 {
                    Ndr::Ndr64
                } else {
                    assert_eq!(r.syntax, NDR32);
                    Ndr::Ndr32
                },
            )
        })
        .collect()
}

struct Exchange {
    request_payload: Vec<u8>,
    recorded: Result<Vec<u8>, u32>,
    ours: Result<Vec<u8>, u32>,
}

/// Replays every connection of a session through our server; checks each
/// reply against the recorded one field by field; returns the KMS exchanges.
fn replay(vector: &Value) -> Vec<Exchange> {
    let name = vector["name"].as_str().unwrap();
    let (service, rpc) = server_for(vector);
    let port = vector["server_port"].as_u64().unwrap() as u16;
    let pdus = vector["pdus"].as_array().unwrap();
    let mut exchanges = Vec::new();
    let connections: Vec<u64> = vector["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conn"].as_u64().unwrap())
        .collect();
    for conn in connections {
        let on_conn: Vec<&Value> = pdus
            .iter()
            .filter(|p| p["conn"].as_u64() == Some(conn))
            .collect();
        let mut session = Session::new(rpc.clone(), 0x1234, port);
        let mut contexts: Vec<(u16, Ndr)> = Vec::new();
        for (i, pdu) in on_conn.iter().enumerate() {
            if pdu["direction"] != "c2s" {
                continue;
            }
            let request = bytes(pdu);
            let reply = on_conn
                .get(i + 1)
                .filter(|p| p["direction"] == "s2c")
                .map(|p| bytes(p));
            let Some(recorded) = reply else { continue };
            let mut payload_seen = None;
            let action = session.handle(&request, |call| {
                let payload = call.payload.expect("recorded stubs decode").to_vec();
                payload_seen = Some(payload.clone());
                service.activate(&payload, &mut rand::rng()).0
            });
            let Action::Reply(ours) = action else {
                panic!("{name}: server closed on a recorded PDU")
            };
            let (rh, rbody) = call::split(&recorded).unwrap();
            let (oh, obody) = call::split(&ours).unwrap();
            assert_eq!(
                (oh.ptype, oh.flags, oh.call_id, oh.rpc_vers),
                (rh.ptype, rh.flags, rh.call_id, rh.rpc_vers),
                "{name}: header"
            );
            assert_eq!(
                oh.frag_length, rh.frag_length,
                "{name}: frag_length of type {}",
                rh.ptype
            );
            match rh.ptype {
                ptype::BIND_ACK | ptype::ALTER_CONTEXT_RESP => {
                    let (r, o) = (
                        AckBody::decode(rbody).unwrap(),
                        AckBody::decode(obody).unwrap(),
                    );
                    assert_eq!(
                        (o.max_xmit, o.max_recv, &o.sec_addr),
                        (r.max_xmit, r.max_recv, &r.sec_addr),
                        "{name}"
                    );
                    assert_eq!(o.results, r.results, "{name}: bind results");
                    assert_ne!(o.assoc_group, 0);
                    for (id, ndr) in accepted(&request, &recorded) {
                        contexts.retain(|(c, _)| *c != id);
                        contexts.push((id, ndr));
                    }
                }
                ptype::RESPONSE => {
                    let (r, o) = (
                        Response::decode(rbody).unwrap(),
                        Response::decode(obody).unwrap(),
                    );
                    assert_eq!(
                        (o.alloc_hint, o.context_id, o.cancel_count),
                        (r.alloc_hint, r.context_id, 0),
                        "{name}"
                    );
                    let ndr = contexts.iter().find(|(c, _)| *c == r.context_id).unwrap().1;
                    let recorded = ndr.decode_response(r.stub).unwrap();
                    let ours = ndr.decode_response(o.stub).unwrap();
                    exchanges.push(Exchange {
                        request_payload: payload_seen.unwrap(),
                        recorded,
                        ours,
                    });
                }
                other => panic!("{name}: unexpected recorded reply type {other}"),
            }
        }
    }
    exchanges
}

fn pending_for(payload: &[u8]) -> (PendingRequest, kms_userspace::kms::protocol::DecodedRequest) {
    let decoded = protocol::decode_request(&Ciphers::new(), payload).unwrap();
    let pending = PendingRequest {
        version: decoded.version,
        cmid: decoded.base.cmid,
        client_time: decoded.base.client_time,
        iv: decoded.iv,
        decrypted_iv: decoded.decrypted_iv,
    };
    (pending, decoded)
}

#[test]
fn every_client_session_replays_field_for_field() {
    let sessions = client_sessions();
    assert_eq!(sessions.len(), 23);
    let ciphers = Ciphers::new();
    for vector in &sessions {
        let name = vector["name"].as_str().unwrap();
        let exchanges = replay(vector);
        let recorded = vector["exchanges"].as_array().unwrap();
        assert_eq!(
            exchanges.len(),
            recorded.len(),
            "{name}: one exchange per recorded request"
        );
        for (ex, rec) in exchanges.iter().zip(recorded) {
            if let Some(error) = rec["error"].as_object() {
                let want = u32::from_str_radix(
                    error["hresult"].as_str().unwrap().trim_start_matches("0x"),
                    16,
                )
                .unwrap();
                assert_eq!(ex.recorded, Err(want), "{name}");
                assert_eq!(
                    ex.ours,
                    Err(want),
                    "{name}: our server refuses the same way"
                );
                continue;
            }
            // Our decoder gives exactly the recorded request fields.
            let (pending, decoded) = pending_for(&ex.request_payload);
            let req = &rec["request"];
            let base = &decoded.base;
            assert_eq!(
                hex::encode(base.encode()),
                rec["request_plain_hex"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                decoded.version.to_string(),
                req["protocol_version"].as_str().unwrap()
            );
            assert_eq!(
                base.vm_info == 1,
                req["is_virtual_machine"].as_bool().unwrap(),
                "{name}"
            );
            assert_eq!(
                u64::from(base.license_status),
                req["license_status"].as_u64().unwrap()
            );
            assert_eq!(
                u64::from(base.binding_expiration),
                req["remaining_minutes"].as_u64().unwrap()
            );
            assert_eq!(base.app_id.to_string(), req["app_id"].as_str().unwrap());
            assert_eq!(base.act_id.to_string(), req["sku_id"].as_str().unwrap());
            assert_eq!(base.kms_id.to_string(), req["kms_id"].as_str().unwrap());
            assert_eq!(
                base.cmid.to_string(),
                req["client_machine_id"].as_str().unwrap()
            );
            assert_eq!(
                base.cmid_prev.to_string(),
                req["previous_client_machine_id"].as_str().unwrap()
            );
            assert_eq!(
                base.client_time,
                req["timestamp_filetime"].as_u64().unwrap()
            );
            assert_eq!(base.workstation(), req["workstation"].as_str().unwrap());
            assert_eq!(
                u64::from(base.n_policy),
                req["n_count_policy"].as_u64().unwrap()
            );

            // Our client verifier accepts the real server's response...
            let recorded_payload = ex.recorded.as_ref().expect("recorded success");
            let theirs = protocol::verify_response(&ciphers, &pending, recorded_payload)
                .unwrap_or_else(|e| panic!("{name}: recorded response rejected: {e}"));
            let resp = &rec["response"];
            assert_eq!(
                recorded_payload.len() as u64,
                resp["response_size"].as_u64().unwrap()
            );
            assert_eq!(theirs.base.epid, resp["epid"].as_str().unwrap());
            assert_eq!(
                u64::from(theirs.base.count),
                resp["active_clients"].as_u64().unwrap()
            );
            assert_eq!(
                theirs.hwid.map(hex::encode_upper),
                resp["hwid"].as_str().map(String::from),
                "{name}"
            );
            // ...and ours, which carries the same fields and the same size.
            let our_payload = ex
                .ours
                .as_ref()
                .unwrap_or_else(|e| panic!("{name}: we refused with {e:#x}"));
            let ours = protocol::verify_response(&ciphers, &pending, our_payload)
                .unwrap_or_else(|e| panic!("{name}: our response rejected: {e}"));
            assert_eq!(our_payload.len(), recorded_payload.len(), "{name}");
            assert_eq!(
                ours.base, theirs.base,
                "{name}: echoed fields, ePID, count, intervals"
            );
            assert_eq!(ours.hwid, theirs.hwid);
            if decoded.version == Version::V5 {
                assert_eq!(
                    our_payload[4..20],
                    recorded_payload[4..20],
                    "v5 reuses the request IV"
                );
            }
        }
    }
}

#[test]
fn recorded_responses_fail_verification_when_tampered() {
    let ciphers = Ciphers::new();
    for name in ["proto_v4", "proto_v5", "proto_v6"] {
        let vector = client_sessions()
            .into_iter()
            .find(|v| v["name"] == name)
            .unwrap();
        let ex = &replay(&vector)[0];
        let (pending, _) = pending_for(&ex.request_payload);
        let mut payload = ex.recorded.clone().unwrap();
        let last = payload.len() - 20;
        payload[last] ^= 1;
        assert!(
            protocol::verify_response(&ciphers, &pending, &payload).is_err(),
            "{name}"
        );
    }
}
