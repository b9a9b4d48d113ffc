//! Real network faults for cluster tests, made with network namespaces and
//! veth pairs (iproute2's `ip`; needs root, as on CI). Every namespace,
//! link and address here is created by the test, on private addresses used
//! nowhere else, and removed on drop, a panicking test included.
//!
//! - [`Netns`]: one namespace joined to the host by a veth pair; taking the
//!   host end down cuts whatever runs inside off from everyone.
//! - [`Lan`]: one namespace per master, all on a bridge together with the
//!   host, so that one master's routes can be changed without touching the
//!   others': [`Lan::cut`] cuts one master off from one address only.

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs `ip ARGS`; panics with its error output unless it succeeds.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS` inside namespace `ns`.
pub fn ip_in(ns: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns, "ip"];
    all.extend_from_slice(args);
    ip(&all);
}

/// Best effort: removes namespace `name` (and with it the links inside).
fn del_netns(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).output();
}

/// A name unique to this process and call, short enough for a link name
/// (at most 15 bytes with the suffixes used here).
fn unique_tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!(
        "{}{}",
        std::process::id() % 1_000_000,
        (b'a' + (n % 26) as u8) as char
    )
}

/// A network namespace with a veth pair to the host; removed on drop.
pub struct Netns {
    pub name: String,
    pub host_if: String,
    pub host_ip: String,
    pub ns_ip: String,
}

impl Netns {
    pub fn create() -> Netns {
        super::require_root("network namespaces");
        let id = std::process::id() % 10_000;
        let name = format!("dcpart{id}");
        let host_if = format!("dch{id}");
        let ns_if = format!("dcn{id}");
        // A /30 of our own, only ever used inside this test's namespace pair.
        let net = 16 + (id % 200);
        let host_ip = format!("10.213.{net}.1");
        let ns_ip = format!("10.213.{net}.2");
        del_netns(&name);
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            host_if,
            host_ip,
            ns_ip,
        };
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ip_in(
            &ns.name,
            &["addr", "add", &format!("{}/30", ns.ns_ip), "dev", &ns_if],
        );
        ip_in(&ns.name, &["link", "set", &ns_if, "up"]);
        ip_in(&ns.name, &["link", "set", "lo", "up"]);
        ns
    }

    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    pub fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        del_netns(&self.name);
    }
}

/// A private /24 shared by the host and one namespace per master, joined
/// by a bridge that lives in a hub namespace of its own:
///
/// ```text
///   host (test, auxiliaries: .1, .11, .12, ...)
///     | veth
///   hub namespace: bridge ── veth ── master i's namespace (.21 + i)
/// ```
///
/// Everything is on one link, so nothing is routed (the host forwards
/// nothing) and each master's namespace has a routing table of its own: a
/// route added there changes what that master reaches and nothing else.
/// Auxiliaries run on the host, each bound to an address of its own
/// ([`Lan::aux_ip`]), so one of them can be cut off by address while
/// every master still reaches the others, and it still reaches every master
/// (its connections leave from the host's first address, `.1`).
///
/// Dropping it deletes the namespaces; with them go the bridge and every
/// veth pair, the host's end and its addresses included. Drop it after the
/// processes inside it (declare it before the cluster).
pub struct Lan {
    hub: String,
    masters: Vec<String>,
    net: String,
    host_if: String,
}

impl Lan {
    /// A LAN for `masters` masters and up to `auxiliaries` auxiliaries.
    pub fn create(masters: usize, auxiliaries: usize) -> Lan {
        super::require_root("network namespaces");
        assert!(masters <= 9 && auxiliaries <= 9, "one digit each");
        // One LAN at a time per process picks its subnet and takes it.
        static CREATING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        let tag = unique_tag();
        let net = format!("10.214.{}", free_subnet());
        let lan = Lan {
            hub: format!("dchub{tag}"),
            masters: (0..masters).map(|i| format!("dcm{tag}{i}")).collect(),
            net,
            host_if: format!("dcl{tag}h"),
        };
        for ns in lan.masters.iter().chain([&lan.hub]) {
            del_netns(ns);
            ip(&["netns", "add", ns]);
        }
        ip_in(&lan.hub, &["link", "add", "br0", "type", "bridge"]);
        ip_in(&lan.hub, &["link", "set", "br0", "up"]);
        // The host's end: its first address is the source of every
        // connection the host opens on the LAN; the auxiliaries' follow.
        lan.plug(&lan.host_if, None);
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", lan.net),
            "dev",
            &lan.host_if,
        ]);
        for a in 0..auxiliaries {
            ip(&[
                "addr",
                "add",
                &format!("{}/24", lan.aux_ip(a)),
                "dev",
                &lan.host_if,
            ]);
        }
        ip(&["link", "set", &lan.host_if, "up"]);
        for m in 0..masters {
            let ns_if = format!("dcl{tag}m{m}");
            lan.plug(&ns_if, Some(&lan.masters[m]));
            let ns = &lan.masters[m];
            ip_in(
                ns,
                &[
                    "addr",
                    "add",
                    &format!("{}/24", lan.master_ip(m)),
                    "dev",
                    &ns_if,
                ],
            );
            ip_in(ns, &["link", "set", &ns_if, "up"]);
            ip_in(ns, &["link", "set", "lo", "up"]);
        }
        lan
    }

    /// Makes a veth pair named `end` / `end` + "b": `end` goes to `ns` (or
    /// stays on the host), the other end onto the hub's bridge.
    fn plug(&self, end: &str, ns: Option<&str>) {
        let bridge_end = format!("{end}b");
        ip(&[
            "link",
            "add",
            end,
            "type",
            "veth",
            "peer",
            "name",
            &bridge_end,
        ]);
        ip(&["link", "set", &bridge_end, "netns", &self.hub]);
        ip_in(&self.hub, &["link", "set", &bridge_end, "master", "br0"]);
        ip_in(&self.hub, &["link", "set", &bridge_end, "up"]);
        if let Some(ns) = ns {
            ip(&["link", "set", end, "netns", ns]);
        }
    }

    /// The namespace master `m` runs in.
    pub fn master_netns(&self, m: usize) -> &str {
        &self.masters[m]
    }

    /// Master `m`'s address (its namespace's only one besides loopback).
    pub fn master_ip(&self, m: usize) -> String {
        format!("{}.{}", self.net, 21 + m)
    }

    /// The host address auxiliary `a` (from 0) binds to.
    pub fn aux_ip(&self, a: usize) -> String {
        format!("{}.{}", self.net, 11 + a)
    }

    /// Cuts master `m` off from `addr`: in its namespace, a blackhole route
    /// to that one address. Its new connections there fail at once, the
    /// packets of those it holds vanish (they time out); nobody else's
    /// traffic changes, nor what `addr` itself can reach.
    pub fn cut(&self, m: usize, addr: &str) {
        ip_in(
            &self.masters[m],
            &["route", "add", "blackhole", &format!("{addr}/32")],
        );
    }

    /// Undoes [`Lan::cut`].
    pub fn heal(&self, m: usize, addr: &str) {
        ip_in(
            &self.masters[m],
            &["route", "del", "blackhole", &format!("{addr}/32")],
        );
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.masters.iter().chain([&self.hub]) {
            del_netns(ns);
        }
        // The host end goes with its peer; this is for a peer that never
        // made it into the hub.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// A third octet for 10.214.x.0/24 that no address of the host uses yet,
/// starting from one derived from the process id (tests run in parallel
/// processes, each with its LANs).
fn free_subnet() -> u32 {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("run ip (iproute2)");
    let used = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = std::process::id() % 250;
    (0..250)
        .map(|i| (start + i) % 250)
        .find(|x| !used.contains(&format!(" 10.214.{x}.")))
        .expect("a free 10.214.x.0/24")
}
