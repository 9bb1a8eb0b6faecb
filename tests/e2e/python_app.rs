//! The example legacy app (`examples/python-upstream/app.py`, Python standard library only) behind koogate:
//! signed KooGallery calls in, plain JSON in the Python app, signed (and for V1 encrypted) answers out.

use crate::support::*;
use koogate::protocol::fields::{FieldCipher, FieldKey};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The Python app on a free port; killed on drop.
pub struct PythonApp {
    child: Child,
    port: u16,
}

impl PythonApp {
    pub fn start() -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/python-upstream/app.py"
        );
        let mut child = Command::new("python3")
            .args([script, "--port", "0", "--debug-last-call"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{line:?}"));
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/koogallery", self.port)
    }

    async fn last_call(&self) -> Value {
        let (status, body) =
            client::admin_get(([127, 0, 0, 1], self.port).into(), "/debug/last-call")
                .await
                .unwrap();
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_python_app_serves_every_activity_behind_koogate() {
    let app = PythonApp::start();
    let placeholder = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&placeholder);
    options.v1_toml = "enabled = true".into();
    options.upstream_url = app.url();
    let gateway = TestGateway::start_with(options).await;
    let client = gateway.client();
    let k = FieldKey::derive(KEY.as_bytes(), FieldCipher::Aes256Cbc);

    // EU nested V2 newInstance: the app sees the buyer's email in plain text.
    let eu = json!({"activity":"newInstance",
        "buyerInfo":{"customerId":"c-1","email":k.encrypt("erika@example.de"),"mobilePhone":k.encrypt("+4915112345678")},
        "orderInfo":[{"businessId":"b-1","orderId":"PY-ORDER-1","orderLineId":"PY-ORDER-1-000001","productInfo":[{"skuCode":"s"}]}]});
    let reply = client.send(&Call::json(&eu)).await;
    reply.assert_code("000000");
    let instance = reply.json()["instanceId"].as_str().unwrap().to_owned();
    let seen = app.last_call().await;
    assert_eq!(seen["buyer"]["email"], "erika@example.de");
    assert_eq!(seen["buyer"]["mobilePhone"], "+4915112345678");
    assert_eq!(seen["generation"], "v2");

    // A retry of the same order gets the same instance.
    let again = client.send(&Call::json(&eu)).await;
    again.assert_code("000000");
    assert_eq!(again.json()["instanceId"], instance.as_str());

    // V2 activities on that instance.
    let v2_calls = [
        json!({"activity":"queryInstance","instanceId":instance}),
        json!({"activity":"refreshInstance","scene":"RENEWAL","orderId":"PY-ORDER-2","orderLineId":"PY-ORDER-2-000001","instanceId":instance,"expireTime":"20300101000000"}),
        json!({"activity":"updateInstanceStatus","instanceId":instance,"status":"FREEZE"}),
        json!({"activity":"updateInstanceStatus","instanceId":instance,"status":"UNFREEZE"}),
        json!({"activity":"upgradeInstance","instanceId":instance,"orderId":"PY-ORDER-3","orderLineId":"PY-ORDER-3-000001"}),
        json!({"activity":"orderNotify","orderId":"PY-ORDER-4","orderLineId":"PY-ORDER-4-000001"}),
    ];
    for call in v2_calls {
        let reply = client.send(&Call::json(&call)).await;
        reply.assert_code("000000");
        assert_eq!(app.last_call().await["activity"], call["activity"]);
    }
    let query = client
        .send(&Call::json(
            &json!({"activity":"queryInstance","instanceId":instance}),
        ))
        .await;
    assert!(query.json()["info"][0]["appInfo"]["frontEndUrl"]
        .as_str()
        .unwrap()
        .starts_with("https://"));

    // V1: newInstance answers carry encrypted credentials that decrypt with the key.
    let email = k.encrypt("legacy@example.com");
    let reply = client
        .send(&Call::v1(&[
            ("activity", "newInstance"),
            ("orderId", "PY-V1-ORDER"),
            ("email", &email),
        ]))
        .await;
    reply.assert_code("000000");
    assert_eq!(
        app.last_call().await["buyer"]["email"],
        "legacy@example.com"
    );
    let answer = reply.json();
    assert_eq!(answer["encryptType"], "1");
    let user = k
        .decrypt(answer["appInfo"]["userName"].as_str().unwrap())
        .unwrap();
    let password = k
        .decrypt(answer["appInfo"]["password"].as_str().unwrap())
        .unwrap();
    assert!(!user.is_empty() && !password.is_empty());
    let v1_instance = answer["instanceId"].as_str().unwrap().to_owned();

    for params in [
        vec![
            ("activity", "queryInstance"),
            ("instanceId", v1_instance.as_str()),
        ],
        vec![
            ("activity", "refreshInstance"),
            ("instanceId", v1_instance.as_str()),
            ("expireTime", "20300101000000"),
        ],
        vec![
            ("activity", "instanceStatus"),
            ("instanceId", v1_instance.as_str()),
            ("instanceStatus", "FREEZE"),
        ],
        vec![
            ("activity", "upgrade"),
            ("instanceId", v1_instance.as_str()),
            ("orderId", "PY-V1-ORDER-2"),
        ],
        vec![
            ("activity", "expireInstance"),
            ("instanceId", v1_instance.as_str()),
        ],
        vec![
            ("activity", "releaseInstance"),
            ("instanceId", v1_instance.as_str()),
        ],
    ] {
        let reply = client.send(&Call::v1(&params)).await;
        reply.assert_code("000000");
    }
    // The app's own business answer passes through, signed.
    let gone = client
        .send(&Call::json(
            &json!({"activity":"releaseInstance","instanceId":"py-unknown"}),
        ))
        .await;
    gone.assert_code("000003");
}
