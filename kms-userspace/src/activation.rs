//! The KMS service: one payload in, one payload (or HRESULT) out, plus the
//! facts the activation log line needs. Joins the KMS layer to the policy.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use uuid::Uuid;

use crate::{
    catalog::Catalog,
    kms::{
        hresult,
        message::{ResponseBase, Version},
        protocol::{self, Ciphers},
    },
    policy::Policy,
};

/// Seconds between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

pub fn filetime_now() -> u64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (unix.as_secs() + FILETIME_UNIX_OFFSET) * 10_000_000 + u64::from(unix.subsec_nanos() / 100)
}

pub struct KmsService {
    pub catalog: &'static Catalog,
    pub policy: Policy,
    ciphers: Ciphers,
}

/// What one activation request was and how it ended (for the log line and
/// metrics). `None` fields could not be decoded.
#[derive(Clone, Debug)]
pub struct ActivationRecord {
    pub version: Option<Version>,
    pub application: String,
    pub product: String,
    /// Whether `product` names a catalogue entry (not "unknown <guid>").
    pub product_known: bool,
    pub kms_id: Option<Uuid>,
    pub cmid: Option<Uuid>,
    pub workstation: String,
    pub license_status: Option<u32>,
    pub hresult: u32,
    pub epid: Option<String>,
    /// v4 MAC or v5/v6 padding did not verify (served anyway, as vlmcsd does).
    pub integrity_warning: bool,
}

impl KmsService {
    pub fn new(catalog: &'static Catalog, policy: Policy) -> Self {
        KmsService {
            catalog,
            policy,
            ciphers: Ciphers::new(),
        }
    }

    pub fn activate(
        &self,
        payload: &[u8],
        rng: &mut impl Rng,
    ) -> (Result<Vec<u8>, u32>, ActivationRecord) {
        let mut record = ActivationRecord {
            version: None,
            application: String::new(),
            product: String::new(),
            product_known: false,
            kms_id: None,
            cmid: None,
            workstation: String::new(),
            license_status: None,
            hresult: hresult::INVALID_DATA,
            epid: None,
            integrity_warning: false,
        };
        let request = match protocol::decode_request(&self.ciphers, payload) {
            Ok(request) => request,
            Err(e) => {
                record.product = format!("undecodable request: {e}");
                return (Err(hresult::INVALID_DATA), record);
            }
        };
        let base = &request.base;
        record.version = Some(request.version);
        record.application = self
            .catalog
            .application(&base.app_id)
            .map_or_else(|| format!("unknown {}", base.app_id), |a| a.name.clone());
        record.product = self.catalog.product_name(&base.act_id, &base.kms_id);
        record.product_known =
            self.catalog.sku(&base.act_id).is_some() || self.catalog.kms_id(&base.kms_id).is_some();
        record.kms_id = Some(base.kms_id);
        record.cmid = Some(base.cmid);
        record.workstation = sanitize(&base.workstation());
        record.license_status = Some(base.license_status);
        record.integrity_warning = !request.integrity_ok;

        let grant = match self.policy.decide(self.catalog, base, filetime_now(), rng) {
            Ok(grant) => grant,
            Err(code) => {
                record.hresult = code;
                return (Err(code), record);
            }
        };
        let response = ResponseBase {
            version: request.version,
            epid: grant.epid,
            cmid: base.cmid,
            client_time: base.client_time,
            count: grant.count,
            activation_interval: grant.activation_interval,
            renewal_interval: grant.renewal_interval,
        };
        let payload =
            protocol::encode_response(&self.ciphers, &request, &response, grant.hwid, rng);
        record.hresult = hresult::S_OK;
        record.epid = Some(response.epid);
        (Ok(payload), record)
    }
}

/// Workstation names come from the network: keep printable characters only
/// and bound the length, so a log line cannot be forged or flooded.
pub fn sanitize(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(63).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_drops_control_characters() {
        assert_eq!(sanitize("host\n\u{1b}[31mevil"), "host[31mevil");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 63);
    }
}
