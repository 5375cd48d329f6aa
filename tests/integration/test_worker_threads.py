#!/usr/bin/python3
"""grpc-as and rvps size their gRPC handler threads from the CPUs (4 per online CPU, 4..256,
common/workers.h) unless the config's `worker_threads` or the `--worker-threads` flag says
otherwise, the flag winning; the count shows in the threads the kernel lists for the process
(/proc/<pid>/status), and a daemon with a single handler still serves concurrent calls."""
import concurrent.futures
import json
import os
import re
import subprocess

import grpc

import health_pb2
import reference_pb2
from harness import BIN, Daemon, Tap, free_port, tmpdir

SERVICE = "reference.ReferenceValueProviderService"
HANDLERS_RE = re.compile(r"(\d+) handler threads")


def cpus_default():
    n = 4 * os.cpu_count()
    return max(4, min(256, n))


def write_config(cfg):
    path = os.path.join(tmpdir("workers-"), "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def start(daemon, flag=None, config=None):
    """The daemon on a free port with a channel to it, health checked once so whatever starts
    lazily has started before threads are counted."""
    port = free_port()
    addr = "127.0.0.1:%d" % port
    if daemon == "rvps":
        args = [os.path.join(BIN, "rvps"), "--address", addr,
                "--config", write_config(config if config is not None else {})]
    else:
        args = [os.path.join(BIN, "grpc-as"), "--socket", addr]
        if config is not None:
            args += ["--config-file", write_config(config)]
    if flag is not None:
        args += ["--worker-threads", str(flag)]
    cfg = "" if config is None else "-cfg%s" % config.get("worker_threads")
    d = Daemon("%s-flag%s%s" % (daemon, flag, cfg), args, port).start()
    ch = grpc.insecure_channel(addr)
    health(ch)
    return d, ch


def health(ch):
    rpc = ch.unary_unary("/grpc.health.v1.Health/Check",
                         request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                         response_deserializer=health_pb2.HealthCheckResponse.FromString)
    return rpc(health_pb2.HealthCheckRequest(service=""), timeout=10).status


def threads(d):
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def handlers_logged(d):
    m = HANDLERS_RE.findall(d.log_text())
    return int(m[-1]) if m else None


def stop(d, ch):
    ch.close()
    d.stop()


def query_rpc(ch):
    return ch.unary_unary("/%s/QueryReferenceValue" % SERVICE,
                          request_serializer=reference_pb2.ReferenceValueQueryRequest.SerializeToString,
                          response_deserializer=reference_pb2.ReferenceValueQueryResponse.FromString)


def test_flag_sets_the_thread_count(t, daemon):
    """--worker-threads 1 and 33: the log names the count and the process has 32 more threads
    (the handlers; the front's loop and a few others come on top)."""
    one, ch1 = start(daemon, flag=1)
    many, ch2 = start(daemon, flag=33)
    n1, n33 = threads(one), threads(many)
    t.eq(handlers_logged(one), 1, "%s --worker-threads 1 logs 1 handler thread" % daemon)
    t.eq(handlers_logged(many), 33, "%s --worker-threads 33 logs 33 handler threads" % daemon)
    t.ok(32 <= n33 - n1 <= 48, "%s: 33 handlers run 32 more threads than 1 (%d vs %d)"
         % (daemon, n33, n1))
    stop(one, ch1)
    stop(many, ch2)


def test_default_is_from_the_cpus(t, daemon):
    d, ch = start(daemon)
    t.eq(handlers_logged(d), cpus_default(),
         "%s without flag or key runs 4 handlers per CPU (%d CPUs)" % (daemon, os.cpu_count()))
    stop(d, ch)


def test_config_key_and_flag_precedence(t, daemon):
    d, ch = start(daemon, config={"worker_threads": 17})
    base, chb = start(daemon, config={"worker_threads": 1})
    t.eq(handlers_logged(d), 17, "%s config worker_threads 17 is honoured" % daemon)
    t.ok(16 <= threads(d) - threads(base) <= 32,
         "%s: worker_threads 17 runs 16 more threads than 1 (%d vs %d)"
         % (daemon, threads(d), threads(base)))
    stop(d, ch)
    stop(base, chb)
    d, ch = start(daemon, flag=2, config={"worker_threads": 17})
    t.eq(handlers_logged(d), 2, "%s --worker-threads beats the config key" % daemon)
    stop(d, ch)
    d, ch = start(daemon, flag=0, config={"worker_threads": 0})
    t.eq(handlers_logged(d), cpus_default(), "%s worker_threads 0 means from the CPUs" % daemon)
    stop(d, ch)


def test_bad_values_refused(t, daemon):
    exe = os.path.join(BIN, daemon)
    addr_flag = "--address" if daemon == "rvps" else "--socket"
    addr = "127.0.0.1:%d" % free_port()
    cases = [(["--worker-threads", "many"], "--worker-threads must be an integer"),
             (["--worker-threads", "1025"], "--worker-threads must be an integer"),
             (["--config" if daemon == "rvps" else "--config-file",
               write_config({"worker_threads": -1})], "worker_threads must be an integer"),
             (["--config" if daemon == "rvps" else "--config-file",
               write_config({"worker_threads": "8"})], "worker_threads must be an integer")]
    for extra, want in cases:
        p = subprocess.run([exe, addr_flag, addr] + extra, capture_output=True, text=True,
                           timeout=30)
        t.ok(p.returncode != 0 and want in p.stdout + p.stderr,
             "%s refuses %s with a sentence" % (daemon, " ".join(extra)),
             "rc %d: %s" % (p.returncode, (p.stdout + p.stderr)[-300:]))


def test_one_handler_still_serves(t, daemon):
    """Sixteen concurrent queries through a daemon with one handler all answer: the handler
    count bounds calls in progress, not calls accepted."""
    d, ch = start(daemon, flag=1)
    t.eq(health(ch), health_pb2.HealthCheckResponse.SERVING, "%s with 1 handler is SERVING" % daemon)
    rpc = query_rpc(ch)
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        futs = [ex.submit(rpc, reference_pb2.ReferenceValueQueryRequest(
            reference_value_id="absent-%d" % i), timeout=20) for i in range(16)]
        errs = []
        for f in futs:
            try:
                f.result()
            except grpc.RpcError as e:
                errs.append(e.code())
    t.ok(not errs, "%s with 1 handler answers 16 concurrent QueryReferenceValue calls" % daemon,
         "errors: %s" % errs)
    t.ok(d.alive(), "%s still running after the calls" % daemon)
    stop(d, ch)


def main():
    t = Tap()
    for daemon in ("rvps", "grpc-as"):
        t.run(test_flag_sets_the_thread_count, daemon)
        t.run(test_default_is_from_the_cpus, daemon)
        t.run(test_config_key_and_flag_precedence, daemon)
        t.run(test_bad_values_refused, daemon)
        t.run(test_one_handler_still_serves, daemon)
    t.done()


if __name__ == "__main__":
    main()
