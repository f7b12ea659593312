//! The portal client against the simulator over loopback: polls return exact bytes (invalid
//! commands and duplicate deliveries included), acks, progress, results deduplicated by
//! idempotency key, the remote ID refused with a clear error, retries of transient errors only.

use super::portal_support::{Portal, REMOTE_ID, client_config};
use sccm_connector::portal::outbox::idempotency_key;
use sccm_connector::portal::{PortalClient, PortalError};
use serde_json::json;
use std::time::Duration;

fn client(portal: &Portal) -> PortalClient {
    PortalClient::new(&client_config(&portal.url())).expect("a client")
}

fn count(requests: &[serde_json::Value], method: &str, path: &str) -> usize {
    requests
        .iter()
        .filter(|r| r["method"] == method && r["path"] == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_returns_every_command_as_its_exact_bytes_in_order() {
    let portal = Portal::start().await;
    let fixture = std::fs::read_to_string(super::support::fixture("commands/push-filezilla.json"))
        .expect("the fixture");
    let posted = [
        fixture.trim().to_owned(),
        r#"{"id":"bad-1","kind":"nope","odd":  [1,  2.50, "\u00e9"]}"#.to_owned(),
        r#"{"kind":"push","note":"no id at all"}"#.to_owned(),
    ];
    let mut ids = Vec::new();
    for command in &posted {
        ids.push(portal.add_command(command).await);
    }
    let client = client(&portal);
    let poll = client.poll().await.expect("a poll");
    let got: Vec<&str> = poll.commands.iter().map(|c| c.get()).collect();
    assert_eq!(got, posted.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(poll.poll_after, Some(Duration::from_secs(10)));

    client.ack(&ids[0]).await.expect("an ack");
    let poll = client.poll().await.expect("a poll");
    assert_eq!(
        poll.commands.len(),
        2,
        "an acked command is not delivered again"
    );
    let first = portal.command(&ids[0]).await;
    assert_eq!(first["acked"], true);
    assert_eq!(first["delivered"], 1);
    assert_eq!(portal.command(&ids[1]).await["delivered"], 2);

    // Every request carried the remote ID and our user agent (the simulator refuses without).
    let delay = client.next_poll_delay(&Ok(poll));
    assert!(
        delay >= Duration::from_secs(10) && delay <= Duration::from_secs(11),
        "{delay:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_returns_identical_bytes_twice() {
    let portal = Portal::start().await;
    let id = portal
        .add_command(r#"{"id": "dup-1", "kind": "import", "applications": ["A", "B"]}"#)
        .await;
    portal
        .add_command(r#"{"id": "other", "kind": "import"}"#)
        .await;
    portal
        .set_faults(json!({"faults": [{"kind": "duplicate_delivery", "command_id": id, "path": "/api/connector/v1/commands", "method": "GET"}]}))
        .await;
    let poll = client(&portal).poll().await.expect("a poll");
    let dups: Vec<&[u8]> = poll
        .commands
        .iter()
        .map(|c| c.get().as_bytes())
        .filter(|b| std::str::from_utf8(b).is_ok_and(|s| s.contains("dup-1")))
        .collect();
    assert_eq!(dups.len(), 2, "delivered twice in one poll");
    assert_eq!(
        dups[0], dups[1],
        "byte for byte the same: journaled once by its id"
    );
    assert_eq!(poll.commands.len(), 3);
    assert_eq!(portal.command(&id).await["delivered"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_remote_id_is_refused_clearly_and_polled_slowly() {
    let dir = super::support::temp_dir();
    let mut config = sccm_connector::sim::portal::SimConfig::new(
        "127.0.0.1:0".parse().expect("an address"),
        dir.path().join("portal"),
    );
    config.remote_ids = vec![REMOTE_ID.to_owned()];
    let portal = Portal::start_with(config, dir).await;

    let mut stranger = client_config(&portal.url());
    stranger.remote_id = "deadbeef-0000-4000-8000-00000000abcd".into();
    let stranger = PortalClient::new(&stranger).expect("a client");
    let error = stranger.poll().await.expect_err("refused");
    assert!(
        matches!(error, PortalError::Unauthorized { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(message.contains("remote ID not accepted"), "{message}");
    assert!(message.contains("deadbeef…"), "{message}");
    assert!(
        !message.contains("00000000abcd"),
        "never the full remote ID: {message}"
    );
    assert!(stranger.next_poll_delay(&Err(error)) >= Duration::from_secs(300));

    client(&portal)
        .poll()
        .await
        .expect("the known remote ID polls");
    // A 401 from the fault plan reads the same.
    portal
        .set_faults(json!({"faults": [{"kind": "status", "status": 401}]}))
        .await;
    let error = client(&portal).poll().await.expect_err("refused");
    assert!(
        matches!(error, PortalError::Unauthorized { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_permanent_ones_are_not() {
    let portal = Portal::start().await;
    let id = portal.add_command(r#"{"id": "c-1", "kind": "push"}"#).await;
    let client = client(&portal);
    let ack_path = format!("/api/connector/v1/commands/{id}/ack");

    // A burst of two 503s: the third attempt succeeds.
    portal
        .set_faults(
            json!({"faults": [{"kind": "status", "status": 503, "times": 2, "path": ack_path}]}),
        )
        .await;
    client.ack(&id).await.expect("acked after the burst");
    assert_eq!(count(&portal.requests().await, "POST", &ack_path), 3);

    // A longer burst than the client's bounded schedule: a retryable error, after 4 attempts.
    portal
        .set_faults(
            json!({"faults": [{"kind": "status", "status": 500, "times": 10, "path": ack_path}]}),
        )
        .await;
    let error = client.ack(&id).await.expect_err("gave up");
    assert!(
        matches!(error, PortalError::Server { status: 500, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(count(&portal.requests().await, "POST", &ack_path), 3 + 4);

    // 429 asking for longer than the client's cap: returned at once with its Retry-After.
    portal
        .set_faults(json!({"faults": [{"kind": "status", "status": 429, "retry_after": 7, "path": ack_path}]}))
        .await;
    let error = client.ack(&id).await.expect_err("rate limited");
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(client.next_poll_delay(&Err(error)) >= Duration::from_secs(10));
    assert_eq!(
        count(&portal.requests().await, "POST", &ack_path),
        3 + 4 + 1
    );
    portal.set_faults(json!({"faults": []})).await;

    // A 404 is permanent: one attempt.
    let error = client.ack("no-such-command").await.expect_err("unknown");
    assert!(
        matches!(error, PortalError::Rejected { status: 404, .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        count(
            &portal.requests().await,
            "POST",
            "/api/connector/v1/commands/no-such-command/ack"
        ),
        1
    );

    // Nothing listening: a connect error, retryable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let nobody = PortalClient::new(&client_config(&format!("http://{closed}"))).expect("a client");
    let error = nobody.poll().await.expect_err("nothing listens");
    assert!(matches!(error, PortalError::Connect { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_answer_is_lost_is_resent_and_counted_once() {
    let portal = Portal::start().await;
    let id = portal.add_command(r#"{"id": "r-1", "kind": "push"}"#).await;
    let client = client(&portal);
    let key = idempotency_key(&id);
    let body = r#"{"command_id":"r-1","status":"ok","error":null}"#;
    assert_eq!(key, "result-r-1");

    // The portal stores the result but the connection drops before its answer.
    portal
        .set_faults(json!({"faults": [{"kind": "drop_response", "path": format!("/api/connector/v1/commands/{id}/result")}]}))
        .await;
    client
        .send_result(&id, &key, body)
        .await
        .expect("the client's own retry is acknowledged");
    // And once more, as after a restart before `ReportAcknowledged` was journaled.
    client
        .send_result(&id, &key, body)
        .await
        .expect("acknowledged");

    let seen = portal.command(&id).await;
    let results = seen["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "exactly one effective result: {seen}");
    assert_eq!(results[0]["idempotency_key"], "result-r-1");
    assert_eq!(results[0]["deliveries"], 3);
    assert_eq!(seen["result_posts"], 3);
    assert_eq!(seen["effective_result"]["status"], "ok");

    // Another body under the same key is a permanent conflict.
    match client
        .send_result(&id, &key, r#"{"command_id":"r-1","status":"failed"}"#)
        .await
    {
        Err(PortalError::Conflict { .. }) => {}
        other => panic!("expected a 409 refusal, got {other:?}"),
    }
    assert_eq!(
        portal.command(&id).await["effective_result"]["status"],
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_posted_and_package_urls_stay_on_the_portal() {
    let portal = Portal::start().await;
    let id = portal.add_command(r#"{"id": "p-1", "kind": "push"}"#).await;
    let client = client(&portal);
    let progress = sccm_connector::portal::wire::ProgressDto {
        step: "download".into(),
        state: "running".into(),
        bytes_done: 5,
        bytes_total: 10,
    };
    client.progress(&id, &progress).await.expect("progress");
    let seen = portal.command(&id).await;
    assert_eq!(seen["progress"][0]["bytes_done"], 5);

    let relative = client
        .resolve("/api/connector/v1/packages/pkg-1")
        .expect("a relative URL");
    assert_eq!(
        relative.as_str(),
        format!("{}/api/connector/v1/packages/pkg-1", portal.url())
    );
    let error = client
        .resolve("https://elsewhere.example/api/connector/v1/packages/pkg-1")
        .expect_err("another origin");
    assert!(matches!(error, PortalError::Protocol(_)), "{error:?}");
}
