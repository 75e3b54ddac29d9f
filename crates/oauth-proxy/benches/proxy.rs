//! Requests per second and added latency through `oauth-gateway` (allowed, cache hit), beside
//! nginx as a plain reverse proxy and direct calls to the same upstream, measured with one load
//! generator on loopback in interleaved rounds: `cargo bench -p oauth-proxy --bench proxy`.
//!
//! The upstream is a minimal hyper server answering 200 with a short body; the gateway is the
//! release binary with the embedded defaults (contracts in redb, the local cache) introspecting
//! at the loopback test authorization server once, run twice: with its access log (to a file)
//! and with `access_log = false`. nginx (Debian's `nginx-light`, installed with apt-get when
//! missing; skipped, with the reason printed, if that fails) runs as an unprivileged process
//! from a generated configuration: `daemon off`, 2 workers, no access log, an upstream
//! keep-alive pool. Both servers are pinned by `taskset` to the same cores when it exists. Each
//! round keeps `CONNECTIONS` keep-alive HTTP/1.1 connections busy for `ROUND`, every request
//! carrying the same 900-character Bearer token, recording every request's latency.
//!
//! Then the JWT mode (RFC 9068, validated locally with the test server's ES256 key from its
//! `/jwks`), on the gateway with its access log: the same 900-character JWT on every request
//! (a cache hit), and a new JWT on every request (a cache miss: its signature checked, the
//! decision made and cached), the tokens signed before the rounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use oauth_test_server::{Behaviour, TestServer};

const CONNECTIONS: usize = 16;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;
/// The JWT access tokens' audience (the `/jwt` route's `[[issuer]]`).
const JWT_AUDIENCE: &str = "https://api.example/orders";
/// The JWTs signed for the cache-miss target: more than its rounds use on this machine (a
/// round that runs out ends early, its rate counted over its own length).
const JWT_MISSES: usize = 200_000;
/// The DPoP proofs signed for each round (more than a round uses on this machine).
const DPOP_PROOFS: usize = 60_000;

/// A JWT access token for `app-1`, padded to 900 characters like the opaque token.
fn jwt(server: &TestServer, n: usize) -> String {
    bound_jwt(server, n, None)
}

/// [`jwt`], bound to the DPoP key `jkt` (`cnf.jkt`) when given.
fn bound_jwt(server: &TestServer, n: usize, jkt: Option<&str>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |pad: usize| {
        serde_json::json!({
            "iss": server.url(""), "aud": JWT_AUDIENCE, "sub": "u1", "client_id": "app-1",
            "scope": "orders:read", "iat": now, "exp": now + 3600, "jti": format!("bench-{n}"),
            "pad": "x".repeat(pad),
            "cnf": jkt.map(|jkt| serde_json::json!({"jkt": jkt})),
        })
    };
    let header = || serde_json::json!({"typ": "at+jwt"});
    let short = server.sign_jwt(header(), claims(0)).len();
    // base64url: 4 characters for every 3 bytes of the claims.
    server.sign_jwt(header(), claims(900usize.saturating_sub(short) * 3 / 4))
}

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            b"{\"ok\":true}",
                        ))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One round: latencies (µs) of every request completed in `ROUND` over `CONNECTIONS`.
/// The tokens a target's requests carry.
#[derive(Clone)]
enum Tokens {
    /// The same on every request.
    Same(Arc<str>),
    /// A new one on every request, taken in turn; a round ends early when they run out.
    Each(Arc<Vec<String>>, Arc<AtomicUsize>),
    /// A DPoP-bound token with a new proof on every request (signed before the round).
    Dpop(Arc<str>, Arc<Vec<String>>, Arc<AtomicUsize>),
}

impl Tokens {
    /// The next request's `Authorization` value and DPoP proof, if there is one left.
    fn next(&self) -> Option<(String, Option<String>)> {
        match self {
            Self::Same(t) => Some((format!("Bearer {t}"), None)),
            Self::Each(all, next) => all
                .get(next.fetch_add(1, Ordering::Relaxed))
                .map(|t| (format!("Bearer {t}"), None)),
            Self::Dpop(token, proofs, next) => proofs
                .get(next.fetch_add(1, Ordering::Relaxed))
                .map(|p| (format!("DPoP {token}"), Some(p.clone()))),
        }
    }
}

/// The origin DPoP proofs name (the `/dpop` route's `public_origin`).
const DPOP_ORIGIN: &str = "https://api.example";

/// `n` DPoP proofs for `GET {DPOP_ORIGIN}/dpop/1` with `token`, signed now on two threads.
fn proofs(key: &jwt_assertion::DpopKey, token: &str, n: usize) -> Vec<String> {
    let htu = format!("{DPOP_ORIGIN}/dpop/1");
    std::thread::scope(|scope| {
        let halves: Vec<_> = (0..2)
            .map(|_| {
                let htu = &htu;
                scope.spawn(move || {
                    (0..n / 2)
                        .map(|_| {
                            key.sign(
                                &oauth_core::ProofContext::new(
                                    "GET",
                                    htu,
                                    std::time::SystemTime::now(),
                                )
                                .access_token(Some(token)),
                            )
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// One round: each request's latency (µs), and the round's length.
async fn round(target: SocketAddr, path: &'static str, tokens: &Tokens) -> (Vec<u32>, Duration) {
    let started = Instant::now();
    let deadline = started + ROUND;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(target).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let Some((authorization, proof)) = tokens.next() else {
                    break;
                };
                let mut request = Request::get(path)
                    .header("host", "127.0.0.1")
                    .header("authorization", authorization);
                if let Some(proof) = proof {
                    request = request.header("dpop", proof);
                }
                let request = request.body(Empty::<Bytes>::new()).unwrap();
                let started = Instant::now();
                send.ready().await.unwrap();
                let response = send.send_request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
                latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, started.elapsed())
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// A free port on loopback (given by the system, then released for a server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(what: &str, addr: SocketAddr, child: &mut Child) {
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what} exited at start"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The CPUs the servers are pinned to (`taskset -c`), if `taskset` is there: the first two, or
/// the list in `PROXY_BENCH_CPUS` (e.g. `0` to see the servers on one core each).
fn server_cpus() -> Option<String> {
    let present = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chosen = std::env::var("PROXY_BENCH_CPUS").ok();
    present.then(|| chosen.unwrap_or_else(|| if cpus >= 2 { "0-1".into() } else { "0".into() }))
}

/// `program` as a command, under `taskset -c cpus` when given.
fn pinned(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// nginx's binary: there already, or Debian's `nginx-light` installed now (with sudo when not
/// root); the reason otherwise.
fn nginx_binary() -> Result<PathBuf, String> {
    let find = || {
        ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    let mut install = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "apt-get"]);
        c
    };
    let out = install
        .args(["install", "-y", "-q", "nginx-light"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("apt-get install nginx-light could not run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "apt-get install nginx-light failed: {}",
            err.lines().last().unwrap_or("").trim()
        ));
    }
    find().ok_or_else(|| "nginx-light installed, but no nginx binary found".into())
}

/// nginx as a plain reverse proxy in front of `upstream`, on `port`: a configuration of its
/// own in `dir`, run in the foreground as an unprivileged user (`nobody` when we are root).
fn start_nginx(
    binary: &Path,
    dir: &Path,
    port: u16,
    upstream: SocketAddr,
    cpus: Option<&str>,
) -> Result<Child, String> {
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("tmp")).map_err(|e| e.to_string())?;
    let config = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n\
           client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n\
           fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n\
           scgi_temp_path {p}/tmp/scgi;\n\
           keepalive_requests 1000000;\n\
           upstream backend {{ server {upstream}; keepalive 64; keepalive_requests 1000000; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n\
             location / {{\n      proxy_pass http://backend;\n\
               proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n",
        p = prefix.display(),
    );
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, config).map_err(|e| e.to_string())?;
    let mut command = if is_root() {
        // Its own files, for the unprivileged user it runs as.
        let chown = Command::new("chown")
            .args(["-R", "nobody"])
            .arg(&prefix)
            .status()
            .map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err("chown nobody failed".into());
        }
        let mut c = pinned(Path::new("runuser"), cpus);
        c.args(["-u", "nobody", "--"]).arg(binary);
        c
    } else {
        pinned(binary, cpus)
    };
    command
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nginx did not start: {e}"))
}

/// The gateway `binary` on `port`, with or without its access log (written to `log`).
#[allow(clippy::too_many_arguments)]
fn start_gateway(
    binary: &Path,
    dir: &Path,
    server: &TestServer,
    upstream: SocketAddr,
    port: u16,
    access_log: bool,
    log: &Path,
    cpus: Option<&str>,
) -> Child {
    let b = Behaviour::default();
    // A contracts file of its own (a redb file is one process's).
    let contracts = dir.join(format!("contracts-{port}.redb"));
    {
        let store = oauth_gateway::RedbContracts::open(&contracts).unwrap();
        let mut set = oauth_gateway::ContractSet::new();
        set.insert(oauth_gateway::Contract::new("app-1", "orders"));
        store.replace_all(&set).unwrap();
    }
    let config = dir.join(format!("gateway-{port}.toml"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nupstream = \"http://{upstream}\"\naccess_log = {access_log}\n\
             [contracts]\nstore = \"redb\"\npath = \"{}\"\n\
             [introspection]\nendpoint = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"S\"\nca_file = \"{}\"\n\
             [[route]]\nprefix = \"/orders\"\napi = \"orders\"\n\
             [[issuer]]\nissuer = \"{}\"\naudience = \"{JWT_AUDIENCE}\"\njwks_uri = \"{}\"\nalgorithms = [\"ES256\"]\nca_file = \"{}\"\n\
             [[route]]\nprefix = \"/jwt\"\napi = \"orders\"\nmode = \"jwt\"\n\
             [[route]]\nprefix = \"/dpop\"\napi = \"orders\"\nmode = \"jwt\"\ndpop = \"required\"\npublic_origin = \"{DPOP_ORIGIN}\"\n",
            contracts.display(),
            server.url("/introspect"),
            b.client_id,
            dir.join("ca.pem").display(),
            server.url(""),
            server.url("/jwks"),
            dir.join("ca.pem").display(),
        ),
    )
    .unwrap();
    pinned(binary, cpus)
        .arg("--config")
        .arg(&config)
        .current_dir(dir)
        .env("S", &b.client_secret)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        // The request log lines are the proxy's normal work: to a file, as to a log collector.
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The servers started, stopped however the bench ends (a panic included).
struct Servers {
    children: Vec<Child>,
    /// nginx's pid file: under `runuser`, killing the child would not stop nginx itself.
    nginx_pid: PathBuf,
}

impl Drop for Servers {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(&self.nginx_pid).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = Command::new("kill")
                .args(["-QUIT", &pid.to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(300));
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Measured {
    name: &'static str,
    addr: SocketAddr,
    path: &'static str,
    tokens: Tokens,
    rates: Vec<f64>,
    latencies: Vec<u32>,
    /// The server's process (with its children: nginx's workers), when it is one of ours.
    pid: Option<u32>,
    /// The CPU time (user and system, µs) the server spent per request, each round.
    cpu: Vec<f64>,
    /// Of which in the kernel (system time).
    system: Vec<f64>,
}

/// The CPU time (user, system; in clock ticks) `pid` and its descendants have used, from
/// `/proc` (Linux; `None` elsewhere or when it cannot be read).
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the whole line, 12 and 13 after the name.
    let (mut user, mut system) = (
        fields.get(11)?.parse::<u64>().ok()?,
        fields.get(12)?.parse::<u64>().ok()?,
    );
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            let (u, s) = cpu_ticks(child).unwrap_or_default();
            user += u;
            system += s;
        }
    }
    Some((user, system))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when it cannot be asked).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The Dataloy page's token length: a 900-character Bearer token on every request.
    let server = TestServer::start(Behaviour {
        token_len: 900,
        ..Behaviour::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("oauth-proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), server.ca_pem()).unwrap();
    let upstream = runtime.block_on(upstream());
    let cpus = server_cpus();
    let mut children = Servers {
        children: Vec::new(),
        nginx_pid: dir.join("nginx/nginx.pid"),
    };
    let mut targets = Vec::new();

    let nginx = nginx_binary().and_then(|binary| {
        let port = free_port();
        let child = start_nginx(&binary, &dir, port, upstream, cpus.as_deref())?;
        Ok((child, port))
    });
    let nginx_skipped = match nginx {
        Ok((child, port)) => {
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let pid = child.id();
            children.children.push(child);
            wait_listening("nginx", addr, children.children.last_mut().unwrap());
            targets.push(("nginx (reverse proxy only)", addr, pid));
            None
        }
        Err(reason) => Some(reason),
    };
    // Another build of the gateway side by side with this one, in the same rounds: what a
    // change gains, measured in one run (`PROXY_BENCH_BASELINE=/path/to/oauth-gateway`).
    let baseline = std::env::var_os("PROXY_BENCH_BASELINE").map(PathBuf::from);
    let this_build = Path::new(env!("CARGO_BIN_EXE_oauth-gateway"));
    let mut gateways = vec![
        ("oauth-gateway, access log on", true, this_build),
        ("oauth-gateway, access_log = false", false, this_build),
    ];
    if let Some(baseline) = &baseline {
        gateways.push(("baseline build, access log on", true, baseline));
        gateways.push(("baseline build, access_log = false", false, baseline));
    }
    for (name, access_log, binary) in gateways {
        let port = free_port();
        let log = dir.join(format!("gateway-{port}.log"));
        let child = start_gateway(
            binary,
            &dir,
            &server,
            upstream,
            port,
            access_log,
            &log,
            cpus.as_deref(),
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let pid = child.id();
        children.children.push(child);
        wait_listening("the gateway", addr, children.children.last_mut().unwrap());
        targets.push((name, addr, pid));
    }
    let token = server.issue_access_token("app-1", "orders:read", Duration::from_secs(3600));
    assert_eq!(token.len(), 900);
    let opaque = Tokens::Same(token.into());
    let mut measured: Vec<Measured> = targets
        .into_iter()
        .map(|(name, addr, pid)| Measured {
            name,
            addr,
            path: "/orders/1",
            tokens: opaque.clone(),
            rates: Vec::new(),
            latencies: Vec::new(),
            pid: Some(pid),
            cpu: Vec::new(),
            system: Vec::new(),
        })
        .collect();
    // The JWT mode, on the gateway with its access log (the first gateway started): the same
    // JWT (a cache hit), and a new one on each request (a miss), signed here on both cores.
    let first_gateway = &measured[usize::from(nginx_skipped.is_none())];
    let (gateway, gateway_pid) = (first_gateway.addr, first_gateway.pid);
    let hit = jwt(&server, 0);
    let misses: Vec<String> = std::thread::scope(|scope| {
        let halves: Vec<_> = (0..2)
            .map(|half| {
                let server = &server;
                scope.spawn(move || {
                    (0..JWT_MISSES / 2)
                        .map(|i| jwt(server, 1 + half * JWT_MISSES + i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let dpop_key = jwt_assertion::DpopKey::generate().unwrap();
    let dpop_token: Arc<str> = bound_jwt(&server, 0, Some(dpop_key.jkt())).into();
    for (name, path, tokens) in [
        (
            "oauth-gateway, JWT mode, cache hit",
            "/jwt/1",
            Tokens::Same(hit.clone().into()),
        ),
        (
            "oauth-gateway, JWT mode, cache miss",
            "/jwt/1",
            Tokens::Each(Arc::new(misses), Arc::new(AtomicUsize::new(0))),
        ),
        (
            "oauth-gateway, JWT mode, DPoP required (a new proof on each request)",
            "/dpop/1",
            Tokens::Dpop(
                Arc::clone(&dpop_token),
                Arc::new(Vec::new()),
                Arc::new(AtomicUsize::new(0)),
            ),
        ),
    ] {
        measured.push(Measured {
            name,
            addr: gateway,
            path,
            tokens,
            rates: Vec::new(),
            latencies: Vec::new(),
            pid: gateway_pid,
            cpu: Vec::new(),
            system: Vec::new(),
        });
    }
    measured.push(Measured {
        name: "upstream, direct",
        addr: upstream,
        path: "/orders/1",
        tokens: opaque,
        rates: Vec::new(),
        latencies: Vec::new(),
        pid: None,
        cpu: Vec::new(),
        system: Vec::new(),
    });
    let jwt_hit = Tokens::Same(hit.into());

    let ticks = ticks_per_second();
    runtime.block_on(async {
        // Warm-up: each gateway's one introspection call and key set, connections, caches
        // (the cache-miss target warms up with the hit's token: its own are each used once).
        for m in &measured {
            let tokens = match &m.tokens {
                Tokens::Each(..) => jwt_hit.clone(),
                Tokens::Same(_) => m.tokens.clone(),
                Tokens::Dpop(token, ..) => {
                    let fresh = proofs(&dpop_key, token, DPOP_PROOFS);
                    Tokens::Dpop(Arc::clone(token), Arc::new(fresh), Arc::default())
                }
            };
            round(m.addr, m.path, &tokens).await;
        }
        for _ in 0..ROUNDS {
            for m in &mut measured {
                // Proofs signed just before their round: a fresh `iat`, each `jti` used once.
                if let Tokens::Dpop(token, ..) = &m.tokens {
                    let fresh = proofs(&dpop_key, token, DPOP_PROOFS);
                    m.tokens = Tokens::Dpop(Arc::clone(token), Arc::new(fresh), Arc::default());
                }
                let before = m.pid.and_then(cpu_ticks);
                let (l, elapsed) = round(m.addr, m.path, &m.tokens).await;
                let after = m.pid.and_then(cpu_ticks);
                if let (Some(before), Some(after)) = (before, after) {
                    let per_request =
                        |ticks_used: u64| ticks_used as f64 / ticks * 1e6 / l.len().max(1) as f64;
                    m.cpu
                        .push(per_request(after.0 + after.1 - before.0 - before.1));
                    m.system.push(per_request(after.1 - before.1));
                }
                m.rates.push(l.len() as f64 / elapsed.as_secs_f64());
                m.latencies.extend(l);
            }
        }
    });
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
    // One introspection per gateway, in its warm-up: every measured request was a cache hit.
    assert_eq!(
        server.counters().introspection_requests,
        if baseline.is_some() { 4 } else { 2 }
    );

    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for m in &mut measured {
        m.latencies.sort_unstable();
    }
    let direct = measured.last().unwrap();
    let (d50, d99) = (
        percentile(&direct.latencies, 0.50),
        percentile(&direct.latencies, 0.99),
    );
    println!(
        "{CONNECTIONS} keep-alive connections, {ROUNDS} interleaved rounds of {} s each per \
         target (in the order of the table); one machine ({} CPUs) runs the load generator, the \
         upstream, nginx and the gateway.\n",
        ROUND.as_secs(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    match &cpus {
        Some(cpus) => println!(
            "Core layout: nginx (2 workers) and each gateway (`workers` = the CPUs it may use: \
             on Linux one single-threaded tokio runtime and `SO_REUSEPORT` listener each) pinned \
             with `taskset -c {cpus}`; the load generator and the upstream (this bench's \
             process) unpinned.\n"
        ),
        None => println!("Core layout: no `taskset`; nothing pinned.\n"),
    }
    if let Some(reason) = &nginx_skipped {
        println!("nginx skipped: {reason}.\n");
    }
    println!(
        "Every request: `GET /orders/1` with the same 900-character Bearer token, the whole \
         answer read. The upstream is a hyper server answering 200 with an 11-byte body. nginx \
         forwards it as is (`proxy_pass` to an upstream block with `keepalive 64`, HTTP/1.1, \
         `access_log off`, `keepalive_requests` raised on both sides so that neither side's \
         connections are recycled every 1,000 requests, as the gateway's are not); the gateway takes the token, finds its decision in its cache \
         (introspected once, in the warm-up), and forwards the request over its own pooled \
         connections; its access log goes to a file. The JWT mode rows: the gateway with its \
         access log, route `/jwt` (`mode = \"jwt\"`, ES256, the key set fetched once), a \
         900-character JWT access token: the same one on every request (cache hit), or one \
         never seen before on every request (cache miss: signature, claims, decision, cached); \
         and route `/dpop` (`dpop = \"required\"`): a DPoP-bound JWT (a cache hit) with a new \
         ES256 proof on every request, signed before its round (the proof's signature, `htm`, \
         `htu`, `iat`, `ath` checked and its `jti` remembered against replay).\n"
    );
    println!(
        "| | requests/s (median round) | p50 | p99 | p50 added | p99 added | server CPU per request (of which kernel) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for m in &measured {
        let (p50, p99) = (
            percentile(&m.latencies, 0.50),
            percentile(&m.latencies, 0.99),
        );
        let added = |p: u32, d: u32| {
            if m.name == direct.name {
                "".to_owned()
            } else {
                format!("+{} µs", p.saturating_sub(d))
            }
        };
        let cpu = if m.cpu.is_empty() {
            String::new()
        } else {
            format!("{:.1} µs ({:.1} µs)", median(&m.cpu), median(&m.system))
        };
        println!(
            "| {} | {:.0} | {p50} µs | {p99} µs | {} | {} | {cpu} |",
            m.name,
            median(&m.rates),
            added(p50, d50),
            added(p99, d99)
        );
    }
    if nginx_skipped.is_none() {
        let nginx = &measured[0];
        let nginx_rate = median(&nginx.rates);
        let nginx_p99 = percentile(&nginx.latencies, 0.99)
            .saturating_sub(d99)
            .max(1);
        println!();
        for m in &measured[1..measured.len() - 1] {
            let p99 = percentile(&m.latencies, 0.99).saturating_sub(d99);
            // Round by round too: nginx's own rate moves with the machine's load.
            let rounds: Vec<String> = m
                .rates
                .iter()
                .zip(&nginx.rates)
                .map(|(g, n)| format!("{:.2}", g / n))
                .collect();
            // CPU time per request: what the server itself costs, whatever else the machine
            // (the load generator, another process) takes from the same cores.
            let cpu = if m.cpu.is_empty() || nginx.cpu.is_empty() {
                String::new()
            } else {
                format!(
                    ", CPU per request {:.2}× nginx's",
                    median(&m.cpu) / median(&nginx.cpu)
                )
            };
            println!(
                "- {} / nginx: throughput {:.2}× (target ≥ 0.8×; by round {}), p99 added {:.2}× (target ≤ 1.5×){cpu}",
                m.name,
                median(&m.rates) / nginx_rate,
                rounds.join(", "),
                f64::from(p99) / f64::from(nginx_p99)
            );
        }
    }
}
