//! Ranges: `Content-Range`, the remote's validators, and which byte ranges a run fetches.

use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

/// What the server told us about the file, to ask for "the same file" later (`If-Range`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn from_headers(h: &HeaderMap) -> Self {
        let get = |name| {
            h.get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Validators {
            etag: get(header::ETAG),
            last_modified: get(header::LAST_MODIFIED),
        }
    }

    /// The `If-Range` value: a strong `ETag`, else `Last-Modified`.
    pub fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self.last_modified.as_deref(),
        }
    }
}

/// The request headers for bytes `[start, end)` (`end` unknown: to the end of the file), with
/// `If-Range` when a validator is given.
pub fn range_headers(start: u64, end: Option<u64>, if_range: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let value = match end {
        Some(end) => format!("bytes={start}-{}", end - 1),
        None => format!("bytes={start}-"),
    };
    h.insert(
        header::RANGE,
        HeaderValue::from_str(&value).expect("digits and dashes"),
    );
    if let Some(v) = if_range.and_then(|v| HeaderValue::from_str(v).ok()) {
        h.insert(header::IF_RANGE, v);
    }
    h
}

/// `Content-Range: bytes <first>-<last>/<total>` as `(first, total)`.
pub fn content_range(headers: &HeaderMap) -> Option<(u64, u64)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (
        first.parse().ok()?,
        last.parse::<u64>().ok()?,
        total.parse().ok()?,
    );
    (first <= last && last < total).then_some((first, total))
}

/// Sorts ranges and joins those that overlap or touch.
pub fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|(s, e)| s < e);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The ranges still to fetch of `[from, total)`, given the `kept` ones (sorted, not touching):
/// chunks of `chunk` bytes on multiples of `chunk` from the start of the file (so that after a
/// resume from an odd offset only the first is unaligned for direct writes), less what is kept.
pub fn work(from: u64, total: u64, chunk: u64, kept: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut k = from / chunk;
    while k * chunk < total {
        let (mut s, e) = ((k * chunk).max(from), ((k + 1) * chunk).min(total));
        for &(ks, ke) in kept {
            if ke <= s || ks >= e {
                continue;
            }
            if ks > s {
                out.push((s, ks));
            }
            s = s.max(ke);
        }
        if s < e {
            out.push((s, e));
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 100-199/1000"),
        );
        assert_eq!(content_range(&h), Some((100, 1000)));
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes */1000"),
        );
        assert_eq!(content_range(&h), None);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 5-4/10"),
        );
        assert_eq!(content_range(&h), None);
    }

    #[test]
    fn if_range_prefers_a_strong_etag() {
        let v = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Wed, 25 Nov 2026 17:00:00 GMT".into()),
        };
        assert_eq!(v.if_range(), Some("\"abc\""));
        let weak = Validators {
            etag: Some("W/\"abc\"".into()),
            ..v.clone()
        };
        assert_eq!(weak.if_range(), v.last_modified.as_deref());
    }

    #[test]
    fn range_headers_are_closed_or_open() {
        let h = range_headers(10, Some(20), Some("\"e\""));
        assert_eq!(h[header::RANGE], "bytes=10-19");
        assert_eq!(h[header::IF_RANGE], "\"e\"");
        let h = range_headers(10, None, None);
        assert_eq!(h[header::RANGE], "bytes=10-");
        assert!(!h.contains_key(header::IF_RANGE));
    }

    #[test]
    fn merging_joins_touching_ranges() {
        assert_eq!(
            merge(vec![(30, 40), (0, 10), (10, 20), (35, 50), (60, 60)]),
            vec![(0, 20), (30, 50)]
        );
    }

    #[test]
    fn work_skips_kept_ranges_and_keeps_chunk_boundaries() {
        assert_eq!(work(0, 25, 10, &[]), vec![(0, 10), (10, 20), (20, 25)]);
        assert_eq!(work(5, 25, 10, &[]), vec![(5, 10), (10, 20), (20, 25)]);
        assert_eq!(work(5, 25, 10, &[(10, 20)]), vec![(5, 10), (20, 25)]);
        assert_eq!(
            work(0, 30, 10, &[(12, 15)]),
            vec![(0, 10), (10, 12), (15, 20), (20, 30)]
        );
        assert_eq!(work(0, 20, 10, &[(0, 20)]), Vec::<(u64, u64)>::new());
    }
}
