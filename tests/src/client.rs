//! tokio-postgres clients, plain or TLS, with their connection driven in the background.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use crate::endpoint::Endpoint;
use crate::tls::unverified_tls;

/// Connects without TLS and drives the connection on a background task.
pub async fn connect(endpoint: &Endpoint) -> Result<Client, tokio_postgres::Error> {
    connect_config(&endpoint.config()).await
}

/// Connects with `config` without TLS and drives the connection on a background task.
pub async fn connect_config(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Connects with rustls (certificate not verified, as `sslmode=require`) using `config`'s
/// sslmode and channel-binding settings.
pub async fn connect_tls(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(unverified_tls()).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Connects without TLS and returns the asynchronous messages (notices, notifications) the
/// server sends, in order; the channel closes with the connection. The last item is the error
/// that ended the connection, if one did.
pub async fn connect_with_messages(
    config: &Config,
) -> Result<(Client, mpsc::UnboundedReceiver<Result<AsyncMessage, tokio_postgres::Error>>), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if tx.send(message).is_err() {
                break;
            }
        }
    });
    Ok((client, rx))
}

/// The SQLSTATE of a server error, or `None` for client-side and I/O errors.
pub fn sqlstate(error: &tokio_postgres::Error) -> Option<&str> {
    error.code().map(|c| c.code())
}
