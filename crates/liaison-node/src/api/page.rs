//! AIP-158 pages for every List call: `page_size` 1..=1000 (default 100)
//! and an opaque `page_token` that names the last item's key, so a page
//! continues after it even when items were added or removed meanwhile.

use tonic::Status;

use super::status::invalid;

pub const MAX_PAGE: u32 = 1000;
pub const DEFAULT_PAGE: u32 = 100;

/// Where a page starts and how long it is.
#[derive(Debug, Clone)]
pub struct Paging {
    pub size: usize,
    /// The key of the last item of the previous page.
    pub after: Option<String>,
}

impl Paging {
    /// Reads a request's page_size and page_token (errors name the field).
    pub fn of(page_size: u32, page_token: &str) -> Result<Paging, Status> {
        let size = match page_size {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n,
            _ => return Err(invalid("page_size", "at most 1000")),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad = || invalid("page_token", "not a token from a previous page");
            let raw = hex::decode(page_token).map_err(|_| bad())?;
            Some(String::from_utf8(raw).map_err(|_| bad())?)
        };
        Ok(Paging { size: size as usize, after })
    }

    /// This page of `items` in `key` order, and the next page's token
    /// (empty after the last page).
    pub fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        items.sort_by_cached_key(|i| key(i));
        let mut rest = items.into_iter().filter(|i| self.after.as_ref().is_none_or(|a| key(i) > *a));
        let page: Vec<T> = rest.by_ref().take(self.size).collect();
        let next = match (rest.next(), page.last()) {
            (Some(_), Some(last)) => token(&key(last)),
            _ => String::new(),
        };
        (page, next)
    }
}

/// The token that continues after `key`.
pub fn token(key: &str) -> String {
    hex::encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_every_item_once_in_key_order() {
        let items: Vec<u32> = (0..25).rev().collect();
        let key = |i: &u32| format!("{i:03}");
        let mut seen = Vec::new();
        let mut p = Paging::of(10, "").unwrap();
        loop {
            let (page, next) = p.page(items.clone(), key);
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            p = Paging::of(10, &next).unwrap();
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
    }

    #[test]
    fn an_item_removed_between_pages_does_not_shift_the_next_page() {
        let key = |i: &u32| format!("{i:03}");
        let (first, next) = Paging::of(3, "").unwrap().page(vec![1, 2, 3, 4, 5], key);
        assert_eq!(first, vec![1, 2, 3]);
        let (second, last) = Paging::of(3, &next).unwrap().page(vec![1, 2, 4, 5], key);
        assert_eq!((second, last), (vec![4, 5], String::new()));
    }

    #[test]
    fn bad_sizes_and_tokens_name_their_field() {
        assert!(Paging::of(1001, "").unwrap_err().message().starts_with("page_size"));
        assert!(Paging::of(0, "zz").unwrap_err().message().starts_with("page_token"));
        assert_eq!(Paging::of(0, "").unwrap().size, 100);
    }
}
