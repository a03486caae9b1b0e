"""
Processes the benchmark runs: the load generator, a chatnet server from this
checkout, and the ngircd and InspIRCd references.  Also /proc sampling and the machine
description every run records.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chatnet.scenarios.redis import RedisError, RedisServer, start_redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / "build"
SOURCE = BENCH / "loadgen.c"
LOADGEN = BUILD / "loadgen"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LISTENING = re.compile(rb"chatnet listening on 127\.0\.0\.1:(\d+)")


class BenchError(Exception):
    """A run could not be carried out (not a slow result: a broken one)."""


# ---- build ----


def build_loadgen(cc: str | None = None, force: bool = False) -> Path:
    """Compile bench/loadgen.c with the system compiler, when it changed."""
    cc = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise BenchError("no C compiler found (install gcc, or set CC)")
    BUILD.mkdir(exist_ok=True)
    if (
        not force
        and LOADGEN.exists()
        and LOADGEN.stat().st_mtime >= SOURCE.stat().st_mtime
    ):
        return LOADGEN
    cmd = [cc, "-O2", "-std=gnu11", "-Wall", "-o", str(LOADGEN), str(SOURCE)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return LOADGEN


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- /proc ----


@dataclass(frozen=True)
class Sample:
    """One look at a process: when, CPU seconds so far, RSS bytes, open fds."""

    t: float
    cpu: float
    rss: int
    fds: int


def sample(pid: int) -> Sample:
    t = time.monotonic()
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    rss = int(fields[21]) * PAGE
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return Sample(t, cpu, rss, fds)


def machine_busy() -> tuple[float, float, float]:
    """
    (monotonic time, CPU seconds all cores spent in processes, CPU seconds
    spent in interrupts and softirqs) so far, from /proc/stat.  Loopback TCP
    is mostly softirq work, charged to no process.
    """
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system = fields[0], fields[1], fields[2]
    irq = fields[5] + fields[6] if len(fields) > 6 else 0
    return time.monotonic(), (user + nice + system) / TICK, irq / TICK


def cpu_share(a: Sample, b: Sample) -> float:
    """Cores used between two samples (1.0 = one full core)."""
    return (b.cpu - a.cpu) / (b.t - a.t) if b.t > a.t else 0.0


class Sampler:
    """Samples a process every ``interval`` seconds in a thread; keeps the peak RSS."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                s = sample(self.pid)
            except OSError:
                return
            self.samples.append(s)
            self.peak_rss = max(self.peak_rss, s.rss)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_rss


# ---- the load generator ----


class Loadgen:
    """One run of bench/build/loadgen, driven over its stdin/stdout lines."""

    def __init__(self, args: list[str], port: int, proto: str = "chatnet") -> None:
        cmd = [str(LOADGEN), "--port", str(port), "--proto", proto, *args]
        self.cmd = cmd
        # stderr to a file: a pipe nobody reads could fill and stall it
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, bufsize=1,
        )
        self.pid = self.proc.pid
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ticks: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line}
            if event.get("event") == "tick":
                self.ticks.append(event)
            else:
                self.events.put(event)
        self.events.put({"event": "exit"})

    def wait(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise BenchError(f"loadgen: no {name!r} within {timeout:.0f}s ({self.cmd})")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event["event"] == name:
                return event
            if event["event"] == "exit":
                self.stderr.seek(0)
                err = self.stderr.read()[-2000:].decode(errors="replace")
                raise BenchError(f"loadgen exited before {name!r}: {err.strip()}")

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def quit(self, timeout: float = 30) -> None:
        try:
            self.send("quit")
            self.wait("closed", timeout)
        except (BenchError, BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- servers under test ----


class Server:
    """A server process under test; subclasses know how to start one."""

    name = "server"
    pid: int
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    stdout_path: Path
    #: clients the load generator sets up at once (None: its default, 8)
    setup_concurrency: int | None = None

    stopped = False

    def stop(self, timeout: float = 15) -> int | None:
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None


def _wait_listening(proc: subprocess.Popen[bytes], files: list[Path], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in files:
            try:
                m = LISTENING.search(path.read_bytes())
            except OSError:
                continue
            if m:
                return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    text = b"".join(p.read_bytes()[-3000:] for p in files if p.exists()).decode(errors="replace")
    proc.kill()
    raise BenchError(f"chatnet did not say it was listening within {timeout:.0f}s:\n{text}")


#: Limits a benchmark must switch off, as its reference servers' configurations
#: do (ngircd's MaxConnectionsIP = 0 below): every connection comes from
#: 127.0.0.1 and each sends as fast as it can.  Option -> its "off" value.
UNLIMITED = {
    "--flood-rate": "0",
    "--max-per-address": "0",
    "--max-pending-per-address": "0",
    "--max-pending": "0",
}


def unlimited(source: Path) -> list[str]:
    """The arguments switching :data:`UNLIMITED` off, for the options ``source`` has."""
    try:
        tap = (source / "chatnet" / "tap.py").read_text(encoding="utf-8")
    except OSError:
        return []
    args: list[str] = []
    for option, value in UNLIMITED.items():
        if f'"{option[2:]}"' in tap:  # an older checkout may not have it
            args += [option, value]
    return args


class ChatnetServer(Server):
    """``twistd -n chatnet`` from this checkout (PYTHONPATH = the checkout)."""

    name = "chatnet"
    #: whether it writes the audit log the fan-out check counts
    audited = True

    def __init__(
        self, workdir: Path, max_clients: int = 10_000, reactor: str = "epoll",
        extra: list[str] | None = None, command: list[str] | None = None,
        source: Path = ROOT,
    ) -> None:
        self.workdir = workdir
        self.audit_log = workdir / "server.log"
        self.spool_dir = workdir / "spool"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / "twistd.out"
        self.logfile = workdir / "twistd.log"
        if command is None:
            command = [
                sys.executable, "-c",
                "import sys; from twisted.scripts.twistd import run; "
                "sys.argv[0] = 'twistd'; run()",
                "-n", f"--reactor={reactor}", f"--logfile={self.logfile}",
                f"--pidfile={workdir / 'twistd.pid'}",
                "chatnet", "--port", "tcp:0:interface=127.0.0.1",
                "--audit-log", str(self.audit_log), "--spool-dir", str(self.spool_dir),
                "--max-clients", str(max_clients), *unlimited(source), *(extra or []),
            ]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(source), env.get("PYTHONPATH", "")) if p
        )
        self.command = command
        with open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        self.port = _wait_listening(self.proc, [self.stdout_path, self.logfile], 60)

    def audit_count(self, category: str) -> int:
        tag = f"[{category}]".encode()
        try:
            with open(self.audit_log, "rb") as f:
                return sum(1 for line in f if tag in line)
        except OSError:
            return -1

    def spool_files(self) -> int:
        return sum(len(files) for _, _, files in os.walk(self.spool_dir))


NGIRCD_CONF = """\
[Global]
Name = bench.invalid
Info = chatnet benchmark reference
AdminInfo1 = bench
AdminInfo2 = bench
AdminEMail = bench@bench.invalid
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = "bench"
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 16
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 120
[Options]
DNS = no
Ident = no
PAM = no
IncludeDir = {confdir}
"""


def ngircd_path() -> str | None:
    return shutil.which("ngircd") or (
        "/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None
    )


def ngircd_version() -> str | None:
    exe = ngircd_path()
    if not exe:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].split("-")[0] if out else "ngircd"


class NgircdServer(Server):
    """ngircd in the foreground with a generated config on a loopback port."""

    name = "ngircd"

    def __init__(self, workdir: Path) -> None:
        exe = ngircd_path()
        if not exe:
            raise BenchError("ngircd not installed")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        confdir = workdir / "conf.d"
        confdir.mkdir(exist_ok=True)
        os.chmod(workdir, 0o755)
        self.port = free_port()
        conf = workdir / "ngircd.conf"
        conf.write_text(NGIRCD_CONF.format(port=self.port, confdir=confdir))
        os.chmod(conf, 0o644)
        self.stdout_path = workdir / "ngircd.out"
        with open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [exe, "-n", "-f", str(conf)], cwd=workdir, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pid = self.proc.pid
        _wait_port(self, "ngircd", 20)


#: bench/inspircd.conf: Debian's stock InspIRCd 3 configuration with the
#: benchmark's limits lifted, each change commented; {placeholders} filled here.
INSPIRCD_CONF = BENCH / "inspircd.conf"


def inspircd_path() -> str | None:
    return shutil.which("inspircd") or (
        "/usr/sbin/inspircd" if os.path.exists("/usr/sbin/inspircd") else None
    )


def inspircd_version() -> str | None:
    """``InspIRCd-3.15.0`` (the Debian suffix dropped), or None when not installed."""
    exe = inspircd_path()
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.strip().splitlines()[0] if out.strip() else "InspIRCd"
    return first.removesuffix("-debian")


class InspircdServer(Server):
    """
    InspIRCd in the foreground (``--nofork``) with bench/inspircd.conf on a
    free loopback port, as the user the runner runs as (``--runasroot`` when
    that is root, which InspIRCd otherwise refuses).
    """

    name = "inspircd"
    #: InspIRCd 3 completes a client's registration (001) only on its
    #: once-a-second timer, however fast NICK and USER came: with the
    #: generator's usual 8 clients setting up at once, 15,000 would take half
    #: an hour.  It keeps this many setting up at once instead.
    setup_concurrency = 1000

    def __init__(self, workdir: Path, max_clients: int = 10_000) -> None:
        exe = inspircd_path()
        if not exe:
            raise BenchError("inspircd not installed")
        version = inspircd_version() or ""
        if not version.startswith("InspIRCd-3."):
            raise BenchError(f"bench/inspircd.conf is InspIRCd 3's syntax; found {version!r}")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)
        self.port = free_port()
        motd = workdir / "motd.txt"
        motd.write_text("bench\n")
        conf = workdir / "inspircd.conf"
        conf.write_text(INSPIRCD_CONF.read_text(encoding="utf-8").format(
            port=self.port, motd=motd, pidfile=workdir / "inspircd.pid",
            max_clients=max_clients))
        os.chmod(conf, 0o644)
        self.stdout_path = workdir / "inspircd.out"
        command = [exe, "--config", str(conf), "--nofork"]
        if os.geteuid() == 0:
            command.append("--runasroot")
        with open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        _wait_port(self, "inspircd", 20)


def _wait_port(server: Server, name: str, timeout: float) -> None:
    """Wait until ``server`` accepts a connection on its port (stop it if not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{name} exited: {tail(server.stdout_path, 2000)}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise BenchError(f"{name} did not listen within {timeout:.0f}s: {tail(server.stdout_path, 600)}")


# ---- the machine ----


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str, cwd: Path = ROOT) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine(reactor: str, source: Path = ROOT) -> dict[str, Any]:
    import twisted

    cc = shutil.which(os.environ.get("CC", "cc")) or "cc"
    try:
        cc_version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cc_version = "unknown"
    commit = _git("rev-parse", "--short", "HEAD", cwd=source)
    if _git("status", "--porcelain", "--untracked-files=no", "--", "chatnet", "twisted", cwd=source):
        commit += "+dirty"
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "reactor": reactor,
        "cc": cc_version,
        "ngircd": ngircd_version() or "not installed",
        "inspircd": inspircd_version() or "not installed",
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "commit": commit,
        "source": str(source),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def workdir(base: Path | None, name: str) -> Path:
    root = base or Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"chatnet-bench-{name}-", dir=root))


def tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def write_json_line(stream: IO[str], obj: dict[str, Any]) -> None:
    stream.write(json.dumps(obj, sort_keys=True) + "\n")
    stream.flush()


# ---- clusters ----


class Nodes:
    """
    The chatnet servers of one case: a single server (``redis`` None), or a
    cluster, a ``redis-server`` and nodes ``a``, ``b``, ... using it
    (``twistd chatnet --cluster redis://... --node-id a``), each in a folder of
    its own.  ``pids``/``ports`` are the nodes'.
    """

    def __init__(self, servers: list[ChatnetServer], redis: RedisServer | None = None,
                 lease: float | None = None) -> None:
        self.servers = servers
        self.redis = redis
        self.lease = lease

    @classmethod
    def single(cls, workdir: Path, **kw: Any) -> Nodes:
        return cls([ChatnetServer(workdir, **kw)])

    @classmethod
    def cluster(cls, workdir: Path, count: int, lease: float, extra: list[str] | None = None,
                **kw: Any) -> Nodes:
        """Start Redis, then ``count`` nodes (a failure stops what started)."""
        try:
            redis = start_redis(workdir / "redis", timeout=20.0)
        except RedisError as e:
            raise BenchError(str(e)) from None
        nodes = cls([], redis, lease)
        node_id = "a"
        try:
            for node_id in "abcdefgh"[:count]:
                nodes.servers.append(ChatnetServer(
                    workdir / f"node-{node_id}",
                    extra=[*(extra or []), "--cluster", redis.url, "--node-id", node_id,
                           "--cluster-lease", f"{lease:g}"], **kw))
        except BenchError as e:
            nodes.stop()
            lines = [line for line in str(e).splitlines() if line.strip()]
            raise BenchError(f"cluster node {node_id}: {lines[0]} ... "
                             + " | ".join(line.strip() for line in lines[-4:])) from None
        except BaseException:
            nodes.stop()
            raise
        return nodes

    @property
    def clustered(self) -> bool:
        return self.redis is not None

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers]

    def sample(self) -> list[Sample]:
        """One :func:`sample` of each node."""
        return [sample(pid) for pid in self.pids]

    def redis_sample(self) -> Sample | None:
        if self.redis is None or not self.redis.alive():
            return None
        return sample(self.redis.pid)

    def alive(self) -> bool:
        return all(s.alive() or s.stopped for s in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in self.servers:
            server.stop()
        if self.redis is not None:
            self.redis.stop()

    def audit_counts(self, category: str) -> list[int]:
        return [s.audit_count(category) for s in self.servers]

    def spool_files(self) -> int:
        return sum(s.spool_files() for s in self.servers)

    def describe_death(self) -> str:
        dead = [s for s in self.servers if not s.alive() and not s.stopped]
        return "; ".join(f"node {s.workdir.name} died: {tail(s.stdout_path, 600)}" for s in dead)


def cpu_sum(a: list[Sample], b: list[Sample]) -> float:
    """Cores the processes of two lists of samples used, in all."""
    return sum(cpu_share(x, y) for x, y in zip(a, b, strict=True))
