//! The console's mock orders as the mock OpenAPI answers them: MOCKPERIODYEARNEW as captured
//! (`koogallery-openapi.md` section 3), the others with lines of their charging mode (documented by name only, so
//! their details are this file's invention, shaped like the capture).

use serde_json::{json, Value};

/// Every mock order id; each has one line, `<id>-000001`.
pub const MOCK_ORDERS: [&str; 9] = [
    "MOCKPERIODYEARNEW",
    "MOCKONETIMENEW",
    "MOCKONDEMAND",
    "MOCKONDEMANDPKG",
    "MOCKPERIODDAYTRIAL",
    "MOCKMONTYTRIALTOFORMAL",
    "MOCKMONTYUNSUBSCRIBE",
    "MOCKMONTYRENEW",
    "MOCKMONTYCHANGE",
];

/// The buyer of every mock order (the capture's, phone and email as KooGallery sends them: plain text).
fn buyer() -> Value {
    json!({"mobilePhone":"18688888888","email":null,"customerId":"459b2c1d8e7f4a6b9c0d1e2f3a4b5c6d",
        "customerName":"mock_user_01","customerRealName":"测试用户1","customerType":0,"userId":null,"userName":null})
}

struct Line {
    order_type: &'static str,
    create_time: &'static str,
    charging_mode: &'static str,
    /// `(periodType, periodNumber, expireTime)`; `None` for lines without a period.
    period: Option<(&'static str, u32, &'static str)>,
    sku: &'static str,
    linear_value: Option<u32>,
    currency: &'static str,
    after_discount: &'static str,
}

fn line_of(order_id: &str) -> Option<Line> {
    let line = |order_type,
                create_time,
                charging_mode,
                period,
                sku,
                linear_value,
                currency,
                after_discount| Line {
        order_type,
        create_time,
        charging_mode,
        period,
        sku,
        linear_value,
        currency,
        after_discount,
    };
    Some(match order_id {
        "MOCKPERIODYEARNEW" => line(
            "NEW",
            "20241121090846",
            "PERIOD",
            Some(("year", 1, "20251121235959")),
            "0a4d1578-9c2b-4e8f-a1d3-5b6c7d8e9f01",
            Some(50),
            "100",
            "100",
        ),
        "MOCKONETIMENEW" => line(
            "NEW",
            "20241121091502",
            "ONE_TIME",
            None,
            "1b5e2689-0d3c-4f90-b2e4-6c7d8e9f0a12",
            None,
            "299",
            "249",
        ),
        "MOCKONDEMAND" => line(
            "NEW",
            "20241121092011",
            "ON_DEMAND",
            None,
            "2c6f379a-1e4d-4a01-83f5-7d8e9f0a1b23",
            None,
            "0",
            "0",
        ),
        "MOCKONDEMANDPKG" => line(
            "NEW",
            "20241121092533",
            "ON_DEMAND_PKG",
            Some(("month", 1, "20241221235959")),
            "3d7048ab-2f5e-4b12-94a6-8e9f0a1b2c34",
            Some(1000),
            "80",
            "80",
        ),
        "MOCKPERIODDAYTRIAL" => line(
            "TRIAL",
            "20241121093047",
            "PERIOD",
            Some(("day", 7, "20241128235959")),
            "4e8159bc-3a6f-4c23-a5b7-9f0a1b2c3d45",
            Some(5),
            "0",
            "0",
        ),
        "MOCKMONTYTRIALTOFORMAL" => line(
            "TRIAL_TO_FORMAL",
            "20241121093512",
            "PERIOD",
            Some(("month", 1, "20241221235959")),
            "4e8159bc-3a6f-4c23-a5b7-9f0a1b2c3d45",
            Some(5),
            "30",
            "30",
        ),
        "MOCKMONTYUNSUBSCRIBE" => line(
            "UNSUBSCRIBE",
            "20241121094020",
            "PERIOD",
            Some(("month", 1, "20241121094020")),
            "5f926acd-4b70-4d34-b6c8-0a1b2c3d4e56",
            Some(10),
            "-30",
            "-30",
        ),
        "MOCKMONTYRENEW" => line(
            "RENEW",
            "20241121094538",
            "PERIOD",
            Some(("month", 1, "20250121235959")),
            "5f926acd-4b70-4d34-b6c8-0a1b2c3d4e56",
            Some(10),
            "30",
            "27",
        ),
        "MOCKMONTYCHANGE" => line(
            "CHANGE",
            "20241121095104",
            "PERIOD",
            Some(("month", 1, "20241221235959")),
            "6a037bde-5c81-4e45-87d9-1b2c3d4e5f67",
            Some(20),
            "60",
            "60",
        ),
        _ => return None,
    })
}

/// The `orderInfo` object for a mock order, optionally restricted to one line; `None` for an unknown order or line.
pub fn order_info(order_id: &str, order_line_id: Option<&str>) -> Option<Value> {
    let l = line_of(order_id)?;
    let line_id = format!("{order_id}-000001");
    if order_line_id.is_some_and(|wanted| wanted != line_id) {
        return None;
    }
    let mut line = json!({
        "orderLineId": line_id,
        "chargingMode": l.charging_mode,
        "productInfo": [{
            "productId": "OFFI846204237451911168",
            "skuCode": l.sku,
            "linearValue": l.linear_value,
            "productName": format!("MOCK {} product", l.charging_mode.to_lowercase()),
        }],
        "extendParams": [{"name":"emailDomainName","value":"test.xxxx.com"},{"name":"ip","value":"127.0.0.1"}],
        "currency": l.currency,
        "currencyAfterDiscount": l.after_discount,
    });
    if let Some((period_type, period_number, expire_time)) = l.period {
        line["periodType"] = json!(period_type);
        line["periodNumber"] = json!(period_number);
        line["expireTime"] = json!(expire_time);
    }
    Some(json!({
        "orderId": order_id,
        "orderType": l.order_type,
        "createTime": l.create_time,
        "orderLine": [line],
        "buyerInfo": buyer(),
        "extendParams": [],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mock_order_answers_with_its_one_line() {
        for id in MOCK_ORDERS {
            let info = order_info(id, Some(&format!("{id}-000001"))).unwrap();
            assert_eq!(info["orderId"], id);
            assert_eq!(info["orderLine"][0]["orderLineId"], format!("{id}-000001"));
            assert_eq!(order_info(id, None), Some(info));
        }
        assert!(order_info("MOCKPERIODYEARNEW", Some("MOCKPERIODYEARNEW-000002")).is_none());
        assert!(order_info("CS0000000000", None).is_none());
    }

    #[test]
    fn the_captured_order_is_reproduced() {
        let info = order_info("MOCKPERIODYEARNEW", None).unwrap();
        let line = &info["orderLine"][0];
        assert_eq!(info["orderType"], "NEW");
        assert_eq!(info["createTime"], "20241121090846");
        assert_eq!(line["chargingMode"], "PERIOD");
        assert_eq!(line["periodType"], "year");
        assert_eq!(line["periodNumber"], 1);
        assert_eq!(line["expireTime"], "20251121235959");
        assert_eq!(line["productInfo"][0]["linearValue"], 50);
        assert_eq!(info["buyerInfo"]["customerRealName"], "测试用户1");
    }

    #[test]
    fn lines_without_a_period_carry_no_period_fields() {
        for id in ["MOCKONETIMENEW", "MOCKONDEMAND"] {
            let line = &order_info(id, None).unwrap()["orderLine"][0];
            assert!(
                line.get("periodType").is_none() && line.get("expireTime").is_none(),
                "{id}"
            );
        }
    }
}
