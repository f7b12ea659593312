//! TLS between the client and the simulator with a test CA (rcgen): trusted through the extra
//! CA bundle, refused without it, pinned by SPKI SHA-256 (hex or base64; a mismatch refused),
//! wrong host names refused, and mutual TLS.

use super::portal_support::{Portal, TestCa, client_config, shared_ca, write};
use base64::Engine as _;
use sccm_connector::portal::tls::spki_sha256;
use sccm_connector::portal::{PortalClient, PortalConfig, PortalError};

fn trusting(portal: &Portal) -> PortalConfig {
    let mut config = client_config(&portal.url());
    config.tls.ca_bundle = Some(write(portal.dir.path(), "ca.pem", &shared_ca().cert_pem));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_ca_is_trusted_through_the_bundle_and_only_then() {
    let server = shared_ca().server();
    let portal = Portal::start_tls(&server, None).await;
    assert!(portal.url().starts_with("https://127.0.0.1:"));
    portal.add_command(r#"{"id": "t-1", "kind": "push"}"#).await;

    let client = PortalClient::new(&trusting(&portal)).expect("a client");
    let poll = client.poll().await.expect("a poll over TLS");
    assert_eq!(poll.commands.len(), 1);

    // Without the bundle the private CA is unknown: refused, clearly, for good.
    let plain = PortalClient::new(&client_config(&portal.url())).expect("a client");
    let error = plain.poll().await.expect_err("an unknown issuer");
    assert!(matches!(error, PortalError::Tls { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert!(
        error.to_string().contains("certificate was refused"),
        "{error}"
    );

    // TLS 1.3 only also works; an unknown minimum is a configuration error.
    let mut strict = trusting(&portal);
    strict.tls.min_version = Some("1.3".into());
    PortalClient::new(&strict)
        .expect("a client")
        .poll()
        .await
        .expect("TLS 1.3");
    strict.tls.min_version = Some("1.1".into());
    assert!(PortalClient::new(&strict).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_or_for_another_name_is_refused() {
    let stranger = TestCa::new("not our CA");
    let portal = Portal::start_tls(&stranger.server(), None).await;
    let error = PortalClient::new(&trusting(&portal))
        .expect("a client")
        .poll()
        .await
        .expect_err("untrusted");
    assert!(matches!(error, PortalError::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("unknown issuer"), "{error}");

    // Signed by our CA, but for another name than the one the portal is reached by.
    let portal = Portal::start_tls(&shared_ca().server_for(&["portal.test"]), None).await;
    let error = PortalClient::new(&trusting(&portal))
        .expect("a client")
        .poll()
        .await
        .expect_err("a certificate for another name");
    assert!(matches!(error, PortalError::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("host name"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spki_pins_are_checked_after_validation() {
    let server = shared_ca().server();
    let portal = Portal::start_tls(&server, None).await;
    let pin = spki_sha256(&server.cert_der).expect("the server certificate's SPKI");
    let base64_pin = base64::engine::general_purpose::STANDARD.encode(pin);
    let hex_pin: String = pin.iter().map(|b| format!("{b:02x}")).collect();

    for good in [base64_pin.clone(), hex_pin.to_uppercase()] {
        let mut config = trusting(&portal);
        config.tls.spki_sha256_pins = vec!["A".repeat(43) + "=", good];
        PortalClient::new(&config)
            .expect("a client")
            .poll()
            .await
            .expect("a pinned key matches");
    }

    let mut config = trusting(&portal);
    config.tls.spki_sha256_pins = vec![base64::engine::general_purpose::STANDARD.encode([9u8; 32])];
    let error = PortalClient::new(&config)
        .expect("a client")
        .poll()
        .await
        .expect_err("pin mismatch");
    match &error {
        PortalError::PinMismatch { actual_base64 } => assert_eq!(actual_base64, &base64_pin),
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert!(
        error
            .to_string()
            .contains("does not match the configured pin")
    );

    config.tls.spki_sha256_pins = vec!["not a pin".into()];
    assert!(PortalClient::new(&config).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let ca = shared_ca();
    let portal = Portal::start_tls(&ca.server(), Some(&ca.cert_pem)).await;

    let anonymous = PortalClient::new(&trusting(&portal)).expect("a client");
    let error = anonymous.poll().await.expect_err("no client certificate");
    assert!(
        !matches!(error, PortalError::Unauthorized { .. }),
        "{error:?}"
    );

    let identity = ca.client();
    let mut config = trusting(&portal);
    config.tls.client_cert = Some(write(portal.dir.path(), "client.pem", &identity.cert_pem));
    config.tls.client_key = Some(write(portal.dir.path(), "client.key", &identity.key_pem));
    let poll = PortalClient::new(&config)
        .expect("a client")
        .poll()
        .await
        .expect("a poll with a client certificate");
    assert!(poll.commands.is_empty());

    config.tls.client_key = None;
    assert!(
        PortalClient::new(&config).is_err(),
        "a certificate needs its key"
    );
}
