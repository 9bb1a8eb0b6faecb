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
        Self::start_with_env(&[])
    }

    /// The app with extra environment variables (`KOOGATE_UPSTREAM_SECRET`).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/python-upstream/app.py"
        );
        let mut child = Command::new("python3")
            .args([script, "--port", "0", "--debug-last-call"])
            .envs(env.iter().copied())
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

#[tokio::test]
async fn the_python_app_accepts_only_calls_signed_by_koogate_when_it_has_the_secret() {
    const SECRET: &str = "python-upstream-shared-secret";
    let app = PythonApp::start_with_env(&[("KOOGATE_UPSTREAM_SECRET", SECRET)]);
    let placeholder = Upstream::start(Behaviour::App).await;
    let call = |order: &str| {
        Call::json(
            &json!({"activity":"newInstance","businessId":"b","orderId":order,"orderLineId":"l"}),
        )
    };

    // koogate without the secret: the app refuses (HTTP 401), KooGallery gets 000005.
    let mut options = Options::new(&placeholder);
    options.upstream_url = app.url();
    let unsigned = TestGateway::start_with(options).await;
    unsigned
        .client()
        .send(&call("PY-SIGNED-0"))
        .await
        .assert_code("000005");
    let metrics = unsigned.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "koogate_rejections_total{reason=\"upstream_status\"}"
        ),
        1.0
    );

    // koogate with it: served.
    let mut options = Options::new(&placeholder);
    options.upstream_url = app.url();
    options.upstream_toml = "signature_key_env = \"PY_UPSTREAM_SECRET\"".into();
    options.env = vec![("PY_UPSTREAM_SECRET", SECRET.to_owned())];
    let signed = TestGateway::start_with(options).await;
    let reply = signed.client().send(&call("PY-SIGNED-1")).await;
    reply.assert_code("000000");
    assert_eq!(app.last_call().await["orderId"], "PY-SIGNED-1");

    // A request that did not come through koogate (no signature, or a wrong one) is refused before processing.
    let body = br#"{"contractVersion":1,"activity":"newInstance","orderId":"PY-FORGED"}"#;
    for (timestamp, signature) in [("", ""), ("1700000000000", "00")] {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .unwrap();
        let request = format!(
            "POST /koogallery HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             x-koogate-timestamp: {timestamp}\r\nx-koogate-signature: {signature}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        tokio::io::AsyncWriteExt::write_all(&mut tcp, request.as_bytes())
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut tcp, body)
            .await
            .unwrap();
        let raw = client::read_to_close(&mut tcp, std::time::Duration::from_secs(5)).await;
        assert!(
            String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 401"),
            "{raw:?}"
        );
    }
    assert_eq!(app.last_call().await["orderId"], "PY-SIGNED-1");
}
