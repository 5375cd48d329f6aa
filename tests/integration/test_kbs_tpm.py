"""A fresh swtpm quote through the whole stack: kbs → grpc-as → rvps on Redis. The attester
runs RCAR as the `tpm` TEE, quoting with the KBS nonce bound to its key (report data =
SHA-384 of the canonical runtime data, which the tpm verifier resizes to 32 bytes), and gets a
secret released by a resource policy that requires TPM evidence with an affirming status."""
import base64
import hashlib

from harness import Redis, Tap
from kbs_testlib import Attester, Kbs, Pki, RealAs, jcs, kbs_config, real_as_available, require_kbs
from swtpm import SwTpm

POLICY = """package policy
import rego.v1
default allow := false
allow if {
	input.submods.cpu0["ear.veraison.annotated-evidence"].tpm
	input.submods.cpu0["ear.status"] == "affirming"
}
"""


class TpmAttester(Attester):
    def __init__(self, kbs, tpm):
        super().__init__(kbs, tee="tpm")
        self.tpm = tpm

    def evidence(self, nonce=None, bind=True, additional=""):
        rd = {"tee-pubkey": self.pubkey, "nonce": nonce or self.nonce,
              "additional-evidence": additional}
        digest = hashlib.sha384(jcs(rd)).digest() if bind else hashlib.sha384(b"x").digest()
        self.last = self.tpm.quote(digest[:32])
        return self.last


def main():
    require_kbs()
    t = Tap()
    if not real_as_available():
        t.skip("tpm through kbs", "grpc-as or rvps not built")
        t.done()
    pki = Pki()
    redis = Redis().start()
    asvc = RealAs(pki, redis)
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr)).start()
    kbs.set_policy(pki, POLICY)
    kbs.set_resource(pki, "default/tpm/secret", b"released to a measured TPM")
    tpm = SwTpm().start()
    a = TpmAttester(kbs, tpm)
    t.eq(a.rcar() is not None, True, "RCAR as the tpm TEE with a fresh swtpm quote")
    st, _, data = a.get("default/tpm/secret")
    t.ok(st == 401 and b"PolicyDeny" in data, "unknown AK: warning status, the policy denies", data)
    ak, pcr11 = a.last["ak_public"], a.last["tpm_quote"]["pcrs"][11]
    msg = '{"trusted_aks":["%s"],"tpm_pcr11":["%s"]}' % (ak, pcr11)
    payload = base64.b64encode(msg.encode()).decode()
    st, _, data = kbs.admin("POST", "/kbs/v0/reference-value",
                            '{"version":"0.1.0","type":"sample","payload":"%s"}' % payload, pki)
    t.eq(st, 200, "AK and PCR11 registered through the KBS admin API")
    a = TpmAttester(kbs, tpm)
    a.rcar()
    st, _, data = a.get("default/tpm/secret")
    t.ok(st == 200 and a.decrypt(data) == b"released to a measured TPM",
         "affirming TPM evidence: secret released and decrypted", data)
    b = TpmAttester(kbs, tpm)
    st, _, _ = b.auth()
    st, _, data = b.attest(bind=False)
    t.ok(st == 401 and b"AttestationError" in data, "quote for another nonce refused", data)
    t.done()


if __name__ == "__main__":
    main()
