//! List calls read to the end: the CLI follows `next_page_token` (AIP-158),
//! so a listing longer than one page is never cut short.

use std::future::Future;

use tonic::{Response, Status};

use crate::pb;

/// A List request.
pub(super) trait PagedRequest: Clone {
    fn set_page_token(&mut self, token: String);
}

/// A List response: its items and the token of the page after it.
pub(super) trait PagedResponse {
    fn next_page_token(&self) -> &str;
    /// Appends a later page's items, taking its token.
    fn append(&mut self, later: Self);
}

macro_rules! paged {
    ($($req:ident => $resp:ident . $items:ident),* $(,)?) => {$(
        impl PagedRequest for pb::$req {
            fn set_page_token(&mut self, token: String) {
                self.page_token = token;
            }
        }
        impl PagedResponse for pb::$resp {
            fn next_page_token(&self) -> &str {
                &self.next_page_token
            }
            fn append(&mut self, mut later: Self) {
                self.$items.append(&mut later.$items);
                self.next_page_token = later.next_page_token;
            }
        }
    )*};
}

paged! {
    ListPeersRequest => ListPeersResponse.peers,
    ListUsersRequest => ListUsersResponse.users,
    ListOutboxRequest => ListOutboxResponse.items,
    ListReceiptsRequest => ListReceiptsResponse.receipts,
    ListConsentRequestsRequest => ListConsentRequestsResponse.requests,
    ListMembersRequest => ListMembersResponse.members,
    ListCasesRequest => ListCasesResponse.cases,
    ListRequestsRequest => ListRequestsResponse.requests,
    ListAgreementsRequest => ListAgreementsResponse.agreements,
    ListRecordsRequest => ListRecordsResponse.records,
}

/// Every page of a List call, as one response. A server that hands back
/// the token it was given ends the listing rather than looping.
pub(super) async fn all<Q, R, F, Fut>(mut req: Q, mut call: F) -> Result<R, Status>
where
    Q: PagedRequest,
    R: PagedResponse,
    F: FnMut(Q) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let mut out = call(req.clone()).await?.into_inner();
    let mut asked = String::new();
    while !out.next_page_token().is_empty() && out.next_page_token() != asked {
        asked = out.next_page_token().to_string();
        req.set_page_token(asked.clone());
        let later = call(req.clone()).await?.into_inner();
        out.append(later);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: &[&str], next: &str) -> pb::ListPeersResponse {
        pb::ListPeersResponse {
            peers: ids.iter().map(|id| pb::Peer { tls_fingerprint: id.to_string(), ..Default::default() }).collect(),
            next_page_token: next.into(),
        }
    }

    #[tokio::test]
    async fn follows_tokens_to_the_last_page_and_stops_on_a_repeated_one() {
        let req = pb::ListPeersRequest { page_size: 2, ..Default::default() };
        let got = all(req.clone(), |r: pb::ListPeersRequest| async move {
            Ok(Response::new(match r.page_token.as_str() {
                "" => page(&["a", "b"], "t1"),
                "t1" => page(&["c", "d"], "t2"),
                _ => page(&["e"], ""),
            }))
        })
        .await
        .unwrap();
        let ids: Vec<&str> = got.peers.iter().map(|p| p.tls_fingerprint.as_str()).collect();
        assert_eq!((ids, got.next_page_token.as_str()), (vec!["a", "b", "c", "d", "e"], ""));
        let looping =
            all(req, |_: pb::ListPeersRequest| async { Ok(Response::new(page(&["a"], "same"))) }).await.unwrap();
        assert_eq!(looping.peers.len(), 2, "the repeated token is asked for once");
    }
}
