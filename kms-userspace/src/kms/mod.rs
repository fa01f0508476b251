//! The KMS layer: messages, their crypto and version framing. Knows nothing of
//! RPC or sockets.

pub mod crypto;
pub mod message;
pub mod protocol;

/// HRESULTs the server answers with (spec 7.7).
pub mod hresult {
    pub const S_OK: u32 = 0;
    /// Malformed or short request, unsupported version, N policy over 1000.
    pub const INVALID_DATA: u32 = 0x8007_000D;
    /// Product refused by whitelisting.
    pub const KMS_ID_MISMATCH: u32 = 0xC004_F042;
    /// Client clock more than 4 h off.
    pub const INVALID_TIMESTAMP: u32 = 0xC004_F06C;
    /// Maintained client list is full.
    pub const TOO_MANY_CLIENTS: u32 = 0xC004_D104;

    /// Symbolic name, for logs and metrics.
    pub fn name(code: u32) -> &'static str {
        match code {
            S_OK => "ok",
            INVALID_DATA => "invalid_data",
            KMS_ID_MISMATCH => "kms_id_mismatch",
            INVALID_TIMESTAMP => "invalid_timestamp",
            TOO_MANY_CLIENTS => "too_many_clients",
            0xC004_F038 => "not_enough_count",
            _ => "other",
        }
    }
}
