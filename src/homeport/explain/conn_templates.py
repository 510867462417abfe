"""What explain says about the connection-level kinds: reset, connect-denied, unreachable.

Data only, in the shape of ``rules.Template`` (summary, detail lines, next steps) so that
``rules.DIAGNOSES`` can take it in; kept apart to keep ``rules`` readable. Placeholders are
``rules.TEMPLATE_FIELDS``; ``conn.situation`` picks the key from live facts.
"""

from __future__ import annotations

Row = tuple[str, tuple[str, ...], tuple[str, ...]]

_AT = "run again with the address: `homeport explain '<error>' --at HOST:PORT`"

CONNECTION_TEMPLATES: dict[str, Row] = {
    # ----- reset: accepted, then dropped (RST or FIN before any answer)
    "reset.no-port": (
        "The error does not say which address and port dropped the connection.",
        (
            "A reset means something accepted the connection, then let it go: the server, a"
            " proxy in front of it, or a TLS server that was sent plain text.",
        ),
        (_AT, "see what listens: `homeport ls`"),
    ),
    "reset.gone": (
        "Nothing listens on {where} now: the server that dropped the connection has stopped.",
        (
            "A server that crashes or is killed mid-request resets the connections it held,"
            " then its port goes quiet.",
        ),
        (
            "read the server's last log lines and its exit status (killed by the OOM killer?"
            " `journalctl -k | grep -i oom`)",
            "start it again, and wait for it before connecting: `homeport wait {wait}`",
        ),
    ),
    "reset.gateway": (
        "{where} is homeport's gateway, {owners}: the gateway or the service behind it"
        " dropped the connection.",
        (
            "The gateway forwards each request to its route's target; when the target resets"
            " or closes mid-answer, the client sees its own connection end.",
        ),
        (
            "find that request in the access log: `homeport logs --access` (the reason column"
            " says upstream-died, upstream-error, client-closed …)",
            "list the routes and their targets: `homeport route ls`",
            "then explain the target itself: `homeport explain HOST:PORT`",
        ),
    ),
    "reset.proxy": (
        "{where} is held by {owners}, which forwards connections: the reset may come from it"
        " or from the service behind it.",
        (
            "A proxy drops the client's connection when its upstream resets, times out or"
            " closes early (nginx logs 'upstream prematurely closed connection').",
        ),
        (
            "read the proxy's error log at the time of the failure",
            "connect to the upstream directly, to see which side drops it",
            "details of the proxy process: `homeport who {port}`",
        ),
    ),
    "reset.tls": (
        "{where} speaks TLS, served by {owners}; the client spoke plain text to it: the TLS"
        " server dropped the request.",
        (
            "A TLS server reads the first bytes as a TLS record; 'GET / HTTP/1.1' is none, so"
            " it closes (OpenSSL logs 'http request' or 'wrong version number'). homeport"
            " checked with one TLS ClientHello to {where}, which it answered.",
        ),
        (
            "use https:// (`curl -k https://{where}/` for a self-signed certificate)",
            "or turn TLS off in the server for local development",
        ),
    ),
    "reset.restarted": (
        "{where} listens again, but its server, {owners}, started {started}: it restarted"
        " after the connection was made.",
        (
            "A server that exits (a crash, a file-watcher reload, a deploy) resets the"
            " connections it held; the new process knows nothing of them.",
        ),
        (
            "find why it restarted: its log around the restart, or the watcher's output",
            "retry; in scripts, wait for readiness after a restart: `homeport wait {wait}`",
        ),
    ),
    "reset.keepalive": (
        "{close_wait_count} client connection(s) to {where} sit in CLOSE-WAIT: the server,"
        " {owners}, closed them, and the client still keeps them for reuse: {close_wait}.",
        (
            "A request sent on such a connection gets a reset or an empty reply: the"
            " keep-alive race, where the server's idle timeout is shorter than the client"
            " pool's. The next request on a fresh connection works.",
        ),
        (
            "make the client drop idle connections sooner than the server does (Node"
            " http.Agent / undici keepAliveTimeout, Go Transport.IdleConnTimeout), or raise"
            " the server's (Node server.keepAliveTimeout, 5 s by default; gunicorn"
            " --keep-alive, 2 s; nginx keepalive_timeout)",
            "retry idempotent requests once after a reset (requests/urllib3: an HTTPAdapter"
            " with `Retry(total=1)`)",
            "see both ends: `homeport who {port}`",
        ),
    ),
    "reset.recent": (
        "{where} is served by {owners}, which started only {started}: if the error came"
        " before that, the server restarted in between.",
        (
            "A server that exits (a crash, a file-watcher reload, a deploy) resets the"
            " connections it held. The error text carries no time to compare with; paste it"
            " with its log line's timestamp and homeport will.",
        ),
        (
            "if it restarted: find why in its log around the restart, or the watcher's output",
            "if the error is newer: read the server's log at that time (a handler exception"
            " or a limit)",
            "in scripts, wait for readiness after a restart: `homeport wait {wait}`",
        ),
    ),
    "reset.listening": (
        "{where} is served by {owners} (started {started}): it accepted the connection, then"
        " dropped it.",
        (
            "Common causes: the server closed an idle keep-alive connection just as the"
            " client reused it; the request handler crashed or hit a limit (body or header"
            " size, a timeout, max connections); a close with SO_LINGER 0, which sends a RST.",
        ),
        (
            "read the server's log at the time of the error: a handler exception or a limit",
            "retry idempotent requests once after a reset (the keep-alive race is harmless"
            " on retry)",
            "if it happens after idle periods, make the client's keep-alive timeout shorter"
            " than the server's",
        ),
    ),
    "note.keepalive": (
        "{tool} keeps idle connections open for reuse (keep-alive); servers close idle ones"
        " after their own timeout.",
        (
            "A request sent on a connection the server has just closed ends in a reset or an"
            " empty reply. Node: keep `server.keepAliveTimeout` above the client's idle time;"
            " requests/urllib3: mount an HTTPAdapter with `Retry(total=1)`; Go: set the"
            " Transport's IdleConnTimeout below the server's.",
        ),
        (),
    ),
    # ----- connect-denied: EACCES/EPERM from connect(), before any packet left
    "connect-denied.unix-socket": (
        "{path} is a Unix socket this user may not connect to: {socket}.",
        (
            "Connecting to a Unix socket needs write permission on the socket file and search"
            " (x) permission on every directory above it; whoever creates it decides both.",
        ),
        (
            "compare owner, group and mode with your user: `ls -l {path}` and `id`",
            "Docker's socket: join its group (`sudo usermod -aG docker $USER`, then log in"
            " again), or use rootless Docker",
            "or have the server create it for a group you are in (PostgreSQL:"
            " unix_socket_group, unix_socket_permissions)",
            "or run the client as the socket's owner",
        ),
    ),
    "connect-denied.bpf": (
        "A cgroup BPF program on the connect hook decides connects here: {bpf}.",
        (
            "A connect4/connect6 program that returns 0 makes connect() fail with EPERM for"
            " every process in that cgroup and below (systemd's IPAddressDeny= and"
            " SocketBind*, Cilium, security agents attach them).",
        ),
        (
            "list them with their programs: `bpftool cgroup tree` (read-only)",
            "the client's cgroup: `cat /proc/<pid>/cgroup`; run the client outside it to confirm",
            "ask whoever installed that policy (a systemd unit, the CNI, a security agent)"
            " to allow {where}",
        ),
    ),
    "connect-denied.security": (
        "A security module is enforcing here: {security}.",
        (
            "SELinux denies with EACCES (name_connect to the port's type); AppArmor with"
            " EACCES when the client's profile lacks a `network inet stream` rule.",
        ),
        (
            "find the denial: `ausearch -m avc -ts recent` (SELinux) or `journalctl -k |"
            " grep -i apparmor`",
            "SELinux: the port's type is in `semanage port -l | grep {port}`; allow it for the"
            " client's domain",
            "AppArmor: `aa-status` shows the profile that confines the client; `aa-complain"
            " <profile>` to test",
        ),
    ),
    "connect-denied.firewall": (
        "No connect hook or enforcing security module found; the firewall has rules on lo:"
        " {firewall}.",
        (
            "On Linux a DROP gives TCP a timeout and a REJECT gives ECONNREFUSED or"
            " EHOSTUNREACH, so these rules explain EACCES/EPERM only for UDP (an output DROP"
            " fails sendto() with EPERM) or on other systems (Windows Filtering Platform:"
            " WinError 10013; macOS pf).",
        ),
        (
            "read the rules: `sudo nft list ruleset` (or `homeport doctor`)",
            "if the client is sandboxed (container, Flatpak, snap), run it outside to compare",
        ),
    ),
    "connect-denied.sandbox": (
        "Nothing on this machine denies connects to {where} from outside the client"
        " (cgroup BPF connect hooks: {bpf}; security modules: {security}; firewall rules on"
        " lo: {firewall}).",
        (
            "So the client's own sandbox said no: Landlock ({landlock} here: a domain that"
            " handles LANDLOCK_ACCESS_NET_CONNECT_TCP denies with EACCES), a seccomp filter"
            " that returns EPERM or EACCES (container runtimes, systemd SystemCallFilter=,"
            " Flatpak, snap), or a container's network policy.",
        ),
        (
            "run the same client outside its sandbox or container to confirm",
            "look at the process: `grep -E 'Seccomp|NoNewPrivs' /proc/<pid>/status`",
            "for a container, read its seccomp/AppArmor options: `docker inspect <container>`"
            " (HostConfig.SecurityOpt)",
        ),
    ),
    # ----- unreachable: an ICMP error answered the SYN
    "unreachable.firewall": (
        "A firewall rule on lo rejects connections to port {port}: {rejects}.",
        (
            "`reject with icmp admin-prohibited` or `host-prohibited` (firewalld's default"
            " reject is icmp-host-prohibited) reaches the client as EHOSTUNREACH, 'No route"
            " to host'; a plain `reject` or `reject with tcp reset` gives ECONNREFUSED.",
        ),
        (
            "read the rules: `sudo nft list ruleset` or `sudo iptables-save` (or `homeport"
            " doctor`)",
            "accept loopback before any reject: `nft insert rule inet filter input iif lo"
            " accept` (your table and chain), or with firewalld `firewall-cmd --zone=trusted"
            " --add-interface=lo`",
        ),
    ),
    "unreachable.loopback": (
        "{where} is on loopback, where routing cannot fail: a firewall's ICMP reject"
        " answered, but no reject rule for port {port} on lo was found here (rules that"
        " drop or reject on lo: {firewall}).",
        (
            "The rule may be where homeport cannot read it: in another network namespace (a"
            " container's), in legacy iptables beside nftables, or behind root.",
        ),
        (
            "read the rules as root: `sudo nft list ruleset` and `sudo iptables-save`",
            "inside a container, read the container's own rules",
        ),
    ),
    "unreachable.remote": (
        "{host} is not this machine, and no route leads there from here.",
        (),
        (
            "see the route the kernel would take: `ip route get {host}`",
            "check the VPN or network that should carry it; for a service on this machine,"
            " use 127.0.0.1:{port}",
        ),
    ),
    "unreachable.no-address": (
        "The error does not say which address.",
        ("On loopback EHOSTUNREACH comes from a firewall's ICMP reject; elsewhere, routing.",),
        (_AT, "read the firewall's rules on lo: `homeport doctor`"),
    ),
}
