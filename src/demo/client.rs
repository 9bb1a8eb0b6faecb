//! The demo's walk-through: one signed call per activity, printing what crossed each hop.

use super::app::DemoApp;
use crate::protocol::fields::{FieldCipher, FieldKey};
use crate::simulate::client::{Answer, KooClient};
use serde_json::{json, Value};

/// The demo's calls: one per V2 activity, with `testFlag=1` as the console sends.
fn demo_calls() -> Vec<Value> {
    vec![
        json!({"activity":"newInstance","businessId":"1a2b3c4d-0000-0000-0000-000000000001","orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001","testFlag":"1"}),
        json!({"activity":"queryInstance","instanceId":"demo-MOCKPERIODYEARNEW","testFlag":"1"}),
        json!({"activity":"refreshInstance","scene":"RENEWAL","orderId":"MOCKMONTYRENEW","orderLineId":"MOCKMONTYRENEW-000001","instanceId":"demo-MOCKPERIODYEARNEW","expireTime":"20271125000000","testFlag":"1"}),
        json!({"activity":"updateInstanceStatus","instanceId":"demo-MOCKPERIODYEARNEW","status":"FREEZE","testFlag":"1"}),
        json!({"activity":"upgradeInstance","instanceId":"demo-MOCKPERIODYEARNEW","orderId":"MOCKMONTYCHANGE","orderLineId":"MOCKMONTYCHANGE-000001","testFlag":"1"}),
        json!({"activity":"orderNotify","orderId":"MOCKONETIMENEW","orderLineId":"MOCKONETIMENEW-000001","testFlag":"1"}),
        json!({"activity":"releaseInstance","instanceId":"demo-MOCKPERIODYEARNEW","testFlag":"1"}),
    ]
}

/// Sends every demo call, prints what crossed each hop, and fails if any answer is not what it should be.
pub async fn run_demo_calls(client: &KooClient, url: &str, app: &DemoApp) -> anyhow::Result<()> {
    let mut outcomes = Vec::new();
    for call in demo_calls() {
        let activity = call["activity"].as_str().unwrap_or("?").to_owned();
        let answer = client
            .call(url, &call.to_string())
            .await
            .map_err(anyhow::Error::msg)?;
        let answered = report(
            &activity,
            &format!("POST {url}?signature=…&timestamp=…&nonce=…  {call}"),
            &answer,
            client,
            app,
            "000000",
        );
        outcomes.push(answered && order_reached_the_app(&activity, &call, app));
    }

    // The Europe site's nested newInstance carries the buyer's phone and email encrypted (AES-256-CBC here).
    let fields = FieldKey::derive(client.key(), FieldCipher::Aes256Cbc);
    let eu = json!({"activity":"newInstance",
        "buyerInfo":{"customerId":"68cbc86abc2018ab880d92f36422fa0e","userName":"erika",
            "mobilePhone":fields.encrypt("+4915112345678"),"email":fields.encrypt("erika@example.de")},
        "orderInfo":[{"businessId":"9b3f2a10-5c4d-4e6f-8a7b-1c2d3e4f5a6b","orderId":"MOCKEUROPE","chargingMode":"PERIOD",
            "periodType":"month","periodNumber":1,"productInfo":[{"skuCode":"standard","productId":"OFFI0001"}],
            "extendParams":[{"name":"companyName","value":"Example GmbH"}]}],"testFlag":"1"});
    let answer = client
        .call(url, &eu.to_string())
        .await
        .map_err(anyhow::Error::msg)?;
    outcomes.push(report(
        "newInstance (EU nested; phone and email encrypted)",
        &format!("POST …  {eu}"),
        &answer,
        client,
        app,
        "000000",
    ));

    // A legacy V1 call: GET with authToken; koogate encrypts the credentials in the answer.
    let v1_params = [
        ("activity", "newInstance"),
        ("orderId", "CS1906666666ABCDE"),
        ("customerName", "飞蝶测试1"),
        ("testFlag", "1"),
    ];
    let v1_params: Vec<(String, String)> = v1_params
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let answer = client
        .call_v1(url, &v1_params)
        .await
        .map_err(anyhow::Error::msg)?;
    outcomes.push(report(
        "newInstance (V1 GET)",
        "GET ?activity=newInstance&…&timeStamp=…&authToken=…",
        &answer,
        client,
        app,
        "000000",
    ));

    let before = app.last_request();
    let forged = client
        .call_signed_with(url, &demo_calls()[0].to_string(), b"not-the-access-key")
        .await
        .map_err(anyhow::Error::msg)?;
    let forwarded = app.last_request() != before;
    outcomes.push(
        !forwarded
            && report(
                "newInstance signed with a wrong key (refused, not forwarded)",
                "POST …",
                &forged,
                client,
                app,
                "000001",
            ),
    );

    let failures = outcomes.iter().filter(|ok| !**ok).count();
    println!(
        "\n{} calls checked end to end; {failures} failed",
        outcomes.len()
    );
    anyhow::ensure!(failures == 0, "{failures} demo call(s) failed");
    Ok(())
}

/// V2 newInstance, upgradeInstance and refreshInstance carry only order ids: koogate looked the order up in
/// KooGallery's order query (the demo's mock) and the app must have received it.
fn order_reached_the_app(activity: &str, call: &Value, app: &DemoApp) -> bool {
    if !matches!(
        activity,
        "newInstance" | "upgradeInstance" | "refreshInstance"
    ) {
        return true;
    }
    let seen = app.last_request().unwrap_or(Value::Null);
    let order = &seen["order"];
    let line = &order["lines"][0];
    let ok = order["orderId"] == call["orderId"] && line["orderLineId"] == call["orderLineId"];
    println!(
        "  {} order from KooGallery's order query: {} {} {} {}{}",
        if ok { "PASS" } else { "FAIL" },
        order["orderType"].as_str().unwrap_or("?"),
        line["chargingMode"].as_str().unwrap_or("?"),
        line["products"][0]["skuCode"].as_str().unwrap_or("?"),
        line["periodType"]
            .as_str()
            .map(|p| format!("{} ", p))
            .unwrap_or_default(),
        line["expireTime"]
            .as_str()
            .map(|e| format!("until {e}"))
            .unwrap_or_default(),
    );
    ok
}

/// Prints one exchange and returns whether the answer is signed with the key and carries `expected`.
fn report(
    title: &str,
    sent: &str,
    answer: &Answer,
    client: &KooClient,
    app: &DemoApp,
    expected: &str,
) -> bool {
    let signed = answer.signature_valid(client.key());
    let ok = answer.status == 200 && signed && answer.json()["resultCode"] == expected;
    println!("{} {title}", if ok { "PASS" } else { "FAIL" });
    println!("  KooGallery → koogate : {sent}");
    if expected == "000000" {
        if let Some(seen) = app.last_request() {
            println!("  koogate → app        : {seen}");
        }
    }
    let verdict = if signed { "valid" } else { "INVALID" };
    println!(
        "  koogate → KooGallery : HTTP {} Body-Sign {verdict}  {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    ok
}
