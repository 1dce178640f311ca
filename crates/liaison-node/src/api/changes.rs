//! ChangeService: the ordered, resumable change feed for integrators.

use crate::api::status::OrStatus;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::require;
use crate::node::Node;
use crate::pb;
use crate::scope::Scope;
use crate::store::{self, records};

pub struct ChangeApi {
    node: Arc<Node>,
}

impl ChangeApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// Changes with seq > `after`, in order, at most `limit`.
pub fn read_changes(st: &dyn store::Store, after: u64, limit: usize) -> Result<Vec<pb::Change>, Status> {
    store::changes::after(st, after, limit).or_status()
}

/// A change with the record as a listing shows it: pseudonymised, exactly as
/// `ListRecords` does. Protected fields are seen only through `GetRecord`,
/// which audits the view.
fn with_record(st: &dyn store::Store, change: pb::Change) -> Result<pb::WatchChangesResponse, Status> {
    let record = if change.record_key.is_empty() {
        None
    } else {
        records::get(st, &change.record_key)
            .or_status()?
            .map(|s| s.local())
            .transpose()
            .or_status()?
            .map(|r| crate::redact::pseudonymise(&r))
    };
    Ok(pb::WatchChangesResponse { change: Some(change), record })
}

#[tonic::async_trait]
impl pb::change_service_server::ChangeService for ChangeApi {
    type WatchChangesStream = ReceiverStream<Result<pb::WatchChangesResponse, Status>>;

    async fn watch_changes(
        &self,
        req: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        require(&req, Scope::Feed)?;
        let r = req.into_inner();
        let node = Arc::clone(&self.node);
        // Subscribe before reading the backlog so nothing written in between is missed.
        let mut notify = node.db.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut last = r.since_seq;
            loop {
                let batch = match read_changes(node.db.store(), last, 256) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if batch.is_empty() {
                    if r.no_follow {
                        return;
                    }
                    match notify.recv().await {
                        Ok(_) | Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    }
                }
                for change in batch {
                    last = change.seq;
                    let item = with_record(node.db.store(), change);
                    if tx.send(item).await.is_err() {
                        return; // client went away
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
