//! `koogate sign` and `verify`: KooGallery's signatures for scripts and debugging.
//!
//! Every command calls `crate::protocol`, the code the gateway runs, so what these commands print is what the
//! gateway accepts and emits. The access key comes from an environment variable or a file, never from an argument
//! (arguments show up in `ps` and in shell history).

use super::key::KeyArgs;
use crate::clock::{Clock, SystemClock};
use crate::protocol::{body_sign, v1, v2};
use anyhow::{anyhow, bail, Context};
use base64::{engine::general_purpose::STANDARD, Engine};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use subtle::ConstantTimeEq;

/// Everything except RFC 3986's unreserved characters is escaped, so base64's `+`, `/` and `=` survive every
/// client and form decoder (a raw `+` reads as a space to many of them).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const BODY_HELP: &str = "\
The body is signed byte for byte as read, a trailing newline included: `echo '{…}' | koogate sign …` signs the
newline that `echo` adds. Use `printf '%s' '{…}'`, --body, or a file holding exactly the bytes you send.";

/// Where a body comes from: a file, an argument, or (neither given) standard input.
#[derive(clap::Args)]
#[group(multiple = false)]
struct BodyArgs {
    /// Read the body from this file, byte for byte.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// The body itself. Without --body-file or --body, standard input is read.
    #[arg(long, value_name = "TEXT")]
    body: Option<String>,
}

const SIGN_HELP: &str = "\
The body is signed byte for byte as read, a trailing newline included: `echo '{…}' | koogate sign …` signs the
newline that `echo` adds. Use `printf '%s' '{…}'`, --body, or a file holding exactly the bytes you send.

V1 values (authToken included) are printed percent-encoded, `+` as %2B, so curl and any form decoder pass them
on intact. KooGallery itself sends base64 `+` raw; koogate accepts both.

Examples:
  koogate sign --key-env KOOGALLERY_KEY --body-file new.json --url https://saas.example.com/kg
  koogate sign --v1 --key-env KOOGALLERY_KEY --param activity=newInstance --param orderId=CS1 --url https://…
  koogate sign --response --key-env KOOGALLERY_KEY --body-file answer.json";

#[derive(clap::Args)]
#[command(after_help = SIGN_HELP)]
pub struct SignArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    body: BodyArgs,
    /// Sign a legacy V1 call (GET with timeStamp and authToken) from --param values instead of a V2 body.
    #[arg(long, conflicts_with_all = ["BodyArgs", "nonce", "timestamp", "response"])]
    v1: bool,
    /// Print the `Body-Sign` header value of a response body (to test your own app's answers).
    #[arg(long, conflicts_with_all = ["nonce", "timestamp", "url"])]
    response: bool,
    /// V2: the nonce. Default: 32 random upper-case hex characters.
    #[arg(long)]
    nonce: Option<String>,
    /// V2: the timestamp in Unix milliseconds. Default: now.
    #[arg(long, value_name = "MS")]
    timestamp: Option<u64>,
    /// V1: one query parameter, decoded (`customerName=飞蝶`); repeat for each. Printed percent-encoded.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// V1: the `timeStamp` (UTC, yyyyMMddHHmmssSSS). Default: now.
    #[arg(long, value_name = "yyyyMMddHHmmssSSS")]
    time_stamp: Option<String>,
    /// Print this URL with the signed query appended (with `?` or `&`) instead of the query alone.
    #[arg(long)]
    url: Option<String>,
}

#[derive(clap::Args)]
#[command(after_help = BODY_HELP)]
pub struct VerifyArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    body: BodyArgs,
    /// The `Body-Sign` header value as received (a leading `Body-Sign:` is ignored).
    #[arg(long, value_name = "HEADER", allow_hyphen_values = true)]
    body_sign: String,
}

impl BodyArgs {
    fn read(&self) -> anyhow::Result<Vec<u8>> {
        match (&self.body_file, &self.body) {
            (Some(file), _) => std::fs::read(file)
                .with_context(|| format!("cannot read the body file {}", file.display())),
            (None, Some(body)) => Ok(body.clone().into_bytes()),
            (None, None) => {
                let mut body = Vec::new();
                if std::io::stdin().is_terminal() {
                    eprintln!("reading the body from standard input until end of input (Ctrl-D)");
                }
                std::io::stdin()
                    .read_to_end(&mut body)
                    .context("cannot read the body from standard input")?;
                Ok(body)
            }
        }
    }
}

/// Signs a V2 call (query string), a V1 call (query string) or a response (`Body-Sign` value), and prints it.
pub fn sign(args: SignArgs) -> anyhow::Result<bool> {
    // Checked here rather than with clap's `requires`: a flag's default value satisfies `requires`.
    if !args.v1 && (!args.params.is_empty() || args.time_stamp.is_some()) {
        bail!("--param and --time-stamp sign a V1 call: add --v1 (a V2 call signs a body, see --help)");
    }
    let key = args.key.read()?;
    let key = key.as_bytes();
    let line = if args.v1 {
        with_url(
            args.url.as_deref(),
            &sign_v1(key, &args.params, args.time_stamp)?,
        )?
    } else {
        let body = args.body.read()?;
        if body.ends_with(b"\n") {
            eprintln!("note: the body ends with a newline, which is signed with it (see --help)");
        }
        if args.response {
            body_sign::header_value(key, &body)
        } else {
            let query = sign_v2(key, &body, args.nonce, args.timestamp)?;
            with_url(args.url.as_deref(), &query)?
        }
    };
    println!("{line}");
    Ok(true)
}

fn sign_v2(
    key: &[u8],
    body: &[u8],
    nonce: Option<String>,
    timestamp: Option<u64>,
) -> anyhow::Result<String> {
    // `rand::random` draws from the thread-local CSPRNG (ChaCha, seeded by the OS).
    let nonce = nonce.unwrap_or_else(|| hex::encode_upper(rand::random::<[u8; 16]>()));
    let timestamp = timestamp.unwrap_or_else(|| SystemClock.now_ms());
    let query = v2::signed_query(key, &nonce, timestamp, body);
    // Refuse what the gateway would refuse, so a script never sends a call that cannot verify.
    v2::SignedQuery::parse(&query).map_err(|e| {
        anyhow!(
            "{e}: expected a nonce of 1 to {} printable ASCII characters without spaces and a timestamp of at \
             most 16 digits",
            v2::MAX_NONCE_LEN
        )
    })?;
    Ok(query)
}

fn sign_v1(key: &[u8], params: &[String], time_stamp: Option<String>) -> anyhow::Result<String> {
    let time_stamp = match time_stamp {
        Some(ts) if v1::parse_time_stamp(&ts).is_none() => {
            bail!("--time-stamp `{ts}`: expected 17 digits yyyyMMddHHmmssSSS in UTC, such as 20210916064657481")
        }
        Some(ts) => ts,
        None => now_time_stamp()?,
    };
    let mut pairs = Vec::with_capacity(params.len() + 2);
    for param in params {
        let (name, value) = param
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .with_context(|| format!("--param `{param}`: expected NAME=VALUE"))?;
        if name == "timeStamp" || name == "authToken" {
            bail!("--param {name}: koogate sets it (use --time-stamp for the timeStamp)");
        }
        pairs.push(format!("{}={}", escape(name), escape(value)));
    }
    pairs.push(format!("timeStamp={time_stamp}"));
    // Parse the unsigned query with the gateway's own parser, so the signed message is exactly the one the
    // gateway rebuilds (decoding, byte-order sort, repeated names refused). The placeholder token is replaced.
    let placeholder = STANDARD.encode([0u8; 32]);
    let unsigned = pairs.join("&");
    let parsed = v1::V1Query::parse(&format!("{unsigned}&authToken={placeholder}"))
        .map_err(|e| anyhow!("{e}: give each --param once, as NAME=VALUE"))?;
    let token = STANDARD.encode(v1::auth_token(key, &time_stamp, &parsed.message()));
    Ok(format!("{unsigned}&authToken={}", escape(&token)))
}

fn escape(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

fn now_time_stamp() -> anyhow::Result<String> {
    let format = time::macros::format_description!(
        "[year][month][day][hour][minute][second][subsecond digits:3]"
    );
    Ok(time::OffsetDateTime::now_utc().format(&format)?)
}

fn with_url(url: Option<&str>, query: &str) -> anyhow::Result<String> {
    let Some(url) = url else {
        return Ok(query.to_owned());
    };
    let uri: Option<http::Uri> = url.parse().ok();
    if !uri.is_some_and(|u| u.scheme().is_some() && u.host().is_some()) || url.contains('#') {
        bail!("--url `{url}`: expected an absolute URL without a fragment, such as https://saas.example.com/koogallery");
    }
    let separator = match url.split_once('?') {
        None => "?",
        Some((_, q)) if q.is_empty() || q.ends_with('&') => "",
        Some(_) => "&",
    };
    Ok(format!("{url}{separator}{query}"))
}

/// Checks a `Body-Sign` header against a body; on a mismatch prints what was expected, what was seen and a hint.
pub fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let key = args.key.read()?;
    let key = key.as_bytes();
    let body = args.body.read()?;
    let expected = body_sign::header_value(key, &body);
    let raw = args.body_sign.trim();
    let seen = raw
        .get(..10)
        .filter(|name| name.eq_ignore_ascii_case("body-sign:"))
        .map_or(raw, |_| raw[10..].trim());
    if seen.is_empty() {
        eprintln!("invalid: http header->bodySign is empty");
        eprintln!("  expected: {expected}");
        eprintln!("  seen:     nothing");
        eprintln!(
            "  next:     every answer needs a `Body-Sign` header, errors included; check with `curl -i` that \
             the app or a proxy in front of it does not drop it"
        );
        return Ok(false);
    }
    let Some(signature) = body_sign::parse_header(seen) else {
        eprintln!("invalid: the Body-Sign header is malformed");
        eprintln!("  expected: {expected}");
        eprintln!("  seen:     {seen}");
        eprintln!(
            "  next:     write both values in double quotes, separated by a comma: \
             sign_type=\"HMAC-SHA256\", signature= \"<base64>\""
        );
        return Ok(false);
    };
    let matches = |body: &[u8]| {
        bool::from(
            signature
                .as_bytes()
                .ct_eq(body_sign::signature(key, body).as_bytes()),
        )
    };
    if matches(&body) {
        println!("valid");
        return Ok(true);
    }
    eprintln!(
        "invalid: the Body-Sign signature does not match the {}-byte body",
        body.len()
    );
    eprintln!("  expected: {expected}");
    eprintln!("  seen:     {seen}");
    let trimmed = body.trim_ascii();
    let hint = if trimmed.len() < body.len() && matches(trimmed) {
        "the signature matches the body without its surrounding whitespace or trailing newline: the saved body \
         gained it (`echo`, an editor); save the exact bytes, e.g. with `curl -o FILE`"
    } else if body.starts_with(&[0x1f, 0x8b]) {
        "the body is gzip-compressed: Body-Sign covers the bytes KooGallery receives, so compress before \
         signing or not at all"
    } else {
        "the body was changed after signing (pretty printing, compression or a proxy?), or it was signed with \
         another access key (an answer is signed with the key that verified the call)"
    };
    eprintln!("  hint:     {hint}");
    Ok(false)
}
