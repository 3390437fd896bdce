//! Container image references (`[registry/]path[:tag][@digest]`), checked the way a
//! registry would read them, so a typo fails in review rather than at deploy time.

/// Why an image reference is not usable for a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageError {
    pub(crate) message: String,
    pub(crate) hint: &'static str,
}

const SYNTAX_HINT: &str =
    "write REGISTRY/PATH:TAG or REGISTRY/PATH@sha256:DIGEST, like `us-central1-docker.pkg.dev/PROJECT/REPO/IMAGE:v2`";

/// Checks an image reference. Rollouts need a pinned image: a reference without a tag
/// or with the moving tag `latest` names no particular release, so a new push could
/// never be told apart from the one already running.
pub(crate) fn check(reference: &str) -> Result<(), ImageError> {
    let bad = |what: String| ImageError { message: format!("image `{reference}` {what}"), hint: SYNTAX_HINT };
    if reference.trim() != reference || reference.chars().any(char::is_whitespace) {
        return Err(bad("contains spaces".to_owned()));
    }
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return Err(bad(format!("has digest `{digest}`, which is not `sha256:` followed by 64 hex digits")));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad(format!("has digest `{digest}`, which is not `sha256:` followed by 64 hex digits")));
        }
    }
    // A tag follows the last `:` that comes after the last `/` (a registry port comes before it).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(bad(format!("has tag `{tag}`; tags are up to 128 letters, digits, `_`, `.` and `-`")));
        }
    }
    let mut components = path.split('/').peekable();
    let first = components.peek().copied().unwrap_or_default();
    let has_registry = path.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        let (host, port) = first.split_once(':').unwrap_or((first, ""));
        let host_ok = !host.is_empty()
            && host.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !host_ok || (!port.is_empty() && !port.bytes().all(|b| b.is_ascii_digit())) {
            return Err(bad(format!("has registry `{first}`, which is not a host name")));
        }
        components.next();
    }
    let mut any = false;
    for component in components {
        any = true;
        let valid = !component.is_empty()
            && component
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
            && component.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && component.bytes().last().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(bad(format!(
                "has path component `{component}`; use lowercase letters, digits and `.`, `_` or `-` between them"
            )));
        }
    }
    if !any {
        return Err(bad("has no repository path".to_owned()));
    }
    match (tag, digest) {
        (None, None) => Err(ImageError {
            message: format!("image `{reference}` has no tag or digest"),
            hint: "pin the release with a tag (`:v2.3.1`) or a digest (`@sha256:…`); an untagged image means `latest`, which moves",
        }),
        (Some("latest"), None) => Err(ImageError {
            message: format!("image `{reference}` uses the moving tag `latest`"),
            hint: "pin the release with a tag (`:v2.3.1`) or a digest (`@sha256:…`) so that each rollout names one build",
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_real_world_references() {
        for ok in [
            "us-central1-docker.pkg.dev/your-project-id/ion-api/ion-api:phase4-canary",
            "gcr.io/p/app:v1.2.3",
            "localhost:5000/app:dev",
            "docker.io/library/nginx:1.27",
            "nginx:1.27-alpine",
            "gcr.io/p/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "gcr.io/p/app:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_malformed_or_unpinned_references() {
        for bad in [
            "gcr.io/p/App:v1",
            "gcr.io/p/app:",
            "gcr.io/p/app:v 1",
            "gcr.io/p/app",
            "gcr.io/p/app:latest",
            "gcr.io//app:v1",
            "gcr.io/p/app@sha256:abc",
            "gcr.io/p/app@md5:0123",
            ":v1",
            "gcr.io/p/-app:v1",
        ] {
            assert!(check(bad).is_err(), "{bad} should be refused");
        }
    }
}
