//! Onward-sharing consent in the meta tree: requests a holder sent us as
//! originator (`consent-req/<consent id>` → the request), and consents an
//! originator gave us as holder (`consent/<record key>\0<third>\0<purpose>`
//! → the originator's signed consent).

use prost::Message;

use crate::pb;
use crate::{Store, StoreError, Tree, Tx};

/// The family's prefix for requests (the bookkeeping sweep ends old ones by it).
pub const REQUEST_PREFIX: &str = "consent-req/";

fn request_key(consent_id: &str) -> Vec<u8> {
    format!("{REQUEST_PREFIX}{consent_id}").into_bytes()
}

fn held_key(record_key: &str, third: &str, purpose: pb::Purpose) -> Vec<u8> {
    format!("consent/{record_key}\0{third}\0{}", purpose as i32).into_bytes()
}

/// Decodes a stored request (the sweep reads raw entries).
pub fn decode_request(v: &[u8]) -> Result<pb::ConsentRequest, StoreError> {
    pb::ConsentRequest::decode(v).map_err(|e| StoreError::Corrupt(format!("consent request: {e}")))
}

/// The request under `consent_id`, if any.
pub fn request(st: &dyn Store, consent_id: &str) -> Result<Option<pb::ConsentRequest>, StoreError> {
    st.get(Tree::Meta, &request_key(consent_id))?.map(|v| decode_request(&v)).transpose()
}

/// Keeps `r` under its consent id, in `tx`.
pub fn put_request(tx: &mut Tx, r: &pb::ConsentRequest) {
    tx.batch.put(Tree::Meta, request_key(&r.consent_id), r.encode_to_vec());
}

/// Every request kept, in id order; entries that do not decode are left out.
pub fn requests(st: &dyn Store) -> Result<Vec<pb::ConsentRequest>, StoreError> {
    Ok(crate::scan_prefix(st, Tree::Meta, REQUEST_PREFIX.as_bytes(), None, usize::MAX)?
        .into_iter()
        .filter_map(|(_, v)| decode_request(&v).ok())
        .collect())
}

/// The originator's signed consent to share `record_key` with `third` for `purpose`, if held.
pub fn held(
    st: &dyn Store,
    record_key: &str,
    third: &str,
    purpose: pb::Purpose,
) -> Result<Option<pb::Envelope>, StoreError> {
    Ok(st.get(Tree::Meta, &held_key(record_key, third, purpose))?.and_then(|v| pb::Envelope::decode(v.as_slice()).ok()))
}

/// Keeps the originator's signed consent, in `tx`.
pub fn put_held(tx: &mut Tx, record_key: &str, third: &str, purpose: pb::Purpose, consent: &pb::Envelope) {
    tx.batch.put(Tree::Meta, held_key(record_key, third, purpose), consent.encode_to_vec());
}
