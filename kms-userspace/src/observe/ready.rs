//! Readiness: every KMS listener bound and XDP attached in the configured
//! mode on every interface. `/readyz` answers 503 with the first thing that
//! is not, in one line.

use std::{net::SocketAddr, sync::Mutex};

#[derive(Default)]
pub struct Readiness {
    listeners: Mutex<Vec<(SocketAddr, Result<(), String>)>>,
    interfaces: Mutex<Vec<(String, Result<String, String>)>>,
}

fn set<K: PartialEq, V>(list: &Mutex<Vec<(K, V)>>, key: K, value: V) {
    let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key, value)),
    }
}

impl Readiness {
    /// Starts with everything pending.
    pub fn new(listeners: &[SocketAddr], interfaces: &[String]) -> Self {
        let ready = Readiness::default();
        for addr in listeners {
            ready.listener(*addr, Err("not bound yet".into()));
        }
        for iface in interfaces {
            ready.interface(iface, Err("XDP not attached yet".into()));
        }
        ready
    }

    pub fn listener(&self, addr: SocketAddr, state: Result<(), String>) {
        set(&self.listeners, addr, state);
    }

    /// `Ok(mode)` once attached.
    pub fn interface(&self, iface: &str, state: Result<String, String>) {
        set(&self.interfaces, iface.to_string(), state);
    }

    /// `Ok` when ready, else the first reason it is not.
    pub fn check(&self) -> Result<(), String> {
        for (addr, state) in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Err(e) = state {
                return Err(format!("KMS listener {addr}: {e}"));
            }
        }
        for (iface, state) in self
            .interfaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Err(e) = state {
                return Err(format!("XDP on {iface}: {e}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_everything_is() {
        let addr: SocketAddr = "198.18.0.1:1688".parse().unwrap();
        let r = Readiness::new(&[addr], &["eth0".into()]);
        assert_eq!(
            r.check().unwrap_err(),
            "KMS listener 198.18.0.1:1688: not bound yet"
        );
        r.listener(addr, Ok(()));
        assert_eq!(r.check().unwrap_err(), "XDP on eth0: XDP not attached yet");
        r.interface("eth0", Ok("native".into()));
        assert!(r.check().is_ok());
        r.interface("eth0", Err("native mode refused".into()));
        assert!(r.check().unwrap_err().contains("native mode refused"));
    }
}
