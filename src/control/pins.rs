//! Guardrail pins kept in the store: loaded at start, and every new pin or
//! approval written through (off the request path, in order).
use std::sync::Arc;

use bulwark_actors::guardrail::Guardrails;
use bulwark_actors::guardrail::pins::PinSink;
use tokio::sync::mpsc;

use crate::store::{Store, StoreError, pins};

/// Writes pins to the store from one task, in the order they happened.
#[derive(Debug)]
struct StoreSink {
    queue: mpsc::UnboundedSender<(String, String, String)>,
}

impl PinSink for StoreSink {
    fn pinned(&self, server: &str, tool: &str, hash: &str) {
        let _ = self
            .queue
            .send((server.to_owned(), tool.to_owned(), hash.to_owned()));
    }
}

/// Loads the stored pins into `guardrails` and keeps new ones in `store`.
pub async fn keep(guardrails: &Guardrails, store: &Store) -> Result<(), StoreError> {
    let kept = pins::all(store).await?;
    let (queue, mut writes) = mpsc::unbounded_channel::<(String, String, String)>();
    let store = store.clone();
    tokio::spawn(async move {
        while let Some((server, tool, hash)) = writes.recv().await {
            if let Err(err) = pins::save(&store, &server, &tool, &hash).await {
                tracing::error!(%server, %tool, %err, "guardrail pin not stored");
            }
        }
    });
    guardrails
        .pins()
        .persist(kept, Arc::new(StoreSink { queue }));
    Ok(())
}
