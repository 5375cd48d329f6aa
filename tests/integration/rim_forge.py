"""NVIDIA-style RIMs (SWID / TCG RIM XML) signed under a test root by the xmlsec1 command line,
the same template and command the rim_dir unit tests use (tests/unit/test_nvidia.c, write_rim):
a root and a second root made by the openssl CLI, a signer certified by the first, and RIMs
whose active measurements are whatever the test asks for (the testdata RIMs are for another
driver and VBIOS than the sample report)."""
import os
import subprocess

HEAD = ('<SoftwareIdentity xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" '
        'xmlns:h="http://www.w3.org/2001/04/xmlenc#sha384" name="GH100" tagId="test-%(tag)s" '
        'version="1.0">\n'
        '<Meta xmlns:r="https://trustedcomputinggroup.org/resource/'
        'tcg-reference-integrity-manifest-rim-information-model/" edition="GPU" '
        'product="%(product)s" colloquialVersion="%(version)s" '
        'r:PlatformManufacturerStr="NVIDIA Corporation"/>\n<Payload>\n')
SIG = ('<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>'
       '<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
       '<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"/>'
       '<Reference URI=""><Transforms><Transform '
       'Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></Transforms>'
       '<DigestMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#sha384"/><DigestValue/>'
       '</Reference></SignedInfo><SignatureValue/><KeyInfo><X509Data><X509Certificate/>'
       '</X509Data></KeyInfo></Signature>\n')


def sh(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, shell=True, check=True, capture_output=True)


class RimSigner:
    def __init__(self, d):
        self.d = d
        for i in (0, 1):
            sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "
               "root%d.key -out root%d.pem -days 30 -subj /CN=test-rim-root%d" % (i, i, i), d)
        sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout signer.key "
           "-out signer.csr -subj /CN=test-rim-signer && openssl x509 -req -in signer.csr -CA "
           "root0.pem -CAkey root0.key -set_serial 7 -days 30 -out signer.pem", d)
        self.root = os.path.join(d, "root0.pem")
        self.other_root = os.path.join(d, "root1.pem")

    def rim(self, version, active, product="GH100", signed=True):
        """RIM bytes for `version` whose active measurements are {rim_index: [hex, ...]}, plus
        an inactive index 63 whose value matches nothing (never compared)."""
        x = HEAD % {"tag": version, "product": product, "version": version}
        x += ('<Resource type="Measurement" index="63" active="False" h:Hash0="%096d"/>\n' % 1)
        for idx in sorted(active):
            hashes = " ".join('h:Hash%d="%s"' % (i, h) for i, h in enumerate(active[idx]))
            x += '<Resource type="Measurement" index="%d" active="True" %s/>\n' % (idx, hashes)
        x += "</Payload>\n" + (SIG if signed else "") + "</SoftwareIdentity>\n"
        if not signed:
            return x.encode()
        tmpl, out = os.path.join(self.d, "tmpl.xml"), os.path.join(self.d, "signed.xml")
        open(tmpl, "w").write(x)
        sh("xmlsec1 --sign --privkey-pem signer.key,signer.pem --output %s %s" % (out, tmpl), self.d)
        return open(out, "rb").read()
