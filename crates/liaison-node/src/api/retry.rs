//! Safe retries (AIP-155): a create-like call with a `request_id` runs at
//! most once per user and request_id (kept 24 hours); a retry gets the
//! first call's answer. The call runs to its end even if its caller has
//! gone (a client deadline), so the answer a retry finds is complete.

use std::future::Future;
use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::Status;

use super::status::{invalid, OrStatus};
use super::Caller;
use crate::node::Node;
use crate::store::retries::{self, Answer, Mark};

/// Checks a request_id: 1 to 64 of letters, digits, '.', '_', '-' (a UUID fits).
fn check(request_id: &str) -> Result<(), Status> {
    let ok = (1..=64).contains(&request_id.len())
        && request_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid("request_id", "1 to 64 letters, digits, '.', '_' or '-' (a UUID)"))
    }
}

/// A create-like request: it carries a `request_id`.
pub(super) trait Retryable: Message {
    fn request_id(&self) -> &str;
}

macro_rules! retryable {
    ($($t:ty),* $(,)?) => {$(
        impl Retryable for $t {
            fn request_id(&self) -> &str {
                &self.request_id
            }
        }
    )*};
}

retryable!(
    crate::pb::CreateRecordRequest,
    crate::pb::UpdateRecordRequest,
    crate::pb::WithdrawRecordRequest,
    crate::pb::ImportRecordsRequest,
    crate::pb::ShareRecordRequest,
    crate::pb::RequestConsentRequest,
    crate::pb::SendRequestRequest,
    crate::pb::TransitionRequestRequest,
    crate::pb::OpenCaseRequest,
    crate::pb::AdvanceCaseRequest,
);

/// Runs `run` on `req` once for `caller`'s request_id (directly when it
/// has none). The request's fingerprint tells a retry from a different
/// call reusing the id; `keep` is what of the response is stored for a
/// retry (records in it masked: a replayed answer never holds a victim's
/// identity past the record's own life).
pub(super) async fn once<Req, Resp, Fut>(
    node: &Arc<Node>,
    caller: &Caller,
    method: &str,
    req: Req,
    keep: fn(&Resp) -> Resp,
    run: impl FnOnce(Req) -> Fut,
) -> Result<Resp, Status>
where
    Req: Retryable,
    Resp: Message + Default + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let request_id = req.request_id().to_string();
    if request_id.is_empty() {
        return run(req).await;
    }
    check(&request_id)?;
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(req.encode_to_vec());
    let fingerprint = h.finalize().to_vec();
    let key = retries::key(&caller.name, &request_id);
    // A retry arriving while the first call runs waits for its answer.
    let guard = node.db.retries.lock_for(&key).lock_owned().await;
    let now = node.now();
    if let Some(a) = retries::get(node.db.store(), &key).or_status()? {
        if now.unix_timestamp().saturating_sub(a.time) < retries::KEEP_SECS {
            return answer(a, &fingerprint);
        }
    }
    let mark = Mark { key: key.clone(), fingerprint: fingerprint.clone(), time: now.unix_timestamp() };
    let work = retries::marking(mark, run(req));
    let node = Arc::clone(node);
    let task = tokio::spawn(async move {
        let _held = guard;
        let out = work.await?;
        let a = Answer { fingerprint, response: Some(keep(&out).encode_to_vec()), time: now.unix_timestamp() };
        node.db
            .write(|_, tx| {
                retries::put(tx, &key, &a);
                Ok::<_, crate::store::StoreError>(())
            })
            .await
            .or_status()?;
        Ok(out)
    });
    task.await.map_err(|e| Status::internal(format!("the call failed: {e}")))?
}

/// A stored answer, for a retry with `fingerprint`.
fn answer<Resp: Message + Default>(a: Answer, fingerprint: &[u8]) -> Result<Resp, Status> {
    if a.fingerprint != fingerprint {
        return Err(invalid("request_id", "already used for a different request"));
    }
    match a.response {
        Some(bytes) => Resp::decode(bytes.as_slice()).map_err(|e| Status::data_loss(format!("stored answer: {e}"))),
        // The effect landed but the node stopped before the answer was kept.
        None => Err(Status::already_exists(
            "this request_id was already applied, but its answer was lost in a restart: read the result instead of retrying",
        )),
    }
}

/// Keeps a response as it is.
pub(super) fn as_is<T: Clone>(r: &T) -> T {
    r.clone()
}
