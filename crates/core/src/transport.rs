//! HTTP to Google's APIs (or the emulator): timeouts, Google error JSON, and retries
//! as Google's API guidance prescribes — reads retry on 429/500/503/504 and
//! connection failures with jittered backoff honouring `Retry-After` / `RetryInfo`;
//! writes retry only when the server refused them outright (429, 503); everything else
//! is returned for the caller to re-read and decide again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method;
use serde_json::Value;

use crate::auth::Auth;

/// A failed call, as data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {path}: {}{message}", status.map(|s| format!("{s} {code}: ")).unwrap_or_default())]
pub struct ApiFailure {
    pub method: String,
    pub path: String,
    /// HTTP status; `None` when no answer came (connection, timeout).
    pub status: Option<u16>,
    /// Google's canonical status (`ABORTED`, `NOT_FOUND`, …), or `NOT_LISTENING`.
    pub code: String,
    pub message: String,
    pub retry_after: Option<Duration>,
}

/// The code of a refused connection to the emulator: nothing listens at
/// `CLOUD_RUN_EMULATOR_HOST`, and waiting ~20 s of retries would not start it.
pub(crate) const NOT_LISTENING: &str = "NOT_LISTENING";

impl ApiFailure {
    /// Another writer changed the resource: re-read and decide again.
    pub fn is_conflict(&self) -> bool {
        matches!(self.status, Some(409 | 412)) || self.code == "FAILED_PRECONDITION" && self.message.contains("etag")
    }

    pub(crate) fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// What to do about it, where the status says: the one place a refused call gets
    /// its advice, whichever command made it.
    pub fn hint(&self) -> Option<&'static str> {
        match self.status {
            Some(401) => Some(
                "the credentials were not accepted: check GOOGLE_APPLICATION_CREDENTIALS, or run \
                 `gcloud auth application-default login` again",
            ),
            Some(403) => Some(
                "the account canary runs as lacks a permission here: it needs run.services.get/list/update, \
                 run.revisions.get/list, run.operations.get, iam.serviceAccounts.actAs on the service's runtime \
                 account and monitoring.timeSeries.list (README, \"Pointing canary at real Cloud Run\")",
            ),
            Some(404) => Some("check spec.project, spec.region and spec.service in the manifest"),
            _ => None,
        }
    }

    fn retryable(&self, write: bool) -> bool {
        match self.status {
            Some(429 | 503) => true,
            Some(500 | 504) | None => !write && self.code != NOT_LISTENING,
            _ => false,
        }
    }
}

/// A client for one API base URL.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    base: String,
    auth: Auth,
    retry: ExponentialBuilder,
    /// The server's clock, from the `Date` header of its latest answer.
    server_time: Arc<Mutex<Option<SystemTime>>>,
}

impl Transport {
    pub(crate) fn new(base: &str, auth: Auth) -> Result<Transport, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("canary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let retry = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(5);
        Ok(Transport { client, base: base.trim_end_matches('/').to_owned(), auth, retry, server_time: Arc::default() })
    }

    /// The time the server gave in its latest answer (`Date`, one-second resolution).
    pub(crate) fn server_time(&self) -> Option<SystemTime> {
        *self.server_time.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// A read: retried as the table says.
    pub(crate) async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, ApiFailure> {
        let call = || self.once(Method::GET, path, query, None, true);
        call.retry(self.retry)
            .sleep(tokio::time::sleep)
            .when(|e: &ApiFailure| e.retryable(false))
            .adjust(|e, d| e.retry_after.or(d))
            .await
    }

    /// A read whose answer is read straight into `T` (no JSON tree), retried as
    /// [`Transport::get`] is.
    pub(crate) async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T, ApiFailure> {
        let call = || self.body(Method::GET, path, query, None);
        let body = call
            .retry(self.retry)
            .sleep(tokio::time::sleep)
            .when(|e: &ApiFailure| e.retryable(false))
            .adjust(|e, d| e.retry_after.or(d))
            .await?;
        serde_json::from_slice(&body).map_err(|e| ApiFailure {
            method: "GET".to_owned(),
            path: path.to_owned(),
            status: None,
            code: "INTERNAL".to_owned(),
            message: format!("the server sent an answer canary cannot read ({e})"),
            retry_after: None,
        })
    }

    /// A write: retried only when the server refused it before doing anything. What a
    /// write answers (a long-running operation) is not read: a caller verifies a write by
    /// reading the resource back.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: &Value,
    ) -> Result<(), ApiFailure> {
        let call = || async { self.once(method.clone(), path, query, Some(body), false).await.map(|_| ()) };
        call.retry(self.retry)
            .sleep(tokio::time::sleep)
            .when(|e: &ApiFailure| e.retryable(true))
            .adjust(|e, d| e.retry_after.or(d))
            .await
    }

    async fn once(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        parse: bool,
    ) -> Result<Value, ApiFailure> {
        let name = method.to_string();
        let body = self.body(method, path, query, body).await?;
        if !parse {
            return Ok(Value::Null);
        }
        let text = String::from_utf8_lossy(&body);
        serde_json::from_str(&text).or_else(|_| if text.trim().is_empty() { Ok(Value::Null) } else { Err(()) }).map_err(
            |()| ApiFailure {
                method: name,
                path: path.to_owned(),
                status: None,
                code: "INTERNAL".to_owned(),
                message: "the server sent a body that is not JSON".to_owned(),
                retry_after: None,
            },
        )
    }

    /// One call: a success's body, or the failure its status and error body describe.
    async fn body(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<bytes::Bytes, ApiFailure> {
        let failure = |status: Option<u16>, code: &str, message: String, retry_after: Option<Duration>| ApiFailure {
            method: method.to_string(),
            path: path.to_owned(),
            status,
            code: code.to_owned(),
            message,
            retry_after,
        };
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base)).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        match self.auth.header().await {
            Ok(Some(header)) => request = request.header(reqwest::header::AUTHORIZATION, header),
            Ok(None) => {}
            Err(e) => return Err(failure(None, "UNAUTHENTICATED", e, None)),
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("the request to {} timed out", self.base)
                } else {
                    format!("could not reach {}", self.base)
                };
                // Plain HTTP is only ever the emulator (CLOUD_RUN_EMULATOR_HOST).
                let emulator = self.base.starts_with("http://");
                let hint = if emulator {
                    "; is `canary emulator` running there? CLOUD_RUN_EMULATOR_HOST points at it"
                } else {
                    ""
                };
                let code = if emulator && e.is_connect() { NOT_LISTENING } else { "UNAVAILABLE" };
                return Err(failure(None, code, format!("{what} ({}){hint}", without_url(&e)), None));
            }
        };
        let status = response.status().as_u16();
        if let Some(date) = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        {
            *self.server_time.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(date);
        }
        let header_delay = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read to the end even when unused, so the connection can carry the next call.
        let body = response.bytes().await.map_err(|e| failure(Some(status), "UNAVAILABLE", without_url(&e), None))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let text = String::from_utf8_lossy(&body);
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = error.pointer("/error/status").and_then(Value::as_str).unwrap_or(default_code(status)).to_owned();
        let mut message = error.pointer("/error/message").and_then(Value::as_str).unwrap_or("").to_owned();
        if message.is_empty() {
            message = text.chars().take(200).collect::<String>().trim().to_owned();
        }
        let info_delay = error
            .pointer("/error/details")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|d| d.get("retryDelay")?.as_str()?.strip_suffix('s')?.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(300.0)));
        Err(failure(Some(status), &code, message, header_delay.or(info_delay).map(|d| d.min(Duration::from_secs(300)))))
    }
}

/// The canonical code Google's APIs pair with an HTTP status (google.rpc.Code), for an
/// error body that names none.
fn default_code(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// reqwest's errors name the URL, which may carry query text; keep only the cause.
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(cut) = e.find(" for url") {
        e.truncate(cut);
    }
    e
}
