//! The emulator's HTTP layer: Cloud Run Admin API v2 routes, the control API under
//! `/emulator/v1`, and the apps behind each service and tag URL. Thin by design: it
//! parses requests, applies faults, logs, and hands everything else to the world.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use serde_json::{Value, json};

use super::api_error::ApiError;
use super::faults::{Fault, FaultKind};
use super::profile::Profile;
use super::{Answered, Emulator};
use super::{clock, monitoring, proto, traffic};

/// The largest request body the emulator reads.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

type Shared = Arc<Emulator>;

/// The faults that fired for this request, for handlers that act on them.
#[derive(Debug, Clone, Default)]
struct Fired {
    stale_read: bool,
    etag_conflict: bool,
}

pub fn router(emulator: Shared) -> Router {
    let api = Router::new()
        .route("/v2/projects/{p}/locations/{l}/services", get(list_services).post(create_service))
        .route(
            "/v2/projects/{p}/locations/{l}/services/{s}",
            get(get_service).patch(update_service).delete(delete_service),
        )
        .route("/v2/projects/{p}/locations/{l}/services/{s}/revisions", get(list_revisions))
        .route("/v2/projects/{p}/locations/{l}/services/{s}/revisions/{r}", get(get_revision).delete(delete_revision))
        .route("/v2/projects/{p}/locations/{l}/operations/{op}", get(get_operation).post(wait_operation))
        .route("/v3/projects/{p}/timeSeries", get(list_time_series))
        .layer(middleware::from_fn_with_state(emulator.clone(), api_middleware));
    let control = Router::new()
        .route("/emulator/v1/clock", get(clock))
        .route("/emulator/v1/clock:advance", post(advance_clock))
        .route("/emulator/v1/profiles", get(list_profiles).put(put_profile))
        .route("/emulator/v1/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/emulator/v1/load", put(put_load))
        .route("/emulator/v1/conditions", get(list_conditions).put(put_conditions))
        .route("/emulator/v1/requests", get(list_requests).delete(clear_requests));
    let apps = Router::new().route("/run/{p}/{l}/{host}", any(app)).route("/run/{p}/{l}/{host}/{*path}", any(app));
    api.merge(control).merge(apps).fallback(not_found).with_state(emulator)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::new(404, format!("No such method: {method} {}", uri.path())).into_response()
}

/// Faults, delays and the request log, for API routes only (the control API and the
/// apps are never faulted or logged). A call, once received, is carried out and logged
/// even if its client goes away meanwhile, as Cloud Run carries out a write whose
/// caller crashed: a test of a crash mid-call can wait for it in the log.
async fn api_middleware(State(emulator): State<Shared>, request: Request, next: Next) -> Response {
    let handled = tokio::spawn(handle(emulator, request, next));
    handled
        .await
        .unwrap_or_else(|e| ApiError::new(500, format!("the emulator failed on this call: {e}")).into_response())
}

async fn handle(emulator: Shared, mut request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let faults = emulator.fire_faults(&method, &path);
    if let Some(delay) = faults.iter().map(|f| f.delay_ms).max().filter(|d| *d > 0) {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let response = match faults.iter().find(|f| f.kind == FaultKind::Status) {
        Some(fault) => fault_response(fault),
        None => {
            request.extensions_mut().insert(Fired {
                stale_read: faults.iter().any(|f| f.kind == FaultKind::StaleRead),
                etag_conflict: faults.iter().any(|f| f.kind == FaultKind::EtagConflict),
            });
            next.run(request).await
        }
    };
    let bytes = axum::body::HttpBody::size_hint(response.body()).exact();
    let points = response.extensions().get::<Points>().map(|p| p.0);
    emulator.log_request(&method, &path, &query, response.status().as_u16(), Answered { bytes, points });
    response
}

/// How many points a `timeSeries.list` answer holds (for the request log).
#[derive(Debug, Clone, Copy)]
struct Points(u64);

fn fault_response(fault: &Fault) -> Response {
    let mut error = ApiError::new(fault.status, format!("Injected fault: {}", proto_status_text(fault.status)));
    if let Some(seconds) = fault.retry_after_seconds {
        error = error.retry_after(seconds);
    }
    error.into_response()
}

fn proto_status_text(status: u16) -> &'static str {
    match status {
        429 => "Quota exceeded; try again later.",
        503 => "The service is currently unavailable.",
        500 => "Internal error.",
        504 => "Deadline exceeded.",
        _ => "the request failed.",
    }
}

// ---- request helpers -------------------------------------------------------------

/// Query parameters, repeated ones kept in order, names in camelCase (`page_size` and
/// `pageSize` are the same parameter, as in Google's APIs).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (proto::camel(&k), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("false" | "0" | "") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ApiError::invalid(key, format!("Invalid boolean value \"{other}\"."))),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| v.parse().map_err(|_| ApiError::invalid(key, format!("Invalid integer value \"{v}\"."))))
            .transpose()
    }
}

fn json_body(bytes: &Bytes, root: &str) -> Result<Value, ApiError> {
    if bytes.len() > MAX_BODY {
        return Err(ApiError::invalid(root, format!("The request body is larger than {MAX_BODY} bytes.")));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid(
            root,
            format!("Invalid JSON payload received. {e} at line {} column {}.", e.line(), e.column()),
        )
    })
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY + 1)
        .await
        .map_err(|_| ApiError::invalid("body", format!("The request body is larger than {MAX_BODY} bytes.")))
}

/// A JSON answer, with enums encoded as the client asked.
fn answer(result: Result<Value, ApiError>, query: &Query) -> Response {
    match result {
        Ok(mut value) => {
            proto::encode(&mut value, wants_int_enums(query));
            (StatusCode::OK, axum::Json(value)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Whether the request asks for enums as numbers (`$alt=json;enum-encoding=int`).
fn wants_int_enums(query: &Query) -> bool {
    proto::wants_int_enums(Some(&query.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")))
}

fn service_name(p: &str, l: &str, s: &str) -> String {
    format!("projects/{p}/locations/{l}/services/{s}")
}

// ---- Cloud Run Admin API v2 ---------------------------------------------------------

async fn list_services(
    State(e): State<Shared>,
    Path((p, l)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    request: Request,
) -> Response {
    let query = Query::parse(q.as_deref());
    let stale = request.extensions().get::<Fired>().is_some_and(|f| f.stale_read);
    let result = (|| {
        let size = query.int("pageSize")?;
        e.with_world(|w, now| {
            w.list_services(&format!("projects/{p}/locations/{l}"), size, query.get("pageToken"), stale, now)
        })
    })();
    answer(result, &query)
}

async fn create_service(
    State(e): State<Shared>,
    Path((p, l)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let query = Query::parse(q.as_deref());
    let result = async {
        let bytes = read_body(body).await?;
        let body = json_body(&bytes, "service")?;
        let id = query.get("serviceId").unwrap_or_default().to_owned();
        let validate_only = query.flag("validateOnly")?;
        e.with_world(|w, now| w.create_service(&format!("projects/{p}/locations/{l}"), &id, body, validate_only, now))
    }
    .await;
    answer(result, &query)
}

async fn get_service(
    State(e): State<Shared>,
    Path((p, l, s)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    request: Request,
) -> Response {
    let query = Query::parse(q.as_deref());
    let stale = request.extensions().get::<Fired>().is_some_and(|f| f.stale_read);
    let name = service_name(&p, &l, &s);
    answer(e.with_world(|w, now| if stale { w.stale_service(&name, now) } else { w.get_service(&name, now) }), &query)
}

async fn update_service(
    State(e): State<Shared>,
    Path((p, l, s)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    request: Request,
) -> Response {
    let query = Query::parse(q.as_deref());
    let conflict = request.extensions().get::<Fired>().is_some_and(|f| f.etag_conflict);
    let name = service_name(&p, &l, &s);
    let result = async {
        if conflict {
            return Err(ApiError::aborted(format!(
                "The service '{name}' was changed by another request; read it again and retry."
            )));
        }
        let bytes = read_body(request.into_body()).await?;
        let body = json_body(&bytes, "service")?;
        let allow_missing = query.flag("allowMissing")?;
        let validate_only = query.flag("validateOnly")?;
        let mask = query.get("updateMask").map(str::to_owned);
        e.with_world(|w, now| w.update_service(&name, body, mask.as_deref(), allow_missing, validate_only, now))
    }
    .await;
    answer(result, &query)
}

async fn delete_service(
    State(e): State<Shared>,
    Path((p, l, s)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let query = Query::parse(q.as_deref());
    let name = service_name(&p, &l, &s);
    answer(e.with_world(|w, now| w.delete_service(&name, query.get("etag"), now)), &query)
}

async fn list_revisions(
    State(e): State<Shared>,
    Path((p, l, s)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let query = Query::parse(q.as_deref());
    let name = service_name(&p, &l, &s);
    let result = query
        .int("pageSize")
        .and_then(|size| e.with_world(|w, now| w.list_revisions(&name, size, query.get("pageToken"), now)));
    answer(result, &query)
}

async fn get_revision(
    State(e): State<Shared>,
    Path((p, l, s, r)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let query = Query::parse(q.as_deref());
    let name = format!("{}/revisions/{r}", service_name(&p, &l, &s));
    answer(e.with_world(|w, now| w.get_revision(&name, now)), &query)
}

async fn delete_revision(
    State(e): State<Shared>,
    Path((p, l, s, r)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let query = Query::parse(q.as_deref());
    let name = format!("{}/revisions/{r}", service_name(&p, &l, &s));
    answer(e.with_world(|w, now| w.delete_revision(&name, now)), &query)
}

async fn get_operation(
    State(e): State<Shared>,
    Path((p, l, op)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let query = Query::parse(q.as_deref());
    let name = format!("projects/{p}/locations/{l}/operations/{op}");
    answer(e.with_world(|w, now| w.get_operation(&name, now)), &query)
}

/// `POST …/operations/ID:wait`: returns when the operation is done or the timeout (in
/// simulated time, at most 30 s of real time) has passed; at once on a stepped clock.
async fn wait_operation(
    State(e): State<Shared>,
    Path((p, l, op)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let query = Query::parse(q.as_deref());
    let Some(id) = op.strip_suffix(":wait") else {
        return ApiError::new(404, format!("No such method: POST operations/{op}")).into_response();
    };
    let name = format!("projects/{p}/locations/{l}/operations/{id}");
    let timeout = match read_body(body).await.and_then(|b| json_body(&b, "request")) {
        Ok(body) => body
            .get("timeout")
            .and_then(Value::as_str)
            .and_then(|t| t.strip_suffix('s')?.parse::<f64>().ok())
            .unwrap_or(60.0),
        Err(err) => return err.into_response(),
    };
    let real_limit =
        e.real_duration(clock::seconds(timeout.min(3600.0))).unwrap_or(Duration::ZERO).min(Duration::from_secs(30));
    let deadline = tokio::time::Instant::now() + real_limit;
    loop {
        let result = e.with_world(|w, now| w.get_operation(&name, now));
        let done = matches!(&result, Ok(op) if op["done"] == true) || result.is_err();
        if done || tokio::time::Instant::now() >= deadline {
            return answer(result, &query);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- Cloud Monitoring API v3 ---------------------------------------------------------

async fn list_time_series(State(e): State<Shared>, Path(p): Path<String>, RawQuery(q): RawQuery) -> Response {
    let query = Query::parse(q.as_deref());
    let result = monitoring::Query::parse(&query.0)
        .and_then(|parsed| e.with_world(|w, now| monitoring::page(w, &p, &parsed, now)));
    let page = match result {
        Ok(page) => page,
        Err(err) => return err.into_response(),
    };
    let points = page.points();
    // Written out here, outside the world's lock; a page that asks for enums as
    // numbers goes through the JSON tree that rewrites them.
    let mut response = if wants_int_enums(&query) {
        answer(serde_json::to_value(&page).map_err(|e| ApiError::new(500, e.to_string())), &query)
    } else {
        // Sized for the page at once (a point takes a few hundred bytes): growing a body
        // of megabytes by doubling copies it over and over.
        let mut body = Vec::with_capacity(usize::try_from(points).unwrap_or(0).saturating_mul(320) + 4096);
        match serde_json::to_writer(&mut body, &page) {
            Ok(()) => ([("content-type", "application/json")], body).into_response(),
            Err(err) => ApiError::new(500, err.to_string()).into_response(),
        }
    };
    response.extensions_mut().insert(Points(points));
    response
}

// ---- apps ---------------------------------------------------------------------------

async fn app(State(e): State<Shared>, Path(params): Path<Vec<(String, String)>>) -> Response {
    let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
    let path = format!("/{}", param("path"));
    let reply = e.with_world(|w, now| Ok::<_, ApiError>(w.route(&param("p"), &param("l"), &param("host"), &path, now)));
    match reply {
        Ok(reply) => {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", "application/json".parse().expect("static header"));
            if let Some(revision) = reply.revision.and_then(|r| r.parse().ok()) {
                headers.insert("x-served-by", revision);
            }
            (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK), headers, reply.body).into_response()
        }
        Err(err) => err.into_response(),
    }
}

// ---- control API --------------------------------------------------------------------

async fn clock(State(e): State<Shared>) -> Response {
    axum::Json(e.clock_json()).into_response()
}

async fn advance_clock(State(e): State<Shared>, body: Bytes) -> Response {
    let seconds = match json_body(&body, "seconds") {
        Ok(v) => v.get("seconds").and_then(Value::as_f64),
        Err(err) => return err.into_response(),
    };
    match seconds {
        Some(s) if s.is_finite() && s >= 0.0 => {
            e.advance(clock::seconds(s));
            axum::Json(json!({"now": e.clock_json()["now"]})).into_response()
        }
        _ => ApiError::invalid("seconds", "Give {\"seconds\": N} with N ≥ 0.").into_response(),
    }
}

async fn list_profiles(State(e): State<Shared>) -> Response {
    let profiles = e.with_world(|w, _| Ok::<_, ApiError>(w.profiles())).unwrap_or_default();
    axum::Json(json!({ "profiles": profiles })).into_response()
}

async fn put_profile(State(e): State<Shared>, body: Bytes) -> Response {
    let result = json_body(&body, "profile")
        .and_then(|v| serde_json::from_value::<Profile>(v).map_err(|err| ApiError::invalid("profile", err.to_string())))
        .and_then(|p| {
            let echo = serde_json::to_value(&p).unwrap_or(Value::Null);
            e.with_world(|w, now| w.put_profile(p, now).map_err(|m| ApiError::invalid("profile", m)))?;
            Ok(echo)
        });
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn put_load(State(e): State<Shared>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct LoadBody {
        service: String,
        rps: f64,
        #[serde(default)]
        daily: bool,
    }
    let result = json_body(&body, "load")
        .and_then(|v| serde_json::from_value::<LoadBody>(v).map_err(|err| ApiError::invalid("load", err.to_string())))
        .and_then(|l| {
            e.set_load(&l.service, traffic::Load { rps: l.rps, daily: l.daily })
                .map_err(|m| ApiError::invalid("load", m))?;
            Ok(json!({"service": l.service, "rps": l.rps, "daily": l.daily}))
        });
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The production conditions of every service that has some.
async fn list_conditions(State(e): State<Shared>) -> Response {
    let all = e
        .with_world(|w, now| {
            Ok::<_, ApiError>(
                w.conditions_at(now)
                    .into_iter()
                    .map(|(service, c)| {
                        let mut v = serde_json::to_value(c).unwrap_or_else(|_| json!({}));
                        v["service"] = service.into();
                        v
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap_or_default();
    axum::Json(json!({ "conditions": all })).into_response()
}

/// `{"service": "projects/P/locations/L/services/S", "incidents": [...], ...}`: replaces
/// the service's conditions from now on.
async fn put_conditions(State(e): State<Shared>, body: Bytes) -> Response {
    let result = json_body(&body, "conditions").and_then(|mut v| {
        let service = v
            .as_object_mut()
            .and_then(|o| o.remove("service"))
            .and_then(|s| s.as_str().map(str::to_owned))
            .ok_or_else(|| {
            ApiError::invalid("conditions", "service: required, projects/P/locations/L/services/S")
        })?;
        let conditions: crate::conditions::Conditions =
            serde_json::from_value(v).map_err(|err| ApiError::invalid("conditions", err.to_string()))?;
        let mut echo = serde_json::to_value(&conditions).unwrap_or_else(|_| json!({}));
        echo["service"] = service.clone().into();
        e.with_world(|w, now| {
            w.set_conditions(&service, conditions, now).map_err(|m| ApiError::invalid("conditions", m))
        })?;
        Ok(echo)
    });
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn list_faults(State(e): State<Shared>) -> Response {
    axum::Json(json!({ "faults": e.faults() })).into_response()
}

async fn add_fault(State(e): State<Shared>, body: Bytes) -> Response {
    let result = json_body(&body, "fault")
        .and_then(|v| serde_json::from_value::<Fault>(v).map_err(|err| ApiError::invalid("fault", err.to_string())))
        .and_then(|f| f.validate().map(|()| f).map_err(|m| ApiError::invalid("fault", m)));
    match result {
        Ok(fault) => {
            let echo = serde_json::to_value(&fault).unwrap_or(Value::Null);
            match e.add_fault(fault) {
                Ok(()) => axum::Json(echo).into_response(),
                Err(m) => ApiError::invalid("fault", m).into_response(),
            }
        }
        Err(err) => err.into_response(),
    }
}

async fn clear_faults(State(e): State<Shared>) -> Response {
    e.clear_faults();
    axum::Json(json!({})).into_response()
}

async fn list_requests(State(e): State<Shared>) -> Response {
    axum::Json(Value::Array(e.requests())).into_response()
}

async fn clear_requests(State(e): State<Shared>) -> Response {
    e.clear_requests();
    axum::Json(json!({})).into_response()
}
