//! Section 8 vectors (key derivation, field encryption) and round-trip properties.

use super::*;
use proptest::prelude::*;

#[test]
fn sha1prng_key_derivation_vectors_match() {
    let table = [
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
            "test-access-key-0001",
            "fa32b243c1eeb23e93357bb8be8ec849",
            "fa32b243c1eeb23e93357bb8be8ec84903d6395e4f1ccb2379a1666d99a6ab9f",
        ),
        (
            "827d93f9-2e75-4842-a142-8813f31aaef9",
            "a25564b7fa3bba3fa064b23882ba19a3",
            "a25564b7fa3bba3fa064b23882ba19a393dbd0c8ffc2ca5abe312f961a5ec0f7",
        ),
    ];
    for (seed, k16, k32) in table {
        assert_eq!(
            hex::encode(FieldKey::derive(seed.as_bytes(), FieldCipher::Aes128Cbc).bytes()),
            k16,
            "{seed}"
        );
        assert_eq!(
            hex::encode(FieldKey::derive(seed.as_bytes(), FieldCipher::Aes256Cbc).bytes()),
            k32,
            "{seed}"
        );
        assert_eq!(
            hex::encode(FieldKey::derive(seed.as_bytes(), FieldCipher::Aes256Gcm).bytes()),
            k32,
            "{seed}"
        );
    }
}

#[test]
fn field_encryption_vectors_match_both_ways() {
    let table = [
        (
            "827d93f9-2e75-4842-a142-8813f31aaef9",
            FieldCipher::Aes256Cbc,
            "t00349j083UC8Og7",
            "fdtest",
            "t00349j083UC8Og7QRozfB7o+81cfg464xP34Q==",
        ),
        (
            "827d93f9-2e75-4842-a142-8813f31aaef9",
            FieldCipher::Aes128Cbc,
            "t00349j083UC8Og7",
            "fdtest",
            "t00349j083UC8Og7YI/s3pHWwoivVo1xGwU5+w==",
        ),
        (
            "test-access-key-0001",
            FieldCipher::Aes128Cbc,
            "AbCdEf0123456789",
            "Passw0rd!Test",
            "AbCdEf0123456789pnqR8aacyVdP9Bs9ncuyZQ==",
        ),
        (
            "test-access-key-0001",
            FieldCipher::Aes128Cbc,
            "AbCdEf0123456789",
            "admin@example.com",
            "AbCdEf0123456789+rult+5jDIm3Y/0lyn/xG7ujzX87ZqMTYSFElz0A0jI=",
        ),
        (
            "test-access-key-0001",
            FieldCipher::Aes256Cbc,
            "AbCdEf0123456789",
            "Passw0rd!Test",
            "AbCdEf0123456789UoOtv8Knt1jt/PWGGVq9ag==",
        ),
        (
            "test-access-key-0001",
            FieldCipher::Aes256Cbc,
            "AbCdEf0123456789",
            "admin@example.com",
            "AbCdEf0123456789sGIEzQPXt7i60kd9YzGRYITtfN5xliPJYWMAXfZjerM=",
        ),
    ];
    for (access_key, cipher, iv, plain, field) in table {
        let key = FieldKey::derive(access_key.as_bytes(), cipher);
        assert_eq!(
            key.encrypt_cbc_with_iv(iv, plain).unwrap(),
            field,
            "{plain} {cipher:?}"
        );
        assert_eq!(key.decrypt(field).unwrap().as_str(), plain, "{field}");
    }
}

#[test]
fn malformed_ciphertexts_are_refused_with_a_reason() {
    let cbc = FieldKey::derive(b"test-access-key-0001", FieldCipher::Aes256Cbc);
    let gcm = FieldKey::derive(b"test-access-key-0001", FieldCipher::Aes256Gcm);
    let good = "AbCdEf0123456789sGIEzQPXt7i60kd9YzGRYITtfN5xliPJYWMAXfZjerM=";
    let cases = [
        (&cbc, "short", FieldError::ShortIv),
        (&cbc, "AbCdEf012345678é9abc", FieldError::BadIv),
        (&cbc, "AbCdEf0123456789!!!notbase64", FieldError::NotBase64),
        (&cbc, "AbCdEf0123456789", FieldError::BadLength),
        (&cbc, "AbCdEf0123456789AAAA", FieldError::BadLength),
        (&gcm, "AAAA", FieldError::BadLength),
        (&gcm, "not base64!", FieldError::NotBase64),
        (&gcm, &STANDARD.encode([7u8; 40]), FieldError::AuthFailed),
    ];
    for (key, field, expected) in cases {
        assert_eq!(key.decrypt(field).unwrap_err(), expected, "{field}");
    }
    // The right ciphertext under the wrong key (almost always) fails the padding check.
    let wrong = FieldKey::derive(b"another-key", FieldCipher::Aes256Cbc);
    assert!(wrong
        .decrypt(good)
        .is_err_and(|e| matches!(e, FieldError::BadPadding | FieldError::NotUtf8)));
    // A type-1 field read as type 2 (the product's algorithm misconfigured) is refused, not mis-decoded.
    let type2 = FieldKey::derive(b"test-access-key-0001", FieldCipher::Aes128Cbc);
    assert!(type2.decrypt(good).is_err());
}

#[test]
fn random_ivs_are_fresh_and_alphanumeric() {
    let key = FieldKey::derive(b"k", FieldCipher::Aes128Cbc);
    let a = key.encrypt("same");
    let b = key.encrypt("same");
    assert_ne!(a, b);
    assert!(a[..16].bytes().all(|c| c.is_ascii_alphanumeric()));
}

fn any_cipher() -> impl Strategy<Value = FieldCipher> {
    prop_oneof![
        Just(FieldCipher::Aes256Cbc),
        Just(FieldCipher::Aes128Cbc),
        Just(FieldCipher::Aes256Gcm)
    ]
}

proptest! {
    /// encrypt → decrypt is the identity for every algorithm, including empty and multi-byte UTF-8 plaintexts.
    #[test]
    fn encrypt_then_decrypt_round_trips(cipher in any_cipher(), access_key in "[ -~]{1,40}", plain in "\\PC{0,64}") {
        let key = FieldKey::derive(access_key.as_bytes(), cipher);
        let sealed = key.encrypt(&plain);
        prop_assert!(key.is_well_formed(&sealed));
        let decrypted = key.decrypt(&sealed).unwrap();
        prop_assert_eq!(decrypted.as_str(), plain.as_str());
    }

    /// Arbitrary input never panics the decryptor.
    #[test]
    fn decrypting_garbage_never_panics(cipher in any_cipher(), field in "\\PC{0,80}") {
        let _ = FieldKey::derive(b"k", cipher).decrypt(&field);
    }
}

#[test]
fn empty_and_multibyte_plaintexts_round_trip() {
    for cipher in [
        FieldCipher::Aes256Cbc,
        FieldCipher::Aes128Cbc,
        FieldCipher::Aes256Gcm,
    ] {
        let key = FieldKey::derive(b"test-access-key-0001", cipher);
        for plain in ["", "飞蝶测试1", "ü@例え.jp"] {
            assert_eq!(key.decrypt(&key.encrypt(plain)).unwrap().as_str(), plain);
        }
    }
}

#[test]
fn a_fixed_iv_must_be_sixteen_letters_or_digits_and_cbc_only() {
    let cbc = FieldKey::derive(b"k", FieldCipher::Aes256Cbc);
    assert_eq!(
        cbc.encrypt_cbc_with_iv("short", "x"),
        Err(FieldError::ShortIv)
    );
    assert_eq!(
        cbc.encrypt_cbc_with_iv("AbCdEf012345678!", "x"),
        Err(FieldError::BadIv)
    );
    let gcm = FieldKey::derive(b"k", FieldCipher::Aes256Gcm);
    assert!(gcm.encrypt_cbc_with_iv("AbCdEf0123456789", "x").is_err());
}

#[test]
fn masked_and_plain_values_are_not_well_formed_ciphertext() {
    for cipher in [
        FieldCipher::Aes256Cbc,
        FieldCipher::Aes128Cbc,
        FieldCipher::Aes256Gcm,
    ] {
        let key = FieldKey::derive(b"k", cipher);
        for plain in [
            "138****1234",
            "13800001234",
            "buyer@example.com",
            "",
            "ABCDEFGHIJKLMNOP",
        ] {
            assert!(!key.is_well_formed(plain), "{cipher:?} {plain}");
        }
        assert!(key.is_well_formed(&key.encrypt("13800001234")));
    }
    assert_eq!(InboundFields::from_name("auto"), Some(InboundFields::Auto));
    assert_eq!(InboundFields::from_name("clear"), None);
}
