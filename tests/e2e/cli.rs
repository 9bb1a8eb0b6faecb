//! The command-line tools as a real process: every protocol section 8 vector through `sign`, `verify`, `encrypt`
//! and `decrypt`, calls signed by `koogate sign` against a real gateway, and `koogate check` on broken, good and
//! mismatched configurations. Expected values are the protocol's vectors or computed here with `ring`, `aes`,
//! `cbc` and `aes-gcm` directly, never with koogate's own code.

use crate::support::{
    client, Behaviour, Call, TestCert, TestGateway, Upstream, JOURNAL_KEY, KEY, OLD_KEY,
};
use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::{Aead, KeyInit};
use base64::{engine::general_purpose::STANDARD, Engine};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const KEY_ENV: &str = "KOOGATE_TEST_CLI_KEY";
const JOURNAL_KEY_ENV: &str = "KOOGATE_TEST_CLI_JOURNAL_KEY";

const V2B_NONCE: &str = "7F3A9C2E5B1D4F6A8C0E2B4D6F8A1C3E";
const V2B_BODY: &str = r#"{"activity":"newInstance","businessId":"1a2b3c4d-0000-0000-0000-000000000001","orderId":"CS2306070000ABCDE","orderLineId":"CS2306070000ABCDE-000001","testFlag":"1"}"#;
const V2B_QUERY: &str =
    "signature=b3b0332111128d8538b3b5d7708286ff568ecadf50b8d5b4697daeff3aa9e940\
                         &timestamp=1700000000000&nonce=7F3A9C2E5B1D4F6A8C0E2B4D6F8A1C3E";
const ANSWER: &str =
    r#"{"resultCode":"000000","resultMsg":"success.","instanceId":"instance-0001"}"#;
const ANSWER_SPACED: &str =
    r#"{"resultCode":"000000", "resultMsg":"success.", "instanceId":"instance-0001"}"#;
const ANSWER_SIGN: &str =
    r#"sign_type="HMAC-SHA256", signature= "NES9zi0AKjFoEsx8i6DgTUcTiA4QLnHZv2/0FFDGAUo=""#;

/// What one run of the binary produced.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns standard output without its final newline.
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self.stdout.strip_suffix('\n').unwrap_or(&self.stdout)
    }

    /// Asserts a failure exit (1, not a usage error or a crash) and nothing on standard output.
    fn failed(&self) -> &str {
        assert_eq!(self.stdout, "", "nothing printed as a result: {self:#?}");
        self.check_failed()
    }

    /// Asserts a failure exit; `koogate check` still prints its summary on standard output.
    fn check_failed(&self) -> &str {
        assert_eq!(self.code, Some(1), "{self:#?}");
        &self.stderr
    }
}

/// Runs `koogate` with `env` set (and the variables it could otherwise inherit removed), feeding `stdin`.
fn koogate(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_koogate"));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in [
        KEY_ENV,
        JOURNAL_KEY_ENV,
        "KOOGATE_CONFIG",
        "KOOGATE_JOURNAL_KEY",
        "KOOGATE_ACCESS_KEY",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `koogate` with the access key `key` in [`KEY_ENV`] and `--key-env` added.
fn keyed(key: &str, args: &[&str]) -> Run {
    keyed_in(key, args, None)
}

fn keyed_in(key: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut all = args.to_vec();
    all.extend(["--key-env", KEY_ENV]);
    koogate(&all, &[(KEY_ENV, key)], stdin)
}

#[test]
fn sign_reproduces_the_v2_b_vector_from_a_file_an_argument_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, V2B_BODY).unwrap();
    let fixed = ["sign", "--nonce", V2B_NONCE, "--timestamp", "1700000000000"];

    let from_file = [&fixed[..], &["--body-file", body_file.to_str().unwrap()]].concat();
    assert_eq!(keyed(KEY, &from_file).ok(), V2B_QUERY);
    let from_argument = [&fixed[..], &["--body", V2B_BODY]].concat();
    assert_eq!(keyed(KEY, &from_argument).ok(), V2B_QUERY);
    assert_eq!(
        keyed_in(KEY, &fixed, Some(V2B_BODY.as_bytes())).ok(),
        V2B_QUERY
    );

    // The key from a file: its trailing newline is not part of the key.
    let key_file = dir.path().join("access-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let with_file_key = [&from_file[..], &["--key-file", key_file.to_str().unwrap()]].concat();
    assert_eq!(koogate(&with_file_key, &[], None).ok(), V2B_QUERY);

    for (url, joined) in [
        (
            "https://saas.example.com/kg",
            format!("https://saas.example.com/kg?{V2B_QUERY}"),
        ),
        (
            "https://saas.example.com/kg?product=7",
            format!("https://saas.example.com/kg?product=7&{V2B_QUERY}"),
        ),
    ] {
        assert_eq!(
            keyed(KEY, &[&from_argument[..], &["--url", url]].concat()).ok(),
            joined
        );
    }
}

#[test]
fn sign_draws_a_fresh_nonce_and_the_current_time_and_signs_the_exact_bytes() {
    let before = client::now_ms();
    let first = keyed(KEY, &["sign", "--body", V2B_BODY]).ok().to_owned();
    let second = keyed(KEY, &["sign", "--body", V2B_BODY]).ok().to_owned();
    let after = client::now_ms();
    let parse = |query: &str| -> (String, String, String) {
        let field = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_owned()
        };
        (field("signature"), field("timestamp"), field("nonce"))
    };
    let (signature, timestamp, nonce) = parse(&first);
    assert_eq!(nonce.len(), 32, "{first}");
    assert!(
        nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
        "{first}"
    );
    assert_ne!(parse(&second).2, nonce, "every call gets its own nonce");
    let ms: u64 = timestamp.parse().unwrap();
    assert!(
        (before..=after).contains(&ms),
        "{ms} within {before}..={after}"
    );
    assert_eq!(
        signature,
        client::sign_v2(KEY, &nonce, &timestamp, V2B_BODY.as_bytes())
    );

    // A trailing newline (what `echo` adds) is signed with the body, and the tool says so.
    let fixed = ["sign", "--nonce", V2B_NONCE, "--timestamp", "1700000000000"];
    let with_newline = keyed_in(KEY, &fixed, Some(format!("{V2B_BODY}\n").as_bytes()));
    assert_ne!(with_newline.ok(), V2B_QUERY);
    assert!(
        with_newline.stderr.contains("ends with a newline"),
        "{with_newline:#?}"
    );
}

#[test]
fn sign_v1_reproduces_the_v1_b_auth_token() {
    let params = [
        "activity=newInstance",
        "businessId=c50dd5ef-7787-4dba-9aa3-8002ff9cd075",
        "customerId=68cbc86abc2018ab880d92f36422fa0e",
        "customerName=飞蝶测试1",
        "expireTime=20210916133124",
        "orderAmount=100",
        "orderId=CS1906666666ABCDE",
        "periodNumber=1",
        "periodType=year",
        "productId=00301-666666-0--0",
        "provisionType=1",
        "testFlag=1",
        "userId=fd1001",
        "userName=fdtest",
    ];
    // Given in a shuffled order: the signed message is sorted whatever the order on the command line.
    let mut args = vec!["sign", "--v1", "--time-stamp", "20210916064657481"];
    for param in params.iter().rev() {
        args.extend(["--param", param]);
    }
    let run = keyed(KEY, &args);
    let query = run.ok();
    assert!(
        query.contains("customerName=%E9%A3%9E%E8%9D%B6%E6%B5%8B%E8%AF%951"),
        "{query}"
    );
    assert!(query.contains("timeStamp=20210916064657481"), "{query}");
    let token = query
        .split('&')
        .find_map(|p| p.strip_prefix("authToken="))
        .unwrap();
    assert_eq!(
        token, "2%2BmNSsnDJXSBl%2BjvS14una6uw4JREw1QQhc8KJ7kEFo%3D",
        "`+` and `=` escaped for curl"
    );
    assert_eq!(
        percent_encoding::percent_decode_str(token)
            .decode_utf8()
            .unwrap(),
        "2+mNSsnDJXSBl+jvS14una6uw4JREw1QQhc8KJ7kEFo="
    );
    let url = keyed(
        KEY,
        &[&args[..], &["--url", "https://saas.example.com/v1"]].concat(),
    );
    assert_eq!(url.ok(), format!("https://saas.example.com/v1?{query}"));

    for (bad, reason) in [
        (&["sign", "--v1", "--param", "noequals"][..], "NAME=VALUE"),
        (
            &["sign", "--v1", "--param", "a=1", "--param", "a=2"][..],
            "repeated",
        ),
        (
            &["sign", "--v1", "--param", "authToken=x"][..],
            "koogate sets it",
        ),
        (
            &["sign", "--v1", "--time-stamp", "2021-09-16"][..],
            "yyyyMMddHHmmssSSS",
        ),
        (&["sign", "--param", "a=1", "--body", "{}"][..], "add --v1"),
    ] {
        let run = keyed(KEY, bad);
        assert!(run.failed().contains(reason), "{bad:?}: {run:#?}");
    }
}

#[test]
fn sign_response_reproduces_the_body_sign_vectors_and_verify_accepts_them() {
    let vectors = [
        (
            "abcde",
            "a=1&b=2",
            "4sbEVd9vKZQGPRRr8TyjWery0lZV7tetTnzfX3Gb9Ok=",
        ),
        (KEY, ANSWER, "NES9zi0AKjFoEsx8i6DgTUcTiA4QLnHZv2/0FFDGAUo="),
        (
            KEY,
            ANSWER_SPACED,
            "HD65iFa8Z5VuzJUA5y7EmS4wtZNyWqniqaBKud7a5fs=",
        ),
    ];
    for (key, body, signature) in vectors {
        let header = format!("sign_type=\"HMAC-SHA256\", signature= \"{signature}\"");
        assert_eq!(
            keyed(key, &["sign", "--response", "--body", body]).ok(),
            header
        );
        assert_eq!(
            keyed_in(key, &["sign", "--response"], Some(body.as_bytes())).ok(),
            header
        );
        assert_eq!(
            keyed(key, &["verify", "--body", body, "--body-sign", &header]).ok(),
            "valid"
        );
        // Pasted from `curl -i`, header name included.
        let pasted = format!("Body-Sign: {header}");
        assert_eq!(
            keyed(key, &["verify", "--body", body, "--body-sign", &pasted]).ok(),
            "valid"
        );
    }
}

#[test]
fn verify_rejects_a_tampered_body_and_prints_the_expected_value() {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("answer.json");
    // Pretty printing between signing and sending: the spaced vector body under the compact body's signature.
    std::fs::write(&body_file, ANSWER_SPACED).unwrap();
    let path = body_file.to_str().unwrap();
    let run = keyed(
        KEY,
        &["verify", "--body-file", path, "--body-sign", ANSWER_SIGN],
    );
    let report = run.failed();
    assert!(report.contains("does not match"), "{report}");
    assert!(
        report.contains(r#"expected: sign_type="HMAC-SHA256", signature= "HD65iFa8Z5VuzJUA5y7EmS4wtZNyWqniqaBKud7a5fs=""#),
        "{report}"
    );
    assert!(
        report.contains(&format!("seen:     {ANSWER_SIGN}")),
        "{report}"
    );
    assert!(
        report.contains("pretty printing, compression or a proxy"),
        "{report}"
    );

    // The wrong key is the same failure.
    let run = keyed(
        OLD_KEY,
        &["verify", "--body", ANSWER, "--body-sign", ANSWER_SIGN],
    );
    assert!(run.failed().contains("does not match"), "{run:#?}");

    // A saved body that gained a newline gets a specific hint.
    std::fs::write(&body_file, format!("{ANSWER}\n")).unwrap();
    let run = keyed(
        KEY,
        &["verify", "--body-file", path, "--body-sign", ANSWER_SIGN],
    );
    assert!(run.failed().contains("trailing newline"), "{run:#?}");
}

#[test]
fn verify_refuses_an_empty_or_malformed_header_with_guidance() {
    let empty = keyed(KEY, &["verify", "--body", ANSWER, "--body-sign", ""]);
    let report = empty.failed();
    assert!(
        report.contains("http header->bodySign is empty"),
        "{report}"
    );
    assert!(
        report.contains(&format!("expected: {ANSWER_SIGN}")),
        "{report}"
    );

    for malformed in [
        r#"signature= "NES9zi0AKjFoEsx8i6DgTUcTiA4QLnHZv2/0FFDGAUo=""#,
        r#"sign_type="HMAC-SHA1", signature= "NES9zi0AKjFoEsx8i6DgTUcTiA4QLnHZv2/0FFDGAUo=""#,
        "sign_type=HMAC-SHA256, signature=NES9zi0AKjFoEsx8i6DgTUcTiA4QLnHZv2/0FFDGAUo=",
        "NES9zi0AKjFoEsx8i6DgTUcTiA4QLnHZv2/0FFDGAUo=",
    ] {
        let run = keyed(KEY, &["verify", "--body", ANSWER, "--body-sign", malformed]);
        let report = run.failed();
        assert!(report.contains("malformed"), "{malformed}: {report}");
        assert!(
            report.contains(&format!("expected: {ANSWER_SIGN}")),
            "{report}"
        );
        assert!(
            report.contains(&format!("seen:     {malformed}")),
            "{report}"
        );
    }
}

/// Protocol section 8, field encryption: (access key, encryptType, IV, plain text, field).
const FIELD_ROWS: [(&str, &str, &str, &str, &str); 6] = [
    (
        OLD_KEY,
        "1",
        "t00349j083UC8Og7",
        "fdtest",
        "t00349j083UC8Og7QRozfB7o+81cfg464xP34Q==",
    ),
    (
        OLD_KEY,
        "2",
        "t00349j083UC8Og7",
        "fdtest",
        "t00349j083UC8Og7YI/s3pHWwoivVo1xGwU5+w==",
    ),
    (
        KEY,
        "2",
        "AbCdEf0123456789",
        "Passw0rd!Test",
        "AbCdEf0123456789pnqR8aacyVdP9Bs9ncuyZQ==",
    ),
    (
        KEY,
        "2",
        "AbCdEf0123456789",
        "admin@example.com",
        "AbCdEf0123456789+rult+5jDIm3Y/0lyn/xG7ujzX87ZqMTYSFElz0A0jI=",
    ),
    (
        KEY,
        "1",
        "AbCdEf0123456789",
        "Passw0rd!Test",
        "AbCdEf0123456789UoOtv8Knt1jt/PWGGVq9ag==",
    ),
    (
        KEY,
        "1",
        "AbCdEf0123456789",
        "admin@example.com",
        "AbCdEf0123456789sGIEzQPXt7i60kd9YzGRYITtfN5xliPJYWMAXfZjerM=",
    ),
];

fn cipher_name(encrypt_type: &str) -> &'static str {
    match encrypt_type {
        "1" => "aes-256-cbc",
        "2" => "aes-128-cbc",
        _ => "aes-256-gcm",
    }
}

#[test]
fn every_field_encryption_row_reproduces_both_ways() {
    for (key, encrypt_type, iv, plain, field) in FIELD_ROWS {
        let by_type = [
            "encrypt",
            "--encrypt-type",
            encrypt_type,
            "--iv",
            iv,
            "--value",
            plain,
        ];
        assert_eq!(
            keyed(key, &by_type).ok(),
            field,
            "{plain} type {encrypt_type}"
        );
        let by_name = ["encrypt", "--cipher", cipher_name(encrypt_type), "--iv", iv];
        assert_eq!(
            keyed_in(key, &by_name, Some(format!("{plain}\n").as_bytes())).ok(),
            field
        );

        let decrypt = [
            "decrypt",
            "--cipher",
            cipher_name(encrypt_type),
            "--value",
            field,
        ];
        assert_eq!(keyed(key, &decrypt).ok(), plain, "{field}");
        let from_stdin = ["decrypt", "--encrypt-type", encrypt_type];
        assert_eq!(
            keyed_in(key, &from_stdin, Some(format!("{field}\n").as_bytes())).ok(),
            plain
        );
    }
    // The default algorithm is KooGallery's default, encryptType 1.
    let (key, _, iv, plain, field) = FIELD_ROWS[4];
    assert_eq!(
        keyed(key, &["encrypt", "--iv", iv, "--value", plain]).ok(),
        field
    );
}

/// Protocol section 8, key derivation: (seed, 16-byte key, 32-byte key).
const KEY_ROWS: [(&str, &str, &str); 4] = [
    (
        "xxxxxxx",
        "c962ef8500ad13239b5ec0eb6a5c570b",
        "c962ef8500ad13239b5ec0eb6a5c570b3cae0fd0e5c28e793eb6aaa22d251123",
    ),
    (
        "abcde",
        "8dc54f2e15823c98aea063e339a5d4c5",
        "8dc54f2e15823c98aea063e339a5d4c53d1a471adbf839311f5083e7778f46fb",
    ),
    (
        KEY,
        "fa32b243c1eeb23e93357bb8be8ec849",
        "fa32b243c1eeb23e93357bb8be8ec84903d6395e4f1ccb2379a1666d99a6ab9f",
    ),
    (
        OLD_KEY,
        "a25564b7fa3bba3fa064b23882ba19a3",
        "a25564b7fa3bba3fa064b23882ba19a393dbd0c8ffc2ca5abe312f961a5ec0f7",
    ),
];

/// The derived keys are not printed by any command, so each row is checked through what the key produces:
/// a CBC field computed here with the tabled key, and a GCM field opened here with it.
#[test]
fn every_key_derivation_row_shows_in_the_fields_the_tools_produce() {
    let (iv, plain) = ("Q1w2E3r4T5y6U7i8", "飞蝶测试1 +86 138 0000 0000");
    for (seed, key16, key32) in KEY_ROWS {
        let (key16, key32) = (hex::decode(key16).unwrap(), hex::decode(key32).unwrap());
        let cbc128 = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key16, iv.as_bytes())
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
        let cbc256 = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key32, iv.as_bytes())
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
        for (encrypt_type, sealed) in [("2", cbc128), ("1", cbc256)] {
            let expected = format!("{iv}{}", STANDARD.encode(sealed));
            let run = keyed(
                seed,
                &[
                    "encrypt",
                    "--encrypt-type",
                    encrypt_type,
                    "--iv",
                    iv,
                    "--value",
                    plain,
                ],
            );
            assert_eq!(run.ok(), expected, "seed {seed} type {encrypt_type}");
        }

        let field = keyed(
            seed,
            &["encrypt", "--cipher", "aes-256-gcm", "--value", plain],
        )
        .ok()
        .to_owned();
        let raw = STANDARD.decode(&field).unwrap();
        let (nonce, sealed) = raw.split_at(12);
        let opened = aes_gcm::Aes256Gcm::new_from_slice(&key32)
            .unwrap()
            .decrypt(aes_gcm::Nonce::from_slice(nonce), sealed)
            .unwrap();
        assert_eq!(opened, plain.as_bytes(), "seed {seed} gcm");
    }
}

#[test]
fn random_ivs_round_trip_for_every_cipher() {
    let plain = "admin@example.com";
    for cipher in ["aes-256-cbc", "aes-128-cbc", "aes-256-gcm"] {
        let first = keyed(KEY, &["encrypt", "--cipher", cipher, "--value", plain])
            .ok()
            .to_owned();
        let second = keyed(KEY, &["encrypt", "--cipher", cipher, "--value", plain])
            .ok()
            .to_owned();
        assert_ne!(first, second, "{cipher}: a fresh IV or nonce per value");
        if cipher != "aes-256-gcm" {
            assert!(
                first[..16].bytes().all(|b| b.is_ascii_alphanumeric()),
                "{first}"
            );
        }
        for field in [&first, &second] {
            assert_eq!(
                keyed(KEY, &["decrypt", "--cipher", cipher, "--value", field]).ok(),
                plain
            );
        }
    }
}

#[test]
fn decrypt_rejects_malformed_fields_with_a_reason() {
    let (key, _, _, _, field) = FIELD_ROWS[4];
    let gcm = keyed(KEY, &["encrypt", "--cipher", "aes-256-gcm", "--value", "x"])
        .ok()
        .to_owned();
    let mut tampered = STANDARD.decode(&gcm).unwrap();
    *tampered.last_mut().unwrap() ^= 1;
    let tampered = STANDARD.encode(tampered);
    let cases: [(&str, &str, String, &str); 8] = [
        (key, "aes-256-cbc", "AbCdEf".into(), "shorter than its IV"),
        (
            key,
            "aes-256-cbc",
            "AbCdEf0123456789!!!!".into(),
            "not valid base64",
        ),
        (
            KEY,
            "aes-128-cbc",
            FIELD_ROWS[3].4.replace('+', " "),
            "not valid base64",
        ),
        (
            key,
            "aes-256-cbc",
            "AbCdEf0123456789QUJD".into(),
            "whole number of AES blocks",
        ),
        ("abcde", "aes-256-cbc", field.into(), "invalid padding"),
        (KEY, "aes-256-gcm", tampered, "failed GCM authentication"),
        (
            KEY,
            "aes-256-gcm",
            "c2hvcnQ=".into(),
            "whole number of AES blocks",
        ),
        (
            KEY,
            "aes-256-cbc",
            FIELD_ROWS[3].4.into(),
            "invalid padding",
        ),
    ];
    for (key, cipher, value, reason) in cases {
        let run = keyed(key, &["decrypt", "--cipher", cipher, "--value", &value]);
        let report = run.failed();
        assert!(report.contains(reason), "{value}: {report}");
        assert!(
            report.contains("expected:") && report.contains("next:"),
            "{report}"
        );
    }
    // An AES-128 field read as AES-256: the tool finds the algorithm that works, without printing the value.
    let run = keyed(KEY, &["decrypt", "--value", FIELD_ROWS[3].4]);
    let report = run.failed();
    assert!(report.contains("it decrypts with aes-128-cbc"), "{report}");
    assert!(!report.contains("admin@example.com"), "{report}");

    let run = keyed(
        KEY,
        &["decrypt", "--iv", "AbCdEf0123456789", "--value", field],
    );
    assert!(
        run.failed().contains("only for `koogate encrypt`"),
        "{run:#?}"
    );
    let run = keyed(KEY, &["encrypt", "--iv", "short", "--value", "x"]);
    assert!(run.failed().contains("16 letters or digits"), "{run:#?}");
}

#[test]
fn the_access_key_must_come_from_exactly_one_of_env_or_file() {
    let missing = koogate(&["sign", "--body", "{}"], &[], None);
    assert_eq!(missing.code, Some(2), "{missing:#?}");
    let both = koogate(
        &[
            "sign",
            "--body",
            "{}",
            "--key-env",
            KEY_ENV,
            "--key-file",
            "/dev/null",
        ],
        &[(KEY_ENV, KEY)],
        None,
    );
    assert_eq!(both.code, Some(2), "{both:#?}");
    let unset = koogate(&["sign", "--body", "{}", "--key-env", KEY_ENV], &[], None);
    assert!(
        unset.failed().contains(&format!("`{KEY_ENV}` is not set")),
        "{unset:#?}"
    );
    let empty = keyed("", &["sign", "--body", "{}"]);
    assert!(empty.failed().contains("access key is empty"), "{empty:#?}");
}

/// The tools are for curl scripts against the real thing: a signed V2 and V1 call is accepted by a real gateway,
/// and its answer's `Body-Sign` verifies.
#[tokio::test]
async fn calls_signed_by_the_tool_are_accepted_and_their_answers_verify() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start_v1(&upstream).await;
    let body = r#"{"activity":"newInstance","businessId":"b-cli","orderId":"CLI-ORDER","orderLineId":"CLI-ORDER-1","testFlag":"1"}"#;
    let mut v2 = Call::new(body);
    v2.query = Some(keyed(KEY, &["sign", "--body", body]).ok().to_owned());
    let mut v1 = Call::v1(&[]);
    v1.query = Some(
        keyed(
            KEY,
            &[
                "sign",
                "--v1",
                "--param",
                "activity=queryInstance",
                "--param",
                "instanceId=i-cli",
            ],
        )
        .ok()
        .to_owned(),
    );
    for call in [v2, v1] {
        let reply = gateway.client().send(&call).await;
        reply.assert_code("000000");
        let header = reply.headers.get("body-sign").unwrap().to_str().unwrap();
        let answer = std::str::from_utf8(&reply.body).unwrap();
        assert_eq!(
            keyed(KEY, &["verify", "--body", answer, "--body-sign", header]).ok(),
            "valid"
        );
        let run = keyed(
            OLD_KEY,
            &["verify", "--body", answer, "--body-sign", header],
        );
        assert!(run.failed().contains("does not match"), "{run:#?}");
    }
    assert_eq!(upstream.count(), 2);
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("koogate.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn check(config: &str, extra: &[&str]) -> Run {
    let args = [&["check", "--config", config][..], extra].concat();
    koogate(
        &args,
        &[(KEY_ENV, KEY), (JOURNAL_KEY_ENV, JOURNAL_KEY)],
        None,
    )
}

fn good_config(routes: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:8443"
cert_chain_file = "cert.pem"
private_key_file = "key.pem"

[[access_keys]]
name = "primary"
env = "{KEY_ENV}"
field_cipher = "aes-128-cbc"

[upstream]
default_route = "app"
{routes}

[test_calls]
mode = "sandbox"
sandbox_route = "staging"

[store]
backend = "local"
data_dir = "data"
journal_key_env = "{JOURNAL_KEY_ENV}"
"#
    )
}

const ROUTES: &str = r#"
[upstream.routes.app]
url = "http://127.0.0.1:3000/koogallery"

[upstream.routes.provisioning]
url = "https://provisioning.internal.example:9443/new"
activities = ["newInstance"]

[upstream.routes.staging]
url = "http://127.0.0.1:3999/staging"
"#;

#[test]
fn check_lists_every_configuration_error_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[server]
listen = "everywhere"
cert_chain_file = "missing-cert.pem"
private_key_file = "missing-key.pem"

[[access_keys]]
name = "primary"
env = "KOOGATE_TEST_CLI_UNSET_KEY"

[upstream]
deadline_ms = 9000
default_route = "app"

[upstream.routes.app]
url = "ftp://example.com/app"

[test_calls]
mode = "sometimes"

[store]
backend = "local"
journal_key_env = "KOOGATE_TEST_CLI_UNSET_JOURNAL_KEY"

[log]
format = "xml"
"#,
    );
    let run = check(&config, &[]);
    let report = run.check_failed();
    for path in [
        "server.listen",
        "access_keys[0].env",
        "upstream.deadline_ms",
        "upstream.routes.app.url",
        "store.journal_key_env",
        "log.format",
        // The certificate is checked in the same run, from the file's raw values.
        "server.cert_chain_file",
    ] {
        assert!(
            report.contains(&format!("error: {path}: ")),
            "{path} missing from:\n{report}"
        );
    }
    assert!(report.contains("KOOGATE_TEST_CLI_UNSET_KEY"), "{report}");
    assert!(report.contains("next: fix each key above"), "{report}");

    let unparsable = write_config(dir.path(), "[server\nlisten = 1");
    let report = check(&unparsable, &[]).check_failed().to_owned();
    assert!(report.contains("line 1"), "{report}");
}

#[test]
fn check_accepts_a_good_configuration_and_prints_the_routes() {
    let cert = TestCert::new();
    let config = write_config(cert.path(), &good_config(ROUTES));
    let run = check(&config, &[]);
    let report = run.ok();
    assert!(report.ends_with(&format!("{config}: valid")), "{report}");
    for line in [
        "newInstance            → provisioning → https://provisioning.internal.example:9443/new",
        "queryInstance          → app → http://127.0.0.1:3000/koogallery",
        "expireInstance         → app → http://127.0.0.1:3000/koogallery",
        "test calls (testFlag=1): sandbox route staging → http://127.0.0.1:3999/staging",
        "access keys: primary (aes-128-cbc)",
        "store: local, data_dir",
        "and the key in",
        "tls: the leaf certificate expires 4096-01-01",
        "V1 calls: off (the default) — V1 GET calls are refused with 000002",
        "set [v1] enabled = true for a V1 product",
        "upstream requests: not signed",
    ] {
        assert!(report.contains(line), "{line:?} missing from:\n{report}");
    }
    assert!(
        !report.contains(KEY) && !run.stderr.contains(KEY),
        "the key is never printed"
    );
    // A self-signed certificate passes, with a warning: KooGallery needs a CA-issued one.
    assert!(
        run.stderr
            .contains("warning: server.cert_chain_file: the chain does not lead to a public"),
        "{run:#?}"
    );
}

#[test]
fn check_refuses_a_certificate_and_key_that_do_not_match() {
    let cert = TestCert::new();
    let other = TestCert::new();
    std::fs::copy(other.path().join("key.pem"), cert.path().join("key.pem")).unwrap();
    let config = write_config(cert.path(), &good_config(ROUTES));
    let run = check(&config, &[]);
    let report = run.check_failed();
    assert!(
        report.contains(
            "error: server.private_key_file: the private key does not match the certificate"
        ),
        "{report}"
    );
    assert!(
        report.contains("expected:") && report.contains("next:"),
        "{report}"
    );

    // A key file given as the chain.
    std::fs::copy(cert.path().join("key.pem"), cert.path().join("cert.pem")).unwrap();
    let report = check(&config, &[]).check_failed().to_owned();
    assert!(
        report.contains("error: server.cert_chain_file: no certificate in"),
        "{report}"
    );
}

/// A certificate valid from `from_days` to `to_days` from now, written as cert.pem and key.pem.
fn dated_cert(dir: &Path, from_days: i64, to_days: i64) {
    let now = time::OffsetDateTime::now_utc();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = now + time::Duration::days(from_days);
    params.not_after = now + time::Duration::days(to_days);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

#[test]
fn check_warns_of_an_expiring_certificate_and_refuses_an_expired_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &good_config(ROUTES));

    dated_cert(dir.path(), -30, 10);
    let run = check(&config, &[]);
    run.ok();
    assert!(
        run.stderr
            .contains("warning: server.cert_chain_file: the leaf certificate expires"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("(in 9 day(s))") || run.stderr.contains("(in 10 day(s))"),
        "{run:#?}"
    );

    dated_cert(dir.path(), -30, -1);
    let run = check(&config, &[]);
    let report = run.check_failed();
    assert!(
        report.contains("error: server.cert_chain_file: the leaf certificate has expired"),
        "{report}"
    );
    assert!(report.contains("renew"), "{report}");

    dated_cert(dir.path(), 2, 90);
    let run = check(&config, &[]);
    assert!(run.check_failed().contains("not valid yet"), "{run:#?}");
}

#[test]
fn probe_reports_reachable_and_unreachable_upstreams_without_sending_a_request() {
    let cert = TestCert::new();
    let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let routes = format!(
        r#"
[upstream.routes.app]
url = "http://{}/koogallery"

[upstream.routes.staging]
url = "http://127.0.0.1:{closed_port}/staging"
"#,
        listening.local_addr().unwrap()
    );
    let config = write_config(cert.path(), &good_config(&routes));
    assert_eq!(check(&config, &[]).code, Some(0), "no probe unless asked");
    let run = check(&config, &["--probe-upstreams"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.contains(&format!(
            "probe: upstream.routes.app.url {} reachable",
            listening.local_addr().unwrap()
        )),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "error: upstream.routes.staging.url: 127.0.0.1:{closed_port} unreachable"
        )),
        "{run:#?}"
    );
    // The connection was made and closed without a byte sent.
    listening.set_nonblocking(false).unwrap();
    let (mut accepted, _) = listening.accept().unwrap();
    let mut sent = Vec::new();
    std::io::Read::read_to_end(&mut accepted, &mut sent).unwrap();
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn version_names_the_release_and_the_git_commit() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_koogate"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        text.trim(),
        format!("koogate {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_and_run_refuse_a_configuration_without_a_test_calls_mode() {
    let cert = TestCert::new();
    let text = good_config(ROUTES).replace(
        "[test_calls]\nmode = \"sandbox\"\nsandbox_route = \"staging\"\n",
        "",
    );
    assert!(!text.contains("[test_calls]"));
    let config = write_config(cert.path(), &text);
    let report = check(&config, &[]).check_failed().to_owned();
    assert!(
        report.contains("error: test_calls.mode: must be set explicitly"),
        "{report}"
    );
    for advice in [
        "`sandbox`",
        "`forward` when the app honours testFlag",
        "`builtin` only when",
    ] {
        assert!(report.contains(advice), "{advice} missing from:\n{report}");
    }
    let run = koogate(
        &["run", "--config", &config],
        &[(KEY_ENV, KEY), (JOURNAL_KEY_ENV, JOURNAL_KEY)],
        None,
    );
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("test_calls.mode"), "{run:#?}");
}
