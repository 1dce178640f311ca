//! A node's shared state: its identity, store, pinned peers, clock and the
//! signals its background tasks share. `serve` runs the listeners and the
//! tasks around it; this module depends on none of them.

use crate::convert::ProtoEnum;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Layout, NodeConfig};
use crate::convert::timestamp;

use crate::identity::{Identity, IdentityError};
use crate::pb;
use crate::refusal::{self, Refusals};
use crate::store::outbox::{decode, item_of};
use crate::store::{self, Db, StoreError, Tree};
use crate::tls::PinSet;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    AtRest(#[from] store::at_rest::AtRestError),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(String),
    #[error("{0} is a test-only switch and this is a release build: unset it")]
    TestOnly(&'static str),
}

pub struct Node {
    pub identity: Identity,
    pub layout: Layout,
    pub db: Db,
    pub pins: PinSet,
    pub clock: Arc<dyn Clock>,
    pub peers: crate::dial::Peers,
    /// Federation address actually bound (the config may say port 0).
    pub(crate) bound_federation: OnceLock<SocketAddr>,
    /// Wakes the outbox deliverer when something is queued.
    pub outbox_wake: tokio::sync::Notify,
    /// Notified each time the outbox settles an attempt (callers waiting for
    /// a delivery's outcome, e.g. an agreement proposal).
    pub outbox_progress: tokio::sync::Notify,
    /// Wakes the hub's relay forwarding when a message is accepted.
    pub relay_wake: tokio::sync::Notify,
    /// Wakes retention and revocation purges (e.g. on a revocation).
    pub housekeeping_wake: tokio::sync::Notify,
    /// Victim-case steps are read, checked and stored one at a time.
    pub case_steps: tokio::sync::Mutex<()>,
    /// Hub directory updates (pushed and pulled) apply one at a time.
    pub directory_updates: tokio::sync::Mutex<()>,
    /// Refused calls, counted per source and window until they are audited.
    pub refusals: Refusals,
    /// Rate limits per peer, token and failing address.
    pub gate: crate::limits::Gate,
}

impl Node {
    /// Opens an initialised node directory.
    pub fn open(layout: Layout, clock: Arc<dyn Clock>) -> Result<Arc<Node>, NodeError> {
        let identity = Identity::load(&layout)?;
        // Refuses a wrong or missing key before anything else is read.
        let store = store::at_rest::open(&layout, identity.config.storage.as_ref())?;
        let signer = store::db_signer(identity.id(), &identity.signing_key);
        let mut db = Db::new(Arc::new(store), Arc::clone(&clock), Some(signer))?;
        if let Ok(action) = std::env::var(store::CRASH_VAR) {
            if !cfg!(debug_assertions) {
                return Err(NodeError::TestOnly(store::CRASH_VAR));
            }
            tracing::warn!(action = %action, "test-only fault injection: the node aborts after this action");
            db.crash_after(action);
        }
        let fake_free = std::env::var_os(store::disk::FAKE_FREE_VAR).map(std::path::PathBuf::from);
        if fake_free.is_some() && !cfg!(debug_assertions) {
            return Err(NodeError::TestOnly(store::disk::FAKE_FREE_VAR));
        }
        let reserve = identity.config.limits.min_free_disk_mb.saturating_mul(1024 * 1024);
        db.set_disk(store::disk::Disk::new(layout.store(), reserve, fake_free));
        // Refuses a store that lost what its last checkpoint recorded.
        db.set_head_file(layout.store_head())?;
        crate::store::outbox::build_indexes(db.store())?;
        let refusals = Refusals::new(identity.config.intervals.refusal_window_secs);
        let gate = crate::limits::Gate::new(&identity.config.limits);
        let pins = PinSet::default();
        for peer in store::peers::all(db.store())? {
            if let Some(card) = &peer.card {
                pins.insert(&card.tls_certificate, &card.node_id);
            }
        }
        Ok(Arc::new(Node {
            identity,
            layout,
            db,
            pins,
            clock,
            peers: crate::dial::Peers::default(),
            bound_federation: OnceLock::new(),
            outbox_wake: tokio::sync::Notify::new(),
            outbox_progress: tokio::sync::Notify::new(),
            relay_wake: tokio::sync::Notify::new(),
            housekeeping_wake: tokio::sync::Notify::new(),
            case_steps: tokio::sync::Mutex::new(()),
            directory_updates: tokio::sync::Mutex::new(()),
            refusals,
            gate,
        }))
    }

    pub fn id(&self) -> &str {
        self.identity.id()
    }

    pub fn config(&self) -> &NodeConfig {
        &self.identity.config
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// Counts a refused call; it is audited with the others from `source`
    /// of the same kind when the window ends (see [`refusal`]).
    pub fn refuse(&self, source: &str, kind: refusal::Kind, detail: &str) {
        self.refusals.note(source, kind, detail, self.now());
    }

    /// This node's signed card, with the endpoint peers should dial.
    pub fn card(&self) -> (pb::NodeCard, pb::Envelope) {
        let bound = self.bound_federation.get().copied().unwrap_or(self.config().listen);
        let endpoint = self.config().advertised_endpoint(bound);
        self.identity.card(&endpoint, timestamp(self.now()))
    }
}

/// Runs `f` — store reads and scans — on the blocking pool, so a long scan
/// (a query over every record, a sync walk, audit verification) never
/// holds one of the async runtime's few worker threads.
pub async fn off_runtime<T, E>(node: &Arc<Node>, f: impl FnOnce(&Node) -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let node = Arc::clone(node);
    tokio::task::spawn_blocking(move || f(&node))
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
}

/// Waits (at most `within`) until each of the given deliveries was tried,
/// and says for each whether it was delivered, or why it is still waiting.
pub async fn delivery_outcome(
    node: &Node,
    deliveries: &[(String, String)],
    within: Duration,
) -> Vec<pb::DeliveryResult> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // Registered before the check, so progress made meanwhile is not missed.
        let progress = node.outbox_progress.notified();
        tokio::pin!(progress);
        progress.as_mut().enable();
        let items: Vec<pb::OutboxItem> = deliveries
            .iter()
            .map(|(_, id)| {
                let stored = node.db.store().get(Tree::Outbox, id.as_bytes()).ok().flatten();
                stored.and_then(|v| decode(&v).ok()).as_ref().map(item_of).unwrap_or_default()
            })
            .collect();
        // Each has been answered, or tried at least once (a party that is
        // down is reported as such; delivery goes on without the caller).
        let settled = items.iter().all(|i| i.state != pb::OutboxState::Pending as i32 || i.attempts > 0);
        if settled || tokio::time::timeout_at(deadline, progress).await.is_err() {
            return deliveries
                .iter()
                .zip(items)
                .map(|((peer, _), i)| {
                    let error = match pb::OutboxState::of(i.state) {
                        Some(pb::OutboxState::Delivered) => String::new(),
                        Some(pb::OutboxState::Pending) if i.last_error.is_empty() => {
                            "not answered yet; delivery continues".into()
                        }
                        Some(pb::OutboxState::Pending) => format!("{} (retried until delivered)", i.last_error),
                        _ => i.last_error,
                    };
                    pb::DeliveryResult {
                        node_id: peer.clone(),
                        delivered: i.state == pb::OutboxState::Delivered as i32,
                        error,
                    }
                })
                .collect();
        }
    }
}

/// Creates a node directory: keys, certificate, config, and the admin user
/// whose token is also written to `admin.token`. Returns the admin token.
pub fn init(layout: &Layout, cfg: &NodeConfig) -> Result<String, NodeError> {
    cfg.validate()?;
    if layout.exists() {
        return Err(NodeError::Identity(IdentityError::Invalid(format!(
            "{} already holds a node; refusing to overwrite it",
            layout.dir.display()
        ))));
    }
    let Some(storage) = cfg.storage.as_ref() else {
        return Err(NodeError::Config(ConfigError::Invalid {
            field: "storage",
            reason: "a new node needs a store key (key_file or key_env)".into(),
        }));
    };
    // The key before node.toml (written last by Identity::init): a node
    // directory never names a key file that does not exist. A key file that
    // is already there (provisioned on another volume) is used as it is.
    if let Some(path) = storage.key_path(layout) {
        if !path.exists() {
            crate::config::create_private_dir(&layout.dir)?;
            store::at_rest::write_key_file(&path)?;
        }
    }
    // A provisioned key file or an environment key that does not load stops
    // init here, before node.toml makes the directory a node.
    store::at_rest::load_key(layout, storage)?;
    let token = Identity::init(layout, cfg)?;
    let store = store::at_rest::open(layout, Some(storage))?;
    let user = pb::User {
        name: "admin".into(),
        role: pb::UserRole::Admin as i32,
        create_time: Some(timestamp(time::OffsetDateTime::now_utc())),
        ..Default::default()
    };
    let mut tx_batch = store::Batch::default();
    let hash = store::users::token_hash(&token);
    tx_batch.put(store::Tree::Tokens, hash.clone().into_bytes(), b"admin".to_vec());
    tx_batch.put(
        store::Tree::Users,
        b"admin".to_vec(),
        prost::Message::encode_to_vec(&store::users::StoredUser {
            user: Some(user),
            token_hash: hash,
            ..Default::default()
        }),
    );
    store::Store::apply(&store, &tx_batch)?;
    Ok(token)
}

/// Clock used by `run`: the system clock, shifted by the test-only
/// `LIAISON_CLOCK_OFFSET_SECS` in debug builds (see `clock::offset_from`).
pub fn default_clock() -> Result<Arc<dyn Clock>, String> {
    let value = std::env::var(crate::clock::OFFSET_VAR).ok();
    let offset = crate::clock::offset_from(value.as_deref(), cfg!(debug_assertions))?;
    if !offset.is_zero() {
        tracing::warn!(offset_secs = offset.whole_seconds(), "test-only clock offset in effect");
    }
    Ok(Arc::new(SystemClock { offset }))
}
