#!/usr/bin/python3
"""-V and --version on every binary: "<name> <version>" on stdout and exit 0, as Trustee's
binaries answer (image health checks and scripts ask for it), one version string shared by
all of them and equal to the one the Makefile generated (build/gen/ctrustee_version.h).
The version flag wins over missing required arguments, so it works with no config at hand."""
import os
import re
import subprocess

from harness import BIN, BUILD, Tap

BINARIES = ["kbs", "grpc-as", "restful-as", "rvps", "rvps-tool", "kbs-client", "evidence-verify", "rego"]


def generated_version():
    with open(os.path.join(BUILD, "gen", "ctrustee_version.h")) as f:
        m = re.search(r'#define CTRUSTEE_VERSION "([^"]+)"', f.read())
    return m.group(1) if m else None


def main():
    t = Tap()
    want = generated_version()
    t.ok(want and want != "unknown", "the Makefile generated a version string", want)
    seen = set()
    for name in BINARIES:
        path = os.path.join(BIN, name)
        if not t.ok(os.access(path, os.X_OK), "%s is built" % name):
            continue
        for flag in ("-V", "--version"):
            p = subprocess.run([path, flag], capture_output=True, text=True, timeout=20)
            t.ok(p.returncode == 0 and p.stdout == "%s %s\n" % (name, want),
                 "%s %s prints '%s <version>' and exits 0" % (name, flag, name),
                 "rc=%d out=%r err=%r" % (p.returncode, p.stdout, p.stderr[-200:]))
            seen.add(p.stdout.split(" ", 1)[-1])
    t.ok(len(seen) == 1, "every binary prints the same version", seen)
    p = subprocess.run([os.path.join(BIN, "kbs"), "--nope"], capture_output=True, text=True,
                       timeout=20)
    t.ok(p.returncode == 2, "an unknown flag is still refused (kbs --nope)", p.stderr[-200:])
    t.done()


if __name__ == "__main__":
    main()
