/*
 * swid: NVIDIA's signed RIMs (SWID XML) read outside the RVPS, by a verifier that keeps RIM
 * files in a local directory. The same parser, shape checks and XML-DSig verification as the
 * swid extractor; only the result differs: the golden values by measurement index rather
 * than reference-value names.
 */
#ifndef CTRUSTEE_SWID_H
#define CTRUSTEE_SWID_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

struct swid_trust;

/* A trust store of one PEM root certificate; every RIM read with it must be signed by a
 * chain to that root. NULL with the reason. */
struct swid_trust *swid_trust_new(const char *root_pem_file, struct err *err);
void swid_trust_free(struct swid_trust *t);

/* Verify the RIM `xml` (signature required, checked at `now`, 0 = current time) and return
 * its active measurements as {"<index>": ["<hex>", ...]}: every Hash<N> alternative of each
 * Resource of type Measurement with active="True", all-zero values included. The caller owns
 * *active. */
int swid_rim_active(struct swid_trust *t, const uint8_t *xml, size_t len, time_t now,
                    json_t **active, struct err *err);

/* The reference value under which the swid extractor also stores a RIM's active measurements
 * (the object swid_rim_active returns), so a verifier finds the RIM for the version a device
 * reports: "nvidia_rim/<Meta product>/<Meta colloquialVersion, lower case>", e.g.
 * nvidia_rim/GH100/550.90.07 (a driver RIM) or nvidia_rim/GH100/96.00.9f.00.01 (a VBIOS RIM).
 * -1 when a part is empty, too long or holds a character outside [A-Za-z0-9._-]. */
#define SWID_RIM_RV_PREFIX "nvidia_rim/"
int swid_rim_rv_name(const char *product, const char *version, char *out, size_t cap);

#endif
