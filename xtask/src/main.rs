//! Project tasks. `cargo xtask ci` runs exactly what CI runs.
//!
//! ```text
//! cargo xtask ci       fmt, clippy, tests, docs, purity, feature builds, cargo-deny, fuzz smoke
//! cargo xtask purity   fail if oauth-core's normal dependency tree holds an I/O crate
//! cargo xtask deny     cargo-deny against the offline advisory snapshot
//! cargo xtask fuzz --smoke SECS [TARGET...]   every (or the named) fuzz target for SECS each
//! cargo xtask fuzz --long [TARGET...]         the same for 10 minutes each, for depth
//! cargo xtask wasm     oauth-core and jwt-assertion for wasm32; the core's wasm tests under Node
//! cargo xtask interop  both adapters against oidc-provider (npm ci, then the ignored tests)
//! cargo xtask bench    the comparison benchmarks, written to BENCHMARKS.md
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("purity") => purity(),
        Some("deny") => deny(),
        Some("fuzz") => fuzz_command(&args[1..]),
        Some("interop") => interop(),
        Some("bench") => bench(),
        Some("features") => features(),
        Some("msrv") => msrv(),
        Some("wasm") => wasm(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|purity|deny|features|msrv|wasm|interop|bench|fuzz --smoke SECS [TARGET...]|fuzz --long [TARGET...]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // xtask/ is one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(step: &str, cmd: &mut Command) -> Result {
    println!("\n=== {step}");
    let started = std::time::Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start: {e}"))?;
    // Each step's time, so that what CI spends its minutes on is in its log.
    println!("=== {step}: {} s", started.elapsed().as_secs());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn ci() -> Result {
    run("fmt", cargo().args(["fmt", "--all", "--check"]))?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "oauth-core without default features",
        cargo().args([
            "clippy",
            "-p",
            "oauth-core",
            "--no-default-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "tests",
        cargo().args(["test", "--workspace", "--all-features", "--locked"]),
    )?;
    run(
        "docs",
        cargo()
            .args([
                "doc",
                "--workspace",
                "--no-deps",
                "--all-features",
                "--locked",
            ])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    run(
        "docs as docs.rs builds them (nightly, --cfg docsrs)",
        nightly_cargo()
            .args([
                "doc",
                "--no-deps",
                "--all-features",
                "--locked",
                "--target-dir",
                "target/docsrs",
                "-p",
                "oauth-core",
                "-p",
                "oauth-runtime",
                "-p",
                "oauth-reqwest",
                "-p",
                "oauth-ureq",
                "-p",
                "jwt-assertion",
                "-p",
                "oauth-gateway",
                "-p",
                "oauth-redis",
                "-p",
                "oauth-postgres",
            ])
            .env("RUSTDOCFLAGS", "--cfg docsrs -D warnings"),
    )?;
    purity()?;
    deny()?;
    features()?;
    msrv()?;
    wasm()?;

    run(
        "fuzz targets' build check (stable)",
        cargo().args([
            "check",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
            "--locked",
        ]),
    )?;
    // A smoke run: every target starts from its seeds and runs briefly, enough to catch a
    // parser that panics on something near them. Depth is `cargo xtask fuzz --long`.
    let secs = env::var("XTASK_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    interop()?;
    fuzz(secs, &[])?;
    // Last: it forces our crates to be compiled again (see `clear_package_overlays`).
    clear_package_overlays();
    run(
        "package and verify every published crate (cargo publish --dry-run, no upload)",
        cargo().args(["publish", "--workspace", "--dry-run", "--locked"]),
    )?;
    println!("\nxtask ci: all steps passed");
    Ok(())
}

/// The crates published to crates.io (every other member has `publish = false`).
const PUBLISHED: &[&str] = &[
    "oauth-core",
    "jwt-assertion",
    "oauth-runtime",
    "oauth-reqwest",
    "oauth-ureq",
    "oauth-gateway",
    "oauth-redis",
    "oauth-postgres",
    "oauth-proxy",
    "oauth-cli",
];

/// The features a crate declares (its `[features]` table, `default` excluded).
fn crate_features(name: &str) -> Result<Vec<String>> {
    let manifest = fs::read_to_string(root().join("crates").join(name).join("Cargo.toml"))
        .map_err(|e| format!("crates/{name}/Cargo.toml: {e}"))?;
    let mut features = Vec::new();
    let mut in_features = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
        } else if let (true, Some((feature, _))) = (in_features, line.split_once('=')) {
            let feature = feature.trim();
            if feature != "default" && !feature.starts_with('#') {
                features.push(feature.to_owned());
            }
        }
    }
    Ok(features)
}

/// What `cargo hack check --each-feature` does, without installing it: every published crate
/// with no default features, then with each feature alone (plus the defaults and all features,
/// which clippy and the tests cover).
fn features() -> Result {
    for name in PUBLISHED {
        let mut sets = vec![String::new()];
        sets.extend(crate_features(name)?);
        for set in sets {
            let step = if set.is_empty() {
                format!("features: {name} --no-default-features")
            } else {
                format!("features: {name} --no-default-features --features {set}")
            };
            let mut cmd = cargo();
            cmd.args(["check", "-p", name, "--no-default-features", "--locked"]);
            if !set.is_empty() {
                cmd.args(["--features", &set]);
            }
            // Warnings are errors here too: a feature combination must not leave dead code.
            cmd.env("RUSTFLAGS", "-D warnings");
            cmd.args(["--target-dir", "target/features"]);
            run(&step, &mut cmd)?;
        }
    }
    Ok(())
}

/// `cargo publish --workspace` verifies each crate against the others through a local overlay
/// registry, whose sources cargo unpacks under `$CARGO_HOME/registry/src/-<hash>/` and, like
/// any registry's, never unpacks or rebuilds again for the same name and version: a second run
/// on the same machine would verify against the first run's code. So the overlay directories
/// (the ones whose name starts with `-`; crates.io's do not) and the build fingerprints of our
/// published crates are removed first.
fn clear_package_overlays() {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let src = home.map(|h| h.join("registry").join("src"));
    for entry in src
        .and_then(|s| fs::read_dir(s).ok())
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with('-') {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let fingerprints = root().join("target").join("debug").join(".fingerprint");
    let Ok(entries) = fs::read_dir(&fingerprints) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name
            .rsplit_once('-')
            .is_some_and(|(package, _)| PUBLISHED.contains(&package));
        if ours {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The workspace's `rust-version`, read from Cargo.toml.
fn workspace_msrv() -> Result<String> {
    let manifest =
        fs::read_to_string(root().join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .ok_or_else(|| "Cargo.toml: no rust-version".to_owned())
}

/// Checks every published crate (all features) with the toolchain of the declared MSRV,
/// installed with rustup when missing.
fn msrv() -> Result {
    let version = workspace_msrv()?;
    let installed = Command::new("rustup")
        .args(["run", &version, "cargo", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        run(
            &format!("msrv: rustup toolchain install {version}"),
            Command::new("rustup").args(["toolchain", "install", &version, "--profile", "minimal"]),
        )?;
    }
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        &version,
        "cargo",
        "check",
        "--all-features",
        "--locked",
    ]);
    for name in PUBLISHED {
        cmd.args(["-p", name]);
    }
    cmd.args(["--target-dir", "target/msrv"])
        .current_dir(root());
    // rustup's proxies pick the toolchain from this variable first.
    cmd.env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC");
    run(
        &format!("msrv: the published crates with Rust {version}"),
        &mut cmd,
    )
}

/// Runs the benchmarks that compare against other crates and against the floors, in one go,
/// and writes their Markdown with the command, toolchain and machine to BENCHMARKS.md.
fn bench() -> Result {
    let capture = |step: &str, cmd: &mut Command| -> Result<String> {
        println!("\n=== {step}");
        let out = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("{step}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{step} failed ({})", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{text}");
        Ok(text)
    };
    let comparison = capture(
        "benchmarks (oauth2, jsonwebtoken, ring, herd, loopback)",
        cargo().args(["run", "--release", "--locked", "-p", "benchmarks"]),
    )?;
    let bench = |step: &str, package: &str, name: &str| {
        capture(
            step,
            cargo().args(["bench", "--locked", "-p", package, "--bench", name]),
        )
    };
    let cached = bench(
        "cached token() against arc-swap",
        "conformance",
        "cached_token",
    )?;
    let gateway = bench("gateway decisions", "oauth-gateway", "decisions")?;
    let fleet = bench(
        "a refresh through the shared store (Redis)",
        "oauth-redis",
        "fleet",
    )?;
    let memory = bench("memory per cached decision", "oauth-gateway", "memory")?;
    let proxy = bench(
        "requests through the oauth-gateway proxy",
        "oauth-proxy",
        "proxy",
    )?;
    let tiers = bench(
        "an SLA tier on the decision path",
        "oauth-gateway",
        "limits",
    )?;
    let tiers_redis = bench("counting a request in Redis", "oauth-redis", "limit")?;
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let doc = format!(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` (which runs `cargo run --release -p benchmarks`, \
         `cargo bench -p conformance --bench cached_token` and \
         `cargo bench -p oauth-gateway --bench decisions`, `cargo bench -p oauth-redis --bench fleet`, \
         `cargo bench -p oauth-gateway --bench memory`, `cargo bench -p oauth-proxy --bench proxy`, \
         `cargo bench -p oauth-gateway --bench limits`, `cargo bench -p oauth-redis --bench limit`). Every comparison runs its contenders \
         in the same process with interleaved rounds and reports medians, so that the ratios \
         hold on a shared, noisy machine; absolute times do not travel.\n\n\
         - toolchain: {rustc}\n- machine: {cpu}, {cores} cores\n\n\
         {comparison}\n## 3. Cached token() (conformance/benches/cached_token.rs)\n\n```text\n{cached}```\n\n\
         ## 6. Gateway decisions (oauth-gateway/benches/decisions.rs)\n\n{gateway}\n\
         ## 7. One token for a fleet (oauth-redis/benches/fleet.rs)\n\n{fleet}\n\
         ## 8. Memory per cached decision (oauth-gateway/benches/memory.rs)\n\n{memory}\n\
         ## 9. Through the deployable gateway (oauth-proxy/benches/proxy.rs)\n\n{proxy}\n\
         ## 10. SLA tiers (oauth-gateway/benches/limits.rs, oauth-redis/benches/limit.rs)\n\n\
         {tiers}\n{tiers_redis}\n"
    );
    fs::write(root().join("BENCHMARKS.md"), doc).map_err(|e| format!("BENCHMARKS.md: {e}"))?;
    println!("\nwrote BENCHMARKS.md");
    Ok(())
}

/// Installs oidc-provider from interop/oidc-provider/package-lock.json and runs the interop
/// suite (the `#[ignore]`d tests of crates/conformance/tests/oidc_provider.rs) against it.
fn interop() -> Result {
    let dir = root().join("interop").join("oidc-provider");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("interop needs Node 20 or later (node: {e})"))?;
    let version = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!("interop needs Node 20 or later, found {version:?}"));
    }
    run(
        "interop: npm ci (oidc-provider)",
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    )?;
    run(
        "interop: both adapters against oidc-provider",
        cargo().args([
            "test",
            "-p",
            "conformance",
            "--test",
            "oidc_provider",
            "--locked",
            "--",
            "--ignored",
        ]),
    )?;
    run(
        "interop: the oauth CLI against oidc-provider",
        cargo().args([
            "test",
            "-p",
            "oauth-cli",
            "--test",
            "interop",
            "--locked",
            "--",
            "--ignored",
        ]),
    )?;
    run(
        "interop: the gateway binary's validation modes against oidc-provider",
        cargo().args([
            "test",
            "-p",
            "oauth-proxy",
            "--test",
            "interop",
            "--locked",
            "--",
            "--ignored",
        ]),
    )
}

fn fuzz_command(args: &[String]) -> Result {
    match args {
        [flag, secs, targets @ ..] if flag == "--smoke" => {
            let secs = secs
                .parse()
                .map_err(|_| format!("--smoke takes a number of seconds, not {secs:?}"))?;
            fuzz(secs, targets)
        }
        [flag, targets @ ..] if flag == "--long" => fuzz(LONG_FUZZ_SECS, targets),
        _ => Err("usage: cargo xtask fuzz --smoke SECS [TARGET...] | --long [TARGET...]".into()),
    }
}

/// How long `cargo xtask fuzz --long` runs each target.
const LONG_FUZZ_SECS: u64 = 600;

/// The wasm32 checks: oauth-core and jwt-assertion (feature `wasm32-js`; ring's C needs clang)
/// build for `wasm32-unknown-unknown`, and `wasm/` (oauth-core alone in a wasm-bindgen library)
/// runs its tests under Node with wasm-bindgen-test-runner. The target is added with rustup and
/// wasm-bindgen-cli installed at the version `wasm/Cargo.lock` holds, when missing.
fn wasm() -> Result {
    const TARGET: &str = "wasm32-unknown-unknown";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false);
    if !installed {
        run(
            "wasm: rustup target add wasm32-unknown-unknown",
            Command::new("rustup").args(["target", "add", TARGET]),
        )?;
    }
    run(
        "wasm: oauth-core for wasm32-unknown-unknown",
        cargo().args([
            "build",
            "-p",
            "oauth-core",
            "--target",
            TARGET,
            "--locked",
            "--target-dir",
            "target/wasm",
        ]),
    )?;
    run(
        "wasm: jwt-assertion (feature wasm32-js) for wasm32-unknown-unknown",
        cargo().args([
            "build",
            "-p",
            "jwt-assertion",
            "--features",
            "wasm32-js",
            "--target",
            TARGET,
            "--locked",
            "--target-dir",
            "target/wasm",
        ]),
    )?;
    let lock = fs::read_to_string(root().join("wasm").join("Cargo.lock"))
        .map_err(|e| format!("wasm/Cargo.lock: {e}"))?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"wasm-bindgen\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_owned())
        .ok_or("wasm/Cargo.lock holds no wasm-bindgen")?;
    let present = Command::new("wasm-bindgen-test-runner")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&version));
    if !present {
        run(
            &format!("wasm: cargo install wasm-bindgen-cli {version}"),
            cargo().args(["install", "wasm-bindgen-cli", "--version", &version]),
        )?;
    }
    run(
        "wasm: the core's wasm tests under Node (wasm-bindgen-test)",
        cargo()
            .args([
                "test",
                "--manifest-path",
                "wasm/Cargo.toml",
                "--target",
                TARGET,
                "--locked",
            ])
            .env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                "wasm-bindgen-test-runner",
            ),
    )
}

/// The fuzz targets, from fuzz/Cargo.toml's `[[bin]]` names.
fn fuzz_targets() -> Result<Vec<String>> {
    let manifest = fs::read_to_string(root().join("fuzz").join("Cargo.toml"))
        .map_err(|e| format!("fuzz/Cargo.toml: {e}"))?;
    let mut targets = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if let (true, Some(value)) = (in_bin, line.strip_prefix("name = ")) {
            targets.push(value.trim_matches('"').to_owned());
        }
    }
    Ok(targets)
}

/// Runs each fuzz target for `secs` seconds with cargo-fuzz on the nightly toolchain, from the
/// seed corpus in `fuzz/corpus/<target>` (new inputs go to `target/fuzz-corpus/<target>`, so the
/// repository keeps only the seeds). A crash fails the step and leaves the input in
/// `fuzz/artifacts/<target>`.
fn fuzz(secs: u64, only: &[String]) -> Result {
    ensure_cargo_fuzz()?;
    let all = fuzz_targets()?;
    let targets: Vec<String> = if only.is_empty() {
        all
    } else {
        for t in only {
            if !all.contains(t) {
                return Err(format!(
                    "no fuzz target {t:?}; there are: {}",
                    all.join(", ")
                ));
            }
        }
        only.to_vec()
    };
    run(
        "fuzz build (nightly, sanitizer)",
        nightly_cargo().args(["fuzz", "build"]),
    )?;
    for target in &targets {
        let scratch = root().join("target").join("fuzz-corpus").join(target);
        fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let seeds = root().join("fuzz").join("corpus").join(target);
        run(
            &format!("fuzz {target} for {secs} s"),
            nightly_cargo()
                .args(["fuzz", "run", target])
                .arg(&scratch)
                .arg(&seeds)
                .args([
                    "--",
                    &format!("-max_total_time={secs}"),
                    "-print_final_stats=1",
                    "-timeout=10",
                    "-rss_limit_mb=2048",
                ]),
        )?;
    }
    Ok(())
}

/// cargo on the nightly toolchain (`$CARGO` is the stable binary itself, which does not
/// understand `+nightly`).
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"]).current_dir(root());
    cmd
}

fn ensure_cargo_fuzz() -> Result {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        run(
            "install the nightly toolchain",
            Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]),
        )?;
    }
    let installed = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    run(
        "install cargo-fuzz",
        cargo().args(["install", "--locked", "cargo-fuzz@^0.13"]),
    )
}

/// Crates that do I/O, read the clock or the OS random source, or bring a runtime. None may
/// appear in oauth-core's normal dependency tree.
const IO_CRATES: &[&str] = &[
    "tokio",
    "reqwest",
    "ureq",
    "hyper",
    "hyper-util",
    "h2",
    "mio",
    "socket2",
    "async-std",
    "smol",
    "async-io",
    "getrandom",
    "rand",
    "rustls",
    "native-tls",
    "openssl",
    "ring",
    "tracing",
    "log",
];

fn purity() -> Result {
    println!("\n=== purity: oauth-core's dependency tree");
    let output = cargo()
        .args([
            "tree",
            "-p",
            "oauth-core",
            "-e",
            "normal",
            "--all-features",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--locked",
        ])
        .output()
        .map_err(|e| format!("cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let offenders = io_crates_in(&tree);
    if offenders.is_empty() {
        println!("oauth-core depends on no I/O crate");
        Ok(())
    } else {
        Err(format!(
            "oauth-core must stay sans-IO, but its dependency tree contains: {}",
            offenders.join(", ")
        ))
    }
}

/// The I/O crates named in `cargo tree --prefix none --format {p}` output.
fn io_crates_in(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| IO_CRATES.contains(name))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

fn deny() -> Result {
    ensure_cargo_deny()?;
    let Some(db) = advisory_db() else {
        println!(
            "\nwarning: no offline advisory database found (set OAUTH_ADVISORY_DB or provide \
             ../shared/advisory-db); checking bans, licences and sources only"
        );
        return run(
            "cargo deny (bans, licenses, sources)",
            cargo().args(["deny", "check", "bans", "licenses", "sources"]),
        );
    };
    // cargo-deny, with fetching disabled, opens the database of each configured URL at
    // `<db-path>/<last path segment>-<xxhash64 of the URL>` and reads its HEAD commit date for
    // the staleness check. Build exactly that: a git repository holding the snapshot, committed
    // with the snapshot's own date.
    let db_path = root().join("target").join("xtask").join("advisory-dbs");
    let repo = db_path.join(db_dir_name(RUSTSEC_URL));
    let _ = fs::remove_dir_all(&db_path);
    fs::create_dir_all(&db_path).map_err(|e| format!("create {}: {e}", db_path.display()))?;
    let copy = Command::new("cp")
        .arg("-R")
        .arg(&db)
        .arg(&repo)
        .status()
        .map_err(|e| format!("cp: {e}"))?;
    if !copy.success() {
        return Err(format!("copying {} failed", db.display()));
    }
    let date = snapshot_date(&db).unwrap_or_else(|| "2000-01-01T00:00:00Z".into());
    let git = |args: &[&str]| -> Result {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("GIT_AUTHOR_NAME", "xtask")
            .env("GIT_AUTHOR_EMAIL", "xtask@localhost")
            .env("GIT_COMMITTER_NAME", "xtask")
            .env("GIT_COMMITTER_EMAIL", "xtask@localhost")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .map_err(|e| format!("git: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "-A", "."])?;
    git(&[
        "commit",
        "-q",
        "--no-gpg-sign",
        "-m",
        "advisory-db snapshot",
    ])?;
    println!(
        "\n=== advisory database: {} (snapshot dated {date})",
        db.display()
    );
    // `--offline` also keeps `cargo metadata` offline, and that needs every platform's crates
    // (windows-sys, wasm-bindgen, ...) in the local registry: fetch them first.
    run(
        "cargo fetch (every target's crates, for cargo deny's metadata)",
        cargo().args(["fetch", "--locked"]),
    )?;
    run(
        "cargo deny (advisories, bans, licenses, sources)",
        cargo()
            .args(["deny", "--offline", "check"])
            .env("OAUTH_ADVISORY_DB_ROOT", &db_path),
    )
}

/// The advisory database deny.toml names.
const RUSTSEC_URL: &str = "https://github.com/rustsec/advisory-db";

/// The directory cargo-deny 0.20 uses for a database URL (`url_to_db_path` in its source).
fn db_dir_name(url: &str) -> String {
    let url = url.to_lowercase();
    let name = url.rsplit('/').next().unwrap_or("empty_");
    let hash = twox_hash::XxHash64::oneshot(0xca80_de71, url.as_bytes());
    format!("{name}-{hash:016x}")
}

fn ensure_cargo_deny() -> Result {
    let installed = cargo()
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    run(
        "install cargo-deny",
        cargo().args(["install", "--locked", "cargo-deny@^0.20"]),
    )
}

fn advisory_db() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = env::var_os("OAUTH_ADVISORY_DB") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(root().join("..").join("shared").join("advisory-db"));
    candidates.push(PathBuf::from("/work/shared/advisory-db"));
    candidates
        .into_iter()
        .find(|p| p.join("crates").is_dir())
        .and_then(|p| p.canonicalize().ok())
}

/// The snapshot's date from its SNAPSHOT.txt ("... dated 2026-08-21."), as an RFC 3339 time.
fn snapshot_date(db: &Path) -> Option<String> {
    let text = fs::read_to_string(db.join("SNAPSHOT.txt")).ok()?;
    let after = text.split("dated ").nth(1)?;
    let date: String = after
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    (date.len() == 10).then(|| format!("{date}T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purity_check_flags_io_crates() {
        let clean = "oauth-core v0.1.0 (/x)\nhttp v1.5.0\nbytes v1.10.0\nserde_json v1.0.0\n";
        assert!(io_crates_in(clean).is_empty());
        let dirty = "oauth-core v0.1.0 (/x)\ntokio v1.0.0\nmio v1.0.0\ntokio v1.0.0 (*)\n";
        assert_eq!(io_crates_in(dirty), vec!["mio", "tokio"]);
    }
}
