//! Server policy (spec 7): who is activated, with which ePID, count and
//! intervals. Every knob has vlmcsd's default.

pub mod clients;
pub mod epid;
pub mod interval;

use rand::Rng;

use crate::{catalog::Catalog, kms::hresult, kms::message::RequestBase};
use clients::{ClientLists, ListStart};
use epid::{EpidOptions, Epids};

/// FILETIME ticks in the 4 hours a client clock may be off (with the check on).
const MAX_CLOCK_SKEW: u64 = 4 * 3600 * 10_000_000;
/// vlmcsd's default HwId, wire order.
pub const DEFAULT_HWID: [u8; 8] = [0x3A, 0x1C, 0x04, 0x96, 0x00, 0xB6, 0x00, 0x76];

/// Whitelisting levels (vlmcsd `-K`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Whitelist(pub u8);

impl Whitelist {
    fn refuses_unknown_and_mismatched(self) -> bool {
        self.0 & 1 != 0
    }
    fn refuses_retail_and_preview(self) -> bool {
        self.0 & 2 != 0
    }
}

#[derive(Clone, Debug)]
pub struct PolicySettings {
    pub epid: EpidOptions,
    pub hwid: [u8; 8],
    pub activation_interval: u32,
    pub renewal_interval: u32,
    /// `None`: vlmcsd's 2×N count; `Some`: maintained client lists.
    pub client_list: Option<ListStart>,
    pub whitelist: Whitelist,
    pub check_client_time: bool,
}

impl Default for PolicySettings {
    /// vlmcsd's defaults: random ePIDs per start, 2×N count, no whitelisting,
    /// no time check, 120/10080-minute intervals.
    fn default() -> Self {
        PolicySettings {
            epid: EpidOptions {
                randomization: epid::Randomization::PerStart,
                lcid: None,
                host_build: None,
                ndr64: None,
                overrides: vec![],
            },
            hwid: DEFAULT_HWID,
            activation_interval: 120,
            renewal_interval: 10080,
            client_list: None,
            whitelist: Whitelist(0),
            check_client_time: false,
        }
    }
}

/// What a granted activation carries back.
#[derive(Clone, Debug)]
pub struct Grant {
    pub epid: String,
    pub count: u32,
    pub activation_interval: u32,
    pub renewal_interval: u32,
    pub hwid: [u8; 8],
}

pub struct Policy {
    settings: PolicySettings,
    epids: Epids,
    lists: Option<ClientLists>,
}

impl Policy {
    pub fn new(
        catalog: &Catalog,
        settings: PolicySettings,
        rng: &mut impl Rng,
    ) -> Result<Self, String> {
        if settings.whitelist.0 > 3 {
            return Err(format!(
                "whitelisting level {} is not 0-3",
                settings.whitelist.0
            ));
        }
        let epids = Epids::new(catalog, settings.epid.clone(), rng)?;
        let lists = settings.client_list.map(|start| {
            let apps: Vec<_> = catalog
                .applications
                .iter()
                .map(|a| (a.id, a.min_active_clients))
                .collect();
            ClientLists::new(&apps, start, rng)
        });
        Ok(Policy {
            settings,
            epids,
            lists,
        })
    }

    /// Whether the server offers NDR64 (tied to the ePID's host build).
    pub fn ndr64(&self) -> bool {
        self.epids.ndr64
    }

    /// Decides one request, in vlmcsd's order of checks (spec 7.6); `now` is
    /// the server's time as a FILETIME.
    pub fn decide(
        &self,
        catalog: &Catalog,
        req: &RequestBase,
        now: u64,
        rng: &mut impl Rng,
    ) -> Result<Grant, u32> {
        let csvlk = catalog.csvlk_index(&req.kms_id);
        let floor = catalog
            .csvlks
            .get(csvlk)
            .map_or(0, |c| c.min_active_clients);
        let doubled = clients::doubled_count(req.n_policy, floor)?;
        if self.settings.check_client_time && req.client_time.abs_diff(now) > MAX_CLOCK_SKEW {
            return Err(hresult::INVALID_TIMESTAMP);
        }
        let known = catalog.kms_id(&req.kms_id);
        let level = self.settings.whitelist;
        if level.refuses_retail_and_preview() && known.is_some_and(|k| k.is_retail || k.is_preview)
        {
            return Err(hresult::KMS_ID_MISMATCH);
        }
        if level.refuses_unknown_and_mismatched() && known.is_none_or(|k| k.app_id != req.app_id) {
            return Err(hresult::KMS_ID_MISMATCH);
        }
        let count = match &self.lists {
            None => doubled,
            Some(lists) => {
                let app = known.map_or(req.app_id, |k| k.app_id);
                lists.count(app, req.cmid, req.n_policy)?
            }
        };
        Ok(Grant {
            epid: self.epids.epid(catalog, csvlk, rng),
            count,
            activation_interval: self.settings.activation_interval,
            renewal_interval: self.settings.renewal_interval,
            hwid: self.settings.hwid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog;
    use epid::Randomization;
    use uuid::Uuid;

    fn settings() -> PolicySettings {
        let mut s = PolicySettings::default();
        s.epid.randomization = Randomization::Fixed;
        s
    }

    fn request(sku: &str) -> RequestBase {
        let c = catalog();
        let sku = c.find_sku(sku).unwrap();
        let kms = c.kms_id(&sku.kms_id).unwrap();
        RequestBase {
            version: crate::kms::message::Version::V6,
            vm_info: 0,
            license_status: 2,
            binding_expiration: 43200,
            app_id: sku.app_id,
            act_id: sku.id,
            kms_id: sku.kms_id,
            cmid: Uuid::from_u128(5),
            n_policy: kms.n_count_policy,
            client_time: 134408517970000000,
            cmid_prev: Uuid::nil(),
            workstation_raw: RequestBase::workstation_field("host"),
        }
    }

    #[test]
    fn defaults_grant_twice_n_with_the_fixed_epid() {
        let c = catalog();
        let p = Policy::new(c, settings(), &mut rand::rng()).unwrap();
        let g = p
            .decide(c, &request("Windows 10 Professional"), 0, &mut rand::rng())
            .unwrap();
        assert_eq!(
            (g.count, g.activation_interval, g.renewal_interval),
            (50, 120, 10080)
        );
        assert_eq!(g.epid, "03612-00206-556-123727-03-1033-17763.0000-2972018");
        let g = p
            .decide(
                c,
                &request("Office Professional Plus 2010"),
                0,
                &mut rand::rng(),
            )
            .unwrap();
        assert!(g.epid.starts_with("03612-00096-199-"));
    }

    #[test]
    fn whitelisting_refuses_unknown_mismatched_and_retail_as_configured() {
        let c = catalog();
        let mut unknown = request("Windows 10 Professional");
        unknown.kms_id = Uuid::from_u128(42);
        let mut mismatched = request("Windows 10 Professional");
        mismatched.app_id = c.find_sku("Office Professional Plus 2019").unwrap().app_id;
        let retail = c.kms_ids.iter().find(|k| k.is_retail).map(|k| {
            let mut r = request("Windows 10 Professional");
            r.kms_id = k.id;
            r.app_id = k.app_id;
            r
        });
        let outcome = |level: u8, r: &RequestBase| {
            let mut s = settings();
            s.whitelist = Whitelist(level);
            Policy::new(c, s, &mut rand::rng())
                .unwrap()
                .decide(c, r, 0, &mut rand::rng())
                .err()
        };
        let refused = Some(hresult::KMS_ID_MISMATCH);
        assert_eq!(
            outcome(0, &unknown),
            None,
            "unknown ids activate at level 0, as vlmcsd"
        );
        assert_eq!(
            (outcome(1, &unknown), outcome(1, &mismatched)),
            (refused, refused)
        );
        assert_eq!(
            (outcome(2, &unknown), outcome(2, &mismatched)),
            (None, None)
        );
        assert_eq!(outcome(3, &unknown), refused);
        if let Some(retail) = retail {
            assert_eq!(
                (
                    outcome(1, &retail),
                    outcome(2, &retail),
                    outcome(3, &retail)
                ),
                (None, refused, refused)
            );
        }
        let mut s = settings();
        s.whitelist = Whitelist(4);
        assert!(Policy::new(c, s, &mut rand::rng()).is_err());
    }

    #[test]
    fn client_time_check_allows_under_four_hours_only() {
        let c = catalog();
        let mut s = settings();
        s.check_client_time = true;
        let p = Policy::new(c, s, &mut rand::rng()).unwrap();
        let r = request("Windows 10 Professional");
        let hour = 3600 * 10_000_000u64;
        assert!(
            p.decide(c, &r, r.client_time + 39 * hour / 10, &mut rand::rng())
                .is_ok()
        );
        assert_eq!(
            p.decide(c, &r, r.client_time - 41 * hour / 10, &mut rand::rng())
                .err(),
            Some(hresult::INVALID_TIMESTAMP)
        );
    }

    #[test]
    fn oversized_n_is_invalid_data() {
        let c = catalog();
        let p = Policy::new(c, settings(), &mut rand::rng()).unwrap();
        let mut r = request("Windows Server 2019 Datacenter");
        r.n_policy = 1001;
        assert_eq!(
            p.decide(c, &r, 0, &mut rand::rng()).err(),
            Some(hresult::INVALID_DATA)
        );
    }
}
