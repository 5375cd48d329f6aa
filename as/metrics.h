/*
 * as_metrics: the Attestation Service's Prometheus counters, served as GET /metrics on the
 * gRPC port (common/grpcfront.h). Lock-free (atomic adds); label values come from a fixed
 * table, so no input can grow the series.
 */
#ifndef CTRUSTEE_AS_METRICS_H
#define CTRUSTEE_AS_METRICS_H

#include <stddef.h>

/* One AttestationEvaluate: the first verification request's TEE name (unknown names count
 * as "other"), its outcome and how long it took. */
void as_metrics_attestation(const char *tee, int ok, double seconds);
/* One policy appraisal: the EAR status it produced, or NULL when evaluation failed. */
void as_metrics_policy(const char *ear_status);
/* The exposition text (malloc'd), or NULL. */
char *as_metrics_render(size_t *len);

#endif
