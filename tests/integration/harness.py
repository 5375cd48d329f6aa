"""Shared test harness: free loopback ports, real daemons, real redis-server and postgres,
TAP output.

Every integration test starts what it needs on ports it picks, and stops it at exit (also
when the test fails). Daemons' logs go to build/test-logs/<test>/<name>.log so a failure
can be read afterwards.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("CTRUSTEE_BUILD", "build"))
BIN = os.path.join(BUILD, "bin")


def shared_dir():
    cand = [os.environ.get("CTRUSTEE_SHARED"), os.path.join(ROOT, "..", "shared"), "/work/shared"]
    for c in cand:
        if c and os.path.isdir(os.path.join(c, "testdata")):
            return os.path.abspath(c)
    raise RuntimeError("../shared/testdata not found (set CTRUSTEE_SHARED)")


def testdata(*parts):
    return os.path.join(shared_dir(), "testdata", *parts)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_or_exit(args, port, timeout=15.0):
    """Runs a daemon until it listens on `port` or exits, for checks of what it says as it
    starts: (None, "(running) " + its output) once it listens (it is then killed), else (its
    exit status, its output). One that does neither within `timeout` counts as running. The
    keys and files a daemon checks are read before it listens, so waiting for the port (not
    a fixed 3 s) sees every start-up message."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_port(port, timeout, p)
    if p.poll() is None:
        p.kill()
        out, _ = p.communicate()
        return None, "(running) " + out.decode(errors="replace")
    out, _ = p.communicate()
    return p.returncode, out.decode(errors="replace")


_procs = []
_tmpdirs = []


def tmpdir(prefix="ctrustee-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


class Daemon:
    """A child process listening on a TCP port; `args` is the full argv."""

    def __init__(self, name, args, port, env=None, cwd=None, logdir=None):
        self.name, self.args, self.port = name, list(args), port
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        test = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        self.logdir = logdir or os.path.join(BUILD, "test-logs", test)
        os.makedirs(self.logdir, exist_ok=True)
        self.logpath = os.path.join(self.logdir, name + ".log")
        self.proc = None

    def start(self, timeout=15.0):
        log = open(self.logpath, "ab")
        log.write(("\n=== start %s\n" % " ".join(self.args)).encode())
        log.flush()
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=self.cwd, start_new_session=True)
        log.close()
        _procs.append(self)
        if not wait_port(self.port, timeout, self.proc):
            raise RuntimeError("%s did not listen on %d; log %s:\n%s" %
                               (self.name, self.port, self.logpath, self.log_tail()))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self, timeout=15.0):
        self.stop()
        return self.start(timeout)

    def log_text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0


class Redis(Daemon):
    def __init__(self, port=None, datadir=None, aof=False, password=None, extra=()):
        port = port or free_port()
        self.datadir = datadir or tmpdir("redis-")
        self.password = password
        args = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                "--bind", "127.0.0.1", "--dir", self.datadir, "--save", "",
                "--appendonly", "yes" if aof else "no", "--protected-mode", "no"]
        if password:
            args += ["--requirepass", password]
        super().__init__("redis-%d" % port, args + list(extra), port)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def command(self, *args):
        """One raw RESP command; returns bytes for a bulk string, None for nil, int for an
        integer, str for a status, a list for an array; raises on an error reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            cmds = ([("AUTH", self.password)] if self.password else []) + [args]
            for cmd in cmds:
                parts = [a if isinstance(a, bytes) else str(a).encode() for a in cmd]
                s.sendall(b"*%d\r\n" % len(parts) +
                          b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            f = s.makefile("rb")
            if self.password:
                _resp_read(f)
            return _resp_read(f)


class Postgres(Daemon):
    """A throwaway postgres from Debian's package: initdb into a temporary directory (as the
    "postgres" user when the tests run as root, which initdb refuses), listening on
    127.0.0.1:port, trust authentication, no fsync. stop() is a fast shutdown (SIGINT to the
    postmaster: clients are cut off, data kept); stop(SIGKILL) and signal_all() reach the
    postmaster and every backend."""

    def __init__(self, port=None):
        port = port or free_port()
        self.datadir = tmpdir("postgres-")
        bindir = subprocess.check_output(["pg_config", "--bindir"]).decode().strip()
        self.bindir = bindir
        self.prefix = []
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
            self.prefix = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                           "--clear-groups"]
        data = os.path.join(self.datadir, "data")
        subprocess.run(self.prefix + [os.path.join(bindir, "initdb"), "-D", data, "-U",
                                      "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        args = self.prefix + [os.path.join(bindir, "postgres"), "-D", data, "-p", str(port),
                              "-k", self.datadir, "-c", "listen_addresses=127.0.0.1",
                              "-c", "fsync=off"]
        super().__init__("postgres-%d" % port, args, port)

    def start(self, timeout=30.0):
        super().start(timeout)
        deadline = time.time() + timeout
        while self.psql("SELECT 1", check=False) != "1":  # listening is not yet accepting
            if time.time() > deadline:
                raise RuntimeError("postgres did not accept queries:\n" + self.log_tail())
            time.sleep(0.1)
        return self

    def pids(self):
        """The postmaster and its children (each child calls setsid(), so the postmaster's
        process group is the postmaster alone)."""
        out = [self.proc.pid]
        for d in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
        return out

    def signal_all(self, sig):
        """`sig` to the whole server: SIGSTOP stalls it, SIGKILL kills it."""
        for p in self.pids():
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        if sig == signal.SIGKILL:
            self.signal_all(signal.SIGKILL)
        if sig == signal.SIGTERM:  # postgres' SIGTERM waits for clients to leave: fast instead
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
                return self.proc.returncode
            except subprocess.TimeoutExpired:
                sig = signal.SIGKILL
        return super().stop(sig, timeout)

    @property
    def storage(self):
        """The storage_backend table of a daemon config that uses this server."""
        return {"storage_type": "Postgres",
                "backends": {"postgres": {"host": "127.0.0.1", "port": self.port,
                                          "db": "postgres", "username": "postgres"}}}

    @property
    def url(self):
        return "postgresql://postgres@127.0.0.1:%d/postgres" % self.port

    def psql(self, sql, check=True):
        """One statement through psql; its unaligned output, stripped."""
        r = subprocess.run([os.path.join(self.bindir, "psql"), "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", "postgres", "-d", "postgres", "-AtX", "-c",
                            sql], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr.strip())
        return r.stdout.strip()


def _resp_read(f):
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b":":
        return int(rest)
    if kind == b"+":
        return rest.decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise RuntimeError("redis error: %s" % line.decode(errors="replace").strip())


def _cleanup():
    for d in reversed(_procs):
        try:
            d.stop(timeout=5)
        except Exception:
            pass
    for t in _tmpdirs:
        shutil.rmtree(t, ignore_errors=True)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


class Tap:
    """TAP producer: t.ok(cond, name, diag) ... t.done() (exits non-zero on any failure)."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name), flush=True)
        if not cond:
            self.failed += 1
            if diag:
                for line in str(diag).splitlines():
                    print("#   " + line)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def run(self, fn, *args):
        """Run one test function; an exception is one failure named after the function."""
        name = fn.__name__
        try:
            fn(self, *args)
        except Exception:
            self.ok(False, name, traceback.format_exc())

    def done(self):
        print("1..%d" % self.n)
        sys.exit(1 if self.failed else 0)
