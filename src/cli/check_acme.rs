//! `koogate check` for `[acme]`: what will be ordered from where, how challenges are answered, and the state of
//! the stored account and certificate.

use crate::config::{AcmeConfig, DEFAULT_ACME_DIRECTORY, LETS_ENCRYPT_STAGING};
use rustls_pki_types::{pem::PemObject, CertificateDer};

/// Prints the ACME setup; false if something would stop `koogate run` from obtaining a certificate.
pub fn check(acme: &AcmeConfig) -> bool {
    let mut ok = true;
    let directory = match acme.directory_url.as_str() {
        DEFAULT_ACME_DIRECTORY => " (Let's Encrypt production)",
        LETS_ENCRYPT_STAGING => " (Let's Encrypt staging: certificates are not publicly trusted)",
        _ => "",
    };
    println!(
        "tls: certificates from ACME for {}",
        acme.domains.join(", ")
    );
    println!("acme: directory {}{directory}", acme.directory_url);
    let mut challenges = Vec::new();
    if acme.tls_alpn_01 {
        challenges.push("tls-alpn-01 on server.listen (the CA connects to port 443)".to_owned());
    }
    if let Some(listen) = acme.http01_listen {
        challenges.push(format!("http-01 on {listen} (the CA connects to port 80)"));
    }
    println!("acme: challenges {}", challenges.join("; "));
    println!(
        "acme: contact {}",
        acme.contact
            .as_deref()
            .map_or("none (no expiry e-mails)", |c| c
                .trim_start_matches("mailto:"))
    );
    if let Some(ca) = &acme.directory_ca_file {
        let readable = CertificateDer::pem_file_iter(ca)
            .map(|certs| certs.filter_map(Result::ok).count())
            .unwrap_or(0);
        if readable == 0 {
            eprintln!(
                "error: acme.directory_ca_file: no PEM certificate in {}",
                ca.display()
            );
            ok = false;
        } else {
            println!("acme: directory trusted through {} only", ca.display());
        }
    }
    let state = acme.state_dir.display();
    let account = if acme.state_dir.join("account.json").exists() {
        "account stored"
    } else {
        "no account yet (registered on first start)"
    };
    println!("acme: state in {state} ({account})");
    let now = crate::clock::unix_seconds();
    match crate::acme::stored_certificate(acme, now) {
        Ok(Some((not_before, not_after))) => println!(
            "acme: stored certificate valid until {} (renewal from {})",
            date(not_after),
            date(not_before + (not_after - not_before) * 2 / 3)
        ),
        Ok(None) => println!(
            "acme: no certificate stored yet: `koogate run` orders one at start and refuses TLS handshakes \
             (and /readyz stays 503) until it is issued"
        ),
        Err(why) => println!("acme: the stored certificate is not used ({why}); a new one is ordered at start"),
    }
    ok
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
