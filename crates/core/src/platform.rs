//! The outside world a pass talks to, behind small traits — Cloud Run, Cloud
//! Monitoring, the clock, and an HTTP prober for smoke tests — so one pass runs
//! unchanged against Google's APIs, the HTTP emulator, or an in-process fake.
//! [`Gcp`] implements them all over HTTP.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::analysis::wire::{Page, TimeSeries};
use crate::auth::Auth;
use crate::time::parse_rfc3339;
use crate::transport::{ApiFailure, Transport};

/// The environment variable that points canary at its emulator (`host:port`).
pub(crate) const EMULATOR_ENV: &str = "CLOUD_RUN_EMULATOR_HOST";

#[allow(async_fn_in_trait)] // used through generics, never as trait objects
pub trait CloudRun {
    /// Every service in a project/region (all pages), each as the text Cloud Run sent.
    async fn list_services(&self, project: &str, region: &str) -> Result<Vec<Box<RawValue>>, ApiFailure>;
    async fn get_service(&self, name: &str) -> Result<Option<Value>, ApiFailure>;
    /// Replaces the service with `service` (which carries the etag it was read with).
    async fn patch_service(&self, service: &Value) -> Result<(), ApiFailure>;
}

#[allow(async_fn_in_trait)]
pub trait Monitoring {
    /// `timeSeries.list`, every page: each series handed to `each` as its page is read
    /// (a pass folds them into its periods, so no more than a page is held at once).
    async fn time_series_each(
        &self,
        project: &str,
        query: &[(String, String)],
        each: &mut (dyn FnMut(TimeSeries) + Send),
    ) -> Result<(), ApiFailure>;

    /// `timeSeries.list`, every page, the series together.
    async fn time_series(&self, project: &str, query: &[(String, String)]) -> Result<Vec<TimeSeries>, ApiFailure> {
        let mut all = Vec::new();
        self.time_series_each(project, query, &mut |s| all.push(s)).await?;
        Ok(all)
    }
}

#[allow(async_fn_in_trait)]
pub trait Clock {
    async fn now(&self) -> Result<SystemTime, ApiFailure>;
}

/// One smoke-test request.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub(crate) method: String,
    pub url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) json: Option<Value>,
    pub(crate) timeout: Duration,
    /// Send a Google ID token for this audience.
    pub(crate) id_token_audience: Option<String>,
}

/// What came back: a status and the start of the body, or why nothing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    Status(u16, String),
    NoAnswer(String),
}

#[allow(async_fn_in_trait)]
pub trait Prober {
    async fn probe(&self, probe: &Probe) -> ProbeAnswer;
}

/// Google Cloud over HTTP (or the emulator when `CLOUD_RUN_EMULATOR_HOST` is set).
#[derive(Debug, Clone)]
pub struct Gcp {
    run: Transport,
    monitoring: Transport,
    emulator: bool,
    probes: reqwest::Client,
}

impl Gcp {
    /// The real APIs with ADC, or the emulator when `EMULATOR_ENV` is set.
    pub fn from_environment() -> Result<Gcp, String> {
        match std::env::var(EMULATOR_ENV).ok().filter(|v| !v.trim().is_empty()) {
            Some(host) => {
                let base = if host.contains("://") { host } else { format!("http://{host}") };
                Gcp::new(&base, &base, Auth::None, true)
            }
            None => Gcp::new("https://run.googleapis.com", "https://monitoring.googleapis.com", Auth::adc()?, false),
        }
    }

    pub fn new(run: &str, monitoring: &str, auth: Auth, emulator: bool) -> Result<Gcp, String> {
        let probes = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Gcp {
            run: Transport::new(run, auth.clone())?,
            monitoring: Transport::new(monitoring, auth)?,
            emulator,
            probes,
        })
    }

    pub(crate) fn is_emulator(&self) -> bool {
        self.emulator
    }

    pub(crate) fn endpoint(&self) -> &str {
        self.run.base()
    }
}

/// `timeSeries.list`'s largest page: "If page_size is empty or more than 100,000 results,
/// the effective page_size is 100,000 results" (Cloud Monitoring API v3).
const TIME_SERIES_PAGE: &str = "100000";

/// Every page of a list call, following `nextPageToken`: each page read as `P` (no
/// JSON tree beyond what `P` keeps), split by `items` into its items and the next
/// page's token, and its items handed to `each` before the next page is asked for.
async fn paged<P: serde::de::DeserializeOwned, I>(
    transport: &Transport,
    path: &str,
    query: &[(String, String)],
    items: impl Fn(P) -> (Vec<I>, String),
    mut each: impl FnMut(I),
) -> Result<(), ApiFailure> {
    let mut token = String::new();
    loop {
        let mut q = query.to_vec();
        if !token.is_empty() {
            q.push(("pageToken".to_owned(), token.clone()));
        }
        let (page, next) = items(transport.get_as(path, &q).await?);
        page.into_iter().for_each(&mut each);
        if next.is_empty() || next == token {
            return Ok(());
        }
        token = next;
    }
}

/// A page of `services.list`: each service kept as the text Cloud Run sent.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ServicesPage {
    services: Vec<Box<RawValue>>,
    next_page_token: String,
}

impl CloudRun for Gcp {
    async fn list_services(&self, project: &str, region: &str) -> Result<Vec<Box<RawValue>>, ApiFailure> {
        let path = format!("/v2/projects/{project}/locations/{region}/services");
        let mut services = Vec::new();
        let items = |p: ServicesPage| (p.services, p.next_page_token);
        paged(&self.run, &path, &[("pageSize".to_owned(), "500".to_owned())], items, |s| services.push(s)).await?;
        Ok(services)
    }

    async fn get_service(&self, name: &str) -> Result<Option<Value>, ApiFailure> {
        match self.run.get(&format!("/v2/{name}"), &[]).await {
            Ok(service) => Ok(Some(service)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn patch_service(&self, service: &Value) -> Result<(), ApiFailure> {
        let name = service.get("name").and_then(Value::as_str).unwrap_or_default();
        self.run.send(Method::PATCH, &format!("/v2/{name}"), &[], service).await
    }
}

impl Monitoring for Gcp {
    async fn time_series_each(
        &self,
        project: &str,
        query: &[(String, String)],
        each: &mut (dyn FnMut(TimeSeries) + Send),
    ) -> Result<(), ApiFailure> {
        // The largest page Cloud Monitoring serves (100,000 points), unless the caller
        // asked for another: fewer round trips, and each page of a query costs the server
        // the whole query again.
        let mut query = query.to_vec();
        if !query.iter().any(|(k, _)| k == "pageSize") {
            query.push(("pageSize".to_owned(), TIME_SERIES_PAGE.to_owned()));
        }
        let path = format!("/v3/projects/{project}/timeSeries");
        paged(&self.monitoring, &path, &query, |p: Page| (p.time_series, p.next_page_token), each).await
    }
}

/// What the emulator's clock says: the time now, and how fast it runs (0: it moves only
/// when told; 1: real time; 3600: an hour a second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EmulatorClock {
    pub(crate) now: SystemTime,
    pub(crate) time_scale: f64,
}

impl Gcp {
    /// Reads the emulator's clock (`GET /emulator/v1/clock`). The one place canary reads
    /// it: `now` in emulator mode and `watch`'s pacing both come from here.
    pub(crate) async fn emulator_clock(&self) -> Result<EmulatorClock, ApiFailure> {
        let answer = self.run.get("/emulator/v1/clock", &[]).await?;
        let now = answer.get("now").and_then(Value::as_str).and_then(parse_rfc3339).ok_or_else(|| ApiFailure {
            method: "GET".into(),
            path: "/emulator/v1/clock".into(),
            status: Some(200),
            code: "INTERNAL".into(),
            message: "the emulator's clock answer has no `now`".into(),
            retry_after: None,
        })?;
        let time_scale = answer.get("timeScale").and_then(Value::as_f64).unwrap_or(0.0);
        Ok(EmulatorClock { now, time_scale })
    }
}

impl Clock for Gcp {
    /// The emulator's clock in emulator mode. Against Google, Cloud Run's own clock (the
    /// `Date` of its latest answer), so a runner whose clock is off cannot shorten or
    /// stretch a hold; the system clock only before Cloud Run has answered at all.
    async fn now(&self) -> Result<SystemTime, ApiFailure> {
        if !self.emulator {
            return Ok(self.run.server_time().unwrap_or_else(SystemTime::now));
        }
        Ok(self.emulator_clock().await?.now)
    }
}

impl Prober for Gcp {
    async fn probe(&self, probe: &Probe) -> ProbeAnswer {
        let Ok(method) = Method::from_bytes(probe.method.as_bytes()) else {
            return ProbeAnswer::NoAnswer(format!("`{}` is not an HTTP method", probe.method));
        };
        let mut request = self.probes.request(method, &probe.url).timeout(probe.timeout);
        for (k, v) in &probe.headers {
            request = request.header(k, v);
        }
        if let Some(json) = &probe.json {
            request = request.json(json);
        }
        if let Some(audience) = &probe.id_token_audience {
            match self.run.auth().id_token(audience).await {
                Ok(Some(token)) => request = request.header(reqwest::header::AUTHORIZATION, token),
                Ok(None) => {}
                Err(e) => return ProbeAnswer::NoAnswer(e),
            }
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                ProbeAnswer::Status(status, body.chars().take(200).collect::<String>().trim().to_owned())
            }
            Err(e) if e.is_timeout() => {
                ProbeAnswer::NoAnswer(format!("no answer within {}", humantime::format_duration(probe.timeout)))
            }
            Err(_) => ProbeAnswer::NoAnswer("could not connect".to_owned()),
        }
    }
}
