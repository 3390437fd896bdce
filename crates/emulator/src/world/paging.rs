//! List pages: key ranges of the sorted maps and opaque page tokens.

use super::*;

/// One page of `names` (sorted), and the token for the next.
/// The keys of `map` that start with `prefix`, in order: a range of the sorted map, not
/// a scan of all of it (a page of 500 out of 10,000 services is read 20 times a pass).
pub(super) fn keys_under<'a, V>(map: &'a BTreeMap<String, V>, prefix: &str) -> Vec<&'a str> {
    map.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
        .map(|(k, _)| k.as_str())
        .take_while(|k| k.starts_with(prefix))
        .collect()
}

pub(super) fn paginate(
    names: &[&str],
    page_size: Option<i64>,
    token: Option<&str>,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let size = match page_size {
        None | Some(0) => 100,
        Some(n) if n < 0 => return Err(ApiError::invalid("page_size", "Must not be negative.")),
        Some(n) => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
    };
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => {
            let after = decode_token(token).ok_or_else(|| ApiError::invalid("page_token", "Invalid page token."))?;
            names.partition_point(|n| *n <= after.as_str())
        }
    };
    let page: Vec<String> = names.iter().skip(start).take(size).map(|n| (*n).to_owned()).collect();
    let next = (start + page.len() < names.len()).then(|| page.last().map(|n| encode_token(n))).flatten();
    Ok((page, next))
}

pub(super) fn encode_token(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}
