//! `kmsd products`: the catalogue, for people and for client-side scripts
//! (`--json` is keyed so a script can pick a GVLK by edition name).

use clap::Args;
use serde_json::json;

use crate::catalog::catalog;

#[derive(Args, Debug)]
pub struct ProductsArgs {
    /// Print JSON: {"products": [{"name", "sku_id", "kms_id", "application", "protocol", "gvlk"}], "gvlk_by_name": {...}}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ProductsArgs) -> anyhow::Result<()> {
    if args.json {
        println!("{}", products_json());
        return Ok(());
    }
    let c = catalog();
    println!("{:<62} {:<36} {:<36} GVLK", "PRODUCT", "SKU ID", "KMS ID");
    for sku in &c.skus {
        println!(
            "{:<62} {:<36} {:<36} {}",
            sku.name,
            sku.id,
            sku.kms_id,
            sku.gvlk.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// The GVLK table as JSON (also served as /keys.json by the metrics endpoint).
pub fn products_json() -> serde_json::Value {
    let c = catalog();
    let products: Vec<_> = c
        .skus
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "sku_id": s.id,
                "kms_id": s.kms_id,
                "application": c.application(&s.app_id).map(|a| a.name.as_str()),
                "protocol": s.default_protocol,
                "gvlk": s.gvlk,
            })
        })
        .collect();
    let by_name: serde_json::Map<String, serde_json::Value> = c
        .skus
        .iter()
        .filter_map(|s| Some((s.name.clone(), json!(s.gvlk.as_ref()?))))
        .collect();
    json!({ "products": products, "gvlk_by_name": by_name })
}
