//! NodeService, PeerService and UserService handlers.

use crate::api::status::{InTx, OrStatus};
use crate::convert::ProtoEnum;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{require, status::invalid, Caller};
use crate::audit::Event;
use crate::convert::timestamp;
use crate::identity::new_token;
use crate::node::Node;
use crate::pb::{self, UserRole};
use crate::scope::{Scope, Scopes};
use crate::{peer, store};

pub struct NodeApi {
    node: Arc<Node>,
}

impl NodeApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl pb::node_service_server::NodeService for NodeApi {
    async fn get_card(&self, req: Request<pb::GetCardRequest>) -> Result<Response<pb::GetCardResponse>, Status> {
        require(&req, Scope::Status)?;
        let (card, env) = self.node.card();
        Ok(Response::new(pb::GetCardResponse { card: Some(card), envelope: Some(env) }))
    }

    async fn get_status(&self, req: Request<pb::GetStatusRequest>) -> Result<Response<pb::GetStatusResponse>, Status> {
        require(&req, Scope::Status)?;
        let st = self.node.db.store();
        Ok(Response::new(pb::GetStatusResponse {
            card: Some(self.node.card().0),
            peer_count: st.len(store::Tree::Peers).or_status()? as u64,
            record_count: st.len(store::Tree::Records).or_status()? as u64,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }
}

pub struct PeerApi {
    node: Arc<Node>,
}

impl PeerApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl pb::peer_service_server::PeerService for PeerApi {
    async fn add_peer(&self, req: Request<pb::AddPeerRequest>) -> Result<Response<pb::AddPeerResponse>, Status> {
        let c = require(&req, Scope::PeersManage)?;
        let env = req.into_inner().card.ok_or_else(|| invalid("card", "required"))?;
        let peer = peer::add(&self.node, &actor(&c), env, "card").await?;
        Ok(Response::new(pb::AddPeerResponse { peer: Some(peer) }))
    }

    async fn list_peers(&self, req: Request<pb::ListPeersRequest>) -> Result<Response<pb::ListPeersResponse>, Status> {
        require(&req, Scope::PeersRead)?;
        let r = req.get_ref();
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        let peers = store::peers::all(self.node.db.store()).or_status()?;
        let (peers, next_page_token) =
            paging.page(peers, |p| p.card.as_ref().map(|c| c.node_id.clone()).unwrap_or_default());
        Ok(Response::new(pb::ListPeersResponse { peers, next_page_token }))
    }

    async fn remove_peer(
        &self,
        req: Request<pb::RemovePeerRequest>,
    ) -> Result<Response<pb::RemovePeerResponse>, Status> {
        let c = require(&req, Scope::PeersManage)?;
        peer::remove(&self.node, &actor(&c), &req.get_ref().node_id).await?;
        Ok(Response::new(pb::RemovePeerResponse {}))
    }

    async fn ping_peer(&self, req: Request<pb::PingPeerRequest>) -> Result<Response<pb::PingPeerResponse>, Status> {
        require(&req, Scope::PeersRead)?;
        let (card, rtt) = peer::ping(&self.node, &req.get_ref().node_id).await?;
        Ok(Response::new(pb::PingPeerResponse { card: Some(card), round_trip_ms: rtt as u64 }))
    }

    async fn set_peer_route(
        &self,
        req: Request<pb::SetPeerRouteRequest>,
    ) -> Result<Response<pb::SetPeerRouteResponse>, Status> {
        let c = require(&req, Scope::PeersManage)?;
        let r = req.get_ref();
        crate::hub::relay::set_route(&self.node, &format!("user:{}", c.name), &r.node_id, &r.via).await?;
        Ok(Response::new(pb::SetPeerRouteResponse {}))
    }
}

pub struct UserApi {
    node: Arc<Node>,
}

impl UserApi {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn actor(c: &super::Caller) -> String {
    format!("user:{}", c.name)
}

fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@'))
}

#[tonic::async_trait]
impl pb::user_service_server::UserService for UserApi {
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let c = require(&req, Scope::UsersManage)?;
        let r = req.into_inner();
        if !valid_user_name(&r.name) {
            return Err(invalid("name", "must be 1-64 characters of letters, digits, '.', '_', '-', '@'"));
        }
        let role = UserRole::of(r.role).filter(|r| *r != UserRole::Unspecified);
        let Some(role) = role else {
            return Err(invalid("role", "must be one of admin, officer, integrator, auditor, partner"));
        };
        // A partner account reads as one pinned peer; no other account does.
        if role == UserRole::Partner {
            if store::peers::get(self.node.db.store(), &r.peer).or_status()?.is_none() {
                return Err(invalid("peer", "a partner account needs the id of a pinned peer"));
            }
        } else if !r.peer.is_empty() {
            return Err(invalid("peer", "only a partner account reads as a peer"));
        }
        let scopes =
            Scopes::narrow(role, &r.scopes).map_err(|(i, e)| invalid(&format!("scopes[{i}]"), &e.to_string()))?;
        let mut user = pb::User {
            name: r.name.clone(),
            role: role as i32,
            create_time: Some(timestamp(self.node.now())),
            // Stored only when narrowed: a role's bundle may grow in a later version.
            scopes: if r.scopes.is_empty() { Vec::new() } else { scopes.names() },
            peer: r.peer.clone(),
            ..Default::default()
        };
        let token = new_token();
        self.node
            .db
            .write(|st, tx| -> Result<(), InTx> {
                if store::users::get(st, &r.name)?.is_some() {
                    return Err(Status::already_exists(format!("user {} already exists", r.name)).into());
                }
                store::users::put(tx, &user, &token);
                // The token itself is never logged.
                let mut narrowed =
                    if user.scopes.is_empty() { String::new() } else { format!(", scopes {}", user.scopes.join(" ")) };
                if !user.peer.is_empty() {
                    narrowed.push_str(&format!(", reading as peer {}", user.peer));
                }
                tx.audit(Event::new(actor(&c), "user.create").reason(format!(
                    "{} with role {}{narrowed}",
                    user.name,
                    role.to_word()
                )));
                Ok(())
            })
            .await?;
        user.scopes = Caller::of_user(&user).scopes.names();
        Ok(Response::new(pb::CreateUserResponse { user: Some(user), token }))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Result<Response<pb::ListUsersResponse>, Status> {
        require(&req, Scope::UsersRead)?;
        let r = req.get_ref();
        let paging = super::page::Paging::of(r.page_size, &r.page_token)?;
        let (mut users, next_page_token) =
            paging.page(store::users::all(self.node.db.store()).or_status()?, |u| u.name.clone());
        for u in &mut users {
            u.scopes = Caller::of_user(u).scopes.names();
        }
        Ok(Response::new(pb::ListUsersResponse { users, next_page_token }))
    }

    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let caller = require(&req, Scope::UsersManage)?;
        let name = req.into_inner().name;
        if name == caller.name {
            return Err(invalid("name", "you cannot delete your own user"));
        }
        self.node
            .db
            .write(|st, tx| -> Result<(), InTx> {
                let stored =
                    store::users::get(st, &name)?.ok_or_else(|| Status::not_found(format!("user {name} not found")))?;
                store::users::delete(tx, &stored);
                let role = stored
                    .user
                    .as_ref()
                    .map_or(UserRole::Unspecified, |u| UserRole::of(u.role).unwrap_or(UserRole::Unspecified));
                tx.audit(
                    Event::new(actor(&caller), "user.delete").reason(format!("{name} with role {}", role.to_word())),
                );
                Ok(())
            })
            .await?;
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn set_password(
        &self,
        req: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        let c = require(&req, Scope::Status)?;
        let r = req.into_inner();
        // Anyone sets their own; only an admin sets another's.
        if r.name != c.name && !c.scopes.contains(Scope::UsersManage) {
            return Err(Status::permission_denied("only an admin sets another user's password"));
        }
        crate::account::set_password(&self.node, &actor(&c), &r.name, &r.password).await?;
        Ok(Response::new(pb::SetPasswordResponse {}))
    }

    async fn issue_sign_in_link(
        &self,
        req: Request<pb::IssueSignInLinkRequest>,
    ) -> Result<Response<pb::IssueSignInLinkResponse>, Status> {
        let c = require(&req, Scope::UsersManage)?;
        let name = req.into_inner().name;
        let (token, until) = crate::account::issue_link(&self.node, &actor(&c), &name).await?;
        Ok(Response::new(pb::IssueSignInLinkResponse {
            path: format!("/welcome/{token}"),
            token,
            expire_time: Some(timestamp(until)),
        }))
    }
}
