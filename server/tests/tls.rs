//! The server speaks HTTPS (rustls) when given a certificate and key.

mod common;

use std::sync::Arc;

use common::{Backend, TestDatabase, TestResult};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_configured_certificate() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert_path = db.dir.path().join("cert.pem");
    let key_path = db.dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem())?;
    std::fs::write(&key_path, cert.signing_key.serialize_pem())?;
    let server = common::Server::start(
        &db,
        &[
            "--tls-cert",
            &cert_path.display().to_string(),
            "--tls-key",
            &key_path.display().to_string(),
        ],
    )?;
    let address = server.base.trim_start_matches("http://").to_owned();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.cert.der().to_vec()))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&address).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("{\"status\":\"ok\"}"), "{response}");

    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{address}/health"))
        .send()
        .await;
    assert!(plain.is_err());
    // A client that does not trust the certificate refuses the server.
    let untrusting = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&address).await?;
    let refused = tokio_rustls::TlsConnector::from(Arc::new(untrusting))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await;
    assert!(refused.is_err());
    Ok(())
}
