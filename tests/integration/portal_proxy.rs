//! The client through a real proxy: a private tinyproxy (Debian's, installed if missing) with
//! basic authentication. HTTPS is tunnelled with `CONNECT`, HTTP forwarded; a wrong password is
//! refused and never shown; the standard proxy environment variables apply when no proxy is
//! configured (checked in a child process, so this process's environment stays untouched).

use super::portal_support::{
    Portal, Tinyproxy, child, client_config, package_bytes, shared_ca, write,
};
use sccm_connector::portal::{
    Download, PortalClient, PortalConfig, PortalError, ProxyConfig, Secret,
};
use std::io::{BufRead as _, BufReader};
use std::time::Duration;

const USER: &str = "connector";
const PASSWORD: &str = "pr0xy-S3cret-value";

fn through(proxy: &Tinyproxy, mut config: PortalConfig, password: &str) -> PortalConfig {
    config.proxy = Some(ProxyConfig {
        url: proxy.url(),
        username: Some(USER.into()),
        password: Some(Secret::new(password)),
        no_proxy: None,
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_tunnelled_through_an_authenticating_proxy() {
    let mut proxy = Tinyproxy::start(USER, PASSWORD);
    let portal = Portal::start_tls(&shared_ca().server(), None).await;
    portal.add_command(r#"{"id": "x-1", "kind": "push"}"#).await;
    let mut config = through(&proxy, client_config(&portal.url()), PASSWORD);
    config.tls.ca_bundle = Some(write(portal.dir.path(), "ca.pem", &shared_ca().cert_pem));
    assert!(!format!("{config:?}").contains(PASSWORD));

    let client = PortalClient::new(&config).expect("a client");
    let poll = client.poll().await.expect("a poll through the proxy");
    assert_eq!(poll.commands.len(), 1);
    let connect = format!("CONNECT {}", portal.addr());
    assert!(
        proxy.wait_for_log(&connect, Duration::from_secs(10)),
        "tinyproxy carried the tunnel"
    );

    // A package through the tunnel, streamed and verified.
    let bytes = package_bytes(3 * 1024 * 1024, 11);
    let package = portal.add_package(bytes.clone()).await;
    let dest = portal.dir.path().join("through-proxy.zip");
    let job = Download::new(&package.url, &dest, package.size, &package.sha256);
    client.download(&job, |_| {}).await.expect("downloaded");
    assert_eq!(std::fs::read(&dest).expect("the file"), bytes);

    // The wrong password: the proxy refuses the tunnel; the password is never shown.
    let mut wrong = config.clone();
    wrong.proxy = through(&proxy, client_config(&portal.url()), "wrong-password").proxy;
    let error = PortalClient::new(&wrong)
        .expect("a client")
        .poll()
        .await
        .expect_err("refused by the proxy");
    assert!(
        matches!(error, PortalError::Proxy { .. } | PortalError::ProxyAuth),
        "{error:?}"
    );
    let message = format!("{error} {error:?}");
    assert!(!message.contains("wrong-password"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_is_forwarded_and_url_credentials_are_used_not_shown() {
    let mut proxy = Tinyproxy::start(USER, PASSWORD);
    let portal = Portal::start().await;
    portal.add_command(r#"{"id": "y-1", "kind": "push"}"#).await;
    let mut config = client_config(&portal.url());
    config.proxy = Some(ProxyConfig {
        url: format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", proxy.port),
        username: None,
        password: None,
        no_proxy: None,
    });
    let client = PortalClient::new(&config).expect("a client");
    assert!(!format!("{client:?}").contains(PASSWORD));
    let poll = client.poll().await.expect("a poll through the proxy");
    assert_eq!(poll.commands.len(), 1);
    let forwarded = format!("GET {}/api/connector/v1/commands", portal.url());
    assert!(
        proxy.wait_for_log(&forwarded, Duration::from_secs(10)),
        "tinyproxy forwarded the poll"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_environment_variables_apply_without_a_configured_proxy() {
    let mut proxy = Tinyproxy::start(USER, PASSWORD);
    let portal = Portal::start().await;
    portal.add_command(r#"{"id": "z-1", "kind": "push"}"#).await;
    portal.add_command(r#"{"id": "z-2", "kind": "push"}"#).await;
    let proxy_url = format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", proxy.port);
    let mut command = child(
        "poll",
        &[
            ("PORTAL_URL", portal.url()),
            ("HTTP_PROXY", proxy_url.clone()),
            ("HTTPS_PROXY", proxy_url.clone()),
            ("http_proxy", proxy_url.clone()),
            ("https_proxy", proxy_url),
        ],
    );
    command
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy");
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("the child runs");
        let stdout = child.stdout.take().expect("a piped stdout");
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        (child.wait().expect("the child ends"), lines)
    })
    .await
    .expect("the child's reader");
    assert!(output.0.success(), "the child failed: {:?}", output.1);
    assert!(
        output.1.iter().any(|l| l.ends_with("commands 2")),
        "{:?}",
        output.1
    );
    let forwarded = format!("GET {}/api/connector/v1/commands", portal.url());
    assert!(
        proxy.wait_for_log(&forwarded, Duration::from_secs(10)),
        "the poll went through the proxy named by the environment"
    );
}
