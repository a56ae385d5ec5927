//! Network namespaces with nftables packet loss for the fault tests.
//!
//! A [`LossyNetns`] is a fresh network namespace (`gtls-<pid>-<n>`) whose
//! loopback drops a share of all TCP packets (data, ACK, SYN, FIN alike):
//! table `inet loss`, one chain on a filter hook, rule
//! `meta l4proto tcp numgen random mod 100 < N counter drop`. Processes run
//! inside with the [`LossyNetns::prefix`] command prefix (`ip netns exec
//! NAME`), which execs the program in place (same PID, so signals and `Proc`
//! kills reach the program itself). The namespace is deleted on drop, also
//! when the test panics; namespaces left behind by a test process that was
//! killed outright are removed by the next run.
//!
//! Which hook matters. Every packet between two processes on the
//! namespace's 127.0.0.1 passes both `output` and `input` once, but a drop
//! on `output` happens inside the sender's own transmit call: TCP sees the
//! error, keeps the segment as unsent and sends it again with the next
//! transmission, so a dropped data segment is delayed, not lost (measured,
//! 2 MiB at 5%: 122 packets dropped, 1 retransmission, no SACK recovery).
//! Only dropped ACKs are really lost there. A drop on `input` is invisible
//! to the sender, as a loss on a wire is: the same transfer had 117 drops,
//! 98 retransmissions, 81 SACK recoveries, 5 RTO timeouts. So
//! [`LossyNetns::new`] drops on `input`; [`LossyNetns::with_hook`] can still
//! ask for `output`.
//!
//! Loopback's MTU is set to 1500 and its GSO batches to one segment, so that
//! a few KiB of payload are several packets, each of which can be lost.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables): see [`netns_available`].

use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{have_tool, skip};

const NAME_PREFIX: &str = "gtls-";

/// A network namespace with TCP loss on its loopback; deleted on drop.
pub struct LossyNetns {
    name: String,
    pub loss_percent: u32,
    pub hook: LossHook,
}

/// The netfilter hook the loss rule sits on (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossHook {
    /// Real loss: the sender does not know, it must detect and retransmit.
    Input,
    /// Local drop: the sender's transmit fails and it simply sends again.
    Output,
}

impl LossHook {
    fn name(self) -> &'static str {
        match self {
            LossHook::Input => "input",
            LossHook::Output => "output",
        }
    }
}

/// Whether namespaces with loss can be made here: root, `ip` and `nft`.
/// A missing piece is a [`skip`] (a failure under `CI=true`).
pub fn netns_available() -> bool {
    if !have_tool("ip", "iproute2") || !have_tool("nft", "nftables") {
        return false;
    }
    if is_root() {
        return true;
    }
    skip("network namespaces need root (ip netns add); run the fault tests as root");
    false
}

/// Effective UID 0, from /proc (no libc call needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().nth(1))
            == Some("0")
    })
}

fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<Output, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{program} {}", args.join(" "));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{what}`: {e}"))?;
    if let Some(text) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("stdin not piped")?;
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot feed `{what}`: {e}"))?;
    }
    // These are short administrative commands that end on their own.
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{what}` failed: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes `gtls-<pid>-<n>` namespaces whose test process no longer exists
/// (it was killed before its guards could run).
fn remove_stale() {
    let Ok(out) = run("ip", &["netns", "list"], None) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name], None);
        }
    }
}

impl LossyNetns {
    /// Creates the namespace, brings `lo` up and drops `loss_percent`% of
    /// TCP packets on the input hook (real loss). Panics (with the command's
    /// error) on failure: call [`netns_available`] first.
    pub fn new(loss_percent: u32) -> LossyNetns {
        LossyNetns::with_hook(loss_percent, LossHook::Input)
    }

    /// Like [`LossyNetns::new`], with the loss rule on `hook`.
    pub fn with_hook(loss_percent: u32, hook: LossHook) -> LossyNetns {
        static STALE: Once = Once::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        STALE.call_once(remove_stale);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{NAME_PREFIX}{}-{n}", std::process::id());
        if let Err(e) = run("ip", &["netns", "add", &name], None) {
            panic!("cannot create network namespace {name}: {e}");
        }
        // From here on the guard deletes the namespace, whatever fails next.
        let ns = LossyNetns {
            name,
            loss_percent,
            hook,
        };
        // An Ethernet-sized MTU instead of loopback's 64 KiB, so that a few
        // KiB of payload span several segments, each of which can be lost.
        let lo_up = ["-n", &ns.name, "link", "set", "lo", "mtu", "1500", "up"];
        let setup = run("ip", &lo_up, None).and_then(|_| {
            // nftables sees packets before segmentation offload splits them:
            // without this, one "packet" can be a 64 KiB batch of segments.
            // Best effort (older iproute2 cannot set it): loss then hits
            // whole batches, a coarser but still real loss.
            let one_seg = ["-n", &ns.name, "link", "set", "lo", "gso_max_segs", "1"];
            let _ = run("ip", &one_seg, None);
            let hook = hook.name();
            let rules = format!(
                "table inet loss {{\n\
                 \tchain {hook} {{\n\
                 \t\ttype filter hook {hook} priority 0; policy accept;\n\
                 \t\tmeta l4proto tcp numgen random mod 100 < {loss_percent} counter drop\n\
                 \t}}\n\
                 }}\n"
            );
            run(
                "ip",
                &["netns", "exec", &ns.name, "nft", "-f", "-"],
                Some(&rules),
            )
        });
        if let Err(e) = setup {
            panic!("cannot set up network namespace {}: {e}", ns.name);
        }
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// From now on every TCP packet to `port` is dropped: the server there hears nothing
    /// more, and acknowledges nothing more.
    pub fn cut_to_port(&self, port: u16) {
        let port = port.to_string();
        let args = [
            "netns",
            "exec",
            &self.name,
            "nft",
            "add",
            "rule",
            "inet",
            "loss",
            self.hook.name(),
            "tcp",
            "dport",
            &port,
            "drop",
        ];
        if let Err(e) = run("ip", &args, None) {
            panic!("cannot cut the way to port {port} in {}: {e}", self.name);
        }
    }

    /// `ip netns exec NAME`: put it in front of a command to run it inside.
    pub fn prefix(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    /// Packets dropped so far (the loss rule's counter).
    pub fn dropped_packets(&self) -> Option<u64> {
        let rules = self.ruleset();
        let after = &rules[rules.find("counter packets ")? + "counter packets ".len()..];
        after.split_whitespace().next()?.parse().ok()
    }

    /// TCP segments retransmitted so far in the namespace (`RetransSegs` of
    /// its /proc/net/snmp), and segments sent.
    pub fn tcp_segments(&self) -> Option<(u64, u64)> {
        let out = run(
            "ip",
            &["netns", "exec", &self.name, "cat", "/proc/net/snmp"],
            None,
        )
        .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next()?, tcp.next()?);
        let field = |want: &str| {
            let i = names.split_whitespace().position(|n| n == want)?;
            values.split_whitespace().nth(i)?.parse::<u64>().ok()
        };
        Some((field("RetransSegs")?, field("OutSegs")?))
    }

    /// The namespace's nftables ruleset (to show in failure messages).
    pub fn ruleset(&self) -> String {
        match run(
            "ip",
            &["netns", "exec", &self.name, "nft", "list", "ruleset"],
            None,
        ) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => e,
        }
    }
}

impl super::Dump for LossyNetns {
    fn dump(&self) -> String {
        format!(
            "\n\n===== network namespace {} ({}% TCP loss on {}) =====\n{}",
            self.name,
            self.loss_percent,
            self.hook.name(),
            self.ruleset()
        )
    }
}

impl Drop for LossyNetns {
    fn drop(&mut self) {
        // Processes still inside keep running in an unnamed namespace; their
        // own Proc guards kill them.
        if let Err(e) = run("ip", &["netns", "del", &self.name], None) {
            eprintln!("warning: {e}");
        }
    }
}
