//! One certificate order through instant-acme: the account (restored from the state directory or created), the
//! order, the challenges answered (tls-alpn-01 on the HTTPS listener, http-01 on its own listener), finalisation.

use super::http01::Tokens;
use super::resolver::{challenge_certificate, CertResolver};
use super::store::StateDir;
use super::AcmeError;
use crate::config::AcmeConfig;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// One request to the CA; Let's Encrypt answers in well under a second.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long validation and certificate issuance may take before the attempt counts as failed.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);
/// The CA's answers (directory, orders, a certificate chain) are a few KiB.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// What `account.json` holds: the account is only valid on the directory that created it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    directory_url: String,
    credentials: AccountCredentials,
}

/// Where the challenge answers go while an order is validated.
pub struct Responders<'a> {
    pub resolver: &'a CertResolver,
    pub tokens: &'a Tokens,
}

/// The issued chain (PEM) and its private key (PEM).
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Runs one order for every configured domain; on success the caller stores and installs the result.
pub async fn issue(
    config: &AcmeConfig,
    state: &StateDir,
    responders: Responders<'_>,
) -> Result<Issued, AcmeError> {
    let http = HttpsClient::new(config)?;
    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let registered = account(config, state, &http, false).await?;
    let mut order = match registered.new_order(&NewOrder::new(&identifiers)).await {
        // The CA forgot the account (a test CA restarted, or the account was deactivated): register anew.
        Err(instant_acme::Error::Api(problem))
            if problem.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST) =>
        {
            tracing::warn!("the CA does not know the stored ACME account; registering a new one");
            account(config, state, &http, true)
                .await?
                .new_order(&NewOrder::new(&identifiers))
                .await
        }
        other => other,
    }
    .map_err(AcmeError::Order)?;

    let _cleanup = Cleanup {
        responders: &responders,
        domains: &config.domains,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(AcmeError::Order)?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => return Err(AcmeError::Authorization(format!("{status:?}"))),
        }
        let offered = |t: ChallengeType| authz.challenges.iter().any(|c| c.r#type == t);
        let kind = if config.tls_alpn_01 && offered(ChallengeType::TlsAlpn01) {
            ChallengeType::TlsAlpn01
        } else if config.http01_listen.is_some() && offered(ChallengeType::Http01) {
            ChallengeType::Http01
        } else {
            return Err(AcmeError::NoUsableChallenge);
        };
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or(AcmeError::NoUsableChallenge)?;
        let domain = challenge.identifier().to_string();
        let key_authorization = challenge.key_authorization();
        if kind == ChallengeType::TlsAlpn01 {
            let key = challenge_certificate(&domain, key_authorization.digest().as_ref())
                .map_err(AcmeError::ChallengeCertificate)?;
            responders.resolver.add_challenge(&domain, key);
        } else {
            responders.tokens.insert(
                challenge.token.clone(),
                key_authorization.as_str().to_owned(),
            );
        }
        tracing::info!(domain, challenge = ?kind, "answering the ACME challenge");
        challenge.set_ready().await.map_err(AcmeError::Order)?;
    }

    let policy = RetryPolicy::new().timeout(ORDER_TIMEOUT);
    // The CA reports a failed validation as the order's problem document.
    let status = order.poll_ready(&policy).await.map_err(|e| match e {
        instant_acme::Error::Api(problem) => AcmeError::ChallengeFailed(problem.to_string()),
        other => AcmeError::Order(other),
    })?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::ChallengeFailed(failure_detail(&mut order).await));
    }
    let key_pem = order.finalize().await.map_err(AcmeError::Order)?;
    let chain_pem = order
        .poll_certificate(&policy)
        .await
        .map_err(AcmeError::Order)?;
    Ok(Issued { chain_pem, key_pem })
}

/// Why the CA refused the order: the first challenge error it reports.
async fn failure_detail(order: &mut instant_acme::Order) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if let Ok(state) = authz.refresh().await {
            if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
                return problem.to_string();
            }
        }
    }
    "the order became invalid".to_owned()
}

/// Removes the challenge answers however the order ends.
struct Cleanup<'a> {
    responders: &'a Responders<'a>,
    domains: &'a [String],
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for domain in self.domains {
            self.responders.resolver.remove_challenge(domain);
        }
        self.responders.tokens.clear();
    }
}

/// The stored account when it belongs to this directory, else (or when `fresh`) a new one, stored.
async fn account(
    config: &AcmeConfig,
    state: &StateDir,
    http: &HttpsClient,
    fresh: bool,
) -> Result<Account, AcmeError> {
    let stored = state
        .account()
        .and_then(|json| serde_json::from_str::<StoredAccount>(&json).ok())
        .filter(|stored| !fresh && stored.directory_url == config.directory_url);
    if let Some(stored) = stored {
        return Account::builder_with_http(Box::new(http.clone()))
            .from_credentials(stored.credentials)
            .await
            .map_err(AcmeError::Account);
    }
    let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(Box::new(http.clone()))
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory_url.clone(),
            None,
        )
        .await
        .map_err(AcmeError::Account)?;
    let json = serde_json::to_string(&StoredAccount {
        directory_url: config.directory_url.clone(),
        credentials,
    })
    .map_err(|e| AcmeError::Account(e.into()))?;
    state.save_account(&json).map_err(AcmeError::Store)?;
    tracing::info!(directory = %config.directory_url, "registered an ACME account");
    Ok(account)
}

/// The HTTPS client instant-acme talks to the CA with: public roots, or only `acme.directory_ca_file`.
#[derive(Clone)]
struct HttpsClient(Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl HttpsClient {
    fn new(config: &AcmeConfig) -> Result<Self, AcmeError> {
        let roots = match &config.directory_ca_file {
            None => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Some(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .and_then(|iter| iter.collect())
                    .map_err(|_| AcmeError::CaFile(path.display().to_string()))?;
                let mut roots = rustls::RootCertStore::empty();
                if roots.add_parsable_certificates(certs).0 == 0 {
                    return Err(AcmeError::CaFile(path.display().to_string()));
                }
                roots
            }
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::Account(instant_acme::Error::Other(Box::new(e))))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Ok(Self(Client::builder(TokioExecutor::new()).build(connector)))
    }
}

impl HttpClient for HttpsClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let sent = self.0.request(req);
        Box::pin(async move {
            let other = |e: Box<dyn std::error::Error + Send + Sync>| instant_acme::Error::Other(e);
            let response = tokio::time::timeout(REQUEST_TIMEOUT, sent)
                .await
                .map_err(|e| other(Box::new(e)))?
                .map_err(|e| other(Box::new(e)))?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(other)?
                .to_bytes();
            Ok(BytesResponse::from(http::Response::from_parts(
                parts,
                http_body_util::Full::new(body),
            )))
        })
    }
}
