//! Every module error maps to a gRPC status here, and only here.
//! Validation failures carry a `BadRequest` detail naming the field.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::peer::PeerError;
use crate::record::FieldError;
use crate::store::records::RecordError;
use crate::store::StoreError;

pub fn invalid(field: &str, reason: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {reason}"),
        ErrorDetails::with_bad_request_violation(field, reason),
    )
}

impl From<FieldError> for Status {
    fn from(e: FieldError) -> Self {
        invalid(&e.field, &e.reason)
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage error");
        Status::internal(e.to_string())
    }
}

impl From<RecordError> for Status {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Invalid(f) => f.into(),
            RecordError::NotFound(_) => Status::not_found(e.to_string()),
            RecordError::AlreadyExists(_) => Status::already_exists(e.to_string()),
            RecordError::StaleVersion { .. } => Status::with_error_details(
                Code::Aborted,
                e.to_string(),
                ErrorDetails::with_precondition_failure_violation("VERSION", "record", e.to_string()),
            ),
            RecordError::ReadOnly(_) | RecordError::Withdrawn(_) => Status::failed_precondition(e.to_string()),
            RecordError::KindChange { .. } => invalid("record.body", &e.to_string()),
            RecordError::Store(s) => s.into(),
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
            PeerError::Store(s) => s.into(),
        }
    }
}

impl From<crate::agreement::AgreementError> for Status {
    fn from(e: crate::agreement::AgreementError) -> Self {
        invalid(&e.field, &e.reason)
    }
}

impl From<crate::agreement::book::BookError> for Status {
    fn from(e: crate::agreement::book::BookError) -> Self {
        use crate::agreement::book::BookError as B;
        match e {
            B::Invalid(a) => a.into(),
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
            B::Store(s) => s.into(),
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
            E::Store(s) => s.into(),
            E::Book(b) => b.into(),
        }
    }
}

impl From<crate::hub::HubError> for Status {
    fn from(e: crate::hub::HubError) -> Self {
        use crate::hub::HubError as H;
        match e {
            H::Denied(ref d) => denied(d.code(), e.to_string()),
            H::Conflict(_) => Status::already_exists(e.to_string()),
            H::Exchange(x) => x.into(),
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
            D::Store(s) => s.into(),
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
            C::Store(s) => s.into(),
        }
    }
}
