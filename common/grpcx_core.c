/*
 * grpcx_core: the gRPC core helpers the client (grpcx_client.c) uses (see grpcx_core.h). The
 * server no longer runs on core (grpcx.c, grpcx_h2.c).
 */
#include "grpcx_core.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>

#include "log.h"

/* gRPC core sees a connection attempt finish only while some thread polls. Our client calls
 * fail fast while a channel is in TRANSIENT_FAILURE, so between calls nobody polls but core's
 * backup poller, every 5 s by default, and a restarted peer stayed unreachable for seconds
 * after it was back. Poll every 100 ms instead (core reads this once, at the first
 * grpc_init; an operator's own setting wins). */
static void gpr_to_log(gpr_log_func_args *a)
{
	log_debug("grpc core: %s", a->message);
}

void grpcx_init(void)
{
	setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", 0);
	/* Core's own lines ("Handshake failed ...") repeat what our errors already say, better
	 * (see grpcx_tls.c): into our log at debug level, unless the operator asked core to
	 * log (GRPC_VERBOSITY). */
	if (getenv("GRPC_VERBOSITY") == NULL)
		gpr_set_log_function(gpr_to_log);
	grpc_init();
}

gpr_timespec deadline_in_ms(long ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Flatten a (possibly compressed) byte buffer into malloc'd bytes. */
int bb_to_bytes(grpc_byte_buffer *bb, uint8_t **out, size_t *len)
{
	grpc_byte_buffer_reader rd;
	grpc_slice sl;
	size_t n;

	*out = NULL;
	*len = 0;
	if (bb == NULL)
		return 0;
	if (!grpc_byte_buffer_reader_init(&rd, bb))
		return -1;
	sl = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	n = GRPC_SLICE_LENGTH(sl);
	*out = malloc(n + 1);
	if (*out == NULL) {
		grpc_slice_unref(sl);
		return -1;
	}
	if (n > 0)
		memcpy(*out, GRPC_SLICE_START_PTR(sl), n);
	(*out)[n] = 0;
	*len = n;
	grpc_slice_unref(sl);
	return 0;
}

grpc_byte_buffer *bytes_to_bb(const uint8_t *buf, size_t len)
{
	grpc_slice sl =
	    len ? grpc_slice_from_copied_buffer((const char *)buf, len) : grpc_empty_slice();
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	return bb;
}
