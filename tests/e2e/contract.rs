//! The documented upstream contract (`docs/`) is what the gateway really sends and accepts: every example
//! validates against its schema, and every KooGallery example call (V2 flat, V2 EU nested, V1) sent through the
//! gateway arrives at the upstream exactly as the documented request example.
//!
//! `KOOGATE_BLESS=1 cargo test --test e2e contract` rewrites the request examples from the gateway's real output
//! (review the diff before committing).

use crate::support::*;
use koogate::protocol::Activity;
use serde_json::Value;
use std::path::{Path, PathBuf};

const EXAMPLE_REQUEST_ID: &str = "c41d7e2a9b0f4c8e8d3a6b1f2e5c7d90";

fn docs_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(path)
}

fn read(file: &Path) -> Value {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn docs(path: &str) -> Value {
    read(&docs_path(path))
}

fn validator(schema: &str) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&docs(schema))
        .unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:#?}\n{instance:#}"
    );
}

/// `(generation, stem)` of every KooGallery example call.
fn example_calls() -> Vec<(String, String)> {
    let mut calls = Vec::new();
    for generation in ["v1", "v2"] {
        let dir = docs_path(&format!("examples/koogallery/{generation}"));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            calls.push((
                generation.to_owned(),
                name.trim_end_matches(".json").to_owned(),
            ));
        }
    }
    calls.sort();
    assert!(
        calls.len() >= 15,
        "V1 and V2 examples for every activity: {calls:?}"
    );
    calls
}

#[test]
fn every_documented_example_matches_its_schema() {
    let requests = validator("schema/upstream-request.schema.json");
    let answers = validator("schema/upstream-answer.schema.json");
    for (generation, stem) in example_calls() {
        let file = format!("examples/request/{generation}/{stem}.json");
        let request = docs(&file);
        assert_valid(&requests, &request, &file);
        assert_eq!(request["generation"], generation.as_str(), "{file}");
    }
    for activity in Activity::ALL {
        let file = format!("examples/answer/{}.json", activity.name());
        assert_valid(&answers, &docs(&file), &file);
    }
}

#[test]
fn the_request_schema_catches_drift() {
    let requests = validator("schema/upstream-request.schema.json");
    let mut example = docs("examples/request/v2/newInstance.json");
    example["somethingNew"] = Value::Bool(true);
    assert!(
        !requests.is_valid(&example),
        "unknown top-level fields are refused"
    );
    let mut example = docs("examples/request/v2/queryInstance.json");
    example.as_object_mut().unwrap().remove("instanceIds");
    assert!(
        !requests.is_valid(&example),
        "an activity's required fields are enforced"
    );
    let mut example = docs("examples/request/v1/newInstance.json");
    example["buyer"]["phone"] = Value::from("x");
    assert!(!requests.is_valid(&example), "buyer fields are closed");
}

#[tokio::test]
async fn what_the_gateway_sends_is_the_documented_request_and_validates() {
    let bless = std::env::var_os("KOOGATE_BLESS").is_some();
    let requests = validator("schema/upstream-request.schema.json");
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start_v1(&upstream).await;
    for (generation, stem) in example_calls() {
        let input = docs(&format!("examples/koogallery/{generation}/{stem}.json"));
        let call = if generation == "v1" {
            Call::v1(&v1_params(&input))
        } else {
            Call::json(&input)
        };
        let before = upstream.count();
        let reply = gateway.client().send(&call).await;
        assert_eq!(
            upstream.count(),
            before + 1,
            "{generation}/{stem} reached the upstream: {:?}",
            reply.body
        );

        let mut sent = upstream.last().json();
        let what = format!("what the gateway sent for {generation}/{stem}");
        assert_valid(&requests, &sent, &what);
        // Two values depend on the moment: the request id, and V1's signed timeStamp (kept in `raw`).
        sent["requestId"] = Value::from(EXAMPLE_REQUEST_ID);
        if generation == "v1" {
            sent["raw"]["timeStamp"] = input["timeStamp"].clone();
        }
        let file = docs_path(&format!("examples/request/{generation}/{stem}.json"));
        if bless {
            std::fs::write(&file, serde_json::to_string_pretty(&sent).unwrap() + "\n").unwrap();
        }
        assert_eq!(sent, read(&file), "{what} differs from {}", file.display());

        // The documented answer for this activity is accepted and turned into a signed success.
        let activity = sent["activity"].as_str().unwrap().to_owned();
        upstream.set(Behaviour::Answer(
            200,
            docs(&format!("examples/answer/{activity}.json")).to_string(),
        ));
        gateway
            .client()
            .send(&call_again(&call, &input, &generation))
            .await
            .assert_code("000000");
        upstream.set(Behaviour::App);
    }
}

/// The same example call with a fresh nonce (V2) or time stamp (V1), so it is not a replay.
fn call_again(call: &Call, input: &Value, generation: &str) -> Call {
    if generation == "v1" {
        let params = v1_params(input);
        let later = crate::support::client::v1_time_stamp(crate::support::client::now_ms() + 1);
        Call::v1_at(&params, &later)
    } else {
        Call::new(call.body.clone())
    }
}

/// A V1 example's parameters, without its `timeStamp` (the call is signed at the time it is sent).
fn v1_params(input: &Value) -> Vec<(&str, &str)> {
    input
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "timeStamp")
        .map(|(name, value)| (name.as_str(), value.as_str().unwrap()))
        .collect()
}
