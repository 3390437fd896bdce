//! Credentials: Application Default Credentials (including workload identity
//! federation, as CI systems use) through google-cloud-auth against the real APIs,
//! none against the emulator. A token is only ever put in a request header: it is never
//! formatted, logged, or part of an error.

use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How requests to Google's APIs authenticate.
#[derive(Clone)]
pub enum Auth {
    /// The emulator: plain HTTP, no credentials.
    None,
    /// Application Default Credentials.
    Adc(AccessTokenCredentials),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Adc(_) => "Auth::Adc([censored])",
        })
    }
}

impl Auth {
    /// Finds Application Default Credentials, in Google's documented order.
    pub(crate) fn adc() -> Result<Auth, String> {
        // With neither a key file nor gcloud's login, the last source is the metadata
        // server; off Google Cloud its name does not resolve, and the library would
        // retry it for half a minute before saying so. Say so now.
        if std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_none()
            && !gcloud_adc_file().is_some_and(|p| p.exists())
            && std::env::var_os("GCE_METADATA_HOST").is_none()
            && std::net::ToSocketAddrs::to_socket_addrs(&("metadata.google.internal", 80)).is_err()
        {
            return Err("no Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, gcloud \
                        has no application-default login, and this is not a Google Cloud machine (no metadata \
                        server)"
                .to_owned());
        }
        Builder::default()
            .with_scopes([SCOPE])
            .build_access_token_credentials()
            .map(Auth::Adc)
            .map_err(|e| format!("no Application Default Credentials: {e}"))
    }

    /// The `Authorization` header value, if any.
    pub(crate) async fn header(&self) -> Result<Option<String>, String> {
        match self {
            Auth::None => Ok(None),
            Auth::Adc(credentials) => {
                let token = credentials.access_token().await.map_err(|e| format!("cannot get an access token: {e}"))?;
                Ok(Some(format!("Bearer {}", token.token)))
            }
        }
    }

    /// An ID token for `audience` (a private service's URL), for smoke tests.
    pub(crate) async fn id_token(&self, audience: &str) -> Result<Option<String>, String> {
        match self {
            Auth::None => Ok(None),
            Auth::Adc(_) => {
                let credentials = google_cloud_auth::credentials::idtoken::Builder::new(audience)
                    .build()
                    .map_err(|e| format!("cannot build ID token credentials: {e}"))?;
                let token =
                    credentials.id_token().await.map_err(|e| format!("cannot get an ID token for {audience}: {e}"))?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }
}

/// Where `gcloud auth application-default login` writes its credentials.
fn gcloud_adc_file() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("CLOUDSDK_CONFIG") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".config").join("gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}
