//! One `oauth-gateway` process against hostile requests: paths an upstream could read as
//! another API's, connections that send their headers slowly, and its logs at every level.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use oauth_test_server::{Behaviour, TestServer};
use support::{HOUR, Proxy, Upstream, config, scratch, secrets};

/// Contracts for `app-1` on `orders` and `files`, in the redb file a gateway started in `dir`
/// opens.
fn grant(dir: &std::path::Path) {
    let store = oauth_gateway::RedbContracts::open(dir.join("contracts.redb")).unwrap();
    let mut set = oauth_gateway::ContractSet::new();
    set.insert(oauth_gateway::Contract::new("app-1", "orders"));
    set.insert(oauth_gateway::Contract::new("app-1", "files"));
    store.replace_all(&set).unwrap();
}

#[test]
fn paths_an_upstream_could_read_as_another_are_refused() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("paths");
    grant(&dir);
    // `/files` accepts `%25` (its upstream decodes once); `/orders` has the default.
    let text = format!(
        "{}\n[[route]]\nprefix = \"/files\"\napi = \"files\"\nallow_encoded_percent = true\n",
        config(&server, upstream.port, "", "")
    );
    let proxy = Proxy::start(&text, &dir, &secrets(&[]));
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let cases: &[(&str, u16)] = &[
        ("/orders/1", 200),
        // Tomcat, Jetty and Spring drop `;params` per segment: `/admin/x` under `/orders`.
        ("/orders/..;/admin/x", 400),
        ("/orders/..;x=1/admin/x", 400),
        ("/orders/%2e%2e;x/admin/x", 400),
        ("/orders/.;jsessionid=1/x", 400),
        ("/orders/..%3B/admin/x", 400),
        ("/orders/;x/admin", 400),
        // Decoded twice: `..`.
        ("/orders/%252e%252e/admin/x", 400),
        ("/orders/100%25", 400),
        // A route that accepts `%25` still refuses dot segments.
        ("/files/100%25", 200),
        ("/files/..;/admin/x", 400),
        ("/orders/1;v=2", 200),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|&(target, expected)| {
            let status = proxy.raw_get(target, Some(&token));
            (status != expected).then(|| format!("{target}: {status}, expected {expected}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        proxy.log_text()
    );
    // The upstream saw the allowed requests only, as sent.
    assert_eq!(
        upstream.targets(),
        ["/svc/orders/1", "/svc/files/100%25", "/svc/orders/1;v=2"]
    );
}
