//! Real remote-runner engines for integration tests: a one-node Slurm cluster (munged,
//! slurmctld, slurmd) and an sshd on loopback, started by the test process as plain children and
//! gone when it ends.
//!
//! Everything lives in one folder per test process, `<temp>/taskboard-engines-<pid>`: keys, the
//! munge socket, slurm.conf, state and spool folders, pid files and every daemon's log (read
//! them with [`Slurm::logs`] / [`Sshd::logs`] when something fails). Folders of earlier test
//! processes whose pid is gone are removed on first use. Nothing in /etc is read or changed;
//! the one thing outside the folder is `/run/sshd`, which sshd insists on (made when missing).
//!
//! How the daemons die with the test process, even under `kill -9`:
//! - each runs in the foreground (`munged -F`, `slurmctld -D`, `slurmd -D`, `sshd -D -e`) as our
//!   child with a parent-death signal (SIGKILL). That signal fires when the *thread* that
//!   spawned the child ends, and libtest ends a thread per test, so every daemon is spawned by
//!   one thread that lives as long as the process ([`spawn`]). All of them run as root: none
//!   changes its uid, which would clear the death signal (munged accepts root when the key file
//!   is root's; only the job processes of a batch step run as the submitting user, and they are
//!   under slurmstepd, below).
//! - slurmd starts each job under a `slurmstepd` that it detaches, and sshd's sessions outlive a
//!   killed listener, so a watchdog (`sh`, in a session of its own so a terminal's Ctrl-C does
//!   not reach it) waits for EOF on a pipe whose only writer is the test process. The kernel
//!   closes that pipe however the process ends; the watchdog then stops and kills, with all
//!   their descendants, every process whose environment or command line names the folder
//!   (the daemons are started with `TASKBOARD_ENGINES_DIR=<folder>`, slurmstepd inherits it,
//!   and sshd's `SetEnv` gives it to remote commands), and removes the folder.
//!
//! `engines::daemons_die_with_the_test_process` checks both by starting the engines in a child
//! test process and killing it with SIGKILL. By hand: `cargo test --test it -- --ignored --exact
//! engines::hold_engines --nocapture` prints the folder; `kill -9` the test binary; then
//! `grep -laF <folder> /proc/[0-9]*/environ` prints nothing and the folder is gone.

use std::fs;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::poll;

/// How long a daemon gets to become ready.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// The environment variable every daemon is started with; its value is the fixture folder.
pub const MARK: &str = "TASKBOARD_ENGINES_DIR";

const SLURM_HINT: &str = "install Debian's slurmctld slurmd slurm-client munge (bash .ci/run does)";
const SSH_HINT: &str = "install Debian's openssh-server openssh-client (bash .ci/run does)";

// ---------------------------------------------------------------------------------------------
// Slurm

/// A one-node Slurm cluster started for this test process.
pub struct Slurm {
    /// Its slurm.conf: set `SLURM_CONF` to this for sbatch/squeue/scancel/scontrol.
    pub conf: PathBuf,
    /// An existing folder the "compute node" can read and write.
    pub shared_dir: PathBuf,
    /// The NodeName (this machine's host name).
    pub node: String,
    /// The fixture folder (shared with [`Sshd`]).
    pub dir: PathBuf,
    children: Mutex<Vec<(&'static str, Child)>>,
}

/// Holds the Slurm cluster for one test at a time; derefs to [`Slurm`].
pub struct SlurmGuard {
    slurm: &'static Slurm,
    _turn: MutexGuard<'static, ()>,
}

impl Deref for SlurmGuard {
    type Target = Slurm;

    fn deref(&self) -> &Slurm {
        self.slurm
    }
}

/// Starts the cluster once per test process (later calls get the same one) and returns a guard
/// that serialises its users: tests that use Slurm run one at a time, since one may take the
/// node down. A node left down by an earlier (failed) test is resumed first.
///
/// `Err(why)` when it cannot run here (a binary missing, not root, a daemon that would not
/// start): the caller does `skip(&why); return;`.
pub fn slurm() -> Result<SlurmGuard, String> {
    static TURN: Mutex<()> = Mutex::new(());
    static CLUSTER: OnceLock<Result<Slurm, String>> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let slurm = CLUSTER
        .get_or_init(Slurm::start)
        .as_ref()
        .map_err(Clone::clone)?;
    if !slurm.node_usable() {
        slurm.resume_and_wait();
    }
    Ok(SlurmGuard { slurm, _turn: turn })
}

impl Slurm {
    /// `("SLURM_CONF", conf)`: the environment a taskboard process (and any Slurm client) needs.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("SLURM_CONF".to_string(), self.conf.display().to_string())]
    }

    /// A Slurm client command (`sbatch`, `squeue`, ...) with [`Slurm::env`] set.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(find_bin(program).unwrap_or_else(|| PathBuf::from(program)));
        cmd.envs(self.env());
        cmd
    }

    /// Runs a Slurm client command and returns its stdout, trimmed; panics with its stderr and
    /// the daemons' logs when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        if !out.status.success() {
            panic!(
                "{program} {args:?} failed ({}): {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Marks the node DOWN (as if it died), waits until none of its jobs is RUNNING any more
    /// (they end in state NODE_FAIL: the cluster has `JobRequeue=0`), then resumes it and
    /// waits until it is idle again. The same as [`Slurm::down`] then
    /// [`Slurm::resume_and_wait`].
    pub fn fail_node_and_recover(&self) {
        self.down();
        self.resume_and_wait();
    }

    /// Marks the node DOWN and waits (with a deadline) until no job is RUNNING or COMPLETING on
    /// it. Its running jobs end in state NODE_FAIL and their processes are killed.
    pub fn down(&self) {
        let node = format!("NodeName={}", self.node);
        self.run(
            "scontrol",
            &["update", &node, "State=DOWN", "Reason=taskboard-test"],
        );
        let gone = poll(START_DEADLINE, || {
            self.run(
                "squeue",
                &["-h", "-w", &self.node, "-t", "R,CG", "-o", "%i"],
            )
            .is_empty()
        });
        assert!(
            gone,
            "jobs still running on the downed node\n{}",
            self.logs()
        );
    }

    /// Resumes the node and waits (with a deadline) until `sinfo` shows it idle.
    pub fn resume_and_wait(&self) {
        let node = format!("NodeName={}", self.node);
        // With ReturnToService=2 the node may already be back; resuming an idle node fails.
        let _ = self
            .command("scontrol")
            .args(["update", &node, "State=RESUME"])
            .stdin(Stdio::null())
            .output();
        let idle = poll(START_DEADLINE, || self.node_state() == "idle");
        assert!(
            idle,
            "node {} not idle after resume (state {:?})\n{}",
            self.node,
            self.node_state(),
            self.logs()
        );
    }

    /// The node's state as `sinfo -o %T` prints it: `idle`, `mixed`, `allocated`, `down*`...
    pub fn node_state(&self) -> String {
        self.command("sinfo")
            .args(["-h", "-n", &self.node, "-o", "%T"])
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    fn node_usable(&self) -> bool {
        matches!(self.node_state().as_str(), "idle" | "mixed" | "allocated")
    }

    /// Job ids currently known to squeue (any state; finished jobs stay listed for MinJobAge,
    /// 300 s), for "no orphan / no duplicate" checks.
    pub fn jobs(&self) -> Vec<String> {
        self.run("squeue", &["-h", "-t", "all", "-o", "%i"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The job's state as squeue prints it (`PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`,
    /// `NODE_FAIL`...), or None when squeue no longer knows it.
    pub fn job_state(&self, id: &str) -> Option<String> {
        let state = self.run("squeue", &["-h", "-t", "all", "-j", id, "-o", "%T"]);
        (!state.is_empty()).then_some(state)
    }

    /// The tails of the daemons' logs, and which of them exited, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = exited(&self.children);
        for name in ["munged.log", "slurmctld.log", "slurmd.log"] {
            text.push_str(&tail(&self.dir.join(name)));
        }
        text
    }

    fn start() -> Result<Slurm, String> {
        let started = Instant::now();
        let mut bins = Vec::new();
        for name in [
            "munged",
            "slurmctld",
            "slurmd",
            "sbatch",
            "squeue",
            "scancel",
            "scontrol",
            "sinfo",
        ] {
            bins.push(find_bin(name).ok_or_else(|| format!("{name} not found: {SLURM_HINT}"))?);
        }
        let [munged, slurmctld, slurmd, ..] = &bins[..] else {
            unreachable!()
        };
        if !is_root() {
            return Err(format!(
                "the Slurm cluster runs its daemons as root (SlurmUser=root), and this test \
                 process runs as uid {}: run the tests as root (CI does)",
                unsafe { libc::geteuid() }
            ));
        }
        let dir = folder()?;
        let children = Mutex::new(Vec::new());
        let io = |e: io::Error| format!("set up the Slurm cluster in {}: {e}", dir.display());

        // munged, with a key, socket, pid and seed file of its own.
        let munge = dir.join("munge");
        fs::create_dir_all(&munge).map_err(io)?;
        // munged wants execute permission for all on its socket's folder, and a key file
        // that only its owner reads.
        fs::set_permissions(&munge, fs::Permissions::from_mode(0o755)).map_err(io)?;
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        io::Read::read_exact(&mut fs::File::open("/dev/urandom").map_err(io)?, &mut bytes)
            .map_err(io)?;
        fs::write(&key, &bytes).map_err(io)?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).map_err(io)?;
        let socket = munge.join("munge.socket");
        let mut cmd = Command::new(munged);
        cmd.arg("-F")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
            .arg(format!(
                "--seed-file={}",
                munge.join("munged.seed").display()
            ))
            .arg(format!("--log-file={}", dir.join("munged.log").display()));
        daemon(&children, "munged", cmd, &dir.join("munged.log"))?;
        let up = poll(START_DEADLINE, || {
            socket.exists() || !exited(&children).is_empty()
        });
        if !up || !exited(&children).is_empty() {
            return Err(format!(
                "munged did not start\n{}",
                tail(&dir.join("munged.log"))
            ));
        }

        // This machine as the one node, as slurmd sees it.
        let probe = Command::new(slurmd)
            .arg("-C")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("slurmd -C: {e}"))?;
        let probe = String::from_utf8_lossy(&probe.stdout);
        let node_line = probe
            .lines()
            .find(|l| l.starts_with("NodeName="))
            .ok_or_else(|| format!("slurmd -C printed no NodeName line: {probe}"))?;
        let mut node = String::new();
        let mut fields = Vec::new();
        for field in node_line.split_whitespace() {
            match field.split_once('=') {
                Some(("NodeName", name)) => node = name.to_string(),
                // A bit under what slurmd measures, or a small difference marks the node invalid.
                Some(("RealMemory", mib)) => {
                    let mib: u64 = mib.parse().unwrap_or(1024);
                    fields.push(format!("RealMemory={}", (mib * 9 / 10).max(1)));
                }
                _ => fields.push(field.to_string()),
            }
        }
        let host = hostname();

        for sub in ["state", "spool", "shared"] {
            fs::create_dir_all(dir.join(sub)).map_err(io)?;
        }
        let shared_dir = dir.join("shared");
        fs::set_permissions(&shared_dir, fs::Permissions::from_mode(0o777)).map_err(io)?;
        let conf = dir.join("slurm.conf");
        let [ctld_port, slurmd_port] = free_ports();
        let d = dir.display();
        let text = format!(
            "# Written by tests/it/support/engines.rs for one test process.\n\
             ClusterName=taskboard-test\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket}\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SchedulerType=sched/builtin\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/filetxt\n\
             JobCompLoc={d}/jobcomp.txt\n\
             JobAcctGatherType=jobacct_gather/none\n\
             SwitchType=switch/none\n\
             MpiDefault=none\n\
             KillWait=2\n\
             MinJobAge=300\n\
             SlurmdTimeout=10\n\
             ReturnToService=2\n\
             JobRequeue=0\n\
             {fields} NodeAddr=127.0.0.1 NodeHostname={host} State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            socket = socket.display(),
            fields = std::iter::once(format!("NodeName={node}"))
                .chain(fields)
                .collect::<Vec<_>>()
                .join(" "),
        );
        fs::write(&conf, text).map_err(io)?;

        let mut cmd = Command::new(slurmctld);
        cmd.arg("-D").arg("-f").arg(&conf).env("SLURM_CONF", &conf);
        daemon(&children, "slurmctld", cmd, &dir.join("slurmctld.out"))?;
        let mut cmd = Command::new(slurmd);
        cmd.arg("-D")
            .arg("-f")
            .arg(&conf)
            .arg("-N")
            .arg(&node)
            .env("SLURM_CONF", &conf);
        daemon(&children, "slurmd", cmd, &dir.join("slurmd.out"))?;

        let slurm = Slurm {
            conf,
            shared_dir,
            node,
            dir,
            children,
        };
        let idle = poll(START_DEADLINE, || {
            slurm.node_state() == "idle" || !exited(&slurm.children).is_empty()
        });
        if !idle || slurm.node_state() != "idle" {
            return Err(format!(
                "the Slurm node did not become idle (state {:?})\n{}",
                slurm.node_state(),
                slurm.logs()
            ));
        }
        let _ = writeln!(
            io::stderr(),
            "engines: Slurm node {} idle {:.1}s after munged started, in {}",
            slurm.node,
            started.elapsed().as_secs_f64(),
            slurm.dir.display()
        );
        Ok(slurm)
    }
}

// ---------------------------------------------------------------------------------------------
// sshd

/// An sshd on loopback started for this test process, accepting the current user with a
/// throwaway key.
pub struct Sshd {
    pub port: u16,
    /// Two distinct host names that both reach it, in ssh's URI form:
    /// `ssh://<user>@127.0.0.1:<port>` and `ssh://<user>@127.0.0.2:<port>`.
    pub hosts: [String; 2],
    /// A host that refuses connections (a port on loopback bound by this process and never
    /// listened on), same form.
    pub unreachable: String,
    /// Arguments for every ssh call: `-F /dev/null -i <key> -o IdentitiesOnly=yes -o
    /// BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o
    /// LogLevel=ERROR -o ConnectTimeout=5 -o ConnectionAttempts=1`.
    pub ssh_args: Vec<String>,
    /// The fixture folder (shared with [`Slurm`]); sshd's files are under `ssh/`.
    pub dir: PathBuf,
    children: Mutex<Vec<(&'static str, Child)>>,
}

/// Starts the sshd once per test process (later calls get the same one). `Err(why)` when it
/// cannot run here: the caller does `skip(&why); return;`. Tests may use it concurrently.
pub fn sshd() -> Result<&'static Sshd, String> {
    static SSHD: OnceLock<Result<Sshd, String>> = OnceLock::new();
    SSHD.get_or_init(Sshd::start).as_ref().map_err(Clone::clone)
}

impl Sshd {
    /// An `ssh` command with [`Sshd::ssh_args`] and then `host`; add the remote command.
    pub fn ssh(&self, host: &str) -> Command {
        let mut cmd = Command::new(find_bin("ssh").unwrap_or_else(|| PathBuf::from("ssh")));
        cmd.args(&self.ssh_args).arg(host);
        cmd
    }

    /// The tail of sshd's log, and whether it exited, for failure messages.
    pub fn logs(&self) -> String {
        exited(&self.children) + &tail(&self.dir.join("sshd.log"))
    }

    fn start() -> Result<Sshd, String> {
        // sshd re-executes itself, so it must be started by its absolute path.
        let sshd = find_bin("sshd").ok_or_else(|| format!("sshd not found: {SSH_HINT}"))?;
        find_bin("ssh").ok_or_else(|| format!("ssh not found: {SSH_HINT}"))?;
        let keygen =
            find_bin("ssh-keygen").ok_or_else(|| format!("ssh-keygen not found: {SSH_HINT}"))?;
        let dir = folder()?;
        let ssh = dir.join("ssh");
        let io = |e: io::Error| format!("set up sshd in {}: {e}", ssh.display());
        fs::create_dir_all(&ssh).map_err(io)?;
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).map_err(io)?;
        for key in ["host_key", "id"] {
            let out = Command::new(&keygen)
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "taskboard-test",
                    "-f",
                ])
                .arg(ssh.join(key))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("ssh-keygen: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ssh-keygen failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        fs::copy(ssh.join("id.pub"), ssh.join("authorized_keys")).map_err(io)?;
        // Privilege separation needs this (empty, root-owned) folder; a root sshd refuses to
        // start without it.
        if is_root() && !Path::new("/run/sshd").is_dir() {
            fs::create_dir_all("/run/sshd")
                .map_err(|e| format!("create /run/sshd for sshd's privilege separation: {e}"))?;
        }
        let user = user_name();
        let identity = ssh.join("id").display().to_string();
        let ssh_args: Vec<String> = [
            "-F",
            "/dev/null",
            "-i",
            &identity,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "ConnectionAttempts=1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let refused = refusing_port().map_err(|e| format!("reserve a closed port: {e}"))?;
        let log = dir.join("sshd.log");
        let mut last = String::new();
        // A port found free may be taken before sshd binds it: then sshd exits, and we retry.
        for _ in 0..5 {
            let children = Mutex::new(Vec::new());
            let port = free_port_on_both();
            let conf = ssh.join("sshd_config");
            let s = ssh.display();
            fs::write(
                &conf,
                format!(
                    "# Written by tests/it/support/engines.rs for one test process.\n\
                     Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     ListenAddress 127.0.0.2\n\
                     HostKey {s}/host_key\n\
                     AuthorizedKeysFile {s}/authorized_keys\n\
                     PidFile {s}/sshd.pid\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     PermitRootLogin prohibit-password\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     UseDNS no\n\
                     X11Forwarding no\n\
                     PrintMotd no\n\
                     MaxStartups 200\n\
                     MaxSessions 100\n\
                     Subsystem sftp internal-sftp\n\
                     SetEnv {MARK}={d}\n",
                    d = dir.display()
                ),
            )
            .map_err(io)?;
            let mut cmd = Command::new(&sshd);
            cmd.arg("-D").arg("-e").arg("-f").arg(&conf);
            daemon(&children, "sshd", cmd, &log)?;
            let hosts = [
                format!("ssh://{user}@127.0.0.1:{port}"),
                format!("ssh://{user}@127.0.0.2:{port}"),
            ];
            let sshd = Sshd {
                port,
                unreachable: format!("ssh://{user}@127.0.0.1:{refused}"),
                hosts,
                ssh_args: ssh_args.clone(),
                dir: dir.clone(),
                children,
            };
            let started = Instant::now();
            let reaches = |host: &str| {
                sshd.ssh(host)
                    .arg("true")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            poll(START_DEADLINE, || {
                !exited(&sshd.children).is_empty() || reaches(&sshd.hosts[0])
            });
            if exited(&sshd.children).is_empty() && reaches(&sshd.hosts[1]) {
                let _ = writeln!(
                    io::stderr(),
                    "engines: sshd on port {port} answering {:.1}s after start",
                    started.elapsed().as_secs_f64()
                );
                return Ok(sshd);
            }
            last = sshd.logs();
            let died = !exited(&sshd.children).is_empty();
            for (_, child) in sshd.children.lock().unwrap().iter_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            // Only a port taken meanwhile is worth another try.
            if !died {
                break;
            }
        }
        Err(format!("sshd did not start\n{last}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

type Request = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from the one thread that lives as long as this process, with SIGKILL as its
/// parent-death signal: the daemon dies with the process, not with the test that started it.
pub fn spawn(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("engines-spawner".into())
            .spawn(move || {
                // Never returns: the sender is in a static, so `rx` never disconnects.
                for (mut cmd, reply) in rx {
                    die_with_this_thread(&mut cmd);
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the engines' spawner thread");
        tx
    });
    let (tx, rx) = mpsc::channel();
    cmd.stdin(Stdio::null());
    spawner.send((cmd, tx)).expect("the spawner thread is gone");
    rx.recv().expect("the spawner thread is gone")
}

fn die_with_this_thread(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs between fork and exec and makes only raw system calls (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Starts a daemon with stdout and stderr appended to `log`, marked with the fixture folder.
fn daemon(
    children: &Mutex<Vec<(&'static str, Child)>>,
    name: &'static str,
    mut cmd: Command,
    log: &Path,
) -> Result<(), String> {
    let dir = folder()?;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("open {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.env(MARK, &dir).stdout(out).stderr(err);
    let child = spawn(cmd).map_err(|e| format!("start {name}: {e}"))?;
    children.lock().unwrap().push((name, child));
    Ok(())
}

/// Which of `children` have exited, one line each; empty while all run.
fn exited(children: &Mutex<Vec<(&'static str, Child)>>) -> String {
    let mut text = String::new();
    for (name, child) in children.lock().unwrap().iter_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            text.push_str(&format!("{name} exited: {status}\n"));
        }
    }
    text
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    format!("--- {} ---\n{}\n", path.display(), lines[from..].join("\n"))
}

/// This test process's fixture folder, made (and the watchdog started) on first use.
pub fn folder() -> Result<PathBuf, String> {
    static FOLDER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOLDER
        .get_or_init(|| {
            let temp = std::env::temp_dir();
            remove_stale(&temp);
            let dir = temp.join(format!("taskboard-engines-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            // munged checks that every folder above its socket lets all enter.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
            watchdog(&dir)?;
            Ok(dir)
        })
        .clone()
}

/// Removes the folders of earlier test processes whose pid is gone.
fn remove_stale(temp: &Path) {
    let Ok(entries) = fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("taskboard-engines-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// When this process ends, however it ends, kills what the engines left (slurmstepd and its
/// jobs, ssh sessions, and any daemon still alive) and removes the folder.
const WATCHDOG: &str = r#"
dir=$1
# EOF when the test process ends: it holds the only write end of our stdin.
while read -r _; do :; done
tree() {
  kill -STOP "$1" 2>/dev/null
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done
  kill -KILL "$1" 2>/dev/null
}
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = "$$" ] && continue
  if grep -qaF -e "$dir" "$p/environ" "$p/cmdline" 2>/dev/null; then tree "$pid"; fi
done
rm -rf "$dir"
"#;

fn watchdog(dir: &Path) -> Result<(), String> {
    static STDIN: OnceLock<ChildStdin> = OnceLock::new();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("engines-watchdog")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("start the engines' watchdog: {e}"))?;
    let stdin = child.stdin.take().expect("piped stdin");
    // Kept open until the process ends; the child is never waited for (it outlives us).
    let _ = STDIN.set(stdin);
    std::mem::forget(child);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// `name` on PATH or in the sbin folders (which a non-login PATH may lack).
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            p.is_absolute()
                && fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The current user's login name (for the ssh URIs).
pub fn user_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "root".to_string())
}

/// Two distinct TCP ports free on loopback just now.
fn free_ports() -> [u16; 2] {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    [
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    ]
}

/// A port free on both 127.0.0.1 and 127.0.0.2 just now.
fn free_port_on_both() -> u16 {
    loop {
        let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let port = a.local_addr().unwrap().port();
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), port)).is_ok() {
            return port;
        }
    }
}

/// A loopback port that refuses connections for as long as this process lives: a TCP socket
/// bound to it that never listens (so nobody else can listen there).
fn refusing_port() -> io::Result<u16> {
    // SAFETY: plain socket calls on a fresh descriptor, which is leaked on purpose.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        addr.sin_port = 0;
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&raw const addr).cast(), len) != 0 {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        let mut bound: libc::sockaddr_in = std::mem::zeroed();
        let mut len = len;
        if libc::getsockname(fd, (&raw mut bound).cast(), &mut len) != 0 {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(u16::from_be(bound.sin_port))
    }
}
