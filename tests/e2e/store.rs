//! Store v2 defects, each with a test that failed before: shutdown waits for calls whose client went away (and
//! such a call still records its answer while the gateway runs),
//! `000004` is never replayed as final, and a rotated journal key still opens old records.

use crate::support::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn v2_new_instance(order: &str) -> Call {
    Call::json(
        &json!({"activity":"newInstance","businessId":"b","orderId":order,"orderLineId":format!("{order}-1")}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_call_whose_client_went_away_so_its_retry_is_deduplicated() {
    let upstream = Upstream::start(Behaviour::Slow(
        Duration::from_millis(600),
        r#"{"instanceId":"inst-late"}"#.into(),
    ))
    .await;
    let dir = Arc::new(TestCert::new());
    let mut options = Options::new(&upstream);
    options.dir = Some(dir.clone());
    let mut gateway = TestGateway::start_with(options).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        gateway.client().send(&v2_new_instance("LATE-1")),
    )
    .await;
    assert!(abandoned.is_err(), "the client gave up first");
    gateway.begin_shutdown().await.unwrap().unwrap();
    assert_eq!(upstream.count(), 1);

    upstream.set(Behaviour::Unique);
    let mut options = Options::new(&upstream);
    options.dir = Some(dir);
    let restarted = TestGateway::start_with(options).await;
    let retry = restarted.client().send(&v2_new_instance("LATE-1")).await;
    retry.assert_code("000000");
    assert_eq!(retry.json()["instanceId"], "inst-late");
    assert_eq!(upstream.count(), 1, "the retry did not reach the app again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_client_hung_up_finishes_detached_and_its_retry_gets_the_record() {
    let upstream = Upstream::start(Behaviour::Slow(
        Duration::from_millis(400),
        r#"{"instanceId":"inst-gone"}"#.into(),
    ))
    .await;
    let gateway = TestGateway::start(&upstream).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        gateway.client().send(&v2_new_instance("GONE-1")),
    )
    .await;
    assert!(abandoned.is_err(), "the client gave up first");
    // The retry waits for the abandoned call, which still holds its idempotency key, then finds its record.
    let retry = gateway.client().send(&v2_new_instance("GONE-1")).await;
    retry.assert_code("000000");
    assert_eq!(retry.json()["instanceId"], "inst-gone");
    assert_eq!(
        retry
            .headers
            .get("x-koogate-from-record")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(upstream.count(), 1, "the retry did not reach the app again");
    let metrics = gateway.metrics().await;
    assert_eq!(metric(&metrics, "koogate_calls_detached_total"), 1.0);
}

#[tokio::test]
async fn a_still_provisioning_answer_is_not_replayed_so_the_next_retry_reaches_the_app() {
    let upstream = Upstream::start(Behaviour::Answer(
        200,
        r#"{"resultCode":"000004","instanceId":"inst-pending"}"#.into(),
    ))
    .await;
    let gateway = TestGateway::start(&upstream).await;
    gateway
        .client()
        .send(&v2_new_instance("PENDING-1"))
        .await
        .assert_code("000004");
    upstream.set(Behaviour::Answer(
        200,
        r#"{"instanceId":"inst-done"}"#.into(),
    ));
    let done = gateway.client().send(&v2_new_instance("PENDING-1")).await;
    done.assert_code("000000");
    assert_eq!(upstream.count(), 2, "the retry asked the app again");
    let again = gateway.client().send(&v2_new_instance("PENDING-1")).await;
    assert_eq!(again.json()["instanceId"], "inst-done");
    assert_eq!(upstream.count(), 2, "the final answer is recorded");
}

#[tokio::test]
async fn after_a_journal_key_rotation_old_records_still_open() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    let dir = Arc::new(TestCert::new());
    let mut options = Options::new(&upstream);
    options.dir = Some(dir.clone());
    let mut gateway = TestGateway::start_with(options).await;
    let first = gateway.client().send(&v2_new_instance("ROTATE-1")).await;
    first.assert_code("000000");
    gateway.begin_shutdown().await.unwrap().unwrap();

    let new_key = "ff".repeat(32);
    std::fs::write(dir.path().join("new.key"), &new_key).unwrap();
    std::fs::write(dir.path().join("old.key"), JOURNAL_KEY).unwrap();
    let mut options = Options::new(&upstream);
    options.dir = Some(dir.clone());
    options.store_toml =
        "backend = \"local\"\ndata_dir = \"data\"\njournal_key_file = \"new.key\"\n\
                          previous_journal_key_files = [\"old.key\"]"
            .into();
    let rotated = TestGateway::start_with(options).await;
    let retry = rotated.client().send(&v2_new_instance("ROTATE-1")).await;
    retry.assert_code("000000");
    assert_eq!(retry.json()["instanceId"], first.json()["instanceId"]);
    assert_eq!(upstream.count(), 1);
}

/// A small tmpfs the test mounts (root only), so the data directory can really run out of space.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { path, _dir: dir })
    }

    /// Writes a file until the file system refuses (no space left).
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![7u8; 4096];
        let error = loop {
            if let Err(e) = filler.write_all(&block) {
                break e;
            }
        };
        assert_eq!(error.raw_os_error(), Some(28), "ENOSPC expected: {error}");
    }

    fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

async fn ready(admin: std::net::SocketAddr) -> bool {
    client::admin_get(admin, "/readyz")
        .await
        .is_ok_and(|(status, _)| status == 200)
}

async fn wait_ready(admin: std::net::SocketAddr, want: bool) {
    let started = std::time::Instant::now();
    while ready(admin).await != want {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "readiness never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn notify(order: &str) -> Call {
    Call::json(
        &json!({"activity":"orderNotify","orderId":order,"orderLineId":format!("{order}-1")}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_readyz_false_and_calls_a_signed_000005_until_space_returns() {
    let Some(disk) = SmallDisk::mount() else {
        eprintln!("skipped: mounting a small tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    let upstream = Upstream::start(Behaviour::Unique).await;
    let mut options = Options::new(&upstream);
    options.store_toml = format!(
        "backend = \"local\"\ndata_dir = \"{}\"\njournal_key_env = \"TEST_JOURNAL_KEY\"",
        disk.path.join("data").display()
    );
    let gateway = TestGateway::start_with(options).await;
    wait_ready(gateway.admin, true).await;
    gateway
        .client()
        .send(&notify("DISK-0"))
        .await
        .assert_code("000000");

    // No space left: the log's write fails, the call is answered (signed) 000005 and readiness drops. The
    // segment's last page may still take a frame or two, so send until the disk refuses one.
    disk.fill();
    let mut refused = None;
    for i in 1..=20 {
        let reply = gateway.client().send(&notify(&format!("DISK-{i}"))).await;
        if reply.code() != "000000" {
            refused = Some(reply);
            break;
        }
    }
    refused
        .expect("a call on a full disk")
        .assert_code("000005");
    assert!(
        !ready(gateway.admin).await,
        "unready after the failed write"
    );
    // It stays unready while the disk is full, with no call arriving (the writer probes every second).
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!ready(gateway.admin).await, "ready again on a full disk");
    }
    assert!(
        metric(
            &gateway.metrics().await,
            r#"koogate_rejections_total{reason="store_failed"}"#
        ) >= 1.0
    );

    // Space returns: readiness comes back by itself and calls succeed again.
    disk.free();
    wait_ready(gateway.admin, true).await;
    gateway
        .client()
        .send(&notify("DISK-AFTER"))
        .await
        .assert_code("000000");
}
