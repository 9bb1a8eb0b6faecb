//! The documented upstream contract (`docs/`) is what the gateway really sends and accepts: every example
//! validates against its schema, and every KooGallery example body sent through the gateway arrives at the
//! upstream exactly as the documented request example (apart from the request id).

use crate::support::*;
use koogate::protocol::Activity;
use serde_json::Value;
use std::path::PathBuf;

fn docs(path: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
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

#[test]
fn every_documented_example_matches_its_schema() {
    let requests = validator("schema/upstream-request.schema.json");
    let answers = validator("schema/upstream-answer.schema.json");
    for activity in Activity::ALL {
        let name = activity.name();
        let request = docs(&format!("examples/request/{name}.json"));
        assert_valid(
            &requests,
            &request,
            &format!("examples/request/{name}.json"),
        );
        assert_eq!(request["activity"], name);
        assert_eq!(
            request["raw"],
            docs(&format!("examples/koogallery/{name}.json")),
            "{name}: raw is the KooGallery body"
        );
        assert_valid(
            &answers,
            &docs(&format!("examples/answer/{name}.json")),
            &format!("examples/answer/{name}.json"),
        );
    }
}

#[test]
fn the_request_schema_catches_drift() {
    let requests = validator("schema/upstream-request.schema.json");
    let mut example = docs("examples/request/newInstance.json");
    example["somethingNew"] = Value::Bool(true);
    assert!(
        !requests.is_valid(&example),
        "unknown top-level fields are refused"
    );
    let mut example = docs("examples/request/queryInstance.json");
    example.as_object_mut().unwrap().remove("instanceIds");
    assert!(
        !requests.is_valid(&example),
        "an activity's required fields are enforced"
    );
}

#[tokio::test]
async fn what_the_gateway_sends_is_the_documented_request_and_validates() {
    let requests = validator("schema/upstream-request.schema.json");
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    for activity in Activity::ALL {
        let name = activity.name();
        let answer = docs(&format!("examples/answer/{name}.json"));
        upstream.set(Behaviour::Answer(200, answer.to_string()));
        let body = docs(&format!("examples/koogallery/{name}.json"));
        let reply = gateway.client().send(&Call::json(&body)).await;
        reply.assert_code(answer["resultCode"].as_str().unwrap_or("000000"));

        let mut sent = upstream.last().json();
        assert_valid(
            &requests,
            &sent,
            &format!("what the gateway sent for {name}"),
        );
        let mut documented = docs(&format!("examples/request/{name}.json"));
        sent["requestId"] = Value::Null;
        documented["requestId"] = Value::Null;
        assert_eq!(
            sent, documented,
            "{name}: the gateway's output differs from docs/examples/request/{name}.json"
        );
    }
}
