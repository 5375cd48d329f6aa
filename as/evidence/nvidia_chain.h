/*
 * nvidia_chain: the certificate chain an NVIDIA device sends with its SPDM measurements
 * (leaf first: the device's attestation key, its firmware and architecture CAs, NVIDIA's
 * Device Identity root last), checked against the root built into the binary
 * (as/evidence/roots/nvidia_device_root.pem) or one a test or operator configures.
 */
#ifndef CTRUSTEE_NVIDIA_CHAIN_H
#define CTRUSTEE_NVIDIA_CHAIN_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

#define NVIDIA_FWID_LEN 48
#define NVIDIA_CHAIN_MAX 16

struct nvidia_chain {
	STACK_OF(X509) * certs; /* owned; leaf first */
};

/* Parse a PEM chain (untrusted bytes). At least one certificate, at most NVIDIA_CHAIN_MAX.
 * Call nvidia_chain_free afterwards, on failure too. */
int nvidia_chain_parse(const uint8_t *pem, size_t len, struct nvidia_chain *out, struct err *err);
void nvidia_chain_free(struct nvidia_chain *c);
/* Borrowed leaf (first certificate). */
X509 *nvidia_chain_leaf(const struct nvidia_chain *c);

/* The FWID of a device certificate: the last 48 bytes of extension 2.23.133.5.4.1 (TCG DICE
 * TcbInfo). */
int nvidia_cert_fwid(X509 *cert, uint8_t fwid[NVIDIA_FWID_LEN], struct err *err);

/* The checks, in this order, each refusing with its own sentence: two certificates at least;
 * the last one is the trusted root (SHA-1 fingerprint); the leaf's FWID equals `fwid`; the
 * path leaf -> root verifies at `now` (0 = the current time). `root` NULL = the built-in
 * NVIDIA Device Identity CA. `fwid` NULL: the report carries none (an NVSwitch's does not,
 * though its leaf has the extension), so there is nothing to bind and no FWID is compared,
 * as NVIDIA's switch verifier does. */
int nvidia_chain_verify(const struct nvidia_chain *c, X509 *root, const uint8_t *fwid,
                        size_t fwid_len, time_t now, struct err *err);

/* The device's PCIe identifier (PDI), as its certificates name it: the serialNumber attribute
 * of the leaf's issuer (the device identity certificate, "GH100 A01 GSP BROM" or "LS_10 A01
 * FSP BROM") is 18 hex digits, one byte of device kind (0x41 on the H100s and 0x50 on the LS10
 * switches of nvtrust's PPCIe sample) and the 8-byte PDI, the same bytes a switch reports as
 * its switch_pdi and lists for its GPUs. Read only after nvidia_chain_verify accepted the
 * chain, so the name was certified. -1 with a sentence when the certificate names none. */
int nvidia_chain_pdi(const struct nvidia_chain *c, uint8_t pdi[8], struct err *err);

/* The built-in NVIDIA Device Identity CA (borrowed, loaded once). NULL only if the embedded
 * PEM does not parse. */
X509 *nvidia_device_root(void);

#endif
