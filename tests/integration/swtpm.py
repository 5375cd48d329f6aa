"""A software TPM (swtpm) driven with tpm2-tools, producing real `tpm` evidence.

SwTpm().start() runs swtpm on free loopback ports; make_evidence(nonce, init_hash) creates
an RSA AK, extends PCR8 with the init-data hash (so PCR8 = SHA-256(0^32 || hash)), quotes
all 24 SHA-256 PCRs with the nonce as qualifying data, and returns the evidence document
of as-rvps.md §5.8.
"""
import base64
import os
import re
import socket
import subprocess

import harness


class SwTpm:
    def __init__(self):
        self.dir = harness.tmpdir("swtpm-")
        # the swtpm TCTI of tpm2-tools talks to the control channel on port + 1
        while True:
            self.port = harness.free_port()
            self.ctrl = self.port + 1
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", self.ctrl))
                break
            except OSError:
                continue
        os.makedirs(os.path.join(self.dir, "state"))
        self.daemon = harness.Daemon(
            "swtpm-%d" % self.port,
            ["swtpm", "socket", "--tpmstate", "dir=" + os.path.join(self.dir, "state"), "--tpm2",
             "--server", "type=tcp,port=%d,bindaddr=127.0.0.1" % self.port,
             "--ctrl", "type=tcp,port=%d,bindaddr=127.0.0.1" % self.ctrl,
             "--flags", "not-need-init,startup-clear"], self.port)
        self.env = dict(os.environ, TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=%d" % self.port)
        self.ak_ready = False

    def start(self):
        self.daemon.start()
        return self

    def stop(self):
        self.daemon.stop()

    def tpm(self, *args):
        r = subprocess.run(list(args), cwd=self.dir, env=self.env, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (args[0], r.stderr.decode(errors="replace")))
        return r.stdout.decode(errors="replace")

    def create_ak(self):
        self.tpm("tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub")
        self.tpm("tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-g", "sha256",
                 "-s", "rsassa", "-u", "ak.pem", "-f", "pem", "-n", "ak.name")
        self.tpm("tpm2_flushcontext", "-t")
        self.tpm("tpm2_flushcontext", "-s")
        pem = open(os.path.join(self.dir, "ak.pem")).read()
        body = "".join(l for l in pem.splitlines() if "-----" not in l)
        self.ak_public = body  # base64 of the DER SubjectPublicKeyInfo
        self.ak_ready = True

    def extend_pcr8(self, digest):
        self.tpm("tpm2_pcrextend", "8:sha256=" + digest.hex())

    def pcrs(self):
        out = self.tpm("tpm2_pcrread", "sha256:" + ",".join(str(i) for i in range(24)))
        vals = {}
        for m in re.finditer(r"^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})", out, re.M):
            vals[int(m.group(1))] = m.group(2).lower()
        return [vals[i] for i in range(24)]

    def quote(self, nonce):
        if not self.ak_ready:
            self.create_ak()
        self.tpm("tpm2_quote", "-c", "ak.ctx", "-l",
                 "sha256:" + ",".join(str(i) for i in range(24)),
                 "-q", nonce.hex(), "-m", "msg.bin", "-s", "sig.bin", "-g", "sha256")
        self.tpm("tpm2_flushcontext", "-t")
        msg = open(os.path.join(self.dir, "msg.bin"), "rb").read()
        sig = open(os.path.join(self.dir, "sig.bin"), "rb").read()
        return {
            "ak_public": self.ak_public,
            "tpm_quote": {
                "signature": base64.b64encode(sig).decode(),
                "message": base64.b64encode(msg).decode(),
                "pcrs": self.pcrs(),
            },
        }
