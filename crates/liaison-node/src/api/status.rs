//! Every module error maps to a gRPC status here, and only here.
//! Validation failures carry a `BadRequest` detail naming the field.
//! [`refusal_kind`] reads a status back as the kind of refusal it records,
//! and [`UndecodableLayer`] corrects the status tonic gives a request body
//! that does not decode.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::refusal::Kind;

use crate::peer::PeerError;
use crate::record::FieldError;
use crate::store::records::RecordError;
use crate::store::StoreError;

/// A caller over its limit: `RESOURCE_EXHAUSTED` with a retry hint.
pub fn exhausted(what: &str, retry: std::time::Duration) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("{what}: retry in {} ms", retry.as_millis().max(1)),
        ErrorDetails::with_retry_info(Some(retry)),
    )
}

pub fn invalid(field: &str, reason: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {reason}"),
        ErrorDetails::with_bad_request_violation(field, reason),
    )
}

/// A token without the scope a method needs.
pub fn missing_scope(scope: crate::scope::Scope, role: crate::pb::UserRole) -> Status {
    let role = crate::convert::ProtoEnum::to_word(role);
    let meta = std::collections::HashMap::from([
        ("scope".to_string(), scope.name().to_string()),
        ("role".to_string(), role.to_string()),
    ]);
    Status::with_error_details(
        Code::PermissionDenied,
        format!("this token lacks the scope {} (role {role})", scope.name()),
        ErrorDetails::with_error_info("MISSING_SCOPE", "liaison.auth", meta),
    )
}

/// `ErrorInfo` domain of refusals decided by the federation layer itself.
const FEDERATION: &str = "liaison.federation";
/// `ErrorInfo` reason of a message that names another node than its sender's certificate.
const IMPERSONATION: &str = "IMPERSONATION";
/// `ErrorInfo` domain of policy denials (audited where they are decided).
const POLICY: &str = "liaison.policy";

/// A message claimed to come from `claimed`, but the caller's pinned certificate is `caller`'s.
pub fn impersonation(caller: &str, claimed: &str) -> Status {
    Status::with_error_details(
        Code::PermissionDenied,
        format!("claimed to be {claimed}, but the presented certificate belongs to {caller}"),
        ErrorDetails::with_error_info(IMPERSONATION, FEDERATION, std::collections::HashMap::new()),
    )
}

/// The kind of refusal a status answering a federation call records, if any.
/// Policy denials are left out (every decision is audited where it is made),
/// and so are failures that are this node's, not the caller's (storage,
/// unreachable peers).
pub fn refusal_kind(s: &Status) -> Option<Kind> {
    let info = s.get_details_error_info();
    let domain = info.as_ref().map(|i| i.domain.as_str());
    match s.code() {
        Code::PermissionDenied if domain == Some(POLICY) => None,
        Code::PermissionDenied
            if info.as_ref().is_some_and(|i| i.domain == FEDERATION && i.reason == IMPERSONATION) =>
        {
            Some(Kind::Impersonation)
        }
        Code::PermissionDenied | Code::FailedPrecondition => Some(Kind::Refused),
        Code::Unauthenticated => Some(Kind::Signature),
        Code::InvalidArgument | Code::OutOfRange => Some(Kind::Invalid),
        _ => None,
    }
}

/// tonic answers a request body that does not decode as the method's
/// message (or a call without a message) with INTERNAL, as if the server
/// were at fault. Rewrites such a trailers-only answer to INVALID_ARGUMENT
/// naming the field `request`. Returns whether it did.
pub fn correct_undecodable(headers: &mut http::HeaderMap) -> bool {
    let Some(s) = Status::from_header_map(headers) else { return false };
    let undecodable = s.code() == Code::Internal
        && (s.message().starts_with("failed to decode Protobuf message") || s.message() == "Missing request message.");
    if !undecodable {
        return false;
    }
    let fixed = invalid("request", &format!("the body is not a valid message for this method ({})", s.message()));
    for h in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(h);
    }
    fixed.add_header(headers).is_ok()
}

/// Applies [`correct_undecodable`] to every answer of a listener.
#[derive(Clone, Copy, Debug, Default)]
pub struct UndecodableLayer;

impl<S> tower::Layer<S> for UndecodableLayer {
    type Service = Undecodable<S>;
    fn layer(&self, inner: S) -> Undecodable<S> {
        Undecodable { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Undecodable<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Undecodable<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            correct_undecodable(res.headers_mut());
            Ok(res)
        })
    }
}

/// An error of another crate (the core's, the store's) that maps to a
/// status here. `?` cannot convert these (neither the error nor `Status` is
/// this crate's), so callers write `.or_status()?`.
pub trait ToStatus {
    fn to_status(self) -> Status;
}

/// A status decided inside a store transaction or an off-runtime read:
/// those need an error a `StoreError` converts into, which `Status` (another
/// crate's) cannot be. `?` turns it back into the status.
#[derive(Debug)]
pub struct InTx(pub Status);

impl From<StoreError> for InTx {
    fn from(e: StoreError) -> Self {
        InTx(e.to_status())
    }
}

impl From<Status> for InTx {
    fn from(s: Status) -> Self {
        InTx(s)
    }
}

impl From<InTx> for Status {
    fn from(e: InTx) -> Self {
        e.0
    }
}

/// `Result<T, E>` to `Result<T, Status>` for every error that maps here.
pub trait OrStatus<T> {
    fn or_status(self) -> Result<T, Status>;
}

impl<T, E: ToStatus> OrStatus<T> for Result<T, E> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(ToStatus::to_status)
    }
}

impl ToStatus for FieldError {
    fn to_status(self) -> Status {
        let e = self;
        invalid(&e.field, &e.reason)
    }
}

impl ToStatus for StoreError {
    fn to_status(self) -> Status {
        let e = self;
        match e {
            // The caller can do nothing but wait for space: say so, with a hint.
            StoreError::Full { .. } => {
                tracing::warn!(error = %e, "write refused");
                exhausted(&e.to_string(), std::time::Duration::from_secs(60))
            }
            StoreError::Failed(_) => Status::unavailable(e.to_string()),
            // Raw IO and decoding details stay in the node's log.
            StoreError::Backend(_) => {
                tracing::error!(error = %e, "storage error");
                Status::unavailable("storage failure on this node (the operator sees the cause in its log)")
            }
            StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "storage error");
                Status::data_loss("a stored value on this node is damaged (the operator sees which in its log)")
            }
        }
    }
}

impl ToStatus for RecordError {
    fn to_status(self) -> Status {
        let e = self;
        match e {
            RecordError::Invalid(f) => f.to_status(),
            RecordError::NotFound(_) => Status::not_found(e.to_string()),
            RecordError::AlreadyExists(_) => Status::already_exists(e.to_string()),
            RecordError::StaleVersion { .. } => Status::with_error_details(
                Code::Aborted,
                e.to_string(),
                ErrorDetails::with_precondition_failure_violation("VERSION", "record", e.to_string()),
            ),
            RecordError::ReadOnly(_) | RecordError::Withdrawn(_) => Status::failed_precondition(e.to_string()),
            RecordError::KindChange { .. } => invalid("record.body", &e.to_string()),
            RecordError::Store(s) => s.to_status(),
        }
    }
}

impl From<PeerError> for Status {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::Card(ref c) => match c {
                crate::identity::IdentityError::CardField { field, reason } => {
                    invalid(&format!("card.{field}"), reason)
                }
                _ => invalid("card", &c.to_string()),
            },
            PeerError::Own(_) => invalid("card.node_id", &e.to_string()),
            PeerError::KeyConflict(_) | PeerError::CertConflict(_) => Status::already_exists(e.to_string()),
            PeerError::NotFound(_) => Status::not_found(e.to_string()),
            PeerError::Stale(_) => Status::failed_precondition(e.to_string()),
            PeerError::Unreachable { .. } => Status::unavailable(e.to_string()),
            PeerError::BadAnswer { .. } => Status::data_loss(e.to_string()),
            PeerError::Dial(_) => Status::failed_precondition(e.to_string()),
            PeerError::Store(s) => s.to_status(),
        }
    }
}

impl ToStatus for crate::agreement::AgreementError {
    fn to_status(self) -> Status {
        let e = self;
        invalid(&e.field, &e.reason)
    }
}

impl From<crate::agreement::book::BookError> for Status {
    fn from(e: crate::agreement::book::BookError) -> Self {
        use crate::agreement::book::BookError as B;
        match e {
            B::Invalid(a) => a.to_status(),
            B::NotFound(_) => Status::not_found(e.to_string()),
            B::Exists { .. } => Status::already_exists(e.to_string()),
            B::NotAParty(_) => Status::permission_denied(e.to_string()),
            B::Conflict(_) | B::NotReceived(_) => Status::failed_precondition(e.to_string()),
            B::Refused(_) => Status::permission_denied(e.to_string()),
            B::Envelope(_) => Status::with_error_details(
                Code::Unauthenticated,
                e.to_string(),
                ErrorDetails::with_bad_request_violation("envelope.signatures", e.to_string()),
            ),
            B::Store(s) => s.to_status(),
        }
    }
}

impl From<crate::exchange::ExchangeError> for Status {
    fn from(e: crate::exchange::ExchangeError) -> Self {
        use crate::exchange::ExchangeError as E;
        match e {
            E::Denied(ref d) => denied(d.code(), e.to_string()),
            E::Invalid { field, reason } => invalid(&field, &reason),
            E::NotFound(_) => Status::not_found(e.to_string()),
            E::Peer { .. } => Status::unavailable(e.to_string()),
            // A peer's answer: passing on "try again later" as such; any other
            // error is the peer refusing, which for our caller is a failed precondition.
            E::PeerStatus {
                code: c @ (Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted), ..
            } => Status::new(c, e.to_string()),
            E::PeerStatus { .. } => Status::failed_precondition(e.to_string()),
            E::Refused(_) => Status::failed_precondition(e.to_string()),
            E::Envelope(_) => Status::unauthenticated(e.to_string()),
            E::Store(s) => s.to_status(),
            E::Book(b) => b.into(),
            // Entries expire with time: a retry much later can succeed.
            E::Full(_) => exhausted(&e.to_string(), std::time::Duration::from_secs(3600)),
        }
    }
}

impl From<crate::account::AccountError> for Status {
    fn from(e: crate::account::AccountError) -> Self {
        use crate::account::AccountError as A;
        match e {
            A::Invalid { field, ref reason } => invalid(field, reason),
            A::NotFound(_) => Status::not_found(e.to_string()),
            A::Refused => Status::unauthenticated(e.to_string()),
            A::Throttled(wait) => exhausted("too many sign-in attempts", wait),
            A::Store(s) => s.to_status(),
        }
    }
}

impl From<crate::hub::HubError> for Status {
    fn from(e: crate::hub::HubError) -> Self {
        use crate::hub::HubError as H;
        match e {
            H::Denied(ref d) => denied(d.code(), e.to_string()),
            H::Conflict(_) => Status::already_exists(e.to_string()),
            H::Exhausted(_) => Status::resource_exhausted(e.to_string()),
            H::Exchange(x) => x.into(),
        }
    }
}

impl From<crate::witness::WitnessError> for Status {
    fn from(e: crate::witness::WitnessError) -> Self {
        use crate::witness::WitnessError as W;
        // A witness refusing an older or conflicting checkpoint names the
        // entry it holds, so the caller knows what it is behind.
        let held = |kind: &str, seq: u64, msg: String| {
            Status::with_error_details(
                Code::FailedPrecondition,
                msg.clone(),
                ErrorDetails::with_precondition_failure_violation(kind, format!("seq:{seq}"), msg),
            )
        };
        match e {
            W::Envelope(_) => Status::with_error_details(
                Code::Unauthenticated,
                e.to_string(),
                ErrorDetails::with_bad_request_violation("checkpoint.signatures", e.to_string()),
            ),
            W::Invalid { field, ref reason } => invalid(field, reason),
            W::Impersonation { ref caller, ref claimed } => impersonation(caller, claimed),
            W::Stale { held: seq, .. } => held("CHECKPOINT_STALE", seq, e.to_string()),
            W::Equivocation { seq } => held("CHECKPOINT_EQUIVOCATION", seq, e.to_string()),
            W::UnknownPeer(_) => Status::permission_denied(e.to_string()),
            W::Unreachable { .. } => Status::unavailable(e.to_string()),
            W::Mismatch(_) => Status::data_loss(e.to_string()),
            W::Store(s) => s.to_status(),
        }
    }
}

/// A policy refusal: PERMISSION_DENIED with the denial code as `ErrorInfo.reason`.
fn denied(code: &str, msg: String) -> Status {
    Status::with_error_details(
        Code::PermissionDenied,
        msg,
        ErrorDetails::with_error_info(code, "liaison.policy", std::collections::HashMap::new()),
    )
}

impl From<crate::sop::desk::DeskError> for Status {
    fn from(e: crate::sop::desk::DeskError) -> Self {
        use crate::sop::desk::DeskError as D;
        match e {
            D::Sop(s) => match s {
                crate::sop::request::SopError::UnknownType(..) => invalid("request_type", &s.to_string()),
                crate::sop::request::SopError::PurposeNotAllowed { .. } => invalid("purpose", &s.to_string()),
                crate::sop::request::SopError::Missing(f) => {
                    invalid(if f == "reason" { "text" } else { f }, "required")
                }
                crate::sop::request::SopError::TooLarge { field, ref reason } => invalid(field, reason),
                crate::sop::request::SopError::Backlog(_) => Status::resource_exhausted(s.to_string()),
                _ => Status::failed_precondition(s.to_string()),
            },
            D::Denied(ref d) => denied(d.code(), e.to_string()),
            D::Invalid { field, reason } => invalid(field, &reason),
            D::NotFound(_) => Status::not_found(e.to_string()),
            D::Exchange(x) => x.into(),
            D::Store(s) => s.to_status(),
        }
    }
}

impl From<crate::sop::cases::CaseError> for Status {
    fn from(e: crate::sop::cases::CaseError) -> Self {
        use crate::sop::cases::CaseError as C;
        match e {
            C::Gate(ref g) => Status::with_error_details(
                Code::FailedPrecondition,
                e.to_string(),
                ErrorDetails::with_precondition_failure_violation("SAFEGUARD", g.code(), g.to_string()),
            ),
            C::Denied(ref d) => denied(d.code(), e.to_string()),
            C::Invalid { field, reason } => invalid(field, &reason),
            C::NotFound(_) => Status::not_found(e.to_string()),
            C::NotReady(_) => Status::unavailable(e.to_string()),
            C::Exchange(x) => x.into(),
            C::Store(s) => s.to_status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ExchangeError::refusal` (used where the exchange cannot see this
    /// module) classifies every error as its status would be read back.
    #[test]
    fn exchange_refusals_agree_with_their_statuses() {
        use crate::agreement::book::BookError as B;
        use crate::exchange::ExchangeError as E;
        let peer = |code| E::PeerStatus { peer: "kh".into(), code, message: "m".into() };
        let all = || {
            vec![
                E::Denied(crate::policy::Denial::NoAgreement),
                E::Invalid { field: "f".into(), reason: "r".into() },
                E::NotFound("x".into()),
                E::Peer { peer: "kh".into(), reason: "down".into() },
                peer(Code::Unavailable),
                peer(Code::DeadlineExceeded),
                peer(Code::ResourceExhausted),
                peer(Code::PermissionDenied),
                peer(Code::InvalidArgument),
                E::Refused("no".into()),
                E::Envelope(crate::envelope::EnvelopeError::BadSignature("x".into())),
                E::Store(StoreError::Corrupt("x".into())),
                E::Store(StoreError::Full { free: 1, reserve: 2 }),
                E::Book(B::Invalid(crate::agreement::AgreementError { field: "id".into(), reason: "r".into() })),
                E::Book(B::NotFound("a".into())),
                E::Book(B::Exists { id: "a".into(), version: 1 }),
                E::Book(B::NotAParty("a".into())),
                E::Book(B::Conflict("a".into())),
                E::Book(B::NotReceived("a".into())),
                E::Book(B::Refused("a".into())),
                E::Book(B::Envelope(crate::envelope::EnvelopeError::BadSignature("x".into()))),
                E::Book(B::Store(StoreError::Backend("x".into()))),
            ]
        };
        for (e, again) in all().into_iter().zip(all()) {
            let kind = e.refusal();
            assert_eq!(kind, refusal_kind(&again.into()), "{e}");
        }
    }

    #[test]
    fn refusals_read_back_from_statuses() {
        assert_eq!(refusal_kind(&impersonation("kh-antht", "th-atpd")), Some(Kind::Impersonation));
        let env = crate::exchange::ExchangeError::Envelope(crate::envelope::EnvelopeError::BadSignature("x".into()));
        assert_eq!(refusal_kind(&env.into()), Some(Kind::Signature));
        assert_eq!(refusal_kind(&invalid("record.body", "missing")), Some(Kind::Invalid));
        let refused = crate::exchange::ExchangeError::Refused("not a party".into());
        assert_eq!(refusal_kind(&refused.into()), Some(Kind::Refused));
        let denied = crate::exchange::ExchangeError::Denied(crate::policy::Denial::NoAgreement);
        assert_eq!(refusal_kind(&denied.into()), None, "policy decisions are audited where they are made");
        assert_eq!(refusal_kind(&Status::unavailable("peer down")), None);
        assert_eq!(refusal_kind(&Status::internal("disk")), None);
        assert_eq!(refusal_kind(&Status::not_found("record not found")), None);
    }

    #[test]
    fn an_undecodable_body_is_invalid_argument() {
        let decode_err = <crate::pb::Record as prost::Message>::decode(&[0xff_u8; 12][..]).unwrap_err();
        // What tonic-prost answers (see `from_decode_error`).
        let mut h = http::HeaderMap::new();
        Status::internal(decode_err.to_string()).add_header(&mut h).unwrap();
        assert!(correct_undecodable(&mut h));
        let s = Status::from_header_map(&h).unwrap();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.get_details_bad_request().map(|b| b.field_violations[0].field.clone()).as_deref(),
            Some("request")
        );
        // Other statuses are left alone, including other internal errors.
        for other in [Status::internal("storage error: disk full"), Status::not_found("x"), Status::ok("")] {
            let mut h = http::HeaderMap::new();
            other.add_header(&mut h).unwrap();
            let before = h.clone();
            assert!(!correct_undecodable(&mut h));
            assert_eq!(h, before);
        }
        assert!(!correct_undecodable(&mut http::HeaderMap::new()));
    }
}
