#!/usr/bin/python3
"""Write the committed seed inputs under tests/fuzz/seeds/<target>/.

Seeds that exist as plain files in ../shared/testdata are listed in tests/fuzz/seeds.txt
and copied at run time; this script writes the ones that must be made: valid KBS request
bodies, RVPS messages, protobuf-encoded requests, JWS/JWE/JWK made with the fixed key of
fuzz_jose.c, and the parts of JSON evidence files a parser sees on its own (TPMS_ATTEST
bytes, the sev-crate report object, a hex SNP report as raw bytes), and whole evidence
documents for fuzz_verifier.

It is run by hand when a seed is added (the output is committed, so the fuzz run needs
neither Python nor jwcrypto):  /usr/bin/python3 tests/fuzz/make_seeds.py [--force]
It writes only the seeds that do not exist yet; --force rewrites all of them (keys, signatures
and IVs are random, so that changes every JOSE seed). Needs build/gen/py (make gen) and
python3-jwcrypto.
"""
import base64
import binascii
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("CTRUSTEE_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
EVIDENCE = os.path.join(SHARED, "testdata", "evidence")
OUT = os.path.join(ROOT, "tests", "fuzz", "seeds")
FORCE = "--force" in sys.argv[1:]
sys.path.insert(0, os.path.join(ROOT, os.environ.get("CTRUSTEE_BUILD", "build"), "gen", "py"))

# The fixed test key of fuzz_jose.c (not a secret).
JOSE_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQv6XQNrx5JuhsvpR
Al++FCqPv4lqaJrVBEPW1oayaNShRANCAASv+OxrSl6lZYhul4b05ns6/qQoefLM
koNH8lfteH6swgPRxgw7jjLXEyEZflcfiZPszkvvL26wZEWLxQrXd+Dw
-----END PRIVATE KEY-----
"""

# The fixed token CA and admin key of fuzz_kbs_token.c (not secrets: test material only; the
# C file holds their public halves).
TOKEN_CA_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXDaEDt9hzy5orleR
Mu53TDuDc+M1czLKv/80g8nK5EGhRANCAATe5+BBVi149AyGNa8mL91qBQVY/5J5
b/4sK1fAcYC+55dRDoOZgvQZ0bYzGRMl7ls+aD9nXtde99RvHpHxAdgW
-----END PRIVATE KEY-----
"""
TOKEN_CA_CERT_PEM = b"""-----BEGIN CERTIFICATE-----
MIIBqDCCAU+gAwIBAgIUFvNpO6y9f6f0XklygfluwRrCdKEwCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWY3RydXN0ZWUgZnV6eiB0b2tlbiBDQTAgFw0yNjExMzAwNjAx
NDZaGA8yMTI2MTEwNjA2MDE0NlowITEfMB0GA1UEAwwWY3RydXN0ZWUgZnV6eiB0
b2tlbiBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN7n4EFWLXj0DIY1ryYv
3WoFBVj/knlv/iwrV8BxgL7nl1EOg5mC9BnRtjMZEyXuWz5oP2de11731G8ekfEB
2BajYzBhMB0GA1UdDgQWBBRn+KrRbu3hieZBKlZ8qvj9PUjyUTAfBgNVHSMEGDAW
gBRn+KrRbu3hieZBKlZ8qvj9PUjyUTAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB
/wQEAwIBBjAKBggqhkjOPQQDAgNHADBEAiAxg6Jh4eKY7t88MDVv9z2NXYc0coqk
iOoSnVLRABFLFgIgL/tsTnzdMESaRJjhtIPXbf3z0v4l3SDod2cFSl4aNDo=
-----END CERTIFICATE-----
"""
ADMIN_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAOsVtvyCJEj/YYq2qgSbsnmXW78kykxlkhO8b5sjzH3
-----END PRIVATE KEY-----
"""


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, name)) and not FORCE:
        return
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64(b):
    return base64.b64encode(b).decode()


def load(rel):
    with open(os.path.join(EVIDENCE, rel), "rb") as f:
        return f.read()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwe_ecdh_a256kw(key, plain):
    """A flattened JWE as the KBS sends it: ECDH-ES+A256KW with the epk in the protected
    header, A256GCM with the protected header as AAD."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    recipient = key.get_op_key("unwrapKey").public_key()
    eph = ec.generate_private_key(ec.SECP256R1())
    n = eph.public_key().public_numbers()
    epk = {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
           "y": b64u(n.y.to_bytes(32, "big"))}
    alg = b"ECDH-ES+A256KW"
    other = len(alg).to_bytes(4, "big") + alg + bytes(8) + (256).to_bytes(4, "big")
    kek = ConcatKDFHash(hashes.SHA256(), 32, other).derive(eph.exchange(ec.ECDH(), recipient))
    cek, iv = os.urandom(32), os.urandom(12)
    prot = b64u(json.dumps({"alg": alg.decode(), "enc": "A256GCM", "epk": epk},
                           separators=(",", ":")).encode())
    ct = AESGCM(cek).encrypt(iv, plain, prot.encode())
    return {"protected": prot, "encrypted_key": b64u(aes_key_wrap(kek, cek)), "iv": b64u(iv),
            "ciphertext": b64u(ct[:-16]), "tag": b64u(ct[-16:])}


def jose_seeds():
    from jwcrypto import jwk, jws

    key = jwk.JWK.from_pem(JOSE_KEY_PEM)
    pub = jwk.JWK.from_json(key.export_public())
    claims = {"iss": "ctrustee", "exp": 4102444800, "nbf": 0,
              "tee-pubkey": json.loads(pub.export_public()), "nested": {"a": [1, 2.5, "x"]}}
    tok = jws.JWS(json.dumps(claims, separators=(",", ":")))
    tok.add_signature(key, None, json.dumps({"alg": "ES256", "typ": "JWT"}))
    put("fuzz_jose", "jws_es256.txt", tok.serialize(compact=True))
    hs = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode())
    tok = jws.JWS(json.dumps({"exp": 1}))
    tok.add_signature(hs, None, json.dumps({"alg": "HS256"}))
    put("fuzz_jose", "jws_hs256.txt", tok.serialize(compact=True))
    none = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    put("fuzz_jose", "jws_none.txt", none + ".e30.")
    put("fuzz_jose", "jwe_ecdh.json", jwe_ecdh_a256kw(key, b"resource bytes"))
    from jwcrypto import jwe
    for alg in ("RSA-OAEP-256", "RSA1_5"):
        e = jwe.JWE(b"resource bytes", json.dumps({"alg": alg, "enc": "A256GCM"}),
                    algs=[alg, "A256GCM"])
        e.add_recipient(jwk.JWK.generate(kty="RSA", size=2048))
        put("fuzz_jose", "jwe_%s.json" % alg.lower().replace("-", "_"), e.serialize())
    tee = json.loads(pub.export_public())
    tee["alg"] = "ECDH-ES+A256KW"
    put("fuzz_jose", "jwk_ec_p256.json", tee)
    p384 = json.loads(jwk.JWK.generate(kty="EC", crv="P-384").export_public())
    p384["alg"] = "ECDH-ES+A256KW"
    put("fuzz_jose", "jwk_ec_p384.json", p384)
    rsa = json.loads(jwk.JWK.generate(kty="RSA", size=2048).export_public())
    rsa["alg"] = "RSA-OAEP-256"
    put("fuzz_jose", "jwk_rsa.json", rsa)
    put("fuzz_jose", "jcs.json",
        '{"b":[1e21,1e-7,-0.0,0.1,"\\u00e9\\ud83d\\ude00"],"a":{"\\u20ac":1,"z":null,"":true}}')
    return tee, rsa


def kbs_seeds(ec, rsa):
    for tee in ("snp", "tdx", "az-snp-vtpm", "sample"):
        put("fuzz_kbs_auth", "auth_%s.json" % tee,
            {"version": "0.4.0", "tee": tee, "extra-params": ""})
    put("fuzz_kbs_auth", "auth_extra_obj.json",
        {"version": "0.4.0-rc.1+build.5", "tee": "tpm", "extra-params": {"a": [1]}})
    nonce = "9Kq2dX0eTTEYZTSWWnixrPMAXz5OIEgkvCYZR0lQGH8"
    evidence = json.loads(load("az-snp-vtpm/trustee/evidence-v2.json"))
    put("fuzz_kbs_attest", "attest_ec.json", {
        "runtime-data": {"nonce": nonce, "tee-pubkey": ec},
        "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""},
        "init-data": {"format": "toml", "body": "version = \"0.1.0\"\nalgorithm = \"sha384\"\n"}})
    put("fuzz_kbs_attest", "attest_rsa.json", {
        "runtime-data": {"nonce": nonce, "tee-pubkey": rsa},
        "tee-evidence": {"primary_evidence": {"svn": "1"},
                         "additional_evidence": "{\"tdx\":{}}"},
        "init-data": None})
    put("fuzz_kbs_teepubkey", "ec.json", ec)
    put("fuzz_kbs_teepubkey", "rsa.json", rsa)
    put("fuzz_kbs_teepubkey", "akp.json", {"kty": "AKP", "alg": "ML-KEM-768", "pub": "AAAA"})
    put("fuzz_kbs_teepubkey", "path.txt", "default/key_1/v1.0")


def token_seeds(tee):
    """Attestation tokens (x5c chain to the fixed CA; a kid from the fixed JWKS) and admin
    tokens (Ed25519 issuer, ES256 JWKS audience), each behind fuzz_kbs_token's selector byte."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec as cec
    from cryptography.x509.oid import NameOID
    from jwcrypto import jwk, jws

    def sign(key, header, claims):
        t = jws.JWS(json.dumps(claims, separators=(",", ":")))
        t.add_signature(key, None, json.dumps(header, separators=(",", ":")))
        return t.serialize(compact=True).encode()

    ca_key = serialization.load_pem_private_key(TOKEN_CA_KEY_PEM, None)
    ca = x509.load_pem_x509_certificate(TOKEN_CA_CERT_PEM)
    leaf_key = cec.generate_private_key(cec.SECP256R1())
    now = datetime.datetime(2026, 1, 1)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz token signer")]))
            .issuer_name(ca.subject).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=36000))
            .sign(ca_key, hashes.SHA256()))
    leaf_jwk = jwk.JWK.from_pem(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    der = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
           for c in (leaf, ca)]
    hdr_jwk = json.loads(leaf_jwk.export_public())
    hdr_jwk["alg"] = "ES256"
    hdr_jwk["x5c"] = der
    ear = {"iss": "fuzz-as", "iat": 1700000000, "exp": 4102444800, "eat_profile": "tag:github.com,2023:veraison/ear",
           "submods": {"cpu0": {"ear.status": "affirming",
                                "ear.veraison.annotated-evidence": {
                                    "runtime_data_claims": {"tee-pubkey": tee}}}}}
    put("fuzz_kbs_token", "x5c_chain.bin",
        b"\x00" + sign(leaf_jwk, {"alg": "ES256", "typ": "JWT", "jwk": hdr_jwk}, ear))
    fixed = jwk.JWK.from_pem(JOSE_KEY_PEM)
    flat = {"exp": 4102444800, "nbf": 0, "tee-pubkey": tee}
    put("fuzz_kbs_token", "jwks_kid.bin",
        b"\x00" + sign(fixed, {"alg": "ES256", "kid": "fuzz"}, flat))
    admin = jwk.JWK.from_pem(ADMIN_KEY_PEM)
    put("fuzz_kbs_token", "admin_eddsa.bin",
        b"\xc0" + sign(admin, {"alg": "EdDSA", "typ": "JWT"},
                        {"iss": "fuzz-admin", "role": "admin", "exp": 4102444800}))
    put("fuzz_kbs_token", "admin_jwks.bin",
        b"\xc4" + sign(fixed, {"alg": "ES256", "kid": "fuzz"},
                        {"aud": "kbs", "role": "reader", "exp": 4102444800, "iat": 1700000000}))


def rvps_seeds():
    payload = b64(json.dumps({"a": ["1234", "abcd"], "svn": [1], "pcr11": ["00" * 32]}).encode())
    put("fuzz_rvps_message", "sample.json",
        {"version": "0.1.0", "type": "sample", "payload": payload})
    put("fuzz_rvps_message", "sample_noversion.json", {"type": "sample", "payload": "e30="})
    put("fuzz_rvps_message", "payload_only.txt", payload)


def proto_seeds():
    import attestation_pb2 as a
    import health_pb2 as h
    import reference_pb2 as r

    ev = load("tpm/trustee/tpm_evidence.json").decode()
    req = a.AttestationRequest(policy_ids=["default", "p2"])
    req.verification_requests.add(tee="tpm", evidence=b64(ev.encode()),
                                  raw_runtime_data="cnVudGltZQ", init_data_digest="00" * 32,
                                  runtime_data_hash_algorithm="sha384")
    req.verification_requests.add(tee="sample", evidence="e30",
                                  structured_runtime_data='{"nonce":"n"}',
                                  init_data_toml="version = \"0.1.0\"")
    msgs = {
        "attestation_request": req,
        "set_policy": a.SetPolicyRequest(policy_id="default",
                                         policy=b64(b"package policy\ndefault allow = true\n")),
        "challenge_request": a.ChallengeRequest(inner={"tee": "snp", "tee_params": "{}"}),
        "attestation_response": a.AttestationResponse(attestation_token="eyJ.eyJ.sig"),
        "challenge_response": a.ChallengeResponse(attestation_challenge="nonce"),
        "rv_query": r.ReferenceValueQueryRequest(reference_value_id="pcr11"),
        "rv_query_response": r.ReferenceValueQueryResponse(reference_value_results='{"a":[]}'),
        "rv_register": r.ReferenceValueRegisterRequest(
            message='{"version":"0.1.0","type":"sample","payload":"e30="}'),
        "health_request": h.HealthCheckRequest(service="attestation.AttestationService"),
        "health_response": h.HealthCheckResponse(status=1),
    }
    for name, m in msgs.items():
        put("fuzz_proto_decode", name + ".bin", m.SerializeToString())


def evidence_seeds():
    for rel in ("az-snp-vtpm/trustee/tpm-quote-v1.json", "az-tdx-vtpm/trustee/tpm-quote-v1.json",
                "tpm/trustee/tpm_evidence.json", "az-snp-vtpm/trustee/evidence-v2.json"):
        d = json.loads(load(rel))
        q = d.get("tpm_quote", d)
        m = q["message"]
        try:
            raw = binascii.unhexlify(m)
        except (binascii.Error, ValueError):
            raw = base64.b64decode(m + "=" * (-len(m) % 4), altchars=b"-_")
        put("fuzz_tpms_attest", rel.replace("/", "_").replace(".json", ".bin"), raw)
    e2e = json.loads(load("snp/trustee/e2e-evidence.json"))
    put("fuzz_snp_report", "e2e_report.json", e2e["attestation_report"])
    hexrep = load("snp/virtee-sev/report_milan.hex").decode()
    put("fuzz_snp_report", "report_milan.bin", binascii.unhexlify("".join(hexrep.split())))


def verifier_seeds():
    """fuzz_verifier: one byte choosing the TEE (its table order; top bit: expected report
    data follows as length + bytes), then the evidence JSON."""
    def ev(i, name, doc, rd=None):
        head = bytes([i]) if rd is None else bytes([i | 0x80, len(rd)]) + rd
        put("fuzz_verifier", name, head + json.dumps(doc, separators=(",", ":")).encode())

    def extra_data(doc):
        """The TPMS_ATTEST extraData of an Azure evidence's TPM quote: the report data."""
        q = doc.get("tpm_quote") or doc["quote"]  # v1+: hex strings; v0: byte arrays
        m = bytes(q["message"]) if isinstance(q["message"], list) else binascii.unhexlify(q["message"])
        n = int.from_bytes(m[6:8], "big")
        off = 8 + n
        return m[off + 2:off + 2 + int.from_bytes(m[off:off + 2], "big")]

    def quote(rel):
        return {"quote": b64(load(rel))}

    ev(0, "sample.json", {"svn": "1", "report_data": b64(b"report data")})
    ev(1, "snp_e2e.json", json.loads(load("snp/trustee/e2e-evidence.json")))
    ev(2, "tpm.json", json.loads(load("tpm/trustee/tpm_evidence.json")))
    for v in ("v0", "v1", "v2", "genoa"):
        d = json.loads(load("az-snp-vtpm/trustee/evidence-%s.json" % v))
        ev(3, "az_snp_vtpm_%s.json" % v, d, extra_data(d))
    d = json.loads(load("az-tdx-vtpm/trustee/evidence-v1.json"))
    ev(4, "az_tdx_vtpm_v1.json", d, extra_data(d))
    ev(5, "tdx_v4.json", quote("tdx/dcap-qvl/tdx_quote"))
    ev(5, "tdx_v5.json", quote("tdx/go-tdx-guest/quote_v5_sample.dat"))
    ev(6, "sgx.json", quote("sgx/dcap-qvl/sgx_quote"))


def nvswitch_seeds():
    """fuzz_spdm and fuzz_nvidia_topology: the 4 real LS10 switch transcripts of nvtrust's PPCIe
    sample; for the topology target also with the switch's PEM chain after ff ff ff ff."""
    for i, e in enumerate(json.loads(load("nvidia/nvtrust/ppcie/switch_evidence.json"))):
        raw = base64.b64decode(e["evidence"])
        pem = base64.b64decode(e["certificate"])
        put("fuzz_spdm", "ls10_switch%d.bin" % i, raw)
        put("fuzz_nvidia_topology", "ls10_switch%d.bin" % i, raw)
        put("fuzz_nvidia_topology", "ls10_switch%d_chain.bin" % i, raw + b"\xff" * 4 + pem)
    gpu = json.loads(load("nvidia/nvtrust/ppcie/gpu_evidence.json"))[0]
    put("fuzz_nvidia_topology", "h100_gpu0_chain.bin",
        base64.b64decode(gpu["evidence"]) + b"\xff" * 4 + base64.b64decode(gpu["certificate"]))


def main():
    ec, rsa = jose_seeds()
    kbs_seeds(ec, rsa)
    token_seeds(ec)
    rvps_seeds()
    proto_seeds()
    evidence_seeds()
    verifier_seeds()
    nvswitch_seeds()


if __name__ == "__main__":
    main()
