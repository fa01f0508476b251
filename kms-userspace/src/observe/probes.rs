//! Source classes for the probe filter: named CIDR lists (the seed's
//! `internal_pod`, `cluster_node`, ...), everything else `external`. A
//! connection that closes without a single RPC request is a probe (uptime
//! monitors, kubelet checks, port scans): counted by class, never notified.

use std::net::IpAddr;

use ipnet::IpNet;

pub const EXTERNAL: &str = "external";

#[derive(Debug, Clone, PartialEq)]
pub struct SourceClasses(Vec<(String, Vec<IpNet>)>);

impl SourceClasses {
    /// The seed's classes.
    pub fn seed_default() -> Self {
        SourceClasses(vec![
            (
                "internal_pod".into(),
                vec!["10.10.0.0/16".parse().expect("cidr")],
            ),
            (
                "cluster_node".into(),
                vec!["10.0.20.0/24".parse().expect("cidr")],
            ),
        ])
    }

    /// `NAME=CIDR[,CIDR...]` items; the same name may repeat to add CIDRs.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let mut classes: Vec<(String, Vec<IpNet>)> = Vec::new();
        for item in items {
            let (name, cidrs) = item
                .split_once('=')
                .ok_or_else(|| format!("probe class {item:?}: expected NAME=CIDR[,CIDR...]"))?;
            let name = name.trim();
            let valid = !name.is_empty()
                && name != EXTERNAL
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(format!(
                    "probe class {item:?}: the name must be letters, digits, '_' or '-', and not {EXTERNAL:?}"
                ));
            }
            let nets = cidrs
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse::<IpNet>()
                        .map(|n| n.trunc())
                        .map_err(|_| format!("probe class {item:?}: {c:?} is not a CIDR"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match classes.iter_mut().find(|(n, _)| n == name) {
                Some((_, existing)) => existing.extend(nets),
                None => classes.push((name.to_string(), nets)),
            }
        }
        Ok(SourceClasses(classes))
    }

    /// The class of `addr`: the first class (in order given) whose list
    /// holds it, else `external`.
    pub fn classify(&self, addr: IpAddr) -> &str {
        let addr = crate::edge::tables::canonical(addr);
        self.0
            .iter()
            .find(|(_, nets)| nets.iter().any(|n| n.contains(&addr)))
            .map_or(EXTERNAL, |(name, _)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_in_order_and_default_to_external() {
        let c = SourceClasses::seed_default();
        assert_eq!(c.classify("10.10.3.4".parse().unwrap()), "internal_pod");
        assert_eq!(c.classify("10.0.20.9".parse().unwrap()), "cluster_node");
        assert_eq!(
            c.classify("::ffff:10.0.20.9".parse().unwrap()),
            "cluster_node"
        );
        assert_eq!(c.classify("198.18.0.2".parse().unwrap()), "external");
        let c = SourceClasses::parse(&[
            "lab=198.18.0.0/28,2001:db8::/64".into(),
            "lab=198.18.1.0/24".into(),
        ])
        .unwrap();
        assert_eq!(c.classify("198.18.1.7".parse().unwrap()), "lab");
        assert_eq!(c.classify("2001:db8::9".parse().unwrap()), "lab");
        for bad in [
            "lab",
            "=198.18.0.0/24",
            "external=198.18.0.0/24",
            "a b=198.18.0.0/24",
            "x=198.18.0.0/33",
        ] {
            assert!(SourceClasses::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
