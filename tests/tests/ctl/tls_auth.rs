//! TLS client flags and `--user`/`--password`, against the reference etcd
//! (our server serves neither TLS nor auth yet).
//!
//! TLS: certificates are made at test time with `openssl` in a temporary
//! directory (a CA, a server certificate for 127.0.0.1, a client
//! certificate, and an unrelated CA), and etcd is started with
//! `--client-cert-auth` on an `https://` client URL by a guard of its own.
//! Auth: a reference server gets a root user and `auth enable` through
//! Debian's etcdctl; both etcdctls then run the same steps against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use retcd_tests::etcdctl::{REFERENCE_ETCDCTL, run_binary};
use retcd_tests::ports::free_port;
use retcd_tests::{Flavour, Server, step};
use tempfile::TempDir;

use crate::harness::{compare, compare_on};

/// How long the TLS etcd may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `openssl` with `args` in `dir`, panicking on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

/// Makes `ca.crt`, `server.{crt,key}`, `client.{crt,key}` and an unrelated
/// `other.crt` in `dir`.
fn make_certificates(dir: &Path) {
    let self_signed = |name: &str, cn: &str| {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
    };
    self_signed("ca", "test-ca");
    self_signed("other", "other-ca");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "server"), ("client", "client")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

/// A reference etcd serving clients over TLS with client certificates
/// required; killed on drop.
struct TlsEtcd {
    /// Certificates and the data dir.
    dir: TempDir,
    /// `https://127.0.0.1:<port>`.
    url: String,
    /// The process.
    child: Child,
}

impl TlsEtcd {
    /// Makes certificates and starts etcd, waiting until Debian's etcdctl
    /// can read from it.
    fn start() -> TlsEtcd {
        let dir = tempfile::Builder::new()
            .prefix("retcd-tls-")
            .tempdir()
            .unwrap();
        make_certificates(dir.path());
        let url = format!("https://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(Flavour::Reference.binary())
            .current_dir(dir.path())
            .args(["--data-dir", "data", "--listen-client-urls", &url])
            .args(["--advertise-client-urls", &url, "--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .arg(format!("--initial-cluster=default={peer}"))
            .args(["--cert-file", "server.crt", "--key-file", "server.key"])
            .args(["--trusted-ca-file", "ca.crt", "--client-cert-auth"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let etcd = TlsEtcd { dir, url, child };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let probe = etcd.run(
                REFERENCE_ETCDCTL,
                &[
                    "--cacert",
                    "ca.crt",
                    "--cert",
                    "client.crt",
                    "--key",
                    "client.key",
                    "get",
                    "x",
                ],
            );
            if probe.code == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "TLS etcd not ready: {probe:#?}\n{}",
                std::fs::read_to_string(etcd.dir.path().join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        etcd
    }

    /// Where the certificates are.
    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Runs an etcdctl in the certificate directory.
    fn run(&self, binary: &str, args: &[&str]) -> retcd_tests::CtlOutput {
        let mut all = vec!["--command-timeout=2s".to_string()];
        all.extend(args.iter().map(|a| {
            // Certificate names are relative to the directory.
            if a.ends_with(".crt") || a.ends_with(".key") || a.ends_with(".ext") {
                self.path().join(a).display().to_string()
            } else {
                a.to_string()
            }
        }));
        run_binary(binary, &self.url, &all, &[], None, Duration::from_secs(20))
    }
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tls_flags_match_reference_against_tls_etcd() {
    let etcd = TlsEtcd::start();
    let ours = crate::harness::ours().display().to_string();
    let certs = [
        "--cacert",
        "ca.crt",
        "--cert",
        "client.crt",
        "--key",
        "client.key",
    ];
    let cases: Vec<Vec<&str>> = vec![
        [&certs[..], &["put", "k", "v"]].concat(),
        [&certs[..], &["get", "k", "-w", "json"]].concat(),
        [&certs[..], &["endpoint", "health"]].concat(),
        [&certs[..], &["endpoint", "status"]].concat(),
        // The server's certificate is verified against a CA that did not
        // sign it: the endpoint is unreachable.
        vec![
            "--cacert",
            "other.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "get",
            "k",
        ],
        vec![
            "--cacert",
            "other.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "endpoint",
            "status",
        ],
        vec![
            "--cacert",
            "other.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "endpoint",
            "health",
        ],
        // No client certificate: the server refuses the handshake.
        vec!["--cacert", "ca.crt", "get", "k"],
        vec![
            "--insecure-skip-tls-verify",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "get",
            "k",
        ],
        vec![
            "--insecure-transport=false",
            "--insecure-skip-tls-verify",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "get",
            "k",
        ],
        vec!["--cacert", "missing.crt", "get", "k"],
        vec!["--cert", "client.crt", "get", "k"],
        vec![
            "--cacert",
            "ca.crt",
            "--cert",
            "server.ext",
            "--key",
            "client.key",
            "get",
            "k",
        ],
    ];
    let mut mismatches = String::new();
    for args in &cases {
        let want = crate::harness::masked(etcd.run(REFERENCE_ETCDCTL, args));
        let got = crate::harness::masked(etcd.run(&ours, args));
        if want != got {
            mismatches.push_str(&format!(
                "{args:?}\n--- reference\n{want:#?}\n--- ours\n{got:#?}\n"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches}");
    // The certificate file names in errors are absolute: also check one
    // literally.
    let missing = etcd.run(&ours, &["--cacert", "missing.crt", "get", "k"]);
    assert_eq!(missing.code, 128);
    assert!(
        missing
            .stderr
            .contains("missing.crt: no such file or directory"),
        "{missing:#?}"
    );
}

#[test]
fn user_and_password_match_reference_with_auth_enabled() {
    let server = Server::start(Flavour::Reference, &[]);
    let url = server.client_url();
    for setup in ["user add root:pw", "auth enable"] {
        server
            .etcdctl(&setup.split(' ').collect::<Vec<_>>())
            .assert_success();
    }
    let steps = [
        step("--user root:pw put a b"),
        step("--user root --password pw get a"),
        step("--user=root:pw get a -w json"),
        step("--user root:bad get a"),
        step("--user nobody:x get a"),
        step("get a"),
        step("--user root:pw endpoint hashkv"),
        step("--user root:pw endpoint health"),
        step("--user root:bad endpoint health -w json"),
        step("--user root:bad endpoint status"),
        step("--user root:pw member list"),
        step("--user root:pw lease grant 100"),
    ];
    compare_on(&url, &url, &steps, &[]);
    // The same through the environment.
    compare_on(
        &url,
        &url,
        &[step("get a")],
        &[("ETCDCTL_USER", "root"), ("ETCDCTL_PASSWORD", "pw")],
    );
}

#[test]
fn user_flag_without_auth_enabled_proceeds_without_token() {
    compare(
        Flavour::Reference,
        &[
            step("--user root:pw put a b"),
            step("--user root --password pw get a"),
        ],
    );
}

#[test]
fn user_flag_against_our_server_prints_alike() {
    compare(Flavour::Ours, &[step("--user root:pw put a b")]);
}
