"""IBM Secure Execution through a real grpc-as (as-rvps.md §5.10). Every key is made here with
python3-cryptography: a test root CA, an "IBM Z signing key" certificate it issues, a host-key
document (P-521) that certificate signs, the verifier's RSA key, and an SE image header. This
file then plays the Ultravisor, independently of the C code: it opens the attestation request
of GetAttestationChallenge with the host's private key (ECDH, SHA-256 KDF, AES-256-GCM),
computes the HMAC-SHA512 measurement over the header tags, CUID, user data, nonce and the two
PHKHs, and hands back the evidence as a guest would. The refusals: another report data, a
flipped measurement, a measurement key the verifier did not issue (encrypted to its public
key by the guest itself), image tags other than the configured header's; and a host-key
document from another root makes the challenge itself refuse."""
import base64
import datetime
import hashlib
import hmac
import json
import os
import struct
import subprocess

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

import harness
from harness import BIN, Daemon, free_port, tmpdir

import attestation_pb2 as A  # noqa: E402

PAF_IMAGE, PAF_ATTEST = 1 << 61, 1 << 60


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(subject, issuer, pub, key, ca):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
         .public_key(pub).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                            critical=True)
    return b.sign(key, hashes.SHA512())


def pem(c):
    return c.public_bytes(serialization.Encoding.PEM)


def ecdh_form(pub):
    n = pub.public_numbers()
    return n.x.to_bytes(80, "big") + n.y.to_bytes(80, "big")


class Host:
    """The machine: its host key, and the Ultravisor that opens requests sealed to it."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP521R1())
        self.phkh = hashlib.sha256(ecdh_form(self.key.public_key())).digest()

    def open(self, arcb):
        arvn, arl = struct.unpack(">II", arcb[8:16])
        iv, nks, sea = arcb[16:28], arcb[0x27], struct.unpack(">I", arcb[0x2c:0x30])[0]
        paf, mai = struct.unpack(">Q", arcb[0x30:0x38])[0], struct.unpack(">I", arcb[0x38:0x3c])[0]
        assert (arvn, mai, arl) == (0x0100, 1, len(arcb)), (arvn, mai, arl)
        x, y = arcb[0x40:0x40 + 80], arcb[0x40 + 80:0xe0]
        cust = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                             ec.SECP521R1()).public_key()
        z = self.key.exchange(ec.ECDH(), cust)
        xk = hashlib.sha256(z + b"\0\0\0\1").digest()
        aad_len = 0xe0 + nks * 0x50
        for i in range(nks):
            s = arcb[0xe0 + i * 0x50:0xe0 + (i + 1) * 0x50]
            if s[:32] == self.phkh:
                arpk = AESGCM(xk).decrypt(b"\0" * 12, s[32:64] + s[64:80], None)
                break
        else:
            raise ValueError("no key slot for this host")
        secret = AESGCM(arpk).decrypt(iv, arcb[aad_len:aad_len + sea + 16], arcb[:aad_len])
        return paf, secret[:64], secret[64:80]

    def measure(self, arcb, tags, cuid, user):
        paf, mkey, nonce = self.open(arcb)
        add = b""
        if paf & PAF_IMAGE:
            add += hashlib.sha256(b"image host key").digest()
        if paf & PAF_ATTEST:
            add += self.phkh
        sizes = struct.pack(">HHI", len(user), 0, len(add))
        m = hmac.new(mkey, tags + cuid + sizes + user + nonce + add, hashlib.sha512).digest()
        return m, add


def se_header():
    body = bytearray(os.urandom(416 + 64 + 16))
    body[0:8] = struct.pack(">Q", 0x49424d5365634578)
    body[8:16] = struct.pack(">II", 0x100, len(body))
    tags = bytes(body[224:416]) + bytes(body[-16:])
    return bytes(body), tags


def setup(d):
    root_key = ec.generate_private_key(ec.SECP521R1())
    root = cert("Test Root CA", "Test Root CA", root_key.public_key(), root_key, True)
    ibm_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ibm = cert("IBM Z Host Key Signing Service", "Test Root CA", ibm_key.public_key(), root_key, True)
    host = Host()
    hkd = cert("host 1", "IBM Z Host Key Signing Service", host.key.public_key(), ibm_key, False)
    for sub in ("certs", "hkds", "crls", "rsa"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    open(os.path.join(d, "root_ca.crt"), "wb").write(pem(root))
    open(os.path.join(d, "certs", "ibm.crt"), "wb").write(pem(ibm))
    open(os.path.join(d, "hkds", "host1.crt"), "wb").write(pem(hkd))
    vkey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    open(os.path.join(d, "rsa", "encrypt_key.pem"), "wb").write(vkey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    hdr, tags = se_header()
    open(os.path.join(d, "hdr.bin"), "wb").write(hdr)
    env = {"SE_MEASUREMENT_ENCR_KEY_PRIVATE": os.path.join(d, "rsa", "encrypt_key.pem"),
           "SE_CERTIFICATES_ROOT": os.path.join(d, "certs"),
           "SE_CERTIFICATE_REVOCATION_LISTS_ROOT": os.path.join(d, "crls"),
           "SE_CERTIFICATE_ROOT_CA": os.path.join(d, "root_ca.crt"),
           "DEFAULT_SE_HOST_KEY_DOCUMENTS_ROOT": os.path.join(d, "hkds"),
           "SE_IMAGE_HEADER_FILE": os.path.join(d, "hdr.bin")}
    return host, vkey, tags, env


def start(d, env):
    json.dump({}, open(os.path.join(d, "as.json"), "w"))
    port = free_port()
    dm = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % port,
                            "--config-file", os.path.join(d, "as.json")], port, env=env).start()
    ch = grpc.insecure_channel("127.0.0.1:%d" % port)
    chal = ch.unary_unary("/attestation.AttestationService/GetAttestationChallenge",
                          request_serializer=A.ChallengeRequest.SerializeToString,
                          response_deserializer=A.ChallengeResponse.FromString)
    ev = ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                        request_serializer=A.AttestationRequest.SerializeToString,
                        response_deserializer=A.AttestationResponse.FromString)
    return dm, chal, ev


def claims_of(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def main():
    t = harness.Tap()
    d = tmpdir("as-se-")
    host, vkey, tags, env = setup(d)
    dm, chal, evaluate = start(d, env)
    try:
        def challenge():
            r = chal(A.ChallengeRequest(inner={"tee": "se", "tee_params": "{}"}), timeout=30)
            return json.loads(r.attestation_challenge)

        c = challenge()
        t.eq((c["measurement_size"], c["additional_size"], base64.b64decode(c["image_hdr_tags"])),
             (64, 64, tags), "the challenge names HMAC-SHA512, two PHKHs and the configured header's tags")
        arcb = base64.b64decode(c["request_blob"])
        paf, mkey, nonce = host.open(arcb)
        t.ok(paf & PAF_IMAGE and paf & PAF_ATTEST and paf & (1 << 62),
             "the request asks for both PHKHs and carries a nonce (opened with the host key)")
        dec = lambda f: vkey.decrypt(base64.b64decode(c[f]), padding.PKCS1v15())
        t.ok(dec("encr_measurement_key") == mkey and dec("encr_request_nonce") == nonce,
             "the measurement key and nonce are RSA-encrypted to the verifier's key")
        t.ok(host.open(base64.b64decode(challenge()["request_blob"]))[2] != nonce,
             "each challenge has its own nonce")

        rd = hashlib.sha512(b"runtime data").digest()
        cuid = os.urandom(16)

        def evidence(c, user=rd, tags_in=None, flip=False, ekey=None):
            arcb = base64.b64decode(c["request_blob"])
            m, add = host.measure(arcb, tags, cuid, user)
            if flip:
                m = bytes([m[0] ^ 1]) + m[1:]
            e = {"measurement": m, "additional_data": add, "user_data": user, "cuid": cuid,
                 "encr_measurement_key": base64.b64decode(ekey or c["encr_measurement_key"]),
                 "encr_request_nonce": base64.b64decode(c["encr_request_nonce"]),
                 "image_hdr_tags": tags_in or tags}
            return {k: base64.b64encode(v).decode() for k, v in e.items()}

        def request(ev, want=rd):
            return A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
                tee="se", evidence=b64u(json.dumps(ev).encode()), raw_runtime_data=b64u(want))])

        tok = evaluate(request(evidence(challenge())), timeout=30).attestation_token
        sub = claims_of(tok)["submods"]
        se = sub.get("cpu0", {}).get("ear.veraison.annotated-evidence", {}).get("se", {})
        ae = sub.get("cpu0", {}).get("ear.veraison.annotated-evidence", {})
        t.eq((se.get("cuid"), se.get("version"), se.get("attestation_phkh"), se.get("tag"),
              ae.get("report_data")),
             (cuid.hex(), 256, host.phkh.hex(), tags[-16:].hex(), rd[:64].hex()),
             "an Ultravisor-made measurement verifies: cpu0 with cuid, version, PHKH, tag, report_data")

        # a guest without an Ultravisor: its own key, encrypted to the verifier's public key
        own = os.urandom(64)
        forged_c = challenge()
        ekey = base64.b64encode(vkey.public_key().encrypt(own, padding.PKCS1v15()))
        ev = evidence(forged_c, ekey=ekey)
        nonce = host.open(base64.b64decode(forged_c["request_blob"]))[2]
        add = base64.b64decode(ev["additional_data"])
        sizes = struct.pack(">HHI", len(rd), 0, len(add))
        ev["measurement"] = base64.b64encode(hmac.new(
            own, tags + cuid + sizes + rd + nonce + add, hashlib.sha512).digest()).decode()
        for what, ev_, want, reason in [
                ("other report data", evidence(challenge()), hashlib.sha512(b"x").digest(),
                 "SE user_data does not match"),
                ("a flipped measurement", evidence(challenge(), flip=True), rd,
                 "measurement does not match"),
                ("a measurement key the verifier did not issue", ev, rd,
                 "was not issued by this verifier"),
                ("image tags of another header", evidence(challenge(), tags_in=os.urandom(208)), rd,
                 "not those of the configured SE image")]:
            try:
                evaluate(request(ev_, want), timeout=30)
                t.ok(False, "refused: " + what)
            except grpc.RpcError as e:
                t.ok(e.code() == grpc.StatusCode.ABORTED and reason in e.details(),
                     "refused: " + what, (e.code(), e.details()))
        # the same check offline: evidence-verify --tee se reads the same environment
        path = os.path.join(d, "se-evidence.json")
        json.dump(evidence(challenge()), open(path, "w"))
        p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "se", "--evidence", path,
                            "--report-data", rd.hex()], capture_output=True, text=True,
                           env=dict(os.environ, **env), timeout=60)
        t.ok(p.returncode == 0 and cuid.hex() in p.stdout, "evidence-verify --tee se accepts it",
             p.stdout + p.stderr)
        p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "se", "--evidence", path,
                            "--report-data", "00" * 64], capture_output=True, text=True,
                           env=dict(os.environ, **env), timeout=60)
        t.ok(p.returncode == 1 and "SE user_data does not match" in p.stdout,
             "evidence-verify --tee se refuses other report data", p.stdout)
        r = chal(A.ChallengeRequest(inner={"tee": "snp", "tee_params": "{}"}), timeout=30)
        t.eq(r.attestation_challenge, "", "other TEEs still get an empty challenge")
    finally:
        dm.stop()

    # a host-key document issued under another root: no host to seal the request to
    d2 = tmpdir("as-se-other-")
    host2, _, _, env2 = setup(d2)
    other_root = ec.generate_private_key(ec.SECP521R1())
    open(env2["SE_CERTIFICATE_ROOT_CA"], "wb").write(
        pem(cert("Test Root CA", "Test Root CA", other_root.public_key(), other_root, True)))
    dm, chal, _ = start(d2, env2)
    try:
        chal(A.ChallengeRequest(inner={"tee": "se", "tee_params": "{}"}), timeout=30)
        t.ok(False, "a host-key document from another root: the challenge is refused")
    except grpc.RpcError as e:
        t.ok(e.code() == grpc.StatusCode.ABORTED and "no host-key document" in e.details(),
             "a host-key document from another root: the challenge is refused", e.details())
    finally:
        dm.stop()
    t.done()


if __name__ == "__main__":
    main()
