//! Client transport security: which endpoints speak TLS, the rustls client
//! configuration built from `--cacert`/`--cert`/`--key`/
//! `--insecure-skip-tls-verify`, and the connector that dials through it.
//!
//! The rules follow etcd 3.4's Go client and etcdctl:
//! - An `https://` endpoint always speaks TLS, an `http://` endpoint never
//!   does. A bare `host:port` speaks TLS when a TLS configuration exists,
//!   that is when a certificate flag or `--insecure-skip-tls-verify` is
//!   given, or `--insecure-transport=false`.
//! - `--cert` and `--key` come together or not at all; a missing file fails
//!   the command before any connection, with Go's `open <path>: ...` text
//!   and exit code 128, as etcdctl does.
//! - Without `--cacert` the server is verified against the system bundle
//!   (`/etc/ssl/certs/ca-certificates.crt` when present).
//! - The server name checked is the endpoint's host (an IP address is
//!   checked against the certificate's IP SANs).
//! - A failed handshake is not an error by itself: the endpoint counts as
//!   unreachable, and the command ends as every unreachable command does
//!   (`context deadline exceeded`). The handshake's reason is kept, in Go's
//!   words where they exist, for the client's log line.
//!
//! rustls (through tokio-rustls, the crate tonic's own TLS uses) is driven
//! directly rather than through tonic's `ClientTlsConfig`, because that
//! cannot express `--insecure-skip-tls-verify`.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};

use crate::error::{CtlError, EXIT_BAD_ARGS, go_path_error};
use crate::global::GlobalOptions;

/// Where a system without `--cacert` keeps its trusted roots (Debian).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The protocol every etcd client negotiates over TLS.
const ALPN_H2: &[u8] = b"h2";

/// How the client reaches endpoints.
#[derive(Clone)]
pub struct Transport {
    /// The TLS configuration, when any endpoint may need one.
    config: Option<Arc<ClientConfig>>,
    /// Whether bare `host:port` endpoints speak TLS.
    bare_uses_tls: bool,
}

impl Transport {
    /// Builds the transport from the global flags, reading the certificate
    /// files; fails as etcdctl does on a missing or unreadable file.
    pub fn from_options(opts: &GlobalOptions) -> Result<Transport, CtlError> {
        let tls = &opts.tls;
        if tls.cert_file.is_empty() != tls.key_file.is_empty() {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                format!(
                    "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                    tls.key_file, tls.cert_file
                ),
            ));
        }
        let bare_uses_tls = !tls.ca_file.is_empty()
            || !tls.cert_file.is_empty()
            || tls.skip_verify
            || !tls.insecure_transport;
        let any_https = opts.endpoints.iter().any(|e| e.starts_with("https://"));
        if !bare_uses_tls && !any_https {
            return Ok(Transport {
                config: None,
                bare_uses_tls,
            });
        }
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| CtlError::new(EXIT_BAD_ARGS, e))?;
        let builder = if tls.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(
                    provider.signature_verification_algorithms,
                )))
        } else {
            builder.with_root_certificates(roots(&tls.ca_file)?)
        };
        let mut config = if tls.cert_file.is_empty() {
            builder.with_no_client_auth()
        } else {
            let (certs, key) = key_pair(&tls.cert_file, &tls.key_file)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| CtlError::new(EXIT_BAD_ARGS, format!("tls: {e}")))?
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Transport {
            config: Some(Arc::new(config)),
            bare_uses_tls,
        })
    }

    /// The TLS configuration to dial `endpoint` with, or `None` for plain
    /// TCP.
    pub fn tls_for(&self, endpoint: &str) -> Option<Arc<ClientConfig>> {
        if endpoint.starts_with("http://") {
            return None;
        }
        if endpoint.starts_with("https://") || self.bare_uses_tls {
            return self.config.clone();
        }
        None
    }
}

/// Reads a file named by a flag, failing with Go's `open <path>: ...`.
fn read_file(path: &str) -> Result<Vec<u8>, CtlError> {
    std::fs::read(path).map_err(|e| CtlError::new(EXIT_BAD_ARGS, go_path_error("open", path, &e)))
}

/// The trusted roots: `--cacert`'s certificates, else the system bundle.
/// Blocks that do not parse are skipped, as Go's `AppendCertsFromPEM` does.
fn roots(ca_file: &str) -> Result<RootCertStore, CtlError> {
    let pem = if ca_file.is_empty() {
        std::fs::read(SYSTEM_CA_BUNDLE).unwrap_or_default()
    } else {
        read_file(ca_file)?
    };
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
    store.add_parsable_certificates(certs);
    Ok(store)
}

/// The client certificate chain and its key, with Go's `tls.X509KeyPair`
/// errors.
fn key_pair(
    cert_file: &str,
    key_file: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CtlError> {
    let cert_pem = read_file(cert_file)?;
    let key_pem = read_file(key_file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "tls: failed to find any PEM data in certificate input",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        CtlError::new(
            EXIT_BAD_ARGS,
            "tls: failed to find any PEM data in key input",
        )
    })?;
    Ok((certs, key))
}

/// The name the server's certificate must carry: the endpoint's host.
fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string()).map_err(|e| e.to_string())
}

/// Go's words for a failed handshake, where Go has them.
fn handshake_text(error: &std::io::Error) -> String {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>());
    let reason = match tls {
        Some(TlsError::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            "x509: certificate signed by unknown authority".to_string()
        }
        Some(TlsError::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        )) => "x509: certificate has expired or is not yet valid".to_string(),
        _ => error.to_string(),
    };
    format!("transport: authentication handshake failed: {reason}")
}

/// How Go's balancer reports a transport that failed with `desc`.
pub fn connection_error(desc: &str) -> String {
    format!("connection error: desc = {desc:?}")
}

/// Go's words for a failed TCP dial.
pub fn dial_text(address: &str, error: &std::io::Error) -> String {
    let reason = match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => error.to_string(),
    };
    format!("transport: Error while dialing dial tcp {address}: connect: {reason}")
}

/// Dials `address` (`host:port`) and runs the TLS handshake; on failure
/// records in `last_error` what Go's balancer would say after
/// `latest balancer error: `.
pub async fn dial_tls(
    address: String,
    config: Arc<ClientConfig>,
    last_error: Arc<Mutex<Option<String>>>,
) -> std::io::Result<TokioIo<Prefixed<tokio_rustls::client::TlsStream<TcpStream>>>> {
    let record = |text: String| {
        if let Ok(mut slot) = last_error.lock() {
            *slot = Some(text);
        }
    };
    let host = address
        .rsplit_once(':')
        .map(|(host, _)| host)
        .unwrap_or(&address);
    let name = server_name(host).map_err(|e| {
        record(connection_error(&e));
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    })?;
    let tcp = TcpStream::connect(&address).await.inspect_err(|e| {
        record(connection_error(&dial_text(&address, e)));
    })?;
    let _ = tcp.set_nodelay(true);
    let mut stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .inspect_err(|e| record(connection_error(&handshake_text(e))))?;
    // With TLS 1.3 a server that rejects the client's certificate says so
    // only after the client's side of the handshake is done. Go's client
    // waits for the server's first HTTP/2 frame before it counts the
    // connection as up; wait briefly for the first bytes likewise, so a
    // rejection makes the endpoint unreachable rather than failing a call.
    let mut first = vec![0u8; FIRST_READ_BYTES];
    let prefix = match tokio::time::timeout(FIRST_BYTES_WAIT, stream.read(&mut first)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {
            record(CONNECTION_CLOSED.to_string());
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                CONNECTION_CLOSED,
            ));
        }
        Ok(Ok(n)) => {
            first.truncate(n);
            first
        }
        Err(_) => Vec::new(),
    };
    Ok(TokioIo::new(Prefixed {
        prefix,
        inner: stream,
    }))
}

/// How long to wait for a TLS server's first bytes (see [`dial_tls`]).
const FIRST_BYTES_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
/// Buffer for those first bytes.
const FIRST_READ_BYTES: usize = 16 * 1024;
/// Go's words for a connection the server dropped.
const CONNECTION_CLOSED: &str = "connection closed";

/// A stream whose first reads return bytes already read from it.
pub struct Prefixed<S> {
    /// Bytes read ahead, returned first.
    prefix: Vec<u8>,
    /// The stream.
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `--insecure-skip-tls-verify`: accepts any server certificate, still
/// checking that the server holds its key.
#[derive(Debug)]
struct SkipVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
