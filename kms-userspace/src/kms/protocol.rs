//! Version framing (spec 4.4-4.6, 5.3-5.7): turning a KMS payload into a
//! plaintext request and a response base into a payload, for the server; and
//! the mirror image, with every check a real client makes, for `kmsd client`.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{
    crypto::{Block, Cipher, pkcs7_pad, pkcs7_unpadded_len, v4_mac, xor},
    message::{MessageError, REQUEST_BASE_LEN, RequestBase, ResponseBase, Version},
};

/// v4 request: base + MAC.
pub const V4_REQUEST_LEN: usize = REQUEST_BASE_LEN + 16;
/// v5/v6 request: version + IV + 240 bytes of ciphertext.
pub const V5_REQUEST_LEN: usize = 4 + 16 + 240;
/// v6 HMAC time-slot constants (spec 5.1).
const C1: u64 = 0x0000_0022_8168_89BD;
const C2: u64 = 0x0000_0020_8CBA_B5ED;
const C3: u64 = 0x3156_CD5A_C628_477A;

/// Why a KMS payload cannot be served; all map to HRESULT 0x8007000D.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("payload of {0} bytes is shorter than any KMS request")]
    TooShort(usize),
    #[error("KMS protocol version {0} is not supported")]
    UnsupportedVersion(Version),
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Ciphers are built once: expanding a key schedule per request would be waste.
pub struct Ciphers {
    pub v4: Cipher,
    pub v5: Cipher,
    pub v6: Cipher,
}

impl Ciphers {
    pub fn new() -> Self {
        Ciphers {
            v4: Cipher::v4(),
            v5: Cipher::v5(),
            v6: Cipher::v6(),
        }
    }

    fn for_version(&self, version: Version) -> &Cipher {
        if version.major == 5 {
            &self.v5
        } else {
            &self.v6
        }
    }
}

impl Default for Ciphers {
    fn default() -> Self {
        Self::new()
    }
}

/// What the server keeps from decoding a request, to build the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedRequest {
    /// The outer version (the one the response must carry).
    pub version: Version,
    pub base: RequestBase,
    /// v4: whether the request MAC verified (vlmcsd never checks it).
    /// v5/v6: whether the decrypted padding was `04 04 04 04`.
    pub integrity_ok: bool,
    /// v5/v6: the request IV and D = D_K(IV).
    pub iv: Block,
    pub decrypted_iv: Block,
}

/// Decodes a KMS request payload (spec 7.7 acceptance rules). Extra trailing
/// bytes are tolerated, as some RPC stacks add them.
pub fn decode_request(ciphers: &Ciphers, payload: &[u8]) -> Result<DecodedRequest, DecodeError> {
    if payload.len() < V4_REQUEST_LEN {
        return Err(DecodeError::TooShort(payload.len()));
    }
    let version = Version::from_bytes(payload[0..4].try_into().expect("4 bytes"));
    match (version.major, version.minor) {
        (4, 0) => {
            let base = RequestBase::decode(&payload[..REQUEST_BASE_LEN])?;
            let mac = v4_mac(&ciphers.v4, &payload[..REQUEST_BASE_LEN]);
            let integrity_ok = mac[..] == payload[REQUEST_BASE_LEN..V4_REQUEST_LEN];
            Ok(DecodedRequest {
                version,
                base,
                integrity_ok,
                iv: [0; 16],
                decrypted_iv: [0; 16],
            })
        }
        (5 | 6, 0) => {
            if payload.len() < V5_REQUEST_LEN {
                return Err(DecodeError::TooShort(payload.len()));
            }
            let cipher = ciphers.for_version(version);
            let iv: Block = payload[4..20].try_into().expect("16 bytes");
            let mut decrypted_iv = iv;
            cipher.decrypt_block(&mut decrypted_iv);
            let mut plain = payload[20..V5_REQUEST_LEN].to_vec();
            cipher.cbc_decrypt(&iv, &mut plain);
            let base = RequestBase::decode(&plain[..REQUEST_BASE_LEN])?;
            let integrity_ok = plain[REQUEST_BASE_LEN..] == [4, 4, 4, 4] && base.version == version;
            Ok(DecodedRequest {
                version,
                base,
                integrity_ok,
                iv,
                decrypted_iv,
            })
        }
        _ => Err(DecodeError::UnsupportedVersion(version)),
    }
}

/// The HMAC key of v6: the last 16 bytes of SHA-256 of the request time's slot.
fn v6_hmac_key(client_time: u64) -> [u8; 16] {
    let slot = (client_time / C1).wrapping_mul(C2).wrapping_add(C3);
    Sha256::digest(slot.to_le_bytes())[16..]
        .try_into()
        .expect("16 bytes")
}

fn v6_mac(client_time: u64, decrypted_response_iv: &Block, plain: &[u8]) -> [u8; 16] {
    let mut mac =
        <Hmac<Sha256>>::new_from_slice(&v6_hmac_key(client_time)).expect("HMAC takes any key size");
    mac.update(decrypted_response_iv);
    mac.update(plain);
    mac.finalize().into_bytes()[16..]
        .try_into()
        .expect("16 bytes")
}

/// Builds the response payload for `request` (same version), with fresh
/// randomness from `rng`.
pub fn encode_response(
    ciphers: &Ciphers,
    request: &DecodedRequest,
    base: &ResponseBase,
    hwid: [u8; 8],
    rng: &mut impl RngCore,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    if request.version.major == 4 {
        // The base starts with the version; the MAC covers all of it.
        base.encode(&mut out);
        let mac = v4_mac(&ciphers.v4, &out);
        out.extend_from_slice(&mac);
        return out;
    }
    out.extend_from_slice(&request.version.to_bytes());

    // v5 and v6 share: base ‖ Random⊕D ‖ SHA-256(Random).
    let mut random = [0u8; 16];
    rng.fill_bytes(&mut random);
    let mut plain = Vec::with_capacity(256);
    base.encode(&mut plain);
    let mut xored = random;
    xor(&mut xored, &request.decrypted_iv);
    plain.extend_from_slice(&xored);
    plain.extend_from_slice(&Sha256::digest(random));

    let cipher = ciphers.for_version(request.version);
    let iv = if request.version.major == 5 {
        // v5 answers under the request's own IV.
        request.iv
    } else {
        plain.extend_from_slice(&hwid);
        plain.extend_from_slice(&request.decrypted_iv);
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut iv);
        let mut decrypted = iv;
        cipher.decrypt_block(&mut decrypted);
        let mac = v6_mac(request.base.client_time, &decrypted, &plain);
        plain.extend_from_slice(&mac);
        iv
    };
    pkcs7_pad(&mut plain);
    cipher.cbc_encrypt(&iv, &mut plain);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&plain);
    out
}

/// Client side: what must be remembered to verify the response.
#[derive(Clone, Debug)]
pub struct PendingRequest {
    pub version: Version,
    pub cmid: uuid::Uuid,
    pub client_time: u64,
    pub iv: Block,
    pub decrypted_iv: Block,
}

/// Client side: encodes a request the way a real client does.
pub fn encode_request(
    ciphers: &Ciphers,
    base: &RequestBase,
    rng: &mut impl RngCore,
) -> (Vec<u8>, PendingRequest) {
    let plain = base.encode();
    let mut pending = PendingRequest {
        version: base.version,
        cmid: base.cmid,
        client_time: base.client_time,
        iv: [0; 16],
        decrypted_iv: [0; 16],
    };
    if base.version.major == 4 {
        let mut out = plain.to_vec();
        out.extend_from_slice(&v4_mac(&ciphers.v4, &plain));
        return (out, pending);
    }
    let cipher = ciphers.for_version(base.version);
    rng.fill_bytes(&mut pending.iv);
    pending.decrypted_iv = pending.iv;
    cipher.decrypt_block(&mut pending.decrypted_iv);
    let mut body = plain.to_vec();
    body.extend_from_slice(&[4, 4, 4, 4]);
    cipher.cbc_encrypt(&pending.iv, &mut body);
    let mut out = base.version.to_bytes().to_vec();
    out.extend_from_slice(&pending.iv);
    out.extend_from_slice(&body);
    (out, pending)
}

/// Every check of spec 5.7 that a response can fail.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("response version {got} differs from the request's {want}")]
    VersionMismatch { got: Version, want: Version },
    #[error("response is {got} bytes, expected {want}")]
    WrongLength { got: usize, want: usize },
    #[error("response too short ({0} bytes)")]
    TooShort(usize),
    #[error("v4 response MAC does not verify")]
    BadMac,
    #[error("v5 response IV differs from the request IV")]
    V5IvMismatch,
    #[error("v6 response reuses the request IV")]
    V6IvReused,
    #[error("decrypted response has invalid PKCS#7 padding")]
    BadPadding,
    #[error("SHA-256 of the recovered salt does not match the response hash")]
    BadHash,
    #[error("v6 XoredIVs field differs from the decrypted request IV")]
    BadXoredIvs,
    #[error("v6 response HMAC does not verify")]
    BadHmac,
    #[error("client machine id not echoed")]
    CmidNotEchoed,
    #[error("client time not echoed")]
    TimeNotEchoed,
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// A response that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedResponse {
    pub base: ResponseBase,
    /// v6 only.
    pub hwid: Option<[u8; 8]>,
}

/// Verifies a response payload against the request it answers.
pub fn verify_response(
    ciphers: &Ciphers,
    pending: &PendingRequest,
    payload: &[u8],
) -> Result<VerifiedResponse, VerifyError> {
    if payload.len() < 4 {
        return Err(VerifyError::TooShort(payload.len()));
    }
    let outer = Version::from_bytes(payload[0..4].try_into().expect("4 bytes"));
    if outer != pending.version {
        return Err(VerifyError::VersionMismatch {
            got: outer,
            want: pending.version,
        });
    }
    let verified = if outer.major == 4 {
        let (base, len) = ResponseBase::decode(payload)?;
        if payload.len() != len + 16 {
            return Err(VerifyError::WrongLength {
                got: payload.len(),
                want: len + 16,
            });
        }
        if v4_mac(&ciphers.v4, &payload[..len])[..] != payload[len..] {
            return Err(VerifyError::BadMac);
        }
        VerifiedResponse { base, hwid: None }
    } else {
        verify_encrypted(ciphers, pending, payload)?
    };
    if verified.base.version != pending.version {
        return Err(VerifyError::VersionMismatch {
            got: verified.base.version,
            want: pending.version,
        });
    }
    if verified.base.cmid != pending.cmid {
        return Err(VerifyError::CmidNotEchoed);
    }
    if verified.base.client_time != pending.client_time {
        return Err(VerifyError::TimeNotEchoed);
    }
    Ok(verified)
}

fn verify_encrypted(
    ciphers: &Ciphers,
    pending: &PendingRequest,
    payload: &[u8],
) -> Result<VerifiedResponse, VerifyError> {
    let v6 = pending.version.major == 6;
    if payload.len() < 20 + 16 || !(payload.len() - 20).is_multiple_of(16) {
        return Err(VerifyError::TooShort(payload.len()));
    }
    let iv: Block = payload[4..20].try_into().expect("16 bytes");
    match (v6, iv == pending.iv) {
        (false, false) => return Err(VerifyError::V5IvMismatch),
        (true, true) => return Err(VerifyError::V6IvReused),
        _ => {}
    }
    let cipher = ciphers.for_version(pending.version);
    let mut plain = payload[20..].to_vec();
    cipher.cbc_decrypt(&iv, &mut plain);
    let plain_len = pkcs7_unpadded_len(&plain).ok_or(VerifyError::BadPadding)?;
    let plain = &plain[..plain_len];
    let (base, base_len) = ResponseBase::decode(plain)?;
    let want = base_len + if v6 { 88 } else { 48 };
    if plain.len() != want {
        return Err(VerifyError::WrongLength {
            got: plain.len(),
            want,
        });
    }
    let mut random: Block = plain[base_len..base_len + 16].try_into().expect("16 bytes");
    xor(&mut random, &pending.decrypted_iv);
    if Sha256::digest(random)[..] != plain[base_len + 16..base_len + 48] {
        return Err(VerifyError::BadHash);
    }
    if !v6 {
        return Ok(VerifiedResponse { base, hwid: None });
    }
    let hwid: [u8; 8] = plain[base_len + 48..base_len + 56]
        .try_into()
        .expect("8 bytes");
    if plain[base_len + 56..base_len + 72] != pending.decrypted_iv {
        return Err(VerifyError::BadXoredIvs);
    }
    let mut decrypted_iv = iv;
    cipher.decrypt_block(&mut decrypted_iv);
    let signed = &plain[..base_len + 72];
    let mac = &plain[base_len + 72..];
    // Clients accept the slot of the echoed time and its neighbours.
    let slot_time = pending.client_time;
    let ok = [
        slot_time,
        slot_time.wrapping_sub(C1),
        slot_time.wrapping_add(C1),
    ]
    .iter()
    .any(|&t| v6_mac(t, &decrypted_iv, signed)[..] == *mac);
    if !ok {
        return Err(VerifyError::BadHmac);
    }
    Ok(VerifiedResponse {
        base,
        hwid: Some(hwid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_keys_match_the_spec() {
        assert_eq!(
            hex::encode(v6_hmac_key(0)),
            "ac0c6f55aa8cabc264c0642eb961540a"
        );
        assert_eq!(
            hex::encode(v6_hmac_key(0x01dd83d4a8d7c000)),
            "009be7617b82cc3542045ecf6e188c30"
        );
        assert_eq!(
            hex::encode(v6_hmac_key(0x01d7657c0b5d8b7e)),
            "699238519ac59c996f93b997393a4a62"
        );
    }

    #[test]
    fn decrypted_zero_blocks_match_the_spec() {
        let c = Ciphers::new();
        let mut b = [0u8; 16];
        c.v6.decrypt_block(&mut b);
        assert_eq!(hex::encode(b), "8a1a5b385caaff8dd0ce3913d2cbc26f");
        let mut b = [0u8; 16];
        c.v5.decrypt_block(&mut b);
        assert_eq!(hex::encode(b), "9f1680f29feed1274e875c9d86d107af");
        assert_eq!(
            hex::encode(v4_mac(&c.v4, &[0u8; 236])),
            "4c1b4de4008508d66d9ed22963ae52b2"
        );
    }
}
