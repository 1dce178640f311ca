//! The node's configuration file (`node.toml`) and the layout of its data directory.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

impl ConfigError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    National,
    Hub,
    Partner,
}

impl Role {
    pub fn to_pb(self) -> crate::pb::NodeRole {
        match self {
            Role::National => crate::pb::NodeRole::National,
            Role::Hub => crate::pb::NodeRole::Hub,
            Role::Partner => crate::pb::NodeRole::Partner,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// `node.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub organisation: String,
    /// ISO 3166-1 alpha-2; empty for a regional node.
    #[serde(default)]
    pub country: String,
    /// Region name for regional (hub) nodes.
    #[serde(default)]
    pub region: String,
    pub role: Role,
    /// Federation (mutual TLS) listener.
    pub listen: SocketAddr,
    /// Local API (bearer tokens) listener.
    pub api: SocketAddr,
    /// Endpoint peers dial, as published in the card; defaults to `listen`.
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub log_format: LogFormat,
    /// Prometheus exporter address; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
    #[serde(default)]
    pub intervals: Intervals,
    /// Rate and concurrency limits per caller.
    #[serde(default)]
    pub limits: crate::limits::Limits,
    /// Where the store key comes from. A node without it does not start
    /// (its store would be unencrypted); see `store::at_rest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// `[console]`: the web console's listener.
    #[serde(default)]
    pub console: Console,
    /// `[taxii]`: the read-only TAXII 2.1 server for partners' systems.
    #[serde(default)]
    pub taxii: Taxii,
}

/// `[taxii]` in node.toml (see docs/INTEGRATION.md): off unless enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxii {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_taxii")]
    pub listen: SocketAddr,
    /// As the console's: `off`, `node` or `files` (with `cert` and `key`).
    #[serde(default)]
    pub tls: ConsoleTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<std::path::PathBuf>,
}

/// An HTTP listener's settings (`[console]`, `[taxii]`): its own address,
/// and TLS files when `tls = "files"`.
fn check_listener(
    listen: SocketAddr,
    taken: &[SocketAddr],
    tls: ConsoleTls,
    has_files: bool,
    (listen_field, cert_field): (&'static str, &'static str),
) -> Result<(), ConfigError> {
    if listen.port() != 0 && taken.contains(&listen) {
        return Err(ConfigError::Invalid {
            field: listen_field,
            reason: "must differ from the node's other listeners".into(),
        });
    }
    if tls == ConsoleTls::Files && !has_files {
        return Err(ConfigError::Invalid {
            field: cert_field,
            reason: "tls = \"files\" needs both cert and key".into(),
        });
    }
    Ok(())
}

fn default_taxii() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7703))
}

impl Default for Taxii {
    fn default() -> Self {
        Taxii { enabled: false, listen: default_taxii(), tls: ConsoleTls::Off, cert: None, key: None }
    }
}

impl Taxii {
    fn check(&self, taken: &[SocketAddr]) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        check_listener(
            self.listen,
            taken,
            self.tls,
            self.cert.is_some() && self.key.is_some(),
            ("taxii.listen", "taxii.cert"),
        )
    }
}

/// `[console]` in node.toml (see docs/CONSOLE.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// false: no console listener.
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_console")]
    pub listen: SocketAddr,
    /// `off`: plain HTTP (loopback, or behind an operator's TLS proxy);
    /// `node`: HTTPS with the node's own certificate; `files`: HTTPS with
    /// `cert` and `key` (PEM, relative to the node directory).
    #[serde(default)]
    pub tls: ConsoleTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<std::path::PathBuf>,
    /// Mark cookies `Secure` although this listener is plain HTTP (a TLS
    /// proxy in front). Always on with `tls` other than `off`.
    #[serde(default)]
    pub secure_cookies: bool,
    /// Minutes without a request after which a session ends.
    #[serde(default = "default_idle")]
    pub idle_minutes: u64,
    /// The address people open in their browsers, for sign-in links
    /// (e.g. `https://liaison.unit.example`); defaults to this listener.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub public_url: String,
}

fn yes() -> bool {
    true
}

fn default_console() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7702))
}

fn default_idle() -> u64 {
    30
}

impl Default for Console {
    fn default() -> Self {
        Console {
            enabled: true,
            listen: default_console(),
            tls: ConsoleTls::Off,
            cert: None,
            key: None,
            secure_cookies: false,
            idle_minutes: default_idle(),
            public_url: String::new(),
        }
    }
}

impl Console {
    fn check(&self, taken: &[SocketAddr]) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError::Invalid { field, reason: reason.into() });
        if !self.enabled {
            return Ok(());
        }
        check_listener(
            self.listen,
            taken,
            self.tls,
            self.cert.is_some() && self.key.is_some(),
            ("console.listen", "console.cert"),
        )?;
        if !(1..=24 * 60).contains(&self.idle_minutes) {
            return bad("console.idle_minutes", "1 to 1440 minutes");
        }
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return bad("console.public_url", "an http:// or https:// address");
        }
        Ok(())
    }

    /// Whether session cookies carry `Secure`.
    pub fn secure(&self) -> bool {
        self.tls != ConsoleTls::Off || self.secure_cookies
    }

    /// The base of links people open (sign-in links).
    pub fn base_url(&self, bound: Option<SocketAddr>) -> String {
        if !self.public_url.is_empty() {
            return self.public_url.trim_end_matches('/').to_string();
        }
        let scheme = if self.tls == ConsoleTls::Off { "http" } else { "https" };
        format!("{scheme}://{}", bound.unwrap_or(self.listen))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleTls {
    #[default]
    Off,
    Node,
    Files,
}

/// `[storage]`: the key that encrypts the store at rest, kept apart from
/// `store/`. Exactly one of `key_file` and `key_env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// A file holding the key (hex or base64 of 32 bytes); a relative path is
    /// under the node directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key (hex or base64 of 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// Megabytes of the store's page cache (default 64): what bounds the
    /// node's memory however many records it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_mb: Option<u64>,
}

/// Default name of the store key file `init` writes in the node directory.
pub const STORE_KEY_FILE: &str = "store.key";

impl Storage {
    pub fn key_file(path: impl Into<PathBuf>) -> Self {
        Self { key_file: Some(path.into()), key_env: None, cache_mb: None }
    }

    /// The page cache size in bytes, when set (else the store's default).
    pub fn cache_bytes(&self) -> Option<u64> {
        self.cache_mb.map(|mb| mb.saturating_mul(1024 * 1024))
    }

    pub fn key_env(name: impl Into<String>) -> Self {
        Self { key_file: None, key_env: Some(name.into()), cache_mb: None }
    }

    /// The key file's path, relative paths taken from the node directory.
    pub fn key_path(&self, layout: &Layout) -> Option<PathBuf> {
        self.key_file.as_ref().map(|p| if p.is_absolute() { p.clone() } else { layout.dir.join(p) })
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid { field: "storage", reason: reason.into() };
        match (&self.key_file, &self.key_env) {
            (Some(_), Some(_)) => Err(invalid("set either key_file or key_env, not both")),
            (None, None) => Err(invalid("needs key_file (a key file) or key_env (an environment variable)")),
            (Some(p), None) if p.as_os_str().is_empty() => Err(invalid("key_file is empty")),
            (None, Some(v)) => {
                let ok = !v.is_empty()
                    && !v.starts_with(|c: char| c.is_ascii_digit())
                    && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
                if ok {
                    Ok(())
                } else {
                    Err(invalid("key_env must be an environment variable name (A-Z, 0-9, _), e.g. LIAISON_STORE_KEY"))
                }
            }
            (Some(_), None) => Ok(()),
        }
    }
}

/// How often background work runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intervals {
    /// Pull changes from peers whose grants allow sync.
    #[serde(default = "default_sync")]
    pub sync_secs: u64,
    /// Purge received records whose retention ended, or whose agreement was revoked.
    #[serde(default = "default_housekeeping")]
    pub housekeeping_secs: u64,
    /// Check request deadlines and escalate.
    #[serde(default = "default_deadline")]
    pub deadline_secs: u64,
    /// Refused calls are counted per source over windows this long and
    /// audited once per source, kind and window (see `refusal`).
    #[serde(default = "default_refusal_window")]
    pub refusal_window_secs: u64,
}

fn default_deadline() -> u64 {
    30
}

fn default_refusal_window() -> u64 {
    60
}

fn default_sync() -> u64 {
    60
}

fn default_housekeeping() -> u64 {
    30
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            sync_secs: default_sync(),
            housekeeping_secs: default_housekeeping(),
            deadline_secs: default_deadline(),
            refusal_window_secs: default_refusal_window(),
        }
    }
}

/// Files inside a node's data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("node.toml")
    }
    pub fn signing_key(&self) -> PathBuf {
        self.dir.join("signing.key")
    }
    pub fn tls_key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
    pub fn tls_cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }
    pub fn admin_token(&self) -> PathBuf {
        self.dir.join("admin.token")
    }
    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }
    /// The last checkpointed audit entry, kept beside the store (`store::head`).
    pub fn store_head(&self) -> PathBuf {
        self.dir.join("store.head")
    }
    /// Written at start-up with the addresses actually bound (ports may be 0 in the config).
    pub fn runtime(&self) -> PathBuf {
        self.dir.join("run.toml")
    }
    pub fn exists(&self) -> bool {
        self.config().exists()
    }
}

/// Addresses bound by a running node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runtime {
    pub federation: SocketAddr,
    pub api: SocketAddr,
    pub pid: u32,
    /// The web console's address, when it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<SocketAddr>,
    /// The TAXII server's address, when it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxii: Option<SocketAddr>,
}

pub use liaison_core::record::valid_node_id;

/// Checks a federation endpoint as peers dial it: `host:port`, where host is
/// a DNS name, an IPv4 address or a bracketed IPv6 address, and port is
/// 1-65535. No scheme, path, user or spaces. Returns why not.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if endpoint.is_empty() || endpoint.len() > 255 {
        return Err("missing or longer than 255 characters".into());
    }
    if endpoint.parse::<SocketAddr>().is_ok() {
        return if endpoint.ends_with(":0") { Err("port 0 cannot be dialled".into()) } else { Ok(()) };
    }
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return Err(format!("{endpoint:?} is not HOST:PORT"));
    };
    match port.parse::<u16>() {
        Ok(0) => return Err("port 0 cannot be dialled".into()),
        Ok(_) if port.bytes().all(|c| c.is_ascii_digit()) => {}
        _ => return Err(format!("{port:?} is not a port (1-65535)")),
    }
    if host.len() > 253 || host.is_empty() {
        return Err(format!("{endpoint:?} is not HOST:PORT"));
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !host.split('.').all(label_ok) {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    Ok(())
}

impl NodeConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_node_id(&self.id) {
            return Err(ConfigError::Invalid {
                field: "id",
                reason: format!(
                    "{:?} must be 2-32 characters of a-z, 0-9 and '-', starting with a letter (e.g. th-atpd)",
                    self.id
                ),
            });
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ConfigError::Invalid { field: "name", reason: "must be 1-200 characters".into() });
        }
        if self.organisation.chars().count() > 200 {
            return Err(ConfigError::Invalid { field: "organisation", reason: "at most 200 characters".into() });
        }
        let iso_like = self.country.len() == 2 && self.country.bytes().all(|c| c.is_ascii_uppercase());
        if !self.country.is_empty() && !iso_like {
            return Err(ConfigError::Invalid {
                field: "country",
                reason: format!("{:?} is not an ISO 3166-1 alpha-2 code (two capital letters)", self.country),
            });
        }
        if self.country.is_empty() && self.region.trim().is_empty() {
            return Err(ConfigError::Invalid { field: "country", reason: "a node needs a country or a region".into() });
        }
        if let Some(storage) = &self.storage {
            storage.check()?;
        }
        if let Err((field, reason)) = self.limits.check() {
            return Err(ConfigError::Invalid { field, reason: reason.into() });
        }
        if self.region.chars().count() > 100 {
            return Err(ConfigError::Invalid { field: "region", reason: "at most 100 characters".into() });
        }
        if !self.endpoint.is_empty() {
            check_endpoint(&self.endpoint).map_err(|reason| ConfigError::Invalid { field: "endpoint", reason })?;
        }
        if self.listen == self.api && self.listen.port() != 0 {
            return Err(ConfigError::Invalid {
                field: "api",
                reason: "must differ from the federation listener".into(),
            });
        }
        self.console.check(&[self.listen, self.api])?;
        let console = if self.console.enabled { vec![self.console.listen] } else { Vec::new() };
        self.taxii.check(&[&[self.listen, self.api][..], &console].concat())?;
        Ok(())
    }

    pub fn load(layout: &Layout) -> Result<Self, ConfigError> {
        let path = layout.config();
        let text = fs::read_to_string(&path).map_err(|e| ConfigError::io(&path, e))?;
        let cfg: NodeConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.clone(), reason: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The endpoint published in the card: explicit, else the bound federation address.
    pub fn advertised_endpoint(&self, bound: SocketAddr) -> String {
        if self.endpoint.is_empty() {
            bound.to_string()
        } else {
            self.endpoint.clone()
        }
    }
}

/// Writes `bytes` to a new file readable only by the owner; refuses to overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| ConfigError::io(path, e))?;
    f.write_all(bytes).map_err(|e| ConfigError::io(path, e))?;
    f.sync_all().map_err(|e| ConfigError::io(path, e))
}

/// Replaces a file atomically (write to a temporary file, fsync, rename).
pub fn replace_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_private(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(|e| ConfigError::io(path, e))
}

pub fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| ConfigError::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NodeConfig {
        NodeConfig {
            id: "th-atpd".into(),
            name: "Anti-Trafficking in Persons Division".into(),
            organisation: "Royal Thai Police".into(),
            country: "TH".into(),
            region: String::new(),
            role: Role::National,
            listen: "127.0.0.1:7700".parse().unwrap(),
            api: "127.0.0.1:7701".parse().unwrap(),
            endpoint: String::new(),
            log_format: LogFormat::Human,
            metrics: None,
            intervals: Default::default(),
            limits: Default::default(),
            storage: Some(Storage::key_file(STORE_KEY_FILE)),
            console: Default::default(),
            taxii: Default::default(),
        }
    }

    #[test]
    fn a_taxii_listener_is_checked_only_when_enabled() {
        let mut c = cfg();
        c.taxii.listen = c.api;
        assert!(c.validate().is_ok(), "off by default");
        c.taxii.enabled = true;
        let field = |c: &NodeConfig| match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&c), "taxii.listen");
        c.taxii.listen = c.console.listen;
        assert_eq!(field(&c), "taxii.listen");
        c.taxii.listen = SocketAddr::from(([127, 0, 0, 1], 7799));
        c.taxii.tls = ConsoleTls::Files;
        assert_eq!(field(&c), "taxii.cert");
        c.taxii.tls = ConsoleTls::Node;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn node_ids() {
        for ok in ["th-atpd", "kh", "commit-hub", "a1"] {
            assert!(valid_node_id(ok), "{ok}");
        }
        for bad in ["", "a", "TH", "1abc", "th_atpd", "th-", "a-very-long-node-id-that-goes-past-32"] {
            assert!(!valid_node_id(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        for ok in ["vn.example:7443", "127.0.0.1:7443", "[::1]:7443", "localhost:1", "a-b.c-d.example:65535"] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "vn.example",
            "vn.example:0",
            "vn.example:99999",
            "vn.example:+80",
            ":7443",
            "vn c02:7443",
            "https://vn.example:7443/x",
            "user@vn.example:7443",
            "-vn.example:7443",
            "vn..example:7443",
            "127.0.0.1:0",
            "::1:7443",
            "[::1]:0",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_endpoint(&format!("{}:1", "a".repeat(300))).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = cfg();
        c.country = "th".into();
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { field: "country", .. })));
        let mut c = cfg();
        c.api = c.listen;
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { field: "api", .. })));
        let mut c = cfg();
        c.country.clear();
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { field: "country", .. })));
        c.region = "COMMIT-Mekong".into();
        assert!(c.validate().is_ok());
        c.endpoint = "https://liaison.example:7443".into();
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { field: "endpoint", .. })));
        let mut c = cfg();
        for bad in [
            Storage { key_file: None, key_env: None, cache_mb: None },
            Storage { key_file: Some("store.key".into()), key_env: Some("K".into()), cache_mb: None },
            Storage::key_file(""),
            Storage::key_env("1KEY"),
            Storage::key_env("LIAISON-KEY"),
        ] {
            c.storage = Some(bad.clone());
            assert!(matches!(c.validate(), Err(ConfigError::Invalid { field: "storage", .. })), "{bad:?}");
        }
        c.storage = Some(Storage::key_env("LIAISON_STORE_KEY"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn key_paths_are_taken_from_the_node_directory_unless_absolute() {
        let layout = Layout::new("/var/lib/liaison");
        assert_eq!(Storage::key_file("store.key").key_path(&layout), Some(PathBuf::from("/var/lib/liaison/store.key")));
        assert_eq!(Storage::key_file("/etc/liaison/k").key_path(&layout), Some(PathBuf::from("/etc/liaison/k")));
        assert_eq!(Storage::key_env("K").key_path(&layout), None);
    }

    #[test]
    fn toml_round_trip() {
        let c = cfg();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<NodeConfig>(&text).unwrap(), c);
    }
}
