"""GPU RIMs from the RVPS (nvidia_verifier.rims_from_rvps): the real H100 sample report appraised
through grpc-as, whose RVPS is a real rvps with the swid extractor trusting a test root. The
supply chain registers NVIDIA-style driver and VBIOS RIMs (rim_forge.py: signed under the test
root by the xmlsec1 CLI, built for the sample report's measurements, since the testdata RIMs
are for another driver and VBIOS) with `rvps-tool register`; the extractor also stores each
one's active measurements under nvidia_rim/GH100/<version>, and the next GPU appraisal uses
them. Before registration the GPU is refused naming the reference value it looked for; with
both RIMs it passes; a VBIOS RIM with a changed measurement 12 refuses naming the index; a
value of that name registered by the sample extractor or from an unsigned RIM refuses (its
provenance is not a verified signature); the RIM registered again through the KBS admin API
(`kbs-client config set-reference-value --type swid`) passes; with the RVPS down the appraisal
is UNAVAILABLE.
A GPU that fails is a contraindicated gpu0 whose annotation says why (the request succeeds)."""
import base64
import json
import os
import subprocess

import grpc

import harness
from harness import BIN, Daemon, free_port, tmpdir
from kbs_testlib import Kbs, Pki, kbs_config

import attestation_pb2 as A  # noqa: E402
from rim_forge import RimSigner

NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
TD = harness.testdata("evidence", "nvidia", "trustee")
DRIVER, VBIOS = "550.90.07", "96.00.9F.00.01"  # the sample report's, as NVIDIA writes them
DRV_RV, VB_RV = "nvidia_rim/GH100/550.90.07", "nvidia_rim/GH100/96.00.9f.00.01"


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def message(typ, raw):
    return json.dumps({"version": "0.1.0", "type": typ, "payload": base64.b64encode(raw).decode()})


class Stack:
    def __init__(self, d, rim_root):
        self.d = d
        rport, self.aport = free_port(), free_port()
        self.raddr = "127.0.0.1:%d" % rport
        json.dump({"storage": {"storage_type": "Memory"},
                   "extractors": {"swid_extractor": {"trust_anchors": [rim_root]}}},
                  open(os.path.join(d, "rvps.json"), "w"))
        self.rvps = Daemon("rvps", [os.path.join(BIN, "rvps"), "--config", os.path.join(d, "rvps.json"),
                                    "--address", self.raddr], rport).start()
        json.dump({"rvps_config": {"type": "GrpcRemote", "address": self.raddr},
                   "verifier_config": {"nvidia_verifier": {"type": "Local", "rims_from_rvps": True}}},
                  open(os.path.join(d, "as.json"), "w"))
        self.gas = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % self.aport,
                                      "--config-file", os.path.join(d, "as.json")], self.aport).start()
        self.pki = Pki()
        self.kbs = Kbs(kbs_config(self.pki, as_addr="http://127.0.0.1:%d" % self.aport)).start()
        self.n = 0

    def kbs_client_register(self, xml):
        """kbs-client config set-reference-value --type swid with the RIM file, through the kbs's
        admin API to grpc-as and on to the rvps."""
        rim, tok = os.path.join(self.d, "kbs-rim.xml"), os.path.join(self.d, "admin-token")
        open(rim, "wb").write(xml)
        open(tok, "w").write(self.pki.admin_token())
        return subprocess.run([os.path.join(BIN, "kbs-client"), "--url", "http://127.0.0.1:%d" % self.kbs.port,
                               "config", "--admin-token-file", tok, "set-reference-value", "--type", "swid",
                               "--payload-file", rim], capture_output=True, text=True, timeout=60)

    def register(self, msg):
        self.n += 1
        path = os.path.join(self.d, "msg%d.json" % self.n)
        open(path, "w").write(msg)
        return subprocess.run([os.path.join(BIN, "rvps-tool"), "register", "--path", path, "--addr",
                               "http://" + self.raddr], capture_output=True, text=True, timeout=30)

    def appraise(self):
        """(gpu0 submod, None) or (None, grpc error)."""
        ev = {"device_evidence_list": [{
            "arch": "HOPPER", "uuid": "GPU-sample",
            "evidence": open(os.path.join(TD, "hopperAttestationReport.txt")).read().strip(),
            "certificate": base64.b64encode(open(os.path.join(TD, "hopper_cert_chain_case1.txt"), "rb").read()).decode()}]}
        req = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
            tee="nvidia", evidence=b64u(json.dumps(ev).encode()),
            raw_runtime_data=b64u(bytes.fromhex(NONCE)))], policy_ids=["default"])
        ch = grpc.insecure_channel("127.0.0.1:%d" % self.aport)
        call = ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                              request_serializer=A.AttestationRequest.SerializeToString,
                              response_deserializer=A.AttestationResponse.FromString)
        try:
            tok = call(req, timeout=30).attestation_token
            p = tok.split(".")[1]
            return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["submods"]["gpu0"], None
        except grpc.RpcError as e:
            return None, e
        finally:
            ch.close()

    def stop(self):
        self.kbs.stop()
        self.gas.stop()
        self.rvps.stop()


def why(gpu):
    return gpu["ear.veraison.annotated-evidence"]["nvidia"].get("verification_error")


def main():
    t = harness.Tap()
    d = tmpdir("nv-rvps-rim-")
    signer = RimSigner(d)
    golden = json.load(open(os.path.join(TD, "hopperAttestationReport-claims.txt")))["measurements"]

    def active(indices, wrong=None):
        """{rim index: [hex]} with the report's block (index + 1) values; `wrong` altered."""
        out = {}
        for i in indices:
            h = golden[str(i + 1)]
            out[i] = [("b" if h[0] == "a" else "a") + h[1:]] if i == wrong else [h]
        return out

    vb_idx = list(range(0, 7)) + list(range(8, 13))
    drv_idx = [7] + list(range(21, 41))
    # the driver RIM gives index 30 two alternatives, the report's second
    drv = active(drv_idx)
    drv[30] = ["%096d" % 2, drv[30][0]]
    s = Stack(d, signer.root)
    try:
        gpu, e = s.appraise()
        t.ok(gpu is not None and gpu["ear.status"] == "contraindicated" and
             "no driver RIM for this device: the RVPS holds no " + DRV_RV in (why(gpu) or ""),
             "before any RIM is registered the GPU is refused naming the reference value looked for",
             e and e.details() or gpu)

        p = s.register(message("swid", signer.rim(DRIVER, drv)))
        t.ok(p.returncode == 0, "rvps-tool registers the signed driver RIM", p.stderr)
        gpu, e = s.appraise()
        t.ok(gpu is not None and "the RVPS holds no " + VB_RV in (why(gpu) or ""),
             "with only the driver RIM: refused for the missing VBIOS RIM (version lower-cased)",
             e and e.details() or gpu)

        p = s.register(message("swid", signer.rim(VBIOS, active(vb_idx))))
        t.ok(p.returncode == 0, "rvps-tool registers the signed VBIOS RIM", p.stderr)
        q = subprocess.run([os.path.join(BIN, "rvps-tool"), "query", "--reference-value-id", VB_RV,
                            "--addr", "http://" + s.raddr], capture_output=True, text=True, timeout=30)
        t.ok(q.returncode == 0 and golden["13"] in q.stdout and '"12"' in q.stdout,
             "the RVPS holds the VBIOS RIM's measurements by index under " + VB_RV, q.stdout[:300])
        gpu, e = s.appraise()
        t.ok(gpu is not None and why(gpu) is None and
             gpu["ear.veraison.annotated-evidence"]["nvidia"]["measurements"]["13"] == golden["13"],
             "both RIMs registered: the next GPU appraisal passes its measurements against them",
             e and e.details() or gpu)
        nv = gpu["ear.veraison.annotated-evidence"]["nvidia"] if gpu else {}
        tv = gpu["ear.trustworthiness-vector"] if gpu else {}
        t.ok(nv.get("rim_status") == "verified" and tv.get("hardware") == 2 and
             tv.get("executables") == 3 and gpu["ear.status"] == "warning",
             "its claims say rim_status verified; default_gpu: hardware 2, executables 3, "
             "warning while its versions are not reference values", (nv.get("rim_status"), tv))
        p = s.register(message("sample", json.dumps({
            "allowed_vbios_versions": [nv.get("config", {}).get("vbios_version")],
            "allowed_driver_versions": [nv.get("config", {}).get("driver_version")]}).encode()))
        gpu, e = s.appraise()
        t.ok(p.returncode == 0 and gpu is not None and gpu["ear.status"] == "affirming" and
             gpu["ear.trustworthiness-vector"]["configuration"] == 2,
             "with its VBIOS and driver versions registered too, the GPU is affirming under "
             "default_gpu", e and e.details() or gpu)

        s.register(message("swid", signer.rim(VBIOS, active(vb_idx, wrong=12))))
        gpu, e = s.appraise()
        t.ok(gpu is not None and "measurement 12 (SPDM block 13) matches none of the VBIOS RIM's values"
             in (why(gpu) or ""), "a VBIOS RIM with another measurement 12: refused naming the index",
             e and e.details() or gpu)

        s.register(message("swid", signer.rim(VBIOS, active(vb_idx), signed=False)))
        gpu, e = s.appraise()
        t.ok(gpu is not None and "but not from a signed RIM" in (why(gpu) or ""),
             "an unsigned RIM of that version: refused (its provenance has no verified signature)",
             e and e.details() or gpu)

        fake = {VB_RV: {str(k): v for k, v in active(vb_idx).items()}}
        s.register(message("sample", json.dumps(fake).encode()))
        gpu, e = s.appraise()
        t.ok(gpu is not None and "but not from a signed RIM" in (why(gpu) or ""),
             "the same measurements registered by the sample extractor: refused", e and e.details() or gpu)

        other = RimSigner(tmpdir("nv-rvps-rim-other-"))
        p = s.register(message("swid", other.rim(VBIOS, active(vb_idx))))
        t.ok(p.returncode != 0 and "signature" in (p.stdout + p.stderr),
             "a RIM signed under another root is refused by the RVPS at registration", p.stdout + p.stderr)

        p = s.kbs_client_register(signer.rim(VBIOS, active(vb_idx)))
        t.ok(p.returncode == 0 and "Reference Values Updated" in p.stdout,
             "kbs-client config set-reference-value --type swid registers the signed VBIOS RIM again",
             p.stdout + p.stderr)
        gpu, e = s.appraise()
        t.ok(gpu is not None and why(gpu) is None, "registered through the kbs: the next appraisal passes",
             e and e.details() or gpu)

        s.rvps.stop()
        gpu, e = s.appraise()
        t.ok(e is not None and e.code() == grpc.StatusCode.UNAVAILABLE and "RVPS" in e.details(),
             "RVPS down: the GPU appraisal is UNAVAILABLE (retry), not a refusal",
             e and (e.code(), e.details()) or gpu)
    finally:
        s.stop()
    t.done()


if __name__ == "__main__":
    main()
