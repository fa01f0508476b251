//! The product catalogue (applications, KMS ids, SKUs, GVLKs, CSVLKs, host
//! builds), embedded from `data/products.json` at build time.

use std::{collections::HashMap, sync::OnceLock};

use serde::Deserialize;
use uuid::Uuid;

static PRODUCTS_JSON: &str = include_str!("../data/products.json");

#[derive(Debug, Deserialize)]
pub struct Application {
    pub id: Uuid,
    pub name: String,
    pub family: String,
    /// Initial size of vlmcsd's maintained client list for this application.
    pub min_active_clients: u32,
}

#[derive(Debug, Deserialize)]
pub struct KmsId {
    pub id: Uuid,
    pub name: String,
    pub app_id: Uuid,
    pub n_count_policy: u32,
    pub is_retail: bool,
    pub is_preview: bool,
    pub default_protocol: String,
    /// vlmcsd's CSVLK for this KMS id (None: vlmcsd does not know it, uses 0).
    pub csvlk_index: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub struct Sku {
    pub id: Uuid,
    pub name: String,
    pub kms_id: Uuid,
    pub app_id: Uuid,
    pub default_protocol: String,
    pub n_count_policy: u32,
    pub gvlk: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Csvlk {
    pub index: usize,
    pub ini_name: String,
    pub name: String,
    pub epid_group_id: u32,
    pub epid_key_id_min: u32,
    pub epid_key_id_max: u32,
    pub release_date_unix: i64,
    pub min_active_clients: u32,
    pub default_epid: String,
}

#[derive(Debug, Deserialize)]
pub struct HostBuild {
    pub build: u32,
    pub name: String,
    pub platform_id: u32,
    pub release_date_unix: Option<i64>,
    pub uses_ndr64: bool,
    pub use_for_epid: bool,
}

#[derive(Debug, Deserialize)]
struct Document {
    applications: Vec<Application>,
    csvlks: Vec<Csvlk>,
    kms_ids: Vec<KmsId>,
    skus: Vec<Sku>,
    host_builds: Vec<HostBuild>,
}

pub struct Catalog {
    pub applications: Vec<Application>,
    pub csvlks: Vec<Csvlk>,
    pub kms_ids: Vec<KmsId>,
    pub skus: Vec<Sku>,
    /// Builds eligible for random ePIDs, newest first.
    pub epid_builds: Vec<HostBuild>,
    by_kms_id: HashMap<Uuid, usize>,
    by_sku: HashMap<Uuid, usize>,
}

/// The embedded catalogue, parsed once.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let doc: Document = serde_json::from_str(PRODUCTS_JSON)
            .expect("embedded products.json is valid (unit-tested)");
        let mut epid_builds: Vec<HostBuild> = doc
            .host_builds
            .into_iter()
            .filter(|b| b.use_for_epid && b.release_date_unix.is_some())
            .collect();
        epid_builds.sort_by_key(|b| std::cmp::Reverse(b.build));
        Catalog {
            by_kms_id: doc
                .kms_ids
                .iter()
                .enumerate()
                .map(|(i, k)| (k.id, i))
                .collect(),
            by_sku: doc
                .skus
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id, i))
                .collect(),
            applications: doc.applications,
            csvlks: doc.csvlks,
            kms_ids: doc.kms_ids,
            skus: doc.skus,
            epid_builds,
        }
    })
}

impl Catalog {
    pub fn kms_id(&self, id: &Uuid) -> Option<&KmsId> {
        self.by_kms_id.get(id).map(|&i| &self.kms_ids[i])
    }

    pub fn sku(&self, id: &Uuid) -> Option<&Sku> {
        self.by_sku.get(id).map(|&i| &self.skus[i])
    }

    pub fn application(&self, id: &Uuid) -> Option<&Application> {
        self.applications.iter().find(|a| a.id == *id)
    }

    /// The CSVLK vlmcsd uses for a KMS id: its own, or 0 for unknown ids.
    pub fn csvlk_index(&self, kms_id: &Uuid) -> usize {
        self.kms_id(kms_id).and_then(|k| k.csvlk_index).unwrap_or(0)
    }

    pub fn csvlk_by_name(&self, ini_name: &str) -> Option<&Csvlk> {
        self.csvlks
            .iter()
            .find(|c| c.ini_name.eq_ignore_ascii_case(ini_name))
    }

    /// A SKU by exact GUID, exact name (case-insensitive), or unique name prefix.
    pub fn find_sku(&self, query: &str) -> Result<&Sku, String> {
        if let Ok(id) = query.parse::<Uuid>() {
            return self
                .sku(&id)
                .ok_or_else(|| format!("no product with SKU id {id}"));
        }
        if let Some(sku) = self
            .skus
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(query))
        {
            return Ok(sku);
        }
        let lower = query.to_ascii_lowercase();
        let matches: Vec<&Sku> = self
            .skus
            .iter()
            .filter(|s| s.name.to_ascii_lowercase().contains(&lower))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "no product matches {query:?} (see `kmsd products`)"
            )),
            many => Err(format!(
                "{query:?} matches {} products, e.g. {:?}, {:?}; be more precise or give the SKU id",
                many.len(),
                many[0].name,
                many[1].name
            )),
        }
    }

    /// Display name of the product a request names: the SKU's, else the KMS
    /// id's, else `unknown <guid>`.
    pub fn product_name(&self, sku: &Uuid, kms_id: &Uuid) -> String {
        self.sku(sku)
            .map(|s| s.name.clone())
            .or_else(|| self.kms_id(kms_id).map(|k| k.name.clone()))
            .unwrap_or_else(|| format!("unknown {sku}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogue_parses_and_indexes() {
        let c = catalog();
        assert_eq!(c.applications.len(), 3);
        assert_eq!(c.csvlks.len(), 6);
        assert!(c.skus.len() > 300);
        let pro = c.find_sku("Windows 10 Professional").unwrap();
        assert_eq!(pro.id.to_string(), "2de67392-b7a7-462a-b1ca-108dd189f588");
        assert_eq!(c.kms_id(&pro.kms_id).unwrap().n_count_policy, 25);
        assert_eq!(c.csvlk_index(&pro.kms_id), 0);
        assert_eq!(c.csvlk_index(&Uuid::from_u128(1)), 0);
        assert!(c.find_sku("Windows").is_err());
        assert!(c.epid_builds.iter().any(|b| b.build == 17763));
    }
}
