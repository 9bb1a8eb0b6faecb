//! The documented usage contract (`docs/upstream-contract.md` section 9) is what koogate really takes and answers:
//! the examples match their schemas, the example request becomes the documented KooGallery body, and the live
//! listener answers the example request exactly as the example answer.

use super::*;
use crate::support::{Behaviour, Options, TestCert, TestGateway, Upstream};
use koogate::usage::{queue::Queued, record, sender};

fn docs(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

fn validator(schema: &str) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&docs(schema))
        .unwrap()
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// 2022-08-09T10:30:00Z, just after the example records.
const EXAMPLE_NOW_MS: u64 = 1_660_041_000_000;

#[test]
fn the_examples_match_their_schemas_and_the_schema_catches_bad_records() {
    let requests = validator("schema/usage-request.schema.json");
    let answers = validator("schema/usage-answer.schema.json");
    let request = docs("examples/usage/request.json");
    // The third example record is the rejected one; the schema shows it too.
    let bad = errors(&requests, &request);
    assert!(
        bad.len() == 1 && bad[0].contains("/records/2/usageValue"),
        "{bad:#?}"
    );
    let mut good = request.clone();
    good["records"].as_array_mut().unwrap().truncate(2);
    assert_eq!(errors(&requests, &good), Vec::<String>::new());
    assert_eq!(
        errors(&answers, &docs("examples/usage/answer.json")),
        Vec::<String>::new()
    );
    for (field, value) in [
        ("meteringSN", json!("x")),
        ("beginTime", json!("20220809T080000Z")),
        ("usageValue", json!(0)),
    ] {
        let mut broken = good.clone();
        broken["records"][0][field] = value;
        assert!(!errors(&requests, &broken).is_empty(), "{field}");
    }
}

#[test]
fn the_example_records_become_the_documented_koogallery_body() {
    let request = docs("examples/usage/request.json");
    let queued: Vec<(u64, Queued)> = request["records"].as_array().unwrap()[..2]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let record = record::validate(r, EXAMPLE_NOW_MS).unwrap();
            (
                i as u64,
                Queued {
                    record,
                    accepted_ms: 0,
                },
            )
        })
        .collect();
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/usage/koogallery-body.json"),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(sender::body(&queued)).unwrap(),
        expected.trim_end()
    );
    let third = &request["records"][2];
    assert_eq!(
        record::validate(third, EXAMPLE_NOW_MS).unwrap_err().code(),
        "bad_usage_value"
    );
}

/// Moves every time of the example forward by whole days, to yesterday, so it is recent enough to be accepted.
fn recent(mut request: Value) -> Value {
    let now = time::OffsetDateTime::now_utc();
    let days = (now - time::macros::datetime!(2022-08-09 00:00 UTC)).whole_days() - 1;
    for r in request["records"].as_array_mut().unwrap() {
        for field in ["recordTime", "beginTime", "endTime"] {
            let at = time::OffsetDateTime::parse(
                r[field].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            let moved = (at + time::Duration::days(days))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            r[field] = json!(moved);
        }
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_answers_the_example_request_as_documented() {
    let upstream = Upstream::start(Behaviour::Answer(200, "{}".into())).await;
    let cert = Arc::new(TestCert::new());
    let mock = mock(cert.path()).await;
    let mut options = Options::new(&upstream);
    options.extra_toml = tables(&mock, "");
    options.dir = Some(cert);
    let gw = TestGateway::start_with(options).await;
    let (status, answer) = post(gw.usage, None, &recent(docs("examples/usage/request.json"))).await;
    assert_eq!(status, 200);
    assert_eq!(answer, docs("examples/usage/answer.json"));
    let answers = validator("schema/usage-answer.schema.json");
    // A duplicate and a koogate rejection of every kind the answer schema lists validate too.
    let mut mixed = recent(docs("examples/usage/request.json"));
    mixed["records"]
        .as_array_mut()
        .unwrap()
        .push(json!({"nope": 1}));
    mixed["records"].as_array_mut().unwrap().push(json!([]));
    let (_, answer) = post(gw.usage, None, &mixed).await;
    assert_eq!(answer["duplicates"], 2);
    assert_eq!(errors(&answers, &answer), Vec::<String>::new());
    until("the example records", || acknowledged_sns(&mock).len() == 2).await;
    let (_, document) = super::status(gw.usage, None).await;
    for key in [
        "queued",
        "oldestQueuedAgeSeconds",
        "sent",
        "rejected",
        "recentRejected",
    ] {
        assert!(document.get(key).is_some(), "{key}");
    }
}
