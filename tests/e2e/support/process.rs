//! The real `koogate` binary as a child process, and a real `redis-server`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A config for the binary: HTTPS and admin on port 0, the access key from `TEST_KOOGATE_KEY`, one route to
/// `upstream_url`, JSON logs; `store` is the body of the `[store]` table.
pub fn config(upstream_url: &str, store: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ncert_chain_file = \"cert.pem\"\nprivate_key_file = \"key.pem\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [[access_keys]]\nname = \"primary\"\nenv = \"TEST_KOOGATE_KEY\"\n\
         [upstream]\ndefault_route = \"app\"\n[upstream.routes.app]\nurl = \"{upstream_url}\"\n\
         [test_calls]\nmode = \"forward\"\n\
         [store]\n{store}\n\
         [log]\nformat = \"json\"\nlevel = \"info\"\n"
    )
}

/// A running `koogate run`; killed on drop.
pub struct GatewayProcess {
    pub child: Child,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    /// The usage-records listener, when `[usage]` is configured.
    pub usage: Option<SocketAddr>,
    /// Log lines (stderr) read so far, and the rest as they come.
    seen: Vec<String>,
    logs: mpsc::Receiver<String>,
}

impl GatewayProcess {
    /// Starts the binary with `config` (written into `dir`) and waits for its listener addresses (JSON logs).
    pub fn spawn(dir: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        let path = dir.join(format!(
            "koogate-{}.toml",
            hex::encode(rand::random::<[u8; 4]>())
        ));
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_koogate"));
        command
            .args(["run", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut https, mut admin, mut usage) = (None, None, None);
        let started = Instant::now();
        let mut seen = Vec::new();
        while https.is_none() || admin.is_none() {
            let line = logs
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("koogate did not start: {seen:#?}"));
            seen.push(line.clone());
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                panic!("koogate: {line}")
            };
            let listen = v["listen"].as_str().and_then(|a| a.parse().ok());
            match v["message"].as_str().unwrap_or_default() {
                m if m.starts_with("serving KooGallery calls") => https = listen,
                m if m.starts_with("admin endpoint") => admin = listen,
                m if m.starts_with("usage records endpoint") => usage = listen,
                _ => {}
            }
            assert!(started.elapsed() < Duration::from_secs(10));
        }
        Self {
            child,
            https: https.unwrap(),
            admin: admin.unwrap(),
            usage,
            seen,
            logs,
        }
    }

    pub fn signal(&self, signal: &str) {
        assert!(Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success());
    }

    /// Waits for the process to exit; returns its exit code and every log line it wrote.
    pub fn wait_with_logs(mut self) -> (Option<i32>, String) {
        let code = self.child.wait().unwrap().code();
        let mut lines = std::mem::take(&mut self.seen);
        lines.extend(self.logs.try_iter());
        while let Ok(line) = self.logs.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        (code, lines.join("\n"))
    }

    /// SIGTERM, then the exit code once it has drained.
    pub fn terminate(mut self) -> Option<i32> {
        assert!(Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success());
        self.child.wait().unwrap().code()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` on a free loopback port, without persistence; stopped on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// `(certificate, key)` PEM files: serve TLS only (`rediss://`).
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A TLS-only server with this certificate and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::start_with(Some((cert.to_path_buf(), key.to_path_buf())))
    }

    fn start_with(tls: Option<(std::path::PathBuf, std::path::PathBuf)>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            tls,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("rediss://localhost:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some((cert, key)) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &self.port.to_string(),
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(cert),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
