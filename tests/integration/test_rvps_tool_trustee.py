#!/usr/bin/python3
"""rvps-tool with Trustee's command lines (confidential-containers/trustee at 78962cd4): the
rvps/README.md quick guide run by bash as written (RVPS_ADDR rewritten to a free port), the
short flags its CCA endorsement script uses (deps/verifier/test_data/cca/scripts/
endorse-rim.sh: `register -p FILE -a ADDR`, address rewritten), `query -r ID -a ADDR`, and
`-V` on the tool and its subcommands, against a real rvps."""
import os
import subprocess

from harness import BIN, Daemon, Tap, free_port, tmpdir

# rvps/README.md "Quick guide to interact with RVPS": making the message, then registering.
README_MESSAGE = '''cat << EOF > sample
{
    "test-binary-1": [
        "reference-value-1",
        "reference-value-2"
    ],
    "test-binary-2": [
        "reference-value-3",
        "reference-value-4"
    ]
}
EOF
provenance=$(cat sample | base64 --wrap=0)
cat << EOF > message
{
    "version" : "0.1.0",
    "type": "sample",
    "payload": "$provenance"
}
EOF
'''
README_REGISTER = "rvps-tool register --path ./message --addr http://$RVPS_ADDR"
# deps/verifier/test_data/cca/scripts/endorse-rim.sh (path to the binary and address rewritten)
CCA_REGISTER = "rvps-tool register -p ${blob} -a http://$RVPS_ADDR"


def sh(d, script, addr):
    env = dict(os.environ, RVPS_ADDR=addr, PATH=BIN + ":" + os.environ["PATH"])
    return subprocess.run(["bash", "-c", "set -e\n" + script], cwd=d, env=env,
                          capture_output=True, text=True, timeout=60)


def tool(*args):
    p = subprocess.run([os.path.join(BIN, "rvps-tool")] + list(args), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def main():
    t = Tap()
    d = tmpdir("rvps-readme-")
    port = free_port()
    addr = "127.0.0.1:%d" % port
    # README: `rvps --address $RVPS_ADDR` (no config file: in-memory storage)
    rvps = Daemon("rvps", [os.path.join(BIN, "rvps"), "--address", addr], port, cwd=d).start()
    p = sh(d, README_MESSAGE + README_REGISTER, addr)
    t.ok(p.returncode == 0, "README: make the sample message and `rvps-tool register --path "
         "./message --addr http://$RVPS_ADDR`", p.stderr[-400:])
    rc, out, err = tool("query", "-r", "test-binary-1", "-a", "http://" + addr)
    t.eq((rc, out.strip()), (0, '["reference-value-1","reference-value-2"]'),
         "query -r ID -a ADDR prints the registered value")
    rc, out, err = tool("query", "--reference-value-id", "test-binary-2", "--addr",
                        "http://" + addr)
    t.eq((rc, out.strip()), (0, '["reference-value-3","reference-value-4"]'),
         "query --reference-value-id ID --addr ADDR")
    with open(os.path.join(d, "cca-blob"), "w") as f:
        f.write('{"version":"0.1.0","type":"sample","payload":"%s"}' %
                "eyJjY2EtcmltIjpbImFiYyJdfQ==")  # {"cca-rim":["abc"]}
    p = sh(d, "blob=cca-blob\n" + CCA_REGISTER, addr)
    t.ok(p.returncode == 0, "endorse-rim.sh: `rvps-tool register -p ${blob} -a ADDR`",
         p.stderr[-400:])
    rc, out, err = tool("query", "-r", "cca-rim", "-a", "http://" + addr)
    t.eq((rc, out.strip()), (0, '["abc"]'), "... and the value it registered is there")
    rc, out, err = tool("query", "-i", "cca-rim", "-a", "http://" + addr)
    t.eq((rc, out.strip()), (0, '["abc"]'), "our older -i ID still works")
    for args in (["-V"], ["--version"], ["query", "-V"], ["register", "--version"]):
        rc, out, err = tool(*args)
        t.ok(rc == 0 and out.startswith("rvps-tool ") and len(out.split()) == 2,
             "rvps-tool %s prints its version" % " ".join(args), out + err)
    rc, out, err = tool("query", "-a", "http://" + addr)
    t.ok(rc == 2, "query without -r is a usage error (Trustee's tool requires it too)", err)
    rvps.stop()
    t.done()


if __name__ == "__main__":
    main()
