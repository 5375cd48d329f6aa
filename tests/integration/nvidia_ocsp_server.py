"""A stand-in for NVIDIA's OCSP responder on loopback, answering for an nvidia_forge.Device's
certificates: each response is signed by the certificate's issuer (the intermediate for the
leaf, the root for the intermediate) and echoes the request's nonce. `mode` bends it for the
refusal paths: "revoked" (the leaf is revoked), "wrong-signer" (signed by an unrelated key),
"no-nonce", "stale" (nextUpdate in the past), "http-500"."""
import datetime
import http.server
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from harness import free_port
import nvidia_forge as F


class OcspServer:
    def __init__(self, dev, mode="good"):
        self.dev, self.mode, self.requests = dev, mode, 0
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/ocsp" % self.port
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                srv.requests += 1
                if srv.mode == "http-500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                der = srv.answer(ocsp.load_der_ocsp_request(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(der)))
                self.end_headers()
                self.wfile.write(der)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, req):
        d = self.dev
        pairs = {d.leaf.serial_number: (d.leaf, d.ica, d.ica_key),
                 d.ica.serial_number: (d.ica, d.root, d.root_key)}
        if req.serial_number not in pairs:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(F.serialization.Encoding.DER)
        cert, issuer, key = pairs[req.serial_number]
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        status, rtime, reason = ocsp.OCSPCertStatus.GOOD, None, None
        if self.mode == "revoked" and cert is d.leaf:
            status, rtime, reason = (ocsp.OCSPCertStatus.REVOKED, now - datetime.timedelta(days=1),
                                     x509.ReasonFlags.key_compromise)
        this, nxt = now - datetime.timedelta(minutes=1), now + datetime.timedelta(days=1)
        if self.mode == "stale":
            this, nxt = now - datetime.timedelta(days=3), now - datetime.timedelta(days=2)
        signer = issuer
        if self.mode == "wrong-signer":
            # an impostor: same name as the issuer, its own key, sent along with the response
            key = ec.generate_private_key(ec.SECP384R1())
            cn = issuer.subject.get_attributes_for_oid(F.NameOID.COMMON_NAME)[0].value
            signer = F._cert(cn, cn, key.public_key(), key, True)
        b = (ocsp.OCSPResponseBuilder()
             .add_response(cert=cert, issuer=issuer, algorithm=hashes.SHA1(), cert_status=status,
                           this_update=this, next_update=nxt, revocation_time=rtime,
                           revocation_reason=reason)
             .responder_id(ocsp.OCSPResponderEncoding.HASH, signer).certificates([signer]))
        if self.mode != "no-nonce":
            for ext in req.extensions:
                if isinstance(ext.value, x509.OCSPNonce):
                    b = b.add_extension(ext.value, critical=False)
        return b.sign(key, hashes.SHA384()).public_bytes(F.serialization.Encoding.DER)
