//! Real PostgreSQL and Redis servers for the fleet tests: the distribution's binaries
//! (`apt-get install postgresql redis-server`; `.ci/run` installs them), each started on
//! 127.0.0.1 with a data directory of its own, stopped (and the directory removed) on drop.
//!
//! Either can serve TLS only ([`Redis::start_tls`], [`Postgres::start_tls`]) with a certificate
//! for `127.0.0.1` and `localhost` from [`LoopbackCertificates`](crate::LoopbackCertificates).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether the Redis server on `port` is process `pid` (`INFO server` names its process).
fn redis_is(port: u16, pid: u32) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let wanted = format!("process_id:{pid}\r\n");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while answer.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if answer.windows(wanted.len()).any(|w| w == wanted.as_bytes()) {
            return true;
        }
    }
    false
}

/// Runs `start` on a port the system gave and released; should another process take it
/// first (the start fails), tries again on another, up to three times.
fn on_a_free_port<T>(start: impl Fn(u16) -> io::Result<T>) -> io::Result<T> {
    let mut last = io::Error::other("not started");
    for _ in 0..3 {
        match start(free_port()?) {
            Ok(started) => return Ok(started),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn scratch(name: &str, port: u16) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("oauth-{name}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!("{what} did not start")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A PostgreSQL server (Debian's `/usr/lib/postgresql/<version>/bin`), trust authentication on
/// 127.0.0.1 only, a database `gateway`.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    running: bool,
    /// Whether it was started with `ssl=on` (its certificate and key are in `dir`).
    ssl: bool,
}

impl Postgres {
    /// Creates a cluster in a scratch directory and starts it (on a free port: see
    /// `on_a_free_port`).
    pub fn start() -> io::Result<Self> {
        on_a_free_port(|port| Self::start_on(port, None))
    }

    /// The same with `ssl=on`: TLS with `certs`' server certificate (plain connections are
    /// still accepted, as PostgreSQL does; the client decides).
    pub fn start_tls(certs: &crate::LoopbackCertificates) -> io::Result<Self> {
        on_a_free_port(|port| Self::start_on(port, Some(certs)))
    }

    fn start_on(port: u16, certs: Option<&crate::LoopbackCertificates>) -> io::Result<Self> {
        let bin = pg_bin()?;
        let dir = scratch("pg", port)?;
        let pg = Self {
            bin,
            dir,
            port,
            running: false,
            ssl: certs.is_some(),
        };
        if let Some(certs) = certs {
            write_private(&pg.dir.join("server.crt"), &certs.chain_pem)?;
            // PostgreSQL refuses a key others can read.
            write_private(&pg.dir.join("server.key"), &certs.key_pem)?;
        }
        chown_for_postgres(&pg.dir)?;
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )?;
        let mut pg = pg;
        pg.resume()?;
        pg.psql("CREATE DATABASE gateway")?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one of PostgreSQL's programs, as the `postgres` user when we are root (the server
    /// refuses to run as root).
    fn run(&self, program: &str, args: &[&str]) -> io::Result<()> {
        let path = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).stdin(Stdio::null()).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Starts the server again (after [`stop`](Self::stop)), on the same port and data.
    pub fn resume(&mut self) -> io::Result<()> {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.display()
        );
        if self.ssl {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.dir.join("server.crt").display(),
                self.dir.join("server.key").display()
            ));
        }
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-o",
                &options,
                "-l",
                &self.dir.join("log").display().to_string(),
                "-w",
                "start",
            ],
        )?;
        self.running = true;
        wait_for("postgres", || self.psql_in("postgres", "SELECT 1").is_ok())
    }

    /// Stops the server the way a crash does (immediate shutdown: connections are cut, no
    /// checkpoint, so it takes milliseconds even on a loaded machine; [`Postgres::resume`]
    /// recovers).
    pub fn stop(&mut self) -> io::Result<()> {
        self.running = false;
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
    }

    /// The URL of the `gateway` database.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/gateway", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs SQL with `psql` against the `gateway` database (or `postgres` before it exists).
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        let db = if sql.starts_with("CREATE DATABASE") {
            "postgres"
        } else {
            "gateway"
        };
        self.psql_in(db, sql)
    }

    fn psql_in(&self, db: &str, sql: &str) -> io::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pg_bin() -> io::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            io::Error::other(format!(
                "PostgreSQL is needed (apt-get install postgresql; .ci/run installs it): {e}"
            ))
        })?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| io::Error::other("no PostgreSQL server under /usr/lib/postgresql"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Writes `contents` to a new file only its owner may read (mode 0600).
fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

fn chown_for_postgres(dir: &Path) -> io::Result<()> {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()?
            .success();
        if !ok {
            return Err(io::Error::other("chown postgres failed"));
        }
    }
    Ok(())
}

/// A Redis server (`redis-server`), no persistence.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    dir: PathBuf,
    port: u16,
    /// The server certificate chain (ending with the CA) and its key, PEM, when it serves TLS
    /// only.
    tls: Option<(String, String)>,
}

impl Redis {
    /// Starts one on a free port (see `on_a_free_port`).
    pub fn start() -> io::Result<Self> {
        on_a_free_port(|port| Self::start_on(port, None))
    }

    /// Starts one that serves TLS only (`--port 0 --tls-port`), with `certs`' server
    /// certificate, clients not asked for one; [`url`](Self::url) is `rediss://`.
    pub fn start_tls(certs: &crate::LoopbackCertificates) -> io::Result<Self> {
        let tls = (certs.chain_pem.clone(), certs.key_pem.clone());
        on_a_free_port(|port| Self::start_on(port, Some(&tls)))
    }

    fn start_on(port: u16, tls: Option<&(String, String)>) -> io::Result<Self> {
        let dir = scratch("redis", port)?;
        let mut command = Command::new("redis-server");
        match tls {
            None => {
                command.args(["--port", &port.to_string()]);
            }
            Some((chain, key)) => {
                let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
                write_private(&cert_file, chain)?;
                write_private(&key_file, key)?;
                command
                    .args(["--port", "0", "--tls-port", &port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&cert_file)
                    .arg("--tls-key-file")
                    .arg(&key_file)
                    // The chain's last certificate is the CA; clients show none.
                    .arg("--tls-ca-cert-file")
                    .arg(&cert_file)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::other(format!(
                    "redis-server is needed (apt-get install redis-server): {e}"
                ))
            })?;
        let mut redis = Self {
            child,
            dir,
            port,
            tls: tls.cloned(),
        };
        // Ours, answering (a server another process started on the port would name another
        // process); it exits when it cannot bind. Over TLS, ours is running and says in its
        // log that it listens (had the port been taken, it would have exited).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if !matches!(redis.child.try_wait(), Ok(None)) {
                return Err(io::Error::other(format!(
                    "redis-server exited (port {port})"
                )));
            }
            let ready = if redis.tls.is_some() {
                std::fs::read_to_string(redis.dir.join("log"))
                    .is_ok_and(|log| log.contains("Ready to accept connections"))
            } else {
                redis_is(port, redis.child.id())
            };
            if ready {
                return Ok(redis);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("redis-server did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its URL (`rediss://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it (killed: clients see their connections reset).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port (after [`stop`](Self::stop)), empty.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        let mut again = Self::start_on(self.port, self.tls.as_ref())?;
        std::mem::swap(self, &mut again);
        // `again` is the stopped one now: its drop has nothing to kill, and must not remove
        // the directory the new one uses.
        again.dir = PathBuf::new();
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
