//! ePIDs (spec 6): the extended product id of the KMS host key, chosen per
//! CSVLK the way vlmcsd does: configured > random per request (level 2) >
//! random once at start (level 1, the default) > the catalogue's fixed one
//! (level 0).

use std::time::{SystemTime, UNIX_EPOCH};

use rand::{Rng, seq::IndexedRandom};
use time::OffsetDateTime;

use crate::catalog::{Catalog, Csvlk, HostBuild};

/// LCIDs vlmcsd draws from for random ePIDs (spec appendix B).
const LCIDS: [u32; 158] = [
    1025, 1026, 1027, 1028, 1029, 1030, 1031, 1032, 1033, 1034, 1035, 1036, 1037, 1038, 1039, 1040,
    1041, 1042, 1043, 1044, 1045, 1046, 1048, 1049, 1050, 1051, 1052, 1053, 1054, 1056, 1057, 1058,
    1059, 1060, 1061, 1062, 1063, 1065, 1066, 1067, 1068, 1069, 1071, 1074, 1076, 1077, 1078, 1079,
    1080, 1081, 1082, 1083, 1086, 1087, 1088, 1089, 1091, 1092, 1093, 1094, 1095, 1097, 1098, 1099,
    1100, 1102, 1103, 1104, 1106, 1110, 1111, 1114, 1125, 1131, 1153, 2049, 2052, 2055, 2057, 2058,
    2060, 2064, 2067, 2068, 2070, 2074, 2077, 2092, 2107, 2110, 2115, 2155, 3073, 3076, 3079, 3081,
    3082, 3084, 3098, 3131, 3179, 4097, 4100, 4103, 4105, 4106, 4108, 4122, 4155, 5121, 5124, 5127,
    5129, 5130, 5132, 5146, 5179, 6145, 6153, 6154, 6156, 6170, 6203, 7169, 7177, 7178, 7194, 7227,
    8193, 8201, 8202, 8251, 9217, 9225, 9226, 9275, 10241, 10249, 10250, 11265, 11273, 11274,
    12289, 12297, 12298, 13313, 13321, 13322, 14337, 14346, 15361, 15370, 16385, 16394, 17418,
    18442, 19466, 20490,
];
/// Platform id of builds older than every table entry.
const OLD_PLATFORM_ID: u32 = 55041;

/// How ePIDs are chosen (vlmcsd `-r`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Randomization {
    /// The catalogue's fixed default ePIDs.
    Fixed = 0,
    /// Random once per CSVLK at start-up (one host build and LCID for all).
    PerStart = 1,
    /// A new random ePID for every request.
    PerRequest = 2,
}

#[derive(Clone, Debug)]
pub struct EpidOptions {
    pub randomization: Randomization,
    pub lcid: Option<u32>,
    pub host_build: Option<u32>,
    /// Only builds with this NDR64 flag are drawn (vlmcsd with an explicit -N).
    pub ndr64: Option<bool>,
    /// Configured ePIDs by CSVLK index.
    pub overrides: Vec<(usize, String)>,
}

/// The ePID source of a running server.
pub struct Epids {
    options: EpidOptions,
    /// One ePID per CSVLK: configured, start-up random, or fixed.
    per_csvlk: Vec<String>,
    /// Whether the server offers NDR64 (decided with the host build, as vlmcsd).
    pub ndr64: bool,
}

impl Epids {
    pub fn new(
        catalog: &Catalog,
        options: EpidOptions,
        rng: &mut impl Rng,
    ) -> Result<Self, String> {
        if let Some(lcid) = options.lcid
            && lcid == 0
        {
            return Err(format!("LCID {lcid} is not a language id"));
        }
        let eligible = eligible_builds(catalog, options.ndr64);
        if options.host_build.is_none() && eligible.is_empty() {
            return Err("no host build in the catalogue matches the NDR64 setting".into());
        }
        // The start-up draw: one build and one LCID shared by all CSVLKs.
        let build = options
            .host_build
            .unwrap_or_else(|| eligible.choose(rng).expect("non-empty").build);
        let lcid = options
            .lcid
            .unwrap_or_else(|| *LCIDS.choose(rng).expect("non-empty"));
        let ndr64 = options
            .ndr64
            .unwrap_or(match (options.randomization, options.host_build) {
                (_, Some(fixed)) => fixed > 7601,
                (Randomization::Fixed, None) => true,
                _ => build_info(catalog, build)
                    .map(|b| b.uses_ndr64)
                    .unwrap_or(build > 7601),
            });
        let mut per_csvlk: Vec<String> = catalog
            .csvlks
            .iter()
            .map(|c| match options.randomization {
                Randomization::Fixed => c.default_epid.clone(),
                _ => random_epid(catalog, c, build, lcid, now_unix(), rng),
            })
            .collect();
        for (index, epid) in &options.overrides {
            validate(epid)?;
            *per_csvlk
                .get_mut(*index)
                .ok_or_else(|| format!("no CSVLK with index {index}"))? = epid.clone();
        }
        Ok(Epids {
            options,
            per_csvlk,
            ndr64,
        })
    }

    /// The ePID to send for a request whose KMS id maps to `csvlk`.
    pub fn epid(&self, catalog: &Catalog, csvlk: usize, rng: &mut impl Rng) -> String {
        let configured = self.options.overrides.iter().any(|(i, _)| *i == csvlk);
        if self.options.randomization == Randomization::PerRequest && !configured {
            let eligible = eligible_builds(catalog, Some(self.ndr64));
            let build = self
                .options
                .host_build
                .unwrap_or_else(|| eligible.choose(rng).map_or(17763, |b| b.build));
            let lcid = self
                .options
                .lcid
                .unwrap_or_else(|| *LCIDS.choose(rng).expect("non-empty"));
            return random_epid(
                catalog,
                &catalog.csvlks[csvlk],
                build,
                lcid,
                now_unix(),
                rng,
            );
        }
        self.per_csvlk[csvlk].clone()
    }
}

fn eligible_builds(catalog: &Catalog, ndr64: Option<bool>) -> Vec<&HostBuild> {
    catalog
        .epid_builds
        .iter()
        .filter(|b| ndr64.is_none_or(|n| b.uses_ndr64 == n))
        .collect()
}

fn build_info(catalog: &Catalog, build: u32) -> Option<&HostBuild> {
    catalog.epid_builds.iter().find(|b| b.build == build)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A random ePID for `csvlk` on a host of `build` with language `lcid`.
pub fn random_epid(
    catalog: &Catalog,
    csvlk: &Csvlk,
    build: u32,
    lcid: u32,
    now: i64,
    rng: &mut impl Rng,
) -> String {
    // epid_builds is newest first: the platform of the newest entry not newer
    // than the build, and the release date of the oldest entry not older.
    let platform = catalog
        .epid_builds
        .iter()
        .find(|b| b.build <= build)
        .map_or(OLD_PLATFORM_ID, |b| b.platform_id);
    let build_release = catalog
        .epid_builds
        .iter()
        .rev()
        .find(|b| b.build >= build)
        .or(catalog.epid_builds.first())
        .and_then(|b| b.release_date_unix)
        .unwrap_or(0);
    let key_id = rng
        .random_range(csvlk.epid_key_id_min..csvlk.epid_key_id_max.max(csvlk.epid_key_id_min + 1));
    let earliest = csvlk.release_date_unix.max(build_release);
    let date = rng.random_range(earliest..=now.max(earliest));
    let date = OffsetDateTime::from_unix_timestamp(date).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{platform:05}-{:05}-{:03}-{:06}-03-{lcid}-{build}.0000-{:03}{:04}",
        csvlk.epid_group_id,
        key_id / 1_000_000,
        key_id % 1_000_000,
        date.ordinal(),
        date.year()
    )
}

/// The length rules clients check (spec 4.3): at most 63 characters, no NUL.
pub fn validate(epid: &str) -> Result<(), String> {
    let units = epid.encode_utf16().count();
    if units == 0 || units > 63 || epid.contains('\0') {
        return Err(format!(
            "ePID {epid:?} must have 1 to 63 characters and no NUL"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog;

    fn options(randomization: Randomization) -> EpidOptions {
        EpidOptions {
            randomization,
            lcid: None,
            host_build: None,
            ndr64: None,
            overrides: vec![],
        }
    }

    #[test]
    fn level_0_uses_the_fixed_defaults() {
        let c = catalog();
        let e = Epids::new(c, options(Randomization::Fixed), &mut rand::rng()).unwrap();
        assert_eq!(
            e.epid(c, 0, &mut rand::rng()),
            "03612-00206-556-123727-03-1033-17763.0000-2972018"
        );
        assert!(e.ndr64);
    }

    #[test]
    fn random_epids_have_the_documented_shape_and_ranges() {
        let c = catalog();
        let mut rng = rand::rng();
        for csvlk in &c.csvlks {
            let epid = random_epid(c, csvlk, 9600, 1033, 1_700_000_000, &mut rng);
            let parts: Vec<&str> = epid.split('-').collect();
            assert_eq!(parts.len(), 8, "{epid}");
            assert_eq!(parts[0], "06401");
            assert_eq!(parts[1].parse::<u32>().unwrap(), csvlk.epid_group_id);
            let key: u32 = format!("{}{}", parts[2], parts[3]).parse().unwrap();
            assert!(
                (csvlk.epid_key_id_min..csvlk.epid_key_id_max).contains(&key),
                "{epid}"
            );
            assert_eq!((parts[4], parts[5], parts[6]), ("03", "1033", "9600.0000"));
            let year: i32 = parts[7][3..].parse().unwrap();
            assert!((2013..=2023).contains(&year), "{epid}");
            validate(&epid).unwrap();
        }
    }

    #[test]
    fn level_1_is_stable_and_overrides_win() {
        let c = catalog();
        let mut o = options(Randomization::PerStart);
        o.overrides = vec![(1, "my-office-2010-epid".into())];
        o.lcid = Some(1031);
        let e = Epids::new(c, o, &mut rand::rng()).unwrap();
        let a = e.epid(c, 0, &mut rand::rng());
        assert_eq!(a, e.epid(c, 0, &mut rand::rng()));
        assert!(a.contains("-1031-"));
        assert_eq!(e.epid(c, 1, &mut rand::rng()), "my-office-2010-epid");
    }

    #[test]
    fn fixed_old_host_build_turns_ndr64_off() {
        let mut o = options(Randomization::PerRequest);
        o.host_build = Some(7601);
        let e = Epids::new(catalog(), o, &mut rand::rng()).unwrap();
        assert!(!e.ndr64);
        assert!(e.epid(catalog(), 0, &mut rand::rng()).starts_with("55041-"));
    }
}
