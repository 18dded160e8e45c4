"""A BaoLife cluster on this machine, its hosts network namespaces: the
engine of scripts/cluster and of the tests in tests/cluster/.

Layout (one private /24, 10.213.7.0/24; every name starts with ``bl-`` so
that ``down`` finds all of it, also after a crash)::

    root namespace (clients) -- bl-client 10.213.7.129/30
                                   |  veth
    bl-edge   eth1 10.213.7.130  HAProxy :443 (TLS) and :80
              eth0 10.213.7.2  --+
    bl-db     eth0 10.213.7.10 --+-- bridge br0 in namespace bl-net
    bl-w1..3  eth0 10.213.7.11.. -+   (10.213.7.0/25)

With ``--edges 2`` a second edge, ``bl-edge2`` (eth0 10.213.7.3, eth1
10.213.7.134 behind the root namespace's bl-client2 10.213.7.133/30), runs
HAProxy with the same generated configuration: the same server lines in the
same order give the same consistent-hash ring, so either edge sends a player
to the same worker. One HAProxy holds two descriptors per player and a
process here cannot pass 20,000, so more players than about 9,900 need a
second edge (docs/SCALING.md).

The root namespace has a route to the edges' /30s only, so clients reach the
edges and nothing else; the rest of the /24 is an ``unreachable`` route there,
added before anything else, so nothing meant for it takes the default route
off this machine. On ``db`` MariaDB (its own datadir under the run
directory) listens on 127.0.0.1:3306 of that namespace, and the database
proxy (scripts/lib/dbproxy.py) on 10.213.7.10:3306 in front of it: every
worker reaches the database through it, so ``chaos`` can add latency or cut
one worker off (the kernel here has no netem). No Redis: the workers' bus,
leases and shared AI budget live in the database. Each worker host runs
``baolife serve`` on 0.0.0.0:8765 (WebSocket) and :8080 (HTTP);
the edge runs Debian's HAProxy with deploy/haproxy/haproxy.cfg, its server
lines generated for the workers. A throwaway CA (openssl) signs the
certificates of the database (the workers use TLS to MariaDB unless
``--no-tls``) and of the edge.

Processes are started detached, their pids kept in the run directory; every
kill checks first that the pid is still in the namespace it was started in.
``down`` ends every process of every ``bl-`` namespace, deletes the
namespaces (their veth pairs go with them), any ``bl-`` link left in the
root namespace and the route, then the run directory.

One module: it is one tool whose parts (network, database, workers, edge,
chaos) share the run directory's state and the same few helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "bl-"
SWITCH = "bl-net"
NET = "10.213.7"
# Edges (HAProxy) for ``up --edges``: edge k (from 0) is 10.213.7.(2+k) on the
# bridge and 10.213.7.(130+4k) to the clients (edge_in, edge_out below).
MAX_EDGES = 4
DB = f"{NET}.10"
EDGE_OUT = f"{NET}.130"
WS_PORT, HTTP_PORT = 8765, 8080
DEFAULT_DIR = Path(os.environ.get("BL_CLUSTER_DIR", "/run/bl-cluster"))
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
# Open files: the hard limit here (20,000 on this workplace, and a process
# cannot raise it): HAProxy holds two per player, so one edge takes about
# half as many players.
OPEN_FILES = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
EDGE_MAXCONN = max(1000, (OPEN_FILES - 200) // 2)
# Seconds a rolling restart waits, after a worker is back in rotation, for
# the players it sent away to be online again before the next worker goes.
SETTLE = 60.0


class ClusterError(Exception):
    """Something the cluster cannot do; the message is one line for a person."""


def worker_ip(name: str) -> str:
    return f"{NET}.{10 + int(name[1:])}"


def edge_hosts(edges: int) -> list[str]:
    """The host names of ``edges`` edges: ``edge``, ``edge2``, ..."""
    return ["edge" if k == 0 else f"edge{k + 1}" for k in range(edges)]


def edge_in(k: int) -> str:
    """Edge ``k``'s (from 0) address on the hosts' bridge."""
    return f"{NET}.{2 + k}"


def client_root(k: int) -> str:
    """The root namespace's end of edge ``k``'s /30 (the clients' side)."""
    return f"{NET}.{129 + 4 * k}"


def edge_out(k: int) -> str:
    """Edge ``k``'s address for clients."""
    return f"{NET}.{130 + 4 * k}"


def run(args: Sequence[str], *, check: bool = True, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(args)}: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


def namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def root_links() -> list[str]:
    out = run(["ip", "-o", "link", "show"], check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [name for name in names if name.startswith(PREFIX)]


def ns_of(pid: int) -> str | None:
    """The ``bl-`` namespace process ``pid`` runs in, if it runs in one."""
    out = run(["ip", "netns", "identify", str(pid)], check=False).stdout.split()
    return out[0] if out else None


def alive(pid: int) -> bool:
    """``pid`` runs (not a zombie; a child of ours that ended is reaped)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(what: str, test: Any, timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = test()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def signal_in_ns(pid: int, ns: str, sig: int) -> bool:
    """Send ``sig`` to ``pid`` only if it still runs in ``ns``."""
    if not alive(pid) or ns_of(pid) != ns:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _raise_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


_children: list[subprocess.Popen[bytes]] = []


def spawn(ns: str, args: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> int:
    """Start ``args`` detached in namespace ``ns``; its pid (``ip netns
    exec`` execs the command, so the pid is the command's)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            in_ns(ns, *args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=_raise_open_files,
        )
    _children.append(proc)  # kept: a Popen dropped while its process runs warns
    return proc.pid


class Cluster:
    """One cluster's run directory and the operations on it."""

    def __init__(self, folder: Path = DEFAULT_DIR) -> None:
        self.dir = folder.resolve()
        self.state_file = self.dir / "cluster.json"

    # ------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            raise ClusterError(f"no cluster state in {self.dir} (scripts/cluster up first)") from None

    def _save(self, state: Mapping[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.state_file)

    @property
    def workers(self) -> list[str]:
        return list(self.state()["workers"])

    @property
    def ca(self) -> Path:
        return self.dir / "tls" / "ca.pem"

    @property
    def edge(self) -> str:
        """The first edge's address for clients."""
        return EDGE_OUT

    @property
    def edges(self) -> list[str]:
        """Every edge's address for clients (``up --edges``)."""
        return [edge_out(k) for k in range(len(self.edge_hosts))]

    @property
    def edge_hosts(self) -> list[str]:
        """The edges' host names: ``edge``, ``edge2``, ..."""
        return edge_hosts(int(self.state().get("edges", 1)))

    # ------------------------------------------------------------ up

    def up(
        self,
        workers: int = 3,
        *,
        env: Mapping[str, str] | None = None,
        tls: bool = True,
        latency_ms: float = 0.0,
        edges: int = 1,
    ) -> None:
        """Build the whole cluster; on any failure remove what was made."""
        if not 1 <= workers <= 9:
            raise ClusterError("--workers must be between 1 and 9")
        if not 1 <= edges <= MAX_EDGES:
            raise ClusterError(f"--edges must be between 1 and {MAX_EDGES}")
        if os.geteuid() != 0:
            raise ClusterError("needs root (network namespaces)")
        if namespaces() or root_links() or _our_route():
            made = ", ".join(namespaces() + root_links())
            raise ClusterError(f"a cluster is already up ({made}): scripts/cluster down")
        self._need()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        names = [f"w{k}" for k in range(1, workers + 1)]
        password = secrets.token_hex(12)
        state: dict[str, Any] = {
            "workers": names,
            "password": password,
            "tls": tls,
            "env": dict(env or {}),
            "edges": edges,
            "pids": {},
        }
        self._save(state)
        try:
            self._network(names, edge_hosts(edges))
            self._certificates()
            self._database(password)
            self._proxy()
            if latency_ms:
                self.latency(latency_ms)
            run(in_ns("bl-w1", *self._baolife("migrate")), env=self._worker_env("w1"), timeout=300)
            for name in names:
                self.start(name, wait=False)
            for name in names:
                self.wait_ready(name)
            for host in edge_hosts(edges):
                self._edge(names, host)
            wait_until("the edges to see every worker up", lambda: self.edge_sees_up(names), 30)
        except BaseException:
            self.down()
            raise

    def _need(self) -> None:
        wanted = ["haproxy:haproxy", "mariadbd:mariadb-server", "openssl:openssl", "curl:curl"]
        proc = subprocess.run([str(ROOT / "scripts" / "deb-ensure"), *wanted], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "deb-ensure failed")

    def _network(self, names: list[str], edges: list[str]) -> None:
        # First of all: from the root namespace the /24 is unreachable but for
        # the edge's /30 (added below), so nothing for it takes the default route.
        run(["ip", "route", "replace", "unreachable", f"{NET}.0/24"])
        run(["ip", "netns", "add", SWITCH])
        run(in_ns(SWITCH, "ip", "link", "add", "br0", "type", "bridge"))
        run(in_ns(SWITCH, "ip", "link", "set", "br0", "up"))
        hosts = {host: edge_in(k) for k, host in enumerate(edges)} | {"db": DB}
        hosts |= {name: worker_ip(name) for name in names}
        for host, address in hosts.items():
            ns = PREFIX + host
            run(["ip", "netns", "add", ns])
            run(in_ns(ns, "ip", "link", "set", "lo", "up"))
            outer, inner = f"{PREFIX}{host}0", f"{PREFIX}{host}1"
            run(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
            run(["ip", "link", "set", inner, "netns", ns, "name", "eth0"])
            run(["ip", "link", "set", outer, "netns", SWITCH])
            run(in_ns(SWITCH, "ip", "link", "set", outer, "master", "br0", "up"))
            run(in_ns(ns, "ip", "addr", "add", f"{address}/25", "dev", "eth0"))
            run(in_ns(ns, "ip", "link", "set", "eth0", "up"))
        # The clients' links: the root namespace reaches each edge's /30 only.
        for k, host in enumerate(edges):
            link = "bl-client" if k == 0 else f"bl-client{k + 1}"
            run(["ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}-e"])
            run(["ip", "link", "set", f"{link}-e", "netns", PREFIX + host, "name", "eth1"])
            run(["ip", "addr", "add", f"{client_root(k)}/30", "dev", link])
            run(["ip", "link", "set", link, "up"])
            run(in_ns(PREFIX + host, "ip", "addr", "add", f"{edge_out(k)}/30", "dev", "eth1"))
            run(in_ns(PREFIX + host, "ip", "link", "set", "eth1", "up"))

    def _certificates(self) -> None:
        tls = self.dir / "tls"
        tls.mkdir()
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        run(["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=bl-cluster throwaway CA",
             "-keyout", str(tls / "ca.key"), "-out", str(tls / "ca.pem")])  # fmt: skip
        # One certificate for every edge (any of them may answer a client).
        edges = "".join(f"IP:{edge_out(k)}," for k in range(MAX_EDGES))
        for name, san in (("db", f"IP:{DB},DNS:db"), ("edge", f"{edges}DNS:edge")):
            (tls / f"{name}.ext").write_text(f"subjectAltName={san}\n")
            run(["openssl", "req", "-new", *ec, "-subj", f"/CN={name}",
                 "-keyout", str(tls / f"{name}.key"), "-out", str(tls / f"{name}.csr")])  # fmt: skip
            run(["openssl", "x509", "-req", "-in", str(tls / f"{name}.csr"), "-CA", str(tls / "ca.pem"),
                 "-CAkey", str(tls / "ca.key"), "-CAcreateserial", "-days", "2",
                 "-extfile", str(tls / f"{name}.ext"), "-out", str(tls / f"{name}.pem")])  # fmt: skip
        (tls / "edge-bundle.pem").write_text((tls / "edge.pem").read_text() + (tls / "edge.key").read_text())
        # A CA that signed nothing here: a client trusting it must refuse the server.
        run(["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=bl-cluster other CA",
             "-keyout", str(tls / "other-ca.key"), "-out", str(tls / "other-ca.pem")])  # fmt: skip

    # ------------------------------------------------------------ database

    @property
    def db_socket(self) -> Path:
        return self.dir / "db" / "mysqld.sock"

    def sql(self, statement: str, *, database: str = "") -> str:
        """Run ``statement`` as root on the db host (Unix socket); its output."""
        args = ["mariadb", "--no-defaults", f"--socket={self.db_socket}", "-uroot", "-N", "-B", "-e", statement]
        if database:
            args.append(database)
        return run(in_ns("bl-db", *args)).stdout

    def _database(self, password: str) -> None:
        db = self.dir / "db"
        data = db / "data"
        data.mkdir(parents=True)
        run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"], timeout=120)  # fmt: skip
        tls = self.dir / "tls"
        pid = spawn("bl-db", ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                              f"--socket={self.db_socket}", f"--pid-file={db / 'mariadbd.pid'}",
                              "--bind-address=127.0.0.1", "--port=3306", "--skip-name-resolve",
                              "--max-connections=1000", "--innodb-buffer-pool-size=256M",
                              f"--ssl-ca={tls / 'ca.pem'}", f"--ssl-cert={tls / 'db.pem'}",
                              f"--ssl-key={tls / 'db.key'}"], db / "mariadbd.log")  # fmt: skip
        self._set_pid("db", pid)

        def answers() -> bool:
            if not alive(pid):
                raise ClusterError(f"mariadbd ended at start: {_tail(db / 'mariadbd.log')}")
            return run(in_ns("bl-db", "mariadb", "--no-defaults", f"--socket={self.db_socket}", "-uroot",
                              "-e", "SELECT 1"), check=False).returncode == 0  # fmt: skip

        wait_until("MariaDB on db", answers, 60)
        self.sql(
            "CREATE DATABASE baolife CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
            f"CREATE USER 'baolife'@'%' IDENTIFIED BY '{password}';"
            "GRANT ALL ON baolife.* TO 'baolife'@'%';"
            f"CREATE USER 'baolife_tls'@'%' IDENTIFIED BY '{password}' REQUIRE SSL;"
            "GRANT ALL ON baolife.* TO 'baolife_tls'@'%';"
        )

    def _proxy(self) -> None:
        db = self.dir / "db"
        control = db / "proxy.sock"
        python = str(ROOT / ".venv" / "bin" / "python")
        args = [python, str(ROOT / "scripts" / "lib" / "dbproxy.py"), f"{DB}:3306", "127.0.0.1:3306", str(control)]
        self._set_pid("proxy", spawn("bl-db", args, db / "proxy.log"))
        wait_until("the database proxy on db", control.exists, 20)

    def proxy(self, line: str) -> dict[str, Any]:
        """Send one control line to the database proxy; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.dir / "db" / "proxy.sock"))
            sock.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = dict(json.loads(data))
        if "error" in answer:
            raise ClusterError(f"database proxy: {answer['error']}")
        return answer

    # ------------------------------------------------------------ workers

    def db_url(self, *, tls: bool | None = None, ca: Path | None = None) -> str:
        state = self.state()
        tls = state["tls"] if tls is None else tls
        if not tls:
            return f"mysql://baolife:{state['password']}@{DB}:3306/baolife"
        return f"mysql://baolife_tls:{state['password']}@{DB}:3306/baolife?ssl_ca={ca or self.ca}"

    def _worker_env(self, name: str) -> dict[str, str]:
        state = self.state()
        env = {key: value for key, value in os.environ.items() if not key.startswith("BAOLIFE_")}
        env.update(
            BAOLIFE_DB_URL=self.db_url(),
            BAOLIFE_WS_BIND=f"0.0.0.0:{WS_PORT}",
            BAOLIFE_HTTP_BIND=f"0.0.0.0:{HTTP_PORT}",
            BAOLIFE_WORKER_ID=name,
            BAOLIFE_TRUSTED_PROXIES=",".join(edge_in(k) for k in range(len(self.edge_hosts))),
            BAOLIFE_CONN_PER_IP="1000000",
            BAOLIFE_REGISTER_PER_IP_HOUR="1000000",
            BAOLIFE_MAX_CONNECTIONS="9000",
            BAOLIFE_MAX_LOADED_PLAYERS="40000",
            BAOLIFE_LOG_FORMAT="json",
            BAOLIFE_LOG_LEVEL="warning",
        )
        env.update(state["env"])
        return env

    @staticmethod
    def _baolife(*args: str) -> list[str]:
        return [str(ROOT / ".venv" / "bin" / "baolife"), *args]

    def _set_pid(self, name: str, pid: int) -> None:
        state = self.state()
        state["pids"][name] = pid
        self._save(state)

    def pid(self, name: str) -> int | None:
        pid = self.state()["pids"].get(name)
        return int(pid) if pid else None

    def running(self, name: str) -> bool:
        pid = self.pid(name)
        ns = "bl-db" if name in ("db", "proxy") else PREFIX + name
        return pid is not None and alive(pid) and ns_of(pid) == ns

    def start(self, name: str, *, wait: bool = True) -> None:
        """Start worker ``name`` (after a kill or a stop)."""
        self._known(name)
        if self.running(name):
            raise ClusterError(f"{name} is already running")
        folder = self.dir / name
        folder.mkdir(exist_ok=True)
        pid = spawn(PREFIX + name, self._baolife("serve"), folder / "serve.log", self._worker_env(name))
        self._set_pid(name, pid)
        if wait:
            self.wait_ready(name)

    def stop(self, name: str, *, timeout: float = 60) -> None:
        """SIGTERM: the worker drains, saves every player and exits."""
        self._known(name)
        pid = self.pid(name)
        if pid is None or not signal_in_ns(pid, PREFIX + name, signal.SIGTERM):
            return
        wait_until(f"{name} to exit", lambda: not alive(pid), timeout)

    def kill(self, name: str) -> None:
        """kill -9 worker ``name``: no drain, no last save."""
        self._known(name)
        pid = self.pid(name)
        if pid is None or not signal_in_ns(pid, PREFIX + name, signal.SIGKILL):
            raise ClusterError(f"{name} is not running")
        wait_until(f"{name} to die", lambda: not alive(pid), 10)

    def restart(self, names: Iterable[str], *, settle: float = SETTLE) -> list[dict[str, Any]]:
        """A rolling restart, as an operator does it: each worker in turn is
        taken out of the edge's rotation (so its players reconnect to the
        others at once, not to it), stops (drains: every player saved),
        starts, is back in rotation, and the next one goes only once as many
        players are online as before this one stopped: a worker stopped
        while the last one's players are still logging in on it sends them
        away a second time, mid-login, and they come back last (issue 13).
        Raises :class:`ClusterError` when they are not back within
        ``settle`` seconds (the restart stops there). Returns, per worker,
        the players online before it stopped and the seconds from its stop
        until they were all back."""
        steps = []
        for name in names:
            self._known(name)
            before = self.players_online()
            self.edge_server(name, "disable")
            stopped = time.monotonic()
            try:
                self.stop(name)
                self.start(name)
            finally:
                self.edge_server(name, "enable")
            wait_until(f"the edge to see {name} up", lambda n=name: self.edge_sees_up([n]), 30)
            try:
                wait_until(f"the {before} players online before {name} stopped to be back",
                           lambda b=before: self.players_online() >= b, settle, every=0.5)  # fmt: skip
            except ClusterError as exc:
                raise ClusterError(f"{exc} ({self.players_online()} online); rolling restart stopped") from None
            steps.append({"worker": name, "players": before, "seconds": round(time.monotonic() - stopped, 1)})
        return steps

    def players_online(self) -> int:
        """Players logged in over every running worker (their
        ``baolife_players_online``; a worker not answering counts none)."""
        total = 0.0
        for name in self.workers:
            with contextlib.suppress(ClusterError):
                total += self.metric(name, "baolife_players_online")
        return int(total)

    def edge_server(self, name: str, action: str) -> None:
        """``disable`` or ``enable`` worker ``name`` in every edge's backends."""
        for host in self.edge_hosts:
            for backend in ("baolife_ws", "baolife_web"):
                answer = self.haproxy(f"{action} server {backend}/{name}", host).strip()
                if answer:
                    raise ClusterError(f"HAProxy on {host}: {action} server {backend}/{name}: {answer}")

    def partition(self, name: str, mode: str = "blackhole") -> None:
        """Cut worker ``name`` off from the database (its players stay connected)."""
        self._known(name)
        self.proxy(f"cut {worker_ip(name)} {mode}")

    def heal(self, name: str | None = None) -> None:
        self.proxy(f"restore {worker_ip(name) if name else 'all'}")

    def latency(self, ms: float) -> None:
        """The database ``ms`` milliseconds of round trip from every worker."""
        self.proxy(f"latency {ms:g}")

    def _known(self, name: str) -> None:
        if name not in self.workers:
            raise ClusterError(f"no worker {name!r} (workers: {', '.join(self.workers)})")

    def http(self, name: str, path: str) -> tuple[int, str]:
        """GET ``path`` from worker ``name``'s HTTP port, from inside its host."""
        proc = run(in_ns(PREFIX + name, "curl", "-s", "--max-time", "3", "-w", "\n%{http_code}",
                         f"http://127.0.0.1:{HTTP_PORT}{path}"), check=False)  # fmt: skip
        body, _, code = proc.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    def ready(self, name: str) -> bool:
        return self.http(name, "/readyz")[0] == 200

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        pid = self.pid(name)

        def ready() -> bool:
            # (Alive is enough here: just after the spawn `ip netns exec` may
            # not have entered the namespace yet.)
            if pid is None or not alive(pid):
                raise ClusterError(f"{name} ended at start: {_tail(self.dir / name / 'serve.log')}")
            return self.ready(name)

        wait_until(f"{name} to be ready", ready, timeout)

    def metric(self, name: str, metric: str) -> float:
        """The sum of every sample of ``metric`` on worker ``name``."""
        code, body = self.http(name, "/metrics")
        if code != 200:
            raise ClusterError(f"{name}: /metrics answered {code}")
        total = 0.0
        for line in body.splitlines():
            if line.startswith(metric) and line[len(metric) : len(metric) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    # ------------------------------------------------------------ edge

    def haproxy_config(self, names: list[str], host: str = "edge") -> str:
        """deploy/haproxy/haproxy.cfg for edge ``host``: its binds, certificate,
        log and server lines replaced, an admin socket and the header naming
        the worker a WebSocket went to added; every replaced line must be in
        the shipped file exactly once. Edges differ in their binds and admin
        socket only: the server lines, so the hash ring, are the same."""
        text = CONFIG.read_text()
        edge = self.dir / host
        address = edge_out(edge_hosts(MAX_EDGES).index(host))
        ws = "".join(f"    server {n} {worker_ip(n)}:{WS_PORT} check port {HTTP_PORT}\n" for n in names)
        web = "".join(f"    server {n} {worker_ip(n)}:{HTTP_PORT} check\n" for n in names)
        replace = {
            "    log /dev/log local0\n": "    log stderr format raw local0 notice\n"
            f"    stats socket {edge / 'admin.sock'} mode 600 level admin\n",
            "    maxconn 100000\n": f"    maxconn {EDGE_MAXCONN}\n",
            "    bind :443 ssl crt /etc/haproxy/certs/baolife.pem alpn http/1.1\n":
                f"    bind {address}:443 ssl crt {self.dir / 'tls' / 'edge-bundle.pem'} alpn http/1.1\n",
            "    bind :80\n": f"    bind {address}:80\n",
            "    hash-type consistent\n": "    hash-type consistent\n"
            "    http-response set-header X-Baolife-Worker %[srv_name]\n",
            "    server w1 127.0.0.1:8701 check port 8801\n": ws,
            "    server w2 127.0.0.1:8702 check port 8802\n": "",
            "    server w1 127.0.0.1:8801 check\n": web,
            "    server w2 127.0.0.1:8802 check\n": "",
        }  # fmt: skip
        for old, new in replace.items():
            if text.count(old) != 1:
                raise ClusterError(f"deploy/haproxy/haproxy.cfg changed: {old.strip()!r} is not there once")
            text = text.replace(old, new)
        return text

    def _edge(self, names: list[str], host: str) -> None:
        edge = self.dir / host
        edge.mkdir()
        config = edge / "haproxy.cfg"
        config.write_text(self.haproxy_config(names, host))
        run(["haproxy", "-c", "-f", str(config)])
        pid = spawn(PREFIX + host, ["haproxy", "-db", "-f", str(config)], edge / "haproxy.log")
        self._set_pid(host, pid)
        wait_until(f"HAProxy's admin socket on {host}", lambda: (edge / "admin.sock").exists(), 20)

    def haproxy(self, command: str, host: str = "edge") -> str:
        """One command on edge ``host``'s HAProxy admin socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.dir / host / "admin.sock"))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def edge_status(self, host: str = "edge") -> dict[str, str]:
        """Edge ``host``'s view of each worker in the WebSocket backend: its
        state (UP, DOWN, "UP 1/2" going down, "DOWN 1/2" coming up) and last
        check, e.g. "UP L7OK"."""
        rows = csv.reader(io.StringIO(self.haproxy("show stat", host).lstrip("# ")))
        header = next(rows)
        px, sv = header.index("pxname"), header.index("svname")
        status, check = header.index("status"), header.index("check_status")
        return {row[sv]: f"{row[status]} {row[check]}" for row in rows if len(row) > check
                and row[px] == "baolife_ws" and row[sv] not in ("FRONTEND", "BACKEND")}  # fmt: skip

    def edge_sees_up(self, names: Iterable[str]) -> bool:
        """Every edge sees each of ``names`` fully up, its last check passed
        (not merely not yet checked)."""
        names = list(names)
        for host in self.edge_hosts:
            seen = self.edge_status(host)
            if not all(seen.get(n, "").split()[:1] == ["UP"] and seen[n].endswith("L7OK") for n in names):
                return False
        return True

    def edge_sees_down(self, names: Iterable[str]) -> bool:
        """Every edge sees each of ``names`` down."""
        names = list(names)
        return all(all(self.edge_status(host).get(n, "").startswith("DOWN") for n in names) for host in self.edge_hosts)

    # ------------------------------------------------------------ status, down

    def status(self) -> dict[str, Any]:
        state = self.state()
        hosts: dict[str, Any] = {}
        for name in ("db", "proxy", *self.edge_hosts):
            if name in state["pids"]:
                hosts[name] = {"running": self.running(name)}
        views: dict[str, dict[str, str]] = {}
        for host in self.edge_hosts:
            try:
                views[host] = self.edge_status(host) if self.running(host) else {}
            except OSError:
                views[host] = {}
        for name in state["workers"]:
            running = self.running(name)
            code, body = self.http(name, "/readyz") if running else (0, "")
            hosts[name] = {
                "running": running,
                "readyz": code,
                "problems": _problems(body),
                "edge": views["edge"].get(name),
            }
            if len(views) > 1:
                hosts[name]["edges"] = {host: view.get(name) for host, view in views.items()}
        with contextlib.suppress(OSError, ClusterError, KeyError):
            hosts["proxy"]["path"] = self.proxy("stats")
        edges = [f"wss://{address}/ws" for address in self.edges]
        out = {"dir": str(self.dir), "edge": edges[0], "ca": str(self.ca), "hosts": hosts}
        return out | ({"edges": edges} if len(edges) > 1 else {})

    def down(self) -> list[str]:
        """Remove everything ``up`` made, whatever state it is in; what was removed."""
        removed = []
        spaces = namespaces()
        # The workers first, while the database is there to take their last
        # saves: a draining worker cut from it would wait out its shutdown
        # timeout (longer than the grace below). Then everything else.
        workers = [ns for ns in spaces if ns.startswith(f"{PREFIX}w") and ns[len(PREFIX) + 1 :].isdigit()]
        for group in (workers, spaces):
            for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
                pids = {pid: ns for ns in group for pid in _ns_pids(ns)}
                for pid, ns in pids.items():
                    signal_in_ns(pid, ns, sig)
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline and any(alive(pid) for pid in pids):
                    time.sleep(0.1)
        for ns in spaces:
            run(["ip", "netns", "del", ns], check=False)
            removed.append(ns)
        for link in root_links():
            run(["ip", "link", "del", link], check=False)
            removed.append(link)
        if run(["ip", "route", "del", "unreachable", f"{NET}.0/24"], check=False).returncode == 0:
            removed.append(f"route unreachable {NET}.0/24")
        if self.state_file.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            removed.append(str(self.dir))
        return removed


def _tail(log: Path, lines: int = 3) -> str:
    """The last lines of ``log``, for an error message (the run directory
    goes with ``down``)."""
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])[-1500:]
    except OSError:
        return f"no log at {log}"


def _our_route() -> bool:
    return bool(run(["ip", "route", "show", f"{NET}.0/24"], check=False).stdout.strip())


def _ns_pids(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]


def _problems(body: str) -> list[str]:
    try:
        return list(json.loads(body).get("problems", []))
    except (ValueError, AttributeError):
        return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="A BaoLife cluster on this machine: network namespaces (db, 1-4 HAProxy edges, 2-3 "
        "workers) on 10.213.7.0/24, MariaDB, HAProxy, and chaos to play with it. Needs root.",
    )
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"run directory (default {DEFAULT_DIR}, or $BL_CLUSTER_DIR)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build the cluster and start everything")
    up.add_argument("--workers", type=int, default=3)
    up.add_argument("--edges", type=int, default=1, help=f"HAProxy edges, 1-{MAX_EDGES} (same configuration and "
                    "hash: either sends a player to the same worker); one holds about "
                    f"{EDGE_MAXCONN:,} players here (two open files each)")  # fmt: skip
    up.add_argument("--no-tls", action="store_true", help="workers talk to MariaDB in plain text")
    up.add_argument("--latency", type=float, default=0.0, metavar="MS", help="database round trip added")
    up.add_argument("--env", action="append", default=[], metavar="BAOLIFE_X=V", help="a worker setting")
    sub.add_parser("down", help="stop and remove everything (also after a crash)")
    sub.add_parser("status", help="hosts, processes, readiness, the edges' view (JSON)")
    chaos = sub.add_parser("chaos", help="faults")
    what = chaos.add_subparsers(dest="chaos", required=True)
    what.add_parser("kill", help="kill -9 a worker").add_argument("worker")
    what.add_parser("start", help="start a killed or stopped worker").add_argument("worker")
    what.add_parser("stop", help="SIGTERM a worker (drain)").add_argument("worker")
    part = what.add_parser("partition", help="cut a worker off from db")
    part.add_argument("worker")
    part.add_argument("--mode", choices=("blackhole", "reset"), default="blackhole")
    what.add_parser("heal", help="end partitions").add_argument("worker", nargs="?")
    roll = what.add_parser("restart", help="rolling restart (the next worker once the last one's players are back)")
    roll.add_argument("workers", nargs="*", help="default: all")
    roll.add_argument("--settle", type=float, default=SETTLE, metavar="S",
                      help=f"seconds for its players to be back before the next goes (default {SETTLE:g})")  # fmt: skip
    what.add_parser("latency", help="database round trip, ms").add_argument("ms", type=float)
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir)
    try:
        if args.command == "up":
            env = dict(item.split("=", 1) for item in args.env if "=" in item)
            if len(env) != len(args.env):
                raise ClusterError("--env takes BAOLIFE_NAME=VALUE")
            cluster.up(args.workers, env=env, tls=not args.no_tls, latency_ms=args.latency, edges=args.edges)
            print(json.dumps(cluster.status(), indent=1))
        elif args.command == "down":
            print("\n".join(f"removed {item}" for item in cluster.down()) or "nothing to remove")
        elif args.command == "status":
            print(json.dumps(cluster.status(), indent=1))
        elif args.chaos == "kill":
            cluster.kill(args.worker)
        elif args.chaos == "start":
            cluster.start(args.worker)
        elif args.chaos == "stop":
            cluster.stop(args.worker)
        elif args.chaos == "partition":
            cluster.partition(args.worker, args.mode)
        elif args.chaos == "heal":
            cluster.heal(args.worker)
        elif args.chaos == "restart":
            print(json.dumps(cluster.restart(args.workers or cluster.workers, settle=args.settle)))
        elif args.chaos == "latency":
            cluster.latency(args.ms)
    except ClusterError as exc:
        print(f"scripts/cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
