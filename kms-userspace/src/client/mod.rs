//! `kmsd client`: the equivalent of vlmcs. Performs full activations like a
//! real client, verifies everything a real client verifies, and in load mode
//! drives any KMS server with many concurrent clients.

pub mod load;
pub mod session;

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use uuid::Uuid;

use crate::{
    catalog::{Sku, catalog},
    config::KMS_PORT,
    kms::{
        message::{RequestBase, Version},
        protocol::{Ciphers, VerifiedResponse},
    },
};
use session::{BindOptions, Connection};

#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// KMS server: HOST, HOST:PORT, IPv6 or [IPv6]:PORT.
    #[arg(default_value = "127.0.0.1:1688")]
    pub target: String,
    /// Product name (or unique part of it) or SKU id; see `kmsd products`.
    #[arg(long, default_value = "Windows 10 Professional")]
    pub product: String,
    /// KMS protocol version [default: the product's native one].
    #[arg(long, value_parser = clap::value_parser!(u16).range(4..=6))]
    pub protocol: Option<u16>,
    /// Offer NDR64 in the bind.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub ndr64: bool,
    /// Offer Bind Time Feature Negotiation.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub btfn: bool,
    /// Bind without the multiplex flag.
    #[arg(long)]
    pub no_multiplex: bool,
    /// Activations to perform (per client task in load mode).
    #[arg(long)]
    pub requests: Option<u64>,
    /// A new TCP connection (and bind) for every activation.
    #[arg(long)]
    pub reconnect: bool,
    /// Client machine id [default: random per activation].
    #[arg(long, value_name = "GUID")]
    pub client_id: Option<Uuid>,
    /// Workstation name sent in the request.
    #[arg(long, default_value = "kmsd-client.example")]
    pub workstation: String,
    /// Say the client is a virtual machine.
    #[arg(long)]
    pub vm: bool,
    /// Minimum active clients the product requires (request's N policy) [default: the product's].
    #[arg(long, value_name = "N")]
    pub required_clients: Option<u32>,
    /// Seconds to wait for the server at each step.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Source address to connect from (a host with several addresses).
    #[arg(long, value_name = "ADDR")]
    pub source: Option<std::net::IpAddr>,
    /// Load mode: concurrent client tasks.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Load mode: run for this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Print JSON (one object on the last line).
    #[arg(long)]
    pub json: bool,
}

/// Everything fixed for a run: where, what, how.
#[derive(Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    pub source: Option<std::net::IpAddr>,
    pub sku: &'static Sku,
    pub version: Version,
    pub n_policy: u32,
    pub bind: BindOptions,
    pub reconnect: bool,
    pub client_id: Option<Uuid>,
    pub workstation: String,
    pub vm: bool,
    pub timeout: Duration,
}

impl Plan {
    /// A fresh request base (new CMID unless fixed, current time).
    pub fn request(&self) -> RequestBase {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let kms = catalog().kms_id(&self.sku.kms_id);
        RequestBase {
            version: self.version,
            vm_info: u32::from(self.vm),
            license_status: 2,
            binding_expiration: 43200,
            app_id: self.sku.app_id,
            act_id: self.sku.id,
            kms_id: kms.map_or(self.sku.kms_id, |k| k.id),
            cmid: self.client_id.unwrap_or_else(Uuid::new_v4),
            n_policy: self.n_policy,
            // Whole seconds, as vlmcs sends.
            client_time: (unix + 11_644_473_600) * 10_000_000,
            cmid_prev: Uuid::nil(),
            workstation_raw: RequestBase::workstation_field(&self.workstation),
        }
    }
}

pub async fn resolve(target: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(ip) = target.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, KMS_PORT));
    }
    let with_port = if target
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        target.to_string()
    } else {
        format!("{target}:{KMS_PORT}")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("resolving {target}"))?
        .next()
        .with_context(|| format!("{target} has no address"))
}

pub fn run(args: ClientArgs) -> anyhow::Result<()> {
    let load = args.concurrency.is_some() || args.duration.is_some();
    let mut builder = if load {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        let plan = plan(&args).await?;
        if load {
            load::run(&plan, &args).await
        } else {
            single(&plan, &args).await
        }
    })
}

async fn plan(args: &ClientArgs) -> anyhow::Result<Plan> {
    let sku = catalog()
        .find_sku(&args.product)
        .map_err(anyhow::Error::msg)?;
    let version = match args.protocol {
        Some(major) => Version { major, minor: 0 },
        None => match sku.default_protocol.as_str() {
            "4.0" => Version::V4,
            "5.0" => Version::V5,
            _ => Version::V6,
        },
    };
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    Ok(Plan {
        addr: resolve(&args.target).await?,
        source: args.source,
        sku,
        version,
        n_policy: args.required_clients.unwrap_or(sku.n_count_policy),
        bind: BindOptions {
            ndr64: args.ndr64,
            btfn: args.btfn,
            multiplex: !args.no_multiplex,
        },
        reconnect: args.reconnect,
        client_id: args.client_id,
        workstation: args.workstation.clone(),
        vm: args.vm,
        timeout: Duration::from_secs(args.timeout),
    })
}

/// Operator mode: `--requests N` activations (default 1), each printed.
async fn single(plan: &Plan, args: &ClientArgs) -> anyhow::Result<()> {
    let ciphers = Ciphers::new();
    let total = args.requests.unwrap_or(1).max(1);
    let mut conn: Option<Connection> = None;
    let mut results = Vec::new();
    // vlmcs numbers calls from 2 and keeps counting across reconnects.
    for call_id in (2..).take(total as usize) {
        if conn.is_none() || plan.reconnect {
            conn = Some(
                Connection::open(plan.addr, plan.source, plan.bind, plan.timeout, call_id).await?,
            );
        }
        let request = plan.request();
        let connection = conn.as_mut().expect("opened above");
        let verified = connection.activate(&ciphers, &request, call_id).await?;
        if !args.json {
            print_response(plan, &request, &verified);
        }
        results.push(json!({
            "protocol": plan.version.to_string(),
            "product": plan.sku.name,
            "epid": verified.base.epid,
            "hwid": verified.hwid.map(hex::encode_upper),
            "client_machine_id": verified.base.cmid.to_string(),
            "active_clients": verified.base.count,
            "activation_interval_minutes": verified.base.activation_interval,
            "renewal_interval_minutes": verified.base.renewal_interval,
        }));
    }
    if args.json {
        println!(
            "{}",
            json!({ "server": plan.addr.to_string(), "activations": results.len(), "failures": 0, "responses": results })
        );
    }
    Ok(())
}

fn print_response(plan: &Plan, request: &RequestBase, v: &VerifiedResponse) {
    println!(
        "Activated {} at {} (protocol {})",
        plan.sku.name, plan.addr, plan.version
    );
    println!("  ePID                 {}", v.base.epid);
    if let Some(hwid) = v.hwid {
        println!("  HwId                 {}", hex::encode_upper(hwid));
    }
    println!("  client machine id    {}", request.cmid);
    println!(
        "  active clients       {} (required {})",
        v.base.count, request.n_policy
    );
    println!("  activation interval  {} min", v.base.activation_interval);
    println!("  renewal interval     {} min", v.base.renewal_interval);
}
