//! The mock's HTTP side: TLS accept loop, SDK-HMAC-SHA256 verification, order/query, and the `/__mock/` controls.

use super::{usage, Fault, Received, Shared, ORDER_QUERY_PATH, SDK_DATE_WINDOW, USAGE_DATA_PATH};
use crate::openapi::sign::{self, Authorization, SignInput};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// 1001 usage records of a few hundred bytes each fit; nothing KooGallery serves is larger.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub(super) async fn serve(listener: TcpListener, tls: TlsAcceptor, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(stream).await else {
                return;
            };
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(request, &shared).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An answer: HTTP status, the code it carries, and the JSON body.
pub(super) struct Answer {
    pub status: u16,
    pub code: String,
    pub body: Value,
}

/// The documented HTTP status of an MKT code (`koogallery-openapi.md` section 4).
pub(super) fn status_of(code: &str) -> u16 {
    match code {
        "MKT.0000" => 200,
        "MKT.0101" | "MKT.0102" => 400,
        "MKT.0150" | "MKT.0154" => 401,
        _ => 500,
    }
}

fn order_answer(code: &str, message: &str) -> Answer {
    Answer {
        status: status_of(code),
        code: code.to_owned(),
        body: json!({"resultCode": code, "resultMsg": message}),
    }
}

fn gateway_refusal(message: &str) -> Answer {
    Answer {
        status: 401,
        code: "APIGW.0301".to_owned(),
        body: json!({"error_code": "APIGW.0301", "error_msg": message, "request_id": "mock"}),
    }
}

async fn handle(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return respond(
                413,
                &json!({"error_code":"APIGW.0201","error_msg":"request body too large"}),
            )
        }
    };
    let path = sign::decode(parts.uri.path());
    let query = parts.uri.query().unwrap_or("").to_owned();
    if let Some(control) = path.strip_prefix("/__mock/") {
        return control_endpoint(control, &parts.method, &body, shared);
    }
    let answer = api(&parts.method, &path, &query, &parts.headers, &body, shared).await;
    shared.control().received.push(Received {
        method: parts.method.to_string(),
        path,
        query,
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: answer.status,
        code: answer.code.clone(),
    });
    respond(answer.status, &answer.body)
}

async fn api(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    shared: &Shared,
) -> Answer {
    if let Err(refusal) = verify_sdk_signature(method, path, query, headers, body, shared) {
        return gateway_refusal(refusal);
    }
    let fault = shared.take_fault();
    if let Some(Fault::Slow { ms }) = &fault {
        tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
    }
    match fault {
        Some(Fault::RefuseSignature) => return gateway_refusal("verify aksk signature fail"),
        Some(Fault::InternalError) if path == ORDER_QUERY_PATH => {
            return order_answer("MKT.0999", "internal error")
        }
        Some(Fault::Mkt { code }) if path == ORDER_QUERY_PATH => {
            return order_answer(&code, "injected fault")
        }
        _ => {}
    }
    match (method, path) {
        (&Method::GET, ORDER_QUERY_PATH) => order_query(query),
        (&Method::POST, USAGE_DATA_PATH) => usage::usage_data(headers, body, fault, shared),
        _ => Answer {
            status: 404,
            code: "APIGW.0101".to_owned(),
            body: json!({"error_code":"APIGW.0101","error_msg":"the API does not exist"}),
        },
    }
}

/// Checks `Authorization` and `X-Sdk-Date` exactly as the API gateway would; the error is the refusal message.
fn verify_sdk_signature(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    shared: &Shared,
) -> Result<(), &'static str> {
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Authorization::parse)
        .ok_or("missing or malformed Authorization")?;
    if auth.access != shared.options.ak {
        return Err("unknown access key");
    }
    if !auth.signed_headers.iter().any(|h| h == "x-sdk-date") {
        return Err("x-sdk-date is not signed");
    }
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        let values = headers.get_all(name.as_str());
        let mut any = false;
        for value in values {
            signed.push((
                name.clone(),
                value.to_str().map_err(|_| "header is not text")?.to_owned(),
            ));
            any = true;
        }
        if !any {
            return Err("a signed header is missing");
        }
    }
    let date = headers
        .get(sign::DATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(sign::parse_sdk_date)
        .ok_or("X-Sdk-Date is malformed")?;
    let now = (shared.options.clock.now_ms() / 1000) as i64;
    if date.abs_diff(now) > SDK_DATE_WINDOW.as_secs() {
        return Err("X-Sdk-Date is too far from the server's clock");
    }
    let query = sign::parse_query(query);
    let input = SignInput {
        method: method.as_str(),
        path,
        query: &query,
        headers: &signed,
        body,
    };
    if sign::verify(&shared.options.sk, &auth, &input) {
        Ok(())
    } else {
        Err("verify aksk signature fail")
    }
}

fn order_query(query: &str) -> Answer {
    let params = sign::parse_query(query);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let Some(order_id) = get("orderId").filter(|v| !v.is_empty()) else {
        return order_answer("MKT.0101", "orderId is missing");
    };
    let line = get("orderLineId").filter(|v| !v.is_empty());
    match super::orders::order_info(order_id, line) {
        Some(info) => Answer {
            status: 200,
            code: "MKT.0000".to_owned(),
            body: json!({"resultCode":"MKT.0000","resultMsg":"Success","orderInfo": info}),
        },
        None => order_answer("MKT.0101", "the order does not exist"),
    }
}

fn control_endpoint(
    what: &str,
    method: &Method,
    body: &[u8],
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (method, what) {
        (&Method::GET, "received") => respond(200, &json!(shared.control().received)),
        (&Method::POST, "reset") => {
            *shared.control() = super::Control::default();
            respond(200, &json!({"ok": true}))
        }
        (&Method::POST, "fault") if parsed["kind"] == "none" => {
            shared.control().fault = None;
            respond(200, &json!({"ok": true}))
        }
        (&Method::POST, "fault") => match serde_json::from_value::<Fault>(parsed.clone()) {
            Ok(fault) => {
                let times = parsed["times"]
                    .as_u64()
                    .map(|t| t.min(u32::MAX as u64) as u32);
                shared.control().fault = Some((fault, times));
                respond(200, &json!({"ok": true}))
            }
            Err(e) => respond(400, &json!({"error": e.to_string()})),
        },
        (&Method::POST, "unknown-instance") => match parsed["instance_id"].as_str() {
            Some(id) => {
                shared.control().unknown_instances.insert(id.to_owned());
                respond(200, &json!({"ok": true}))
            }
            None => respond(400, &json!({"error": "instance_id is required"})),
        },
        _ => respond(404, &json!({"error": "unknown mock control endpoint"})),
    }
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
