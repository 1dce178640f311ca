//! Witnessed checkpoints in the meta tree: `witness-held/<node>` (as a
//! witness: the newest checkpoint of `node` we countersigned) and
//! `witness-got/<witness>` (the newest countersignature `witness` gave us).

use prost::Message;

use crate::pb;
use crate::{Store, StoreError, Tree, Tx};

const HELD: &str = "witness-held/";
const GOT: &str = "witness-got/";

fn read(st: &dyn Store, key: &[u8]) -> Result<Option<pb::WitnessedCheckpoint>, StoreError> {
    st.get(Tree::Meta, key)?
        .map(|v| {
            pb::WitnessedCheckpoint::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("witnessed: {e}")))
        })
        .transpose()
}

/// What we hold, as a witness, for `node`.
pub fn held(st: &dyn Store, node: &str) -> Result<Option<pb::WitnessedCheckpoint>, StoreError> {
    read(st, format!("{HELD}{node}").as_bytes())
}

/// Keeps, in `tx`, what we now hold for `node`.
pub fn put_held(tx: &mut Tx, node: &str, wc: &pb::WitnessedCheckpoint) {
    tx.batch.put(Tree::Meta, format!("{HELD}{node}").into_bytes(), wc.encode_to_vec());
}

/// The countersignature `witness` gave us, if any.
pub fn got(st: &dyn Store, witness: &str) -> Result<Option<pb::WitnessedCheckpoint>, StoreError> {
    read(st, format!("{GOT}{witness}").as_bytes())
}

/// Keeps, in `tx`, `witness`'s countersignature.
pub fn put_got(tx: &mut Tx, witness: &str, wc: &pb::WitnessedCheckpoint) {
    tx.batch.put(Tree::Meta, format!("{GOT}{witness}").into_bytes(), wc.encode_to_vec());
}

/// Every countersignature kept, by witness.
pub fn all_got(st: &dyn Store) -> Result<Vec<(String, pb::WitnessedCheckpoint)>, StoreError> {
    crate::scan_prefix(st, Tree::Meta, GOT.as_bytes(), None, usize::MAX)?
        .into_iter()
        .map(|(k, v)| {
            let witness = String::from_utf8_lossy(k.get(GOT.len()..).unwrap_or_default()).into_owned();
            let wc = pb::WitnessedCheckpoint::decode(v.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("witnessed: {e}")))?;
            Ok((witness, wc))
        })
        .collect()
}
