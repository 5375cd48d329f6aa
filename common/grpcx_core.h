/*
 * grpcx_core: the gRPC core helpers of the client (grpcx_client.c), defined in grpcx_core.c.
 * Private to those files; they go with the client's move off core.
 */
#ifndef CTRUSTEE_GRPCX_CORE_H
#define CTRUSTEE_GRPCX_CORE_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#define GRPCX_MAX_MSG (64 * 1024 * 1024)
#define GRPCX_CONNECT_TIMEOUT_MS 5000

/* grpc_init with our settings (backup poll interval, core's log lines into ours). */
void grpcx_init(void);
gpr_timespec deadline_in_ms(long ms);
/* Flatten a (possibly compressed) byte buffer into malloc'd bytes (NUL-terminated). */
int bb_to_bytes(grpc_byte_buffer *bb, uint8_t **out, size_t *len);
grpc_byte_buffer *bytes_to_bb(const uint8_t *buf, size_t len);

#endif
