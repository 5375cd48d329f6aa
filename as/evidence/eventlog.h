/*
 * eventlog: the Confidential Computing event log (CCEL) in the TCG2 crypto-agile format, as a
 * TD's firmware, shim, grub and kernel write it, read the way Trustee's verifier reads it.
 *
 * The log starts with a TCG_EfiSpecIdEvent (SHA-1 format header, signature "Spec ID Event03",
 * giving the digest size of every algorithm), followed by TCG_PCR_EVENT2 records
 * {u32 mr_index, u32 event_type, u32 digest_count, digest_count x {u16 alg, digest},
 * u32 event_size, event}. It ends at the end of the buffer or at the first 8 bytes that are
 * all 0x00 or all 0xFF (the unused tail of the ACPI CCEL area).
 *
 * `index` is the raw CC measurement register index of the event: for TDX, CC-MR 0 is MRTD
 * and CC-MR 1..4 are RTMR0..RTMR3 (UEFI 2.10 §38.4.1), so a verifier compares the replay of
 * index 1..4 with the quote's RTMR0..RTMR3 (spec as-rvps.md §5.3).
 *
 * Every length is checked before use; malformed logs are refused with a sentence naming the
 * entry, its byte offset and what was wrong. Trustee's rules that are kept: unknown event
 * types and digest algorithms are refused, events carrying digests other than SHA-256/384/512
 * and SM3 are refused (Trustee cannot compute `digest_matches_event` for them), and a
 * `details` decoder that fails refuses the whole log.
 */
#ifndef CTRUSTEE_EVENTLOG_H
#define CTRUSTEE_EVENTLOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define EVENTLOG_MAX_MR 8
/* Bounds on untrusted input (a 1 MiB CCEL holds at most 65536 minimal events). */
#define EVENTLOG_MAX_ENTRIES 65536
#define EVENTLOG_MAX_DIGESTS 16            /* digests in one event */
#define EVENTLOG_MAX_EVENT_SIZE (1u << 20) /* bytes of one event's data */

#define EVENTLOG_ALG_SHA384 0x000c
#define EVENTLOG_ALG_SM3 0x0012 /* TCG_ALG_SM3_256, 32-byte digests (Hygon CSV) */
#define EVENTLOG_MAX_DIGEST 64  /* bytes of the largest digest replayed (SHA-512) */

/* Parse a TCG2 crypto-agile event log (TCG_EfiSpecIdEvent first; ends at the first all-0x00 or
 * all-0xFF 8-byte marker or at the end of buf). On success *entries is a new JSON array of
 * entries shaped as spec §5.12 (details, digest_matches_event, digests[{alg,digest}],
 * event (b64 std), index, type_name), the `uefi_event_logs` claim. */
int eventlog_parse(const uint8_t *buf, size_t len, json_t **entries, struct err *err);

/* Replay the SHA-384 digests of a log: mr[i] = extend chain over the entries with index i,
 * starting at 48 zero bytes (H(mr || digest) per digest, in log order). present[i] = 1 if any
 * entry had index i. Checks the log's structure as eventlog_parse does, but not `details`. */
int eventlog_replay_sha384(const uint8_t *buf, size_t len, uint8_t mr[EVENTLOG_MAX_MR][48],
                           int present[EVENTLOG_MAX_MR], struct err *err);

/* Replay the digests of one algorithm (EVENTLOG_ALG_SHA384, EVENTLOG_ALG_SM3, SHA-256/512):
 * mr[i][0..digest size) = the extend chain over the entries with index i, from zero bytes of
 * the digest size, as eventlog_replay_sha384 does. An algorithm without a digest refuses. */
int eventlog_replay(const uint8_t *buf, size_t len, uint16_t alg_id,
                    uint8_t mr[EVENTLOG_MAX_MR][EVENTLOG_MAX_DIGEST], int present[EVENTLOG_MAX_MR],
                    struct err *err);

/* Replayed CC-MR 1..4 (algorithm alg_id) must equal want[0..4*digest size), four registers
 * back to back. On mismatch Trustee's sentence (below) and *bad_index = the CC-MR (1..4) that
 * failed (0 when the log itself was refused); bad_index may be NULL. */
int eventlog_check_ccmrs(const uint8_t *buf, size_t len, uint16_t alg_id, const uint8_t *want,
                         int *bad_index, struct err *err);

/* The TDX integrity check of spec §5.3: replayed CC-MR 1..4 must equal rtmr[0..3]. On mismatch
 * the error is Trustee's sentence ("Eventlog does not pass measurement replay CC Event Log
 * Measurement Register [index = N]. Calculated value: <hex>, Given value: <hex>"). */
int eventlog_check_rtmrs(const uint8_t *buf, size_t len, const uint8_t rtmr[4][48],
                         struct err *err);

/* Name of a TCG event type ("EV_IPL"), or NULL if Trustee does not know it. */
const char *eventlog_type_name(uint32_t type);

/* The `details` object of one event's data (internal to the parser, exposed for tests). */
int eventlog_details(uint32_t type, const uint8_t *data, size_t len, json_t **details,
                     struct err *err);

#endif
