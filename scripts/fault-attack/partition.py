"""Network partitions for the fault attack: every process in a network
namespace of its own, all on one bridge, cut apart and healed at will.

    host (harness, clients: 10.77.7.1)
      | veth
    hub namespace: bridge br0 -- veth -- "pa-<name>" namespace (one per process)

The bridge lives in a namespace of its own (`pa-hub`), so nothing the host's
firewall does to bridged traffic applies. Each process namespace has one
address, 10.77.7.<octet>, and a routing table of its own; the bridge-side
end of its veth pair is `<name>`'s port. (This kernel has no tc qdiscs or
actions and no netfilter tools here, so the cuts are routes.)

- `cut_oneway(a, b)`: a blackhole route to b in a's namespace: a's packets
  to b vanish (connections it holds there time out, new ones fail at once),
  b's packets still reach a, but a's answers do not leave (TCP breaks both
  ways; b sees only timeouts).
- `cut(a, b)`: both ways, a blackhole in each namespace.
- `isolate(a)`: a's port on the bridge goes down: a reaches nobody and
  nobody reaches it, the harness included; everything times out.

Every name made here starts with `pa-`; `Net.close` (also at start, for a
run that died) deletes them all. Needs root and iproute2.
"""

import subprocess

NET = "10.77.7"
HUB = "pa-hub"
HOST_IF = "pa-host"


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def in_hub(*args, check=True):
    return sh("ip", "netns", "exec", HUB, *args, check=check)


def ns_list():
    return [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]


class Net:
    def __init__(self):
        self.close()
        self.octets = {}  # process name -> last octet of its address
        self.ports = {}  # process name -> its bridge-side veth (in the hub)
        self.cuts = set()  # (a, b): a's packets to b are dropped
        sh("ip", "netns", "add", HUB)
        in_hub("ip", "link", "add", "br0", "type", "bridge")
        in_hub("ip", "link", "set", "br0", "up")
        in_hub("ip", "link", "set", "lo", "up")
        self._plug(HOST_IF, None)
        sh("ip", "addr", "add", f"{NET}.1/24", "dev", HOST_IF)
        sh("ip", "link", "set", HOST_IF, "up")

    def _plug(self, end, ns):
        bridge_end = f"{end}b"
        sh("ip", "link", "add", end, "type", "veth", "peer", "name", bridge_end)
        sh("ip", "link", "set", bridge_end, "netns", HUB)
        in_hub("ip", "link", "set", bridge_end, "master", "br0")
        in_hub("ip", "link", "set", bridge_end, "up")
        if ns is not None:
            sh("ip", "link", "set", end, "netns", ns)
        return bridge_end

    def add(self, name, octet):
        """A namespace `pa-<name>` with address 10.77.7.<octet>; returns the
        address. Idempotent (a restarted process keeps its namespace)."""
        if name in self.octets:
            return self.ip(name)
        ns = f"pa-{name}"
        sh("ip", "netns", "add", ns)
        end = f"pa-{name}"[:13]
        self.ports[name] = self._plug(end, ns)
        self.octets[name] = octet
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{NET}.{octet}/24", "dev", end)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", end, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        return self.ip(name)

    def ip(self, name):
        return f"{NET}.{self.octets[name]}"

    def prefix(self, name):
        """The command prefix that runs a program in `name`'s namespace."""
        return ["ip", "netns", "exec", f"pa-{name}"]

    def cut_oneway(self, a, b):
        if (a, b) in self.cuts:
            return
        sh(*self.prefix(a), "ip", "route", "add", "blackhole", f"{self.ip(b)}/32")
        self.cuts.add((a, b))

    def heal_oneway(self, a, b):
        if (a, b) not in self.cuts:
            return
        sh(*self.prefix(a), "ip", "route", "del", "blackhole", f"{self.ip(b)}/32")
        self.cuts.discard((a, b))

    def cut(self, a, b):
        self.cut_oneway(a, b)
        self.cut_oneway(b, a)

    def heal(self, a, b):
        self.heal_oneway(a, b)
        self.heal_oneway(b, a)

    def isolate(self, a):
        in_hub("ip", "link", "set", self.ports[a], "down")

    def rejoin(self, a):
        in_hub("ip", "link", "set", self.ports[a], "up")

    def heal_all(self):
        for a, b in list(self.cuts):
            self.heal_oneway(a, b)
        for a in self.ports:
            self.rejoin(a)

    def close(self):
        """Deletes every `pa-` namespace (with their links) and the host's
        end of the bridge."""
        for ns in ns_list():
            if ns.startswith("pa-"):
                sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", HOST_IF, check=False)
