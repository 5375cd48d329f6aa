"""Intel Trust Authority as the kbs's attestation service (type intel_ta) and as a passport issuer,
against the ITA stand-in of ita_server.py (HTTPS on loopback, PS384/RS256 tokens signed by
python3-jwcrypto).

Trustee's kbs-config-intel-trust-authority.toml and kubernetes/ita config start with only their
URLs pointed at the stand-in (and the listening socket and storage directory made local); a TDX
guest whose quote (forged under a test root by dcap_forge.py) carries SHA-512 of its runtime data
completes the background-check flow and gets its resource as a JWE to its key; an SGX guest
does the same with SHA-256; Azure TDX vTPM evidence (the shared testdata, both evidence forms)
goes to /attest/azure with the HCL variable data and our runtime data as user_data; NVIDIA
evidence beside a TD becomes nvgpu with its gpu_nonce. A resource-only kbs that trusts only the stand-in's JWK set takes the
ITA token as a Bearer passport and wraps the resource to the RSA key in it (RSA-OAEP-256, the
key-release shape of Intel's own KBS), its resource policy reading ITA's claims. Hostile answers
(slow, huge, non-JSON, unknown key, expired, another nonce, 429, 500, bad API key, an unmatched
policy) are each refused with their reason, 401 or 503 + Retry-After, and the kbs keeps serving."""
import base64
import hashlib
import json
import os
import time

import harness
from harness import free_port, tmpdir
from ita_server import ItaStandIn
from kbs_testlib import ERR, Attester, Kbs, Pki, b64u, b64u_dec, jcs, kbs_config, require_kbs

import dcap_forge as F

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
API_KEY = "tBfd5kKX2x9ahbodKV1..."  # the placeholder in Trustee's config, left as it is
SECRET = b"ita released secret"
POLICY = """package policy
import rego.v1
default allow := false
allow if {
	data.plugin == "resource"
	input.tdx.attester_tcb_status == "UpToDate"
	input.tdx.tdx_mrtd in %s
}
allow if {
	data.plugin == "resource"
	input.sgx.attester_tcb_status == "UpToDate"
}
"""


def az_mrtd():
    """The MRTD of the Azure TD quote in the shared testdata (its v4 body starts at byte 48)."""
    ev = json.load(open(harness.testdata("evidence", "az-tdx-vtpm", "trustee", "evidence-v0.json")))
    return bytes(ev["td_quote"])[48 + 136:48 + 184].hex()


AZ_MRTD = az_mrtd()


def policy_for(*mrtds):
    return POLICY % ("{" + ", ".join('"%s"' % m for m in mrtds) + "}")


def trustee_config(name, ita, port, store, extra_as="", extra_token=""):
    text = open(os.path.join(CONFIGS, name)).read()
    text = (text.replace("https://api.trustauthority.intel.com", ita.url)
            .replace("https://portal.trustauthority.intel.com", ita.url)
            .replace("/opt/confidential-containers/storage", store)
            .replace("/opt/confidential-containers/kbs", store)
            .replace('sockets = ["0.0.0.0:8080"]', 'sockets = ["127.0.0.1:@PORT@"]'))
    if "sockets" not in text:
        text = text.replace("[http_server]\n", '[http_server]\nsockets = ["127.0.0.1:@PORT@"]\n', 1)
    if extra_token:
        text = text.replace("[attestation_token]\n", "[attestation_token]\n" + extra_token, 1)
    if extra_as:
        text = text.replace('type = "intel_ta"\n', 'type = "intel_ta"\n' + extra_as, 1)
    return text


class ItaGuest(Attester):
    """A TDX or SGX guest: its quote's REPORT_DATA is the selected hash of its runtime data."""

    def __init__(self, kbs, tee="tdx", key_type="EC-P256"):
        super().__init__(kbs, key_type=key_type, tee=tee)

    def auth_ita(self, algs=("sha384", "sha512", "sha256")):
        return self.auth(extra={"supported-hash-algorithms": list(algs)})

    def quote(self, scenario, nonce=None, hash_name=None, additional=""):
        rd = jcs({"tee-pubkey": self.pubkey, "nonce": nonce or self.nonce,
                  "additional-evidence": additional})
        s = F.copy_scenario(scenario)
        if self.tee == "tdx":
            s.body["report_data"] = hashlib.new(hash_name or "sha512", rd).digest().ljust(64, b"\0")
        else:
            s.body["report_data"] = hashlib.new(hash_name or "sha256", rd).digest().ljust(64, b"\0")
        return s.quote()

    def attest_quote(self, q):
        body = self.attest_body()
        body["tee-evidence"]["primary_evidence"] = {"quote": base64.b64encode(q).decode(),
                                                    "cc_eventlog": None}
        return self.attest(body=body)


def claims_of(token):
    h, p = token.split(".")[:2]
    return json.loads(b64u_dec(h)), json.loads(b64u_dec(p))


def main():
    require_kbs()
    t = harness.Tap()
    d = tmpdir("kbs-ita-")
    pki = Pki()
    key, chain = pki.server_cert("ita")
    env = {"SSL_CERT_FILE": pki.path("ca-cert.pem")}
    ita = ItaStandIn(chain, key, api_key=API_KEY).start()
    tdx = F.Scenario(F.PKI())
    sgx = F.Scenario(tdx.pki, tee="sgx")
    mrtd = tdx.body_bytes()[136:184].hex()

    store = os.path.join(d, "store")
    kbs = Kbs(text=trustee_config("kbs-config-intel-trust-authority.toml", ita, 0, store),
              env=env, name="kbs-ita").start()
    t.ok(True, "Trustee's kbs-config-intel-trust-authority.toml starts (URLs at the stand-in)")
    st, _, body = kbs.request("POST", "/kbs/v0/resource-policy", {"policy": b64u(policy_for(mrtd, AZ_MRTD))})
    t.ok(st == 200, "resource policy on ITA's claims set (InsecureAllowAll admin)", body)
    st, _, body = kbs.request("POST", "/kbs/v0/resource/default/ita/key", SECRET)
    t.ok(st == 200, "resource stored", body)

    # ---------------------------------------------------------------- background check, TDX
    a = ItaGuest(kbs, "tdx")
    st, _, body = a.auth_ita()
    t.ok(st == 200 and json.loads(body)["extra-params"] == {"selected-hash-algorithm": "sha512"},
         "/auth for tdx with a hash list selects sha512, as ITA hashes TDX runtime data", body)
    st, _, body = ItaGuest(kbs, "tdx").auth_ita(("sha256", "sha384"))
    t.ok(st == 401 and b"does not support sha512" in body,
         "/auth for tdx without sha512 in the list is refused", body)
    st, _, body = ItaGuest(kbs, "snp").auth_ita()
    t.ok(st == 401 and b"Unknown TEE" in body, "/auth for a TEE ITA does not appraise is refused",
         body)
    ita.requests.clear()
    st, _, body = a.attest_quote(a.quote(tdx))
    if t.ok(st == 200, "/attest: a TDX quote over SHA-512(runtime data) gets ITA's token", body):
        hdr, c = claims_of(a.token)
        t.eq((hdr["alg"], hdr["kid"]), ("PS384", "ita-ps384"), "the token is ITA's, PS384 by kid")
        t.eq((c["tdx"]["tdx_mrtd"], c["tdx"]["attester_runtime_data"]["nonce"]), (mrtd, a.nonce),
             "its claims carry the quote's MRTD and the session's runtime data")
        path, h, sent = ita.requests[-1]
        req = json.loads(sent)
        rd = jcs({"tee-pubkey": a.pubkey, "nonce": a.nonce, "additional-evidence": ""})
        t.eq((path, h.get("x-api-key"), h.get("Content-Type"), h.get("Accept"),
              h.get("User-Agent", "").startswith("Confidential-containers-trustee kbs/"),
              req["policy_ids"], req["policy_must_match"],
              base64.b64decode(req["tdx"]["runtime_data"]), "event_log" in req["tdx"]),
             ("/appraisal/v2/attest", API_KEY, "application/json", "application/json", True, [],
              False, rd, False),
             "the appraisal request has ITA's path, headers and body (runtime data as sorted JSON)")
        st, _, data = a.get("default/ita/key")
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "resource released as a JWE to the TD's key, the policy reading ITA's claims", data[:200])

    b = ItaGuest(kbs, "tdx")
    b.auth_ita()
    st, _, body = b.attest_quote(b.quote(tdx, hash_name="sha384"))
    t.ok(st == 401 and b"SHA-512" in body and b"HTTP 400" in body,
         "a quote over SHA-384 is refused (401) with ITA's own message", body)

    g = ItaGuest(kbs, "sgx")
    st, _, body = g.auth_ita()
    t.ok(st == 200 and json.loads(body)["extra-params"] == {"selected-hash-algorithm": "sha256"},
         "/auth for sgx selects sha256", body)
    st, _, body = g.attest_quote(g.quote(sgx))
    ok = st == 200 and claims_of(g.token)[1]["sgx"]["attester_runtime_data"]["nonce"] == g.nonce
    t.ok(ok, "an SGX enclave over SHA-256(runtime data) gets ITA's token with its sgx claims", body)
    st, _, data = g.get("default/ita/key")
    t.ok(st == 401 and b"tee-pubkey" in data,
         "Trustee's tee-pubkey paths name no sgx member, so without extra_teekey_paths the "
         "resource is refused", data)

    # ---------------------------------------------------------------- az-tdx-vtpm, nvidia
    azd = harness.testdata("evidence", "az-tdx-vtpm", "trustee")
    for form in ("v0", "v1"):
        ev = json.load(open(os.path.join(azd, "evidence-%s.json" % form)))
        hcl = bytes(ev["hcl_report"]) if form == "v0" else b64u_dec(ev["hcl_report"])
        tdq = bytes(ev["td_quote"]) if form == "v0" else b64u_dec(ev["td_quote"])
        z = ItaGuest(kbs, "az-tdx-vtpm")
        st, _, body = z.auth_ita()
        sel = st == 200 and json.loads(body)["extra-params"] == {"selected-hash-algorithm": "sha256"}
        zb = z.attest_body()
        zb["tee-evidence"]["primary_evidence"] = ev
        st, _, body = z.attest(body=zb)
        ok = sel and st == 200
        if ok:
            path, h, sent = ita.requests[-1]
            tdx_part = json.loads(sent)["tdx"]
            var = base64.b64decode(tdx_part["runtime_data"])
            rd = jcs({"tee-pubkey": z.pubkey, "nonce": z.nonce, "additional-evidence": ""})
            st2, _, data = z.get("default/ita/key")
            checks = (path == "/appraisal/v2/attest/azure",
                      base64.b64decode(tdx_part["quote"]) == tdq, len(var) > 0 and var in hcl,
                      base64.b64decode(tdx_part["user_data"]) == rd,
                      claims_of(z.token)[1]["tdx"]["attester_user_data"]["nonce"] == z.nonce,
                      st2 == 200 and z.decrypt(data) == SECRET)
            ok = all(checks)
            body = repr((checks, data[:300])).encode()
        t.ok(ok, "az-tdx-vtpm (%s evidence): sha256 selected, sent to /attest/azure with the HCL "
             "variable data as runtime_data and our runtime data as user_data; the resource is "
             "wrapped to the key in attester_user_data" % form, body[:300])

    n = ItaGuest(kbs, "tdx")
    n.auth_ita()
    gpu = {"device_evidence_list": [
        {"evidence": "aG9wcGVy", "certificate": "Y2VydA==", "arch": "HOPPER"},
        {"evidence": "c3dpdGNo", "certificate": "Y2VydA==", "arch": "LS10"}]}
    add = json.dumps({"nvidia": gpu})
    nb = n.attest_body(additional=add)
    nb["tee-evidence"]["primary_evidence"] = {
        "quote": base64.b64encode(n.quote(tdx, additional=add)).decode(), "cc_eventlog": None}
    st, _, body = n.attest(body=nb)
    ok = st == 200
    if ok:
        g = json.loads(ita.requests[-1][2])["nvgpu"]
        want = hashlib.sha512(jcs({"nonce": n.nonce, "tee-pubkey": n.pubkey})).hexdigest()[:64]
        ok = (g["gpu_nonce"] == want and g["arch"] == "HOPPER" and
              g["evidence_list"] == [{"evidence": "aG9wcGVy", "certificate": "Y2VydA=="}] and
              "tdx" in json.loads(ita.requests[-1][2]))
    t.ok(ok, "NVIDIA evidence beside a TD: nvgpu with gpu_nonce = hex(SHA-512(runtime data)[:32]), "
         "only the HOPPER device", body[:300])

    # ---------------------------------------------------------------- passport
    r = ItaGuest(kbs, "tdx", key_type="RSA")
    r.auth_ita()
    st, _, body = r.attest_quote(r.quote(tdx))
    t.ok(st == 200, "an RSA-keyed TD gets an ITA token", body)
    rcfg = kbs_config(pki, admin="InsecureAllowAll")
    rcfg["attestation_token"] = {"trusted_jwk_sets": [ita.url + "/certs"]}
    rkbs = Kbs(rcfg, name="kbs-resource-only", env=env).start()
    rkbs.request("POST", "/kbs/v0/resource-policy", {"policy": b64u(policy_for(mrtd, AZ_MRTD))})
    rkbs.request("POST", "/kbs/v0/resource/default/ita/key", SECRET)
    st, _, data = r.get("default/ita/key", cookie=False, bearer=r.token)
    ok = st == 200
    if ok:
        prot = json.loads(b64u_dec(json.loads(data)["protected"]))
        ok = prot["alg"] == "RSA-OAEP-256" and r.decrypt(data) == SECRET
    t.ok(ok, "passport: a resource-only kbs trusting only ITA's JWK set takes the ITA token and "
         "wraps the resource to its RSA key (RSA-OAEP-256)", data[:300])
    ita.mode = "unknown_key"
    forged = ita.sign(claims_of(r.token)[1])
    ita.mode = "ok"
    st, _, data = r.get("default/ita/key", cookie=False, bearer=forged)
    t.ok(st == 401 and b"TokenVerifierError" in data,
         "passport: a token signed by a key outside ITA's set is refused", data)
    _, c = claims_of(r.token)
    c["tdx"]["tdx_mrtd"] = "00" * 48
    st, _, data = r.get("default/ita/key", cookie=False, bearer=ita.sign(c))
    t.ok(st == 401 and b"PolicyDeny" in data,
         "passport: ITA's claims reach the resource policy (another MRTD is denied)", data)
    rkbs.stop()
    kbs.stop()

    # ---------------------------------------------------------------- kubernetes/ita config
    k8s = Kbs(text=trustee_config("kubernetes-ita-kbs-config.toml", ita, 0,
                                  os.path.join(d, "k8s")), env=env, name="kbs-ita-k8s").start()
    st, _, body = ItaGuest(k8s, "tdx").auth_ita()
    t.ok(st == 200, "Trustee's kubernetes/ita kbs-config.toml starts and answers /auth", body)
    k8s.stop()

    # ---------------------------------------------------------------- hostile answers
    text = trustee_config("kbs-config-intel-trust-authority.toml", ita, 0,
                          os.path.join(d, "store2"),
                          extra_as='as_timeout = 3\npolicy_ids = ["p-tdx"]\n',
                          extra_token='extra_teekey_paths = ["/sgx/attester_runtime_data/tee-pubkey"]\n')
    kbs = Kbs(text=text, env=env, name="kbs-ita-hostile").start()
    kbs.request("POST", "/kbs/v0/resource-policy", {"policy": b64u(policy_for(mrtd, AZ_MRTD))})
    kbs.request("POST", "/kbs/v0/resource/default/ita/key", SECRET)

    g = ItaGuest(kbs, "sgx")
    g.auth_ita()
    st, _, body = g.attest_quote(g.quote(sgx))
    ok = st == 200
    if ok:
        st, _, data = g.get("default/ita/key")
        ok = st == 200 and g.decrypt(data) == SECRET
    t.ok(ok, "with extra_teekey_paths naming /sgx/attester_runtime_data/tee-pubkey the SGX "
         "enclave gets the resource", body)

    def attempt(mode, **kw):
        ita.mode = mode
        try:
            x = ItaGuest(kbs, "tdx")
            x.auth_ita()
            t0 = time.time()
            st, h, body = x.attest_quote(x.quote(tdx))
            return st, h, body, time.time() - t0
        finally:
            ita.mode = "ok"

    cases = [
        ("slow", 503, b"did not answer", "an ITA that does not answer within as_timeout"),
        ("huge", 401, b"refused", "a 2 MiB answer"),
        ("nonjson", 401, b"not JSON", "a non-JSON answer"),
        ("unknown_key", 401, b"does not verify", "a token signed by a key not in certs_file"),
        ("expired", 401, b"expired", "an expired token"),
        ("other_nonce", 401, b"not this session's runtime data", "a token naming another nonce"),
        ("429", 503, b"Too many requests", "429 from ITA"),
        ("500", 503, b"Internal server error", "500 from ITA"),
    ]
    for mode, want, text_, name in cases:
        st, h, body, took = attempt(mode)
        good = st == want and text_ in body and (want != 503 or "retry-after" in h)
        try:
            good = good and json.loads(body)["type"] == ERR + "AttestationError"
        except ValueError:
            good = False
        if mode == "slow":
            good = good and took < 5.5
        t.ok(good, "%s: refused %d with its reason%s" % (name, want,
                                                         " and Retry-After" if want == 503 else ""),
             (st, h.get("retry-after"), body[:400], took))
    ita.api_key = "another key"
    st, _, body, _ = attempt("ok")
    ita.api_key = API_KEY
    t.ok(st == 401 and b"Invalid API key" in body, "a rejected API key: 401 with ITA's message", body)
    ita.unmatched = {"p-tdx"}
    st, _, body, _ = attempt("ok")
    ita.unmatched = set()
    t.ok(st == 401 and b"did not match" in body and json.loads(ita.requests[-1][2])["policy_must_match"],
         "policy_ids with policy_must_match: an unmatched policy is refused", body)
    ita.sign_with = ita.rs256
    x = ItaGuest(kbs, "tdx")
    x.auth_ita()
    st, _, body = x.attest_quote(x.quote(tdx))
    ok = st == 200 and claims_of(x.token)[0]["alg"] == "RS256"
    if ok:
        c = claims_of(x.token)[1]
        st2, _, data = x.get("default/ita/key")
        ok = c["policy_ids_matched"][0]["id"] == "p-tdx" and st2 == 200 and x.decrypt(data) == SECRET
    ita.sign_with = ita.ps384
    t.ok(ok, "after all of that the kbs still serves: an RS256 ITA token with a matched policy "
         "gets the resource", body)
    t.ok(kbs.alive() and b"tBfd5kKX2x9ahbodKV1" not in open(kbs.logpath, "rb").read(),
         "the kbs is alive and never logged the API key")
    kbs.stop()
    ita.stop()
    t.done()


if __name__ == "__main__":
    main()
