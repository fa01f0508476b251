//! The connection-oriented DCE/RPC subset KMS uses. Knows nothing of KMS
//! beyond the interface id and nothing of sockets: [`pdu::frame`] cuts a byte
//! stream into PDUs, [`session::Session`] answers each one.

pub mod bind;
pub mod call;
pub mod ndr;
pub mod pdu;
pub mod session;
pub mod syntax;
