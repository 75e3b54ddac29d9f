//! Operating a real `oauth-gateway` process: `/metrics` (checked against the requests sent),
//! `/healthz` and `/readyz` on `admin_listen` (not ready while draining), request ids,
//! `access_log = false`, and SIGHUP reloads (a changed route table; a broken file refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use oauth_test_server::{Behaviour, TestServer};
use support::{
    HOUR, Proxy, Upstream, agent, config_for, get, get_with, grant_orders_and_files, samples,
    scratch, secrets,
};

#[test]
fn metrics_health_and_request_ids() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("metrics");
    grant_orders_and_files(&dir);
    // Three workers whatever the CPU count: three listeners on the port the first one chose,
    // counted in one `/metrics`, all drained on SIGTERM.
    let top = format!(
        "upstream = \"http://127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:0\"\nprobe_interval_secs = 1\nworkers = 3",
        upstream.port
    );
    let routes = "[[route]]\nprefix = \"/orders\"\napi = \"orders\"\nscopes = [\"orders:read\"]\n";
    let proxy = Proxy::start(
        &config_for(&server, &dir, &top, routes),
        &dir,
        &secrets(&[]),
    );
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let weak = server.issue_access_token("app-1", "files:read", HOUR);
    for _ in 0..3 {
        assert_eq!(get(&proxy.url("/orders/1"), Some(&token)).0, 200);
    }
    assert_eq!(get(&proxy.url("/orders/1"), Some(&weak)).0, 403);
    assert_eq!(get(&proxy.url("/orders/1"), None).0, 401);
    assert_eq!(get(&proxy.url("/nowhere"), None).0, 404);
    // A request id: the caller's, passed upstream and answered, or a new one.
    let (_, seen) = get_with(
        &proxy.url("/orders/2"),
        Some(&token),
        &[("x-request-id", "req-42")],
    );
    assert!(seen.contains(r#""x-request-id":"req-42""#), "{seen}");
    let answer = agent()
        .get(proxy.url("/orders/3"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let generated = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(generated.len() >= 16, "{generated}");
    proxy.wait_for_log(&["request_id=req-42", "status=200"]);
    proxy.wait_for_log(&[&format!("request_id={generated}")]);

    let (status, text) = get(&proxy.admin_url("/metrics"), None);
    assert_eq!(status, 200);
    let m = samples(&text);
    let value = |key: &str| *m.get(key).unwrap_or_else(|| panic!("no {key} in\n{text}"));
    let requests = |status: u16, reason: &str| {
        value(&format!(
            "oauth_gateway_requests_total{{api=\"orders\",reason=\"{reason}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(requests(200, "allowed"), 5.0);
    assert_eq!(requests(403, "insufficient_scope"), 1.0);
    assert_eq!(requests(401, "missing_token"), 1.0);
    assert_eq!(
        value("oauth_gateway_requests_total{api=\"-\",reason=\"no_route\",status=\"404\"}"),
        1.0
    );
    assert_eq!(value("oauth_gateway_request_duration_seconds_count"), 8.0);
    assert_eq!(
        value("oauth_gateway_request_duration_seconds_bucket{le=\"+Inf\"}"),
        8.0
    );
    // Two tokens, each introspected once; the other five decisions came from the cache. The
    // scrape's readiness probe made one more call, counted apart.
    let calls = value("oauth_gateway_introspection_calls_total{api=\"orders\",result=\"ok\"}");
    assert_eq!(calls, 2.0);
    assert_eq!(
        calls + 1.0,
        server.counters().introspection_requests as f64,
        "the gateway's count and its probe are the server's"
    );
    assert_eq!(value("oauth_gateway_validation_up"), 1.0);
    assert_eq!(value("oauth_gateway_cache_entries{api=\"orders\"}"), 2.0);
    // No fleet cache configured: no gauge for it.
    assert!(!text.contains("oauth_gateway_shared_cache_up"), "{text}");
    assert_eq!(
        value("oauth_gateway_cache_lookups_total{api=\"orders\",result=\"miss\"}"),
        2.0
    );
    assert_eq!(
        value("oauth_gateway_cache_lookups_total{api=\"orders\",result=\"hit\"}"),
        4.0
    );
    assert_eq!(
        value("oauth_gateway_introspection_duration_seconds_count{api=\"orders\"}"),
        2.0
    );
    assert_eq!(value("oauth_gateway_ready"), 1.0);
    assert_eq!(value("oauth_gateway_contract_store_up"), 1.0);
    assert_eq!(get(&proxy.admin_url("/healthz"), None), (200, "ok".into()));
    assert_eq!(
        get(&proxy.admin_url("/readyz"), None),
        (200, "ready".into())
    );
    // The introspection endpoint failing: not ready, saying which, once the last probe's
    // answer is older than `probe_interval_secs`; ready again when it answers.
    server.configure(|b| b.introspection_failure = Some(503));
    std::thread::sleep(Duration::from_millis(1100));
    let (status, body) = get(&proxy.admin_url("/readyz"), None);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with(
            "validation unavailable: route /orders: the introspection endpoint https://"
        ),
        "{body}"
    );
    let (_, text) = get(&proxy.admin_url("/metrics"), None);
    assert!(
        text.lines().any(|l| l == "oauth_gateway_validation_up 0"),
        "{text}"
    );
    server.configure(|b| b.introspection_failure = None);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        get(&proxy.admin_url("/readyz"), None),
        (200, "ready".into())
    );

    // Draining: not ready while a request is still in flight.
    let slow = {
        let url = proxy.url("/orders/slow");
        std::thread::spawn(move || get(&url, Some(&token)).0)
    };
    std::thread::sleep(Duration::from_millis(300));
    proxy.signal("TERM");
    proxy.wait_for_log(&["shutting down"]);
    assert_eq!(
        get(&proxy.admin_url("/readyz"), None),
        (503, "draining".into())
    );
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn access_log_off() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("quiet");
    grant_orders_and_files(&dir);
    let top = format!(
        "upstream = \"http://127.0.0.1:{}\"\naccess_log = false",
        upstream.port
    );
    let routes = "[[route]]\nprefix = \"/orders\"\napi = \"orders\"\n";
    let proxy = Proxy::start(
        &config_for(&server, &dir, &top, routes),
        &dir,
        &secrets(&[]),
    );
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    assert_eq!(get(&proxy.url("/orders/1"), Some(&token)).0, 200);
    assert_eq!(get(&proxy.url("/orders/1"), None).0, 401);
    // Longer than a worker holds its access-log lines (100 ms).
    std::thread::sleep(Duration::from_millis(400));
    let log = proxy.log_text();
    assert!(!log.contains("request_id="), "{log}");
    assert!(log.contains("oauth-gateway ready"), "{log}");
}

#[test]
fn sighup_reloads_the_whole_configuration_or_none_of_it() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let (first, second) = (Upstream::start(), Upstream::start());
    let dir = scratch("reload");
    grant_orders_and_files(&dir);
    let top = |port: u16| {
        format!("upstream = \"http://127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"")
    };
    let orders = "[[route]]\nprefix = \"/orders\"\napi = \"orders\"\n";
    let files = "[[route]]\nprefix = \"/files\"\napi = \"files\"\n";
    let proxy = Proxy::start(
        &config_for(&server, &dir, &top(first.port), orders),
        &dir,
        &secrets(&[]),
    );
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    assert_eq!(get(&proxy.url("/orders/1"), Some(&token)).0, 200);
    assert_eq!(get(&proxy.url("/files/1"), Some(&token)).0, 404);
    let write = |text: &str| {
        std::fs::write(&proxy.config, format!("listen = \"127.0.0.1:0\"\n{text}")).unwrap();
    };
    let reloads = |result: &str| {
        let (_, text) = get(&proxy.admin_url("/metrics"), None);
        samples(&text)[&format!("oauth_gateway_config_reloads_total{{result=\"{result}\"}}")]
    };

    // A new route table, on another upstream.
    write(&config_for(
        &server,
        &dir,
        &top(second.port),
        &format!("{orders}\n{files}"),
    ));
    proxy.signal("HUP");
    proxy.wait_for_log(&["configuration reloaded", "routes=2"]);
    assert_eq!(get(&proxy.url("/files/1"), Some(&token)).0, 200);
    assert_eq!(get(&proxy.url("/orders/2"), Some(&token)).0, 200);
    assert_eq!(first.targets(), ["/orders/1"]);
    assert_eq!(second.targets(), ["/files/1", "/orders/2"]);
    assert_eq!(reloads("applied"), 1.0);

    // A broken file: one line, and the last good configuration keeps serving.
    write("[[route]]\nprefix = \"/orders\"\napi = \n");
    proxy.signal("HUP");
    proxy.wait_for_log(&["configuration not reloaded"]);
    let refused = proxy
        .log_text()
        .lines()
        .filter(|l| l.contains("not reloaded"))
        .count();
    assert_eq!(refused, 1, "{}", proxy.log_text());
    assert_eq!(get(&proxy.url("/files/2"), Some(&token)).0, 200);
    // A good file that cannot apply without a restart is refused the same way.
    write(&config_for(
        &server,
        &dir,
        "upstream = \"http://127.0.0.1:9\"\nadmin_listen = \"127.0.0.1:1\"",
        orders,
    ));
    proxy.signal("HUP");
    proxy.wait_for_log(&["not reloaded", "admin_listen cannot change"]);
    assert_eq!(get(&proxy.url("/files/3"), Some(&token)).0, 200);
    assert_eq!(reloads("refused"), 2.0);
    assert_eq!(reloads("applied"), 1.0);
}
