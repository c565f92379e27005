//! Listening sockets, with the error that names what could not listen where.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// An address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for the {what} on {addr}: {source}")]
pub struct BindError {
    /// What was to listen there.
    pub what: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// Why not.
    #[source]
    pub source: std::io::Error,
}

/// Listen on `addr` for `what`.
pub async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { what, addr, source })
}
