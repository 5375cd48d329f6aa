"""An Arm CCA guest through the whole stack: kbs → grpc-as (CCA_CONFIG_FILE: a TA store with
a test CPAK and its RV store) → rvps on Redis. The attester forges its CCA token under test
keys (cca_forge.py) with the realm challenge bound to the KBS nonce and its key (SHA-384 of
the canonical runtime data, zero-padded to 64), gets an EAR with a cpu0 submod, and a resource
policy that requires the realm image the guest claims releases the secret. A token whose
platform does not vouch for its RAK, and one for another nonce, are refused at /attest."""
import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric import ec

import cca_forge as F
from harness import Redis, Tap, tmpdir
from kbs_testlib import Attester, Kbs, Pki, RealAs, jcs, kbs_config, real_as_available, require_kbs

POLICY = """package policy
import rego.v1
default allow := false
allow if {
	input.submods.cpu0["ear.veraison.annotated-evidence"].cca.realm["cca-realm-initial-measurement"] == "%s"
}
""" % base64.b64encode(F.RIM).decode()


class CcaAttester(Attester):
    def __init__(self, kbs, cpak, rak, **forge):
        super().__init__(kbs, tee="cca")
        self.cpak, self.rak, self.forge = cpak, rak, forge

    def evidence(self, nonce=None, bind=True, additional=""):
        rd = {"tee-pubkey": self.pubkey, "nonce": nonce or self.nonce,
              "additional-evidence": additional}
        digest = hashlib.sha384(jcs(rd) if bind else b"other").digest()
        tok = F.token(self.cpak, self.rak, digest + bytes(16), **self.forge)
        return {"token": list(tok)}


def main():
    require_kbs()
    t = Tap()
    if not real_as_available():
        t.skip("cca through kbs", "grpc-as or rvps not built")
        t.done()
    cpak, rak = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    cfg = F.write_config(tmpdir("kbs-cca-"), cpak)
    pki = Pki()
    redis = Redis().start()
    asvc = RealAs(pki, redis, env={"CCA_CONFIG_FILE": cfg})
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr)).start()
    kbs.set_policy(pki, POLICY)
    kbs.set_resource(pki, "default/cca/secret", b"released to a measured realm")

    a = CcaAttester(kbs, cpak, rak)
    t.ok(a.rcar() is not None, "RCAR as the cca TEE with a forged token bound to the nonce")
    st, _, data = a.get("default/cca/secret")
    t.ok(st == 200 and a.decrypt(data) == b"released to a measured realm",
         "the realm image the policy requires: secret released and decrypted", data)

    b = CcaAttester(kbs, cpak, rak, rim=hashlib.sha256(b"other image").digest())
    b.auth()
    st, _, data = b.attest()
    t.ok(st == 401 and b"realm appraisal" in data, "a realm image the RV store lacks is refused",
         data)
    other = ec.generate_private_key(ec.SECP384R1())
    c = CcaAttester(kbs, cpak, rak, binding=hashlib.sha256(F.point(other)).digest())
    c.auth()
    st, _, data = c.attest()
    t.ok(st == 401 and b"platform challenge is not the sha-256" in data,
         "a RAK the platform does not vouch for is refused", data)
    d = CcaAttester(kbs, cpak, rak)
    d.auth()
    st, _, data = d.attest(bind=False)
    t.ok(st == 401 and b"challenge does not match" in data, "a token for another nonce is refused",
         data)
    t.done()


if __name__ == "__main__":
    main()
