//! `koogate order`: look an order up in KooGallery's order query, as the gateway does, and print it normalised;
//! and the `[koogallery_api]` part of `koogate check`.

use crate::config::{Config, KooGalleryApiConfig, OnFailure, ProcessEnv};
use crate::openapi::client::OpenApiClient;
use crate::openapi::lookup::{classify, LookupFailure};
use crate::openapi::ORDER_QUERY_PATH;
use anyhow::Context;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;

/// The console's debugging order: every seller's credentials can query it, so it makes a harmless probe.
const PROBE_ORDER: &str = "MOCKPERIODYEARNEW";

#[derive(clap::Args)]
pub struct OrderArgs {
    /// The TOML configuration file (its `[koogallery_api]` table).
    #[arg(long, short, env = "KOOGATE_CONFIG")]
    config: PathBuf,
    /// The KooGallery order id.
    #[arg(long)]
    order_id: String,
    /// Only this order line (`<orderId>-000001`, …); default: every line.
    #[arg(long)]
    order_line_id: Option<String>,
}

fn client(api: &KooGalleryApiConfig) -> anyhow::Result<OpenApiClient> {
    Ok(OpenApiClient::new(
        Arc::new(api.clone()),
        Arc::new(crate::clock::SystemClock),
    )?)
}

/// One signed order query, classified as the gateway classifies it.
async fn query(
    client: &OpenApiClient,
    order_id: &str,
    line: Option<&str>,
) -> Result<crate::openapi::order::Order, LookupFailure> {
    let mut params = vec![("orderId".to_owned(), order_id.to_owned())];
    if let Some(line) = line {
        params.push(("orderLineId".to_owned(), line.to_owned()));
    }
    let answer = client
        .send_signed(
            http::Method::GET,
            ORDER_QUERY_PATH,
            &params,
            Bytes::new(),
            &[],
        )
        .await
        .map_err(LookupFailure::from_client)?;
    classify(answer.status, &answer.body, line)
}

pub async fn run(args: OrderArgs) -> anyhow::Result<bool> {
    let config = Config::load(&args.config, &ProcessEnv)?;
    let api = config.koogallery_api.as_ref().context(
        "the configuration has no [koogallery_api] table (the IAM AK/SK that sign the order query)",
    )?;
    let client = client(api)?;
    match query(&client, &args.order_id, args.order_line_id.as_deref()).await {
        Ok(order) => {
            eprintln!("note: the order includes the buyer's personal data (phone, email, real name); handle it accordingly");
            println!("{}", serde_json::to_string_pretty(&order)?);
            Ok(true)
        }
        Err(failure) => {
            eprintln!(
                "error: order lookup failed: {failure} (reason {}{})",
                failure.reason(),
                failure
                    .code()
                    .map(|c| format!(", code {c}"))
                    .unwrap_or_default()
            );
            eprintln!("  next:     {}", next_step(&failure));
            Ok(false)
        }
    }
}

fn next_step(failure: &LookupFailure) -> &'static str {
    match failure {
        LookupFailure::Timeout | LookupFailure::Unreachable(_) => {
            "check koogallery_api.site/base_url, DNS, egress firewall or proxy, and ca_file"
        }
        LookupFailure::SignatureRefused(_) => {
            "check the IAM AK/SK (koogallery_api.ak_*/sk_*: the Huawei Cloud IAM access key, not the KooGallery access key) and that the clock is within 15 minutes of UTC"
        }
        LookupFailure::Mkt(_) => {
            "MKT.0101: the order id is unknown (or the line); MKT.0150: the order belongs to another seller's account; MKT.0999: retry later"
        }
        LookupFailure::HttpStatus(_) | LookupFailure::InvalidAnswer => {
            "is base_url KooGallery's API (or a proxy in front of it)?"
        }
        LookupFailure::LineNotFound => "list the order's lines by leaving out --order-line-id",
    }
}

/// `koogate check`'s lines for `[koogallery_api]`.
pub(super) fn summary(config: &Config) {
    let Some(api) = &config.koogallery_api else {
        println!("koogallery_api: not configured (no order enrichment)");
        return;
    };
    let enrich: Vec<&str> = api.enrich.iter().map(|a| a.name()).collect();
    println!(
        "koogallery_api: {} (IAM AK/SK from env or file); enriches V2 {} within {} ms; on failure {}; cache {} entries for {} s",
        api.base_url,
        enrich.join(", "),
        api.order_lookup_budget.as_millis(),
        match api.on_failure {
            OnFailure::Retry => "answer 000005 (KooGallery retries)",
            OnFailure::Forward => "forward with orderLookup",
        },
        api.order_cache_max_entries,
        api.order_cache_ttl.as_secs(),
    );
}

/// `koogate check --probe-upstreams`: one signed order query for the console's debugging order. Any MKT answer
/// means the API gateway accepted koogate's signature; a 401/403 means the AK/SK (or the clock) is wrong.
pub(super) async fn probe(config: &Config) -> bool {
    let Some(api) = &config.koogallery_api else {
        return true;
    };
    let client = match client(api) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: koogallery_api.ca_file: {e:#}");
            return false;
        }
    };
    let line = format!("{PROBE_ORDER}-000001");
    match query(&client, PROBE_ORDER, Some(&line)).await {
        Ok(_) => {
            println!(
                "probe: koogallery_api {} accepted a signed order query (MKT.0000)",
                api.base_url
            );
            true
        }
        Err(LookupFailure::Mkt(code)) => {
            println!(
                "probe: koogallery_api {} accepted a signed order query (answered {code})",
                api.base_url
            );
            true
        }
        Err(failure) => {
            eprintln!(
                "error: koogallery_api.base_url: signed probe of {} failed: {failure}",
                api.base_url
            );
            eprintln!("  next:     {}", next_step(&failure));
            false
        }
    }
}
