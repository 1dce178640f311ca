//! CLI commands that talk to a running node's local API.

use std::path::Path;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::output::{self, print_json};
use super::{CardCmd, CliError, Command, ContactsCmd, Global, ListArgs, PeerCmd, RecordCmd, UserCmd, DEFAULT_DIR};
use crate::config::{Layout, NodeConfig, Runtime};
use crate::pb;

pub type Authed = InterceptedService<Channel, Bearer>;

#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// API URL and token from flags/env, else from the node directory.
fn target(g: &Global) -> Result<(String, String), CliError> {
    if let Some(api) = &g.api {
        let token =
            g.token.clone().ok_or_else(|| CliError::Msg("--token (or LIAISON_TOKEN) is required with --api".into()))?;
        return Ok((api.clone(), token));
    }
    let dir = g.dir.clone().unwrap_or_else(|| DEFAULT_DIR.into());
    let layout = Layout::new(&dir);
    if !layout.exists() {
        return Err(CliError::Msg(format!("no node in {} (pass --dir, or --api and --token)", dir.display())));
    }
    let token = std::fs::read_to_string(layout.admin_token())
        .map_err(|e| CliError::Msg(format!("{}: {e}", layout.admin_token().display())))?
        .trim()
        .to_string();
    let api = match std::fs::read_to_string(layout.runtime()).ok().and_then(|t| toml::from_str::<Runtime>(&t).ok()) {
        Some(rt) => rt.api,
        None => NodeConfig::load(&layout).map_err(|e| CliError::Msg(e.to_string()))?.api,
    };
    Ok((format!("http://{api}"), token))
}

pub async fn connect(g: &Global) -> Result<Authed, CliError> {
    let (url, token) = target(g)?;
    connect_url(&url, &token).await
}

/// A channel to a node's local API that sends `token` with every call.
pub async fn connect_url(url: &str, token: &str) -> Result<Authed, CliError> {
    let url = url.to_string();
    let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| CliError::Msg(format!("--api {url:?}: {e}")))?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| CliError::Msg(format!("cannot reach the node's API at {url}: {e} (is `liaison run` running?)")))?;
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| CliError::Msg("token contains characters not allowed in a header".into()))?;
    Ok(InterceptedService::new(channel, Bearer(value)))
}

fn read_input(path: &Path) -> Result<String, CliError> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::Msg(format!("stdin: {e}")))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| CliError::Msg(format!("{}: {e}", path.display())))
    }
}

fn parse_record(path: &Path) -> Result<pb::Record, CliError> {
    let text = read_input(path)?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::Msg(format!("{}: not a liaison.v1.Record in JSON: {e}", path.display())))
}

/// Reads a card file: the exported JSON (`{"envelope": ..}`) or a bare envelope.
/// The console's address as people open it, from the node directory when
/// known (the running node's bound address first).
fn console_base(g: &Global) -> String {
    let Some(dir) = &g.dir else { return String::new() };
    let layout = crate::config::Layout::new(dir);
    let Ok(cfg) = crate::config::NodeConfig::load(&layout) else { return String::new() };
    let bound = std::fs::read_to_string(layout.runtime())
        .ok()
        .and_then(|t| toml::from_str::<crate::config::Runtime>(&t).ok())
        .and_then(|r| r.console);
    cfg.console.base_url(bound)
}

pub fn parse_card(path: &Path) -> Result<pb::Envelope, CliError> {
    let text = read_input(path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CliError::Msg(format!("{}: not JSON: {e}", path.display())))?;
    let env = value.get("envelope").cloned().unwrap_or(value);
    serde_json::from_value(env).map_err(|e| CliError::Msg(format!("{}: not a signed card: {e}", path.display())))
}

/// A fresh request_id (a random UUID) for a create-like call, so the call
/// can be retried without being applied twice.
pub fn request_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

pub fn parse_kind(s: &str) -> Result<pb::RecordKind, CliError> {
    let upper = format!("RECORD_KIND_{}", s.trim().to_uppercase().replace('-', "_"));
    pb::RecordKind::from_str_name(&upper)
        .filter(|k| *k != pb::RecordKind::Unspecified)
        .ok_or_else(|| CliError::Msg(format!("--kind: {s:?} is not one of contact_point, intelligence_report, entity, victim_referral, statistics_report")))
}

fn list_request(a: &ListArgs) -> Result<pb::ListRecordsRequest, CliError> {
    let updated_since = match &a.since {
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| CliError::Msg(format!("--since: {s:?} is not an RFC 3339 time: {e}")))?;
            Some(crate::convert::timestamp(t))
        }
        None => None,
    };
    Ok(pb::ListRecordsRequest {
        kind: match &a.kind {
            Some(k) => parse_kind(k)? as i32,
            None => 0,
        },
        country: a.country.clone().unwrap_or_default(),
        text: a.text.clone().unwrap_or_default(),
        updated_since,
        include_withdrawn: a.include_withdrawn,
        page_size: a.limit,
        page_token: a.page_token.clone().unwrap_or_default(),
        ..Default::default()
    })
}

pub async fn dispatch(g: &Global, cmd: Command) -> Result<(), CliError> {
    let ch = connect(g).await?;
    match cmd {
        Command::Card(CardCmd::Export { out }) => {
            let r =
                pb::node_service_client::NodeServiceClient::new(ch).get_card(pb::GetCardRequest {}).await?.into_inner();
            let text = output::card_json(&r)?;
            match out {
                Some(p) => std::fs::write(&p, text).map_err(|e| CliError::Msg(format!("{}: {e}", p.display())))?,
                None => println!("{text}"),
            }
        }
        Command::Status => {
            let r = pb::node_service_client::NodeServiceClient::new(ch)
                .get_status(pb::GetStatusRequest {})
                .await?
                .into_inner();
            if g.json {
                print_json(&r)?;
            } else {
                output::status(&r);
            }
        }
        Command::Peer(p) => {
            let mut c = pb::peer_service_client::PeerServiceClient::new(ch);
            match p {
                PeerCmd::Add { card } => {
                    let env = parse_card(&card)?;
                    let r = c.add_peer(pb::AddPeerRequest { card: Some(env) }).await?.into_inner();
                    if g.json {
                        print_json(&r)?;
                    } else if let Some(p) = r.peer {
                        output::peers(&[p]);
                    }
                }
                PeerCmd::List => {
                    let req = pb::ListPeersRequest { page_size: 1000, ..Default::default() };
                    let r = super::pages::all(req, |r| {
                        let mut c = c.clone();
                        async move { c.list_peers(r).await }
                    })
                    .await?;
                    if g.json {
                        print_json(&r)?;
                    } else {
                        output::peers(&r.peers);
                    }
                }
                PeerCmd::Remove { id } => {
                    c.remove_peer(pb::RemovePeerRequest { node_id: id.clone() }).await?;
                    output::done(g, &format!("peer {id} removed and un-pinned"))?;
                }
                PeerCmd::Route { id, via } => {
                    c.set_peer_route(pb::SetPeerRouteRequest { node_id: id.clone(), via: via.clone() }).await?;
                    let how =
                        if via.is_empty() { "directly".to_string() } else { format!("through {via}'s sealed relay") };
                    output::done(g, &format!("{id} is now reached {how}"))?;
                }
                PeerCmd::Ping { id } => {
                    let r = c.ping_peer(pb::PingPeerRequest { node_id: id.clone() }).await?.into_inner();
                    if g.json {
                        print_json(&r)?;
                    } else {
                        let name = r.card.map(|c| c.display_name).unwrap_or_default();
                        println!("{id} ({name}) answered over mutual TLS in {} ms", r.round_trip_ms);
                    }
                }
            }
        }
        Command::User(u) => {
            let mut c = pb::user_service_client::UserServiceClient::new(ch);
            match u {
                UserCmd::Add { name, role, scopes, peer } => {
                    let role =
                        pb::UserRole::from_str_name(&format!("USER_ROLE_{}", role.to_uppercase())).unwrap_or_default();
                    let r = c
                        .create_user(pb::CreateUserRequest { name, role: role as i32, scopes, peer })
                        .await?
                        .into_inner();
                    if g.json {
                        print_json(&r)?;
                    } else {
                        let user = r.user.unwrap_or_default();
                        println!("user {} created with role {}", user.name, output::role_name(user.role));
                        println!("scopes: {}", user.scopes.join(" "));
                        if !user.peer.is_empty() {
                            println!("reads as peer: {}", user.peer);
                        }
                        println!("token (shown once, store it safely): {}", r.token);
                    }
                }
                UserCmd::List => {
                    let req = pb::ListUsersRequest { page_size: 1000, ..Default::default() };
                    let r = super::pages::all(req, |r| {
                        let mut c = c.clone();
                        async move { c.list_users(r).await }
                    })
                    .await?;
                    if g.json {
                        print_json(&r)?;
                    } else {
                        output::users(&r.users);
                    }
                }
                UserCmd::Remove { name } => {
                    c.delete_user(pb::DeleteUserRequest { name: name.clone() }).await?;
                    output::done(g, &format!("user {name} removed; its token no longer works"))?;
                }
                UserCmd::Passwd { name } => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| CliError::Msg(format!("reading the password from standard input: {e}")))?;
                    let password = line.trim_end_matches(['\r', '\n']).to_string();
                    c.set_password(pb::SetPasswordRequest { name: name.clone(), password }).await?;
                    output::done(g, &format!("console password set for {name}"))?;
                }
                UserCmd::Link { name } => {
                    let r = c.issue_sign_in_link(pb::IssueSignInLinkRequest { name: name.clone() }).await?.into_inner();
                    if g.json {
                        print_json(&r)?;
                    } else {
                        let base = console_base(g);
                        println!("one-time sign-in link for {name} (shown once, valid 72 hours):");
                        println!("{base}{}", r.path);
                    }
                }
            }
        }
        Command::Record(r) => record(g, ch, r).await?,
        Command::Contacts(cmd) => {
            let (text, country) = match cmd {
                ContactsCmd::List { country } => (None, country),
                ContactsCmd::Search { text, country, region: true } => {
                    let r = pb::exchange_service_client::ExchangeServiceClient::new(ch)
                        .search_region(pb::SearchRegionRequest { text, country: country.unwrap_or_default() })
                        .await?
                        .into_inner();
                    if g.json {
                        return print_json(&r);
                    }
                    output::contacts(&r.records);
                    return Ok(());
                }
                ContactsCmd::Search { text, country, .. } => (Some(text), country),
            };
            let args =
                ListArgs { kind: Some("contact_point".into()), country, text, limit: 1000, ..Default::default() };
            let c = pb::record_service_client::RecordServiceClient::new(ch);
            let r = super::pages::all(list_request(&args)?, |r| {
                let mut c = c.clone();
                async move { c.list_records(r).await }
            })
            .await?;
            if g.json {
                print_json(&r)?;
            } else {
                output::contacts(&r.records);
            }
        }
        Command::Identifier { identifier } => {
            let (t, v) = identifier
                .split_once(':')
                .ok_or_else(|| CliError::Msg("identifier: expected TYPE:VALUE, e.g. passport:AB123456".into()))?;
            let it = crate::record::parse_identifier_type(t)
                .ok_or_else(|| CliError::Msg(format!("identifier: unknown type {t:?} (passport, national_id, phone, email, company_registration, bank_account)")))?;
            let r = pb::record_service_client::RecordServiceClient::new(ch)
                .lookup_identifier(pb::LookupIdentifierRequest { r#type: it as i32, value: v.to_string() })
                .await?
                .into_inner();
            if g.json {
                print_json(&r)?;
            } else if r.record_ids.is_empty() {
                println!("{t}:{} — no record", r.normalized);
            } else {
                println!("{t}:{} — {}", r.normalized, r.record_ids.join(", "));
            }
        }
        Command::Query(a) => super::exchange::query(g, ch, a).await?,
        Command::Check(a) => super::exchange::check(g, ch, a).await?,
        Command::Outbox { all } => {
            let sent = super::sop::sent(ch.clone()).await?;
            if !g.json && !sent.is_empty() {
                println!("Requests sent:");
                super::sop::requests_table(&sent);
                println!("Deliveries:");
            }
            super::exchange::outbox(g, ch, all).await?
        }
        Command::Request(r) => super::sop::request(g, ch, r).await?,
        Command::Inbox { overdue } => super::sop::inbox(g, ch, overdue).await?,
        Command::Case(c) => super::sop::case(g, ch, c).await?,
        Command::Hub(h) => super::hub::hub(g, ch, h).await?,
        Command::Sync { peer } => super::exchange::sync(g, ch, peer).await?,
        Command::Consent(c) => super::exchange::consent(g, ch, c).await?,
        Command::Agreement(a) => super::govern::agreement(g, ch, a).await?,
        Command::Audit(a) => super::govern::audit(g, ch, a).await?,
        Command::Policy(a) => super::govern::policy(g, ch, a).await?,
        Command::Import { file, format } => super::transfer::import(g, ch, &file, format.as_deref()).await?,
        Command::Export { kind, out, format } => {
            super::transfer::export(ch, kind.as_deref(), out.as_deref(), format.as_deref()).await?
        }
        Command::Watch { since, follow } => super::transfer::watch(ch, since, follow).await?,
        Command::Init(_)
        | Command::Run(_)
        | Command::Demo(_)
        | Command::Bench(_)
        | Command::Tls(_)
        | Command::Store(_) => return Err(CliError::Msg("internal: not a client command".into())),
    }
    Ok(())
}

async fn record(g: &Global, ch: Authed, cmd: RecordCmd) -> Result<(), CliError> {
    let cmd = match cmd {
        RecordCmd::Share { id, to, purpose } => return super::exchange::share(g, ch, id, to, &purpose).await,
        RecordCmd::Receipts { id } => return super::exchange::receipts(g, ch, id).await,
        other => other,
    };
    let mut c = pb::record_service_client::RecordServiceClient::new(ch);
    match cmd {
        RecordCmd::Add { file } => {
            let rec = parse_record(&file)?;
            let r = c
                .create_record(pb::CreateRecordRequest { record: Some(rec), ..Default::default() })
                .await?
                .into_inner();
            output::record_written(g, "created", r.record)?;
        }
        RecordCmd::Update { id, file, expected_version } => {
            let mut rec = parse_record(&file)?;
            rec.id = id;
            let r = c
                .update_record(pb::UpdateRecordRequest { record: Some(rec), expected_version, ..Default::default() })
                .await?
                .into_inner();
            output::record_written(g, "updated", r.record)?;
        }
        RecordCmd::Withdraw { id, expected_version } => {
            let r = c
                .withdraw_record(pb::WithdrawRecordRequest { id, expected_version, ..Default::default() })
                .await?
                .into_inner();
            output::record_written(g, "withdrawn", r.record)?;
        }
        RecordCmd::Show { id, reason, masked } => {
            let req = pb::GetRecordRequest { id, masked, reason: reason.unwrap_or_default() };
            let r = c.get_record(req).await?.into_inner();
            if g.json {
                print_json(&r)?;
            } else {
                output::record_detail(&r)?;
            }
        }
        RecordCmd::Share { .. } | RecordCmd::Receipts { .. } => {}
        RecordCmd::List(a) => {
            let r = c.list_records(list_request(&a)?).await?.into_inner();
            if g.json {
                print_json(&r)?;
            } else {
                output::records(&r.records);
                if !r.next_page_token.is_empty() {
                    println!("more: --page-token {}", r.next_page_token);
                }
            }
        }
    }
    Ok(())
}
