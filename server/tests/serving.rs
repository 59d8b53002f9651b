//! How the server is started: HTTPS with rustls, settings from a file.

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

/// Settings come from a file too; a flag wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_settings_from_a_configuration_file() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let config = db.dir.path().join("pieper.env");
    std::fs::write(
        &config,
        format!(
            "# Praktijk De Linde\nPIEPER_DATA_DIR={}\nPIEPER_MAX_JSON_BYTES=1000\nPIEPER_LISTEN=127.0.0.1:1\n",
            db.dir.path().join("from-file").display()
        ),
    )?;
    // --listen and --data-dir on the command line override the file's; the
    // body limit comes from the file.
    let server = common::Server::start(&db, &["--config", &config.display().to_string()])?;
    let body = vec![b'x'; 2000];
    let (status, text) = common::Client::new(&server)
        .raw(
            reqwest::Method::POST,
            "/api/v1/login",
            Some(body),
            "application/json",
        )
        .await?;
    assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    // The harness passes --data-dir as a flag: it wins over the file's.
    assert!(db.dir.path().join("pieper.sqlite3").exists());
    assert!(!db.dir.path().join("from-file").exists());
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_pieper-server"))
        .args(["--config", "/nonexistent/pieper.env", "admin", "collect"])
        .output()?;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("configuration file"));
    Ok(())
}
