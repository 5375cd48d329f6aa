/* Fuzz protobuf-c unpacking of every request message our gRPC services accept (attestation,
 * reference, health), and re-packing whatever unpacks: the bytes come straight off the
 * network in the gRPC handlers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "attestation.pb-c.h"
#include "health.pb-c.h"
#include "reference.pb-c.h"

static const ProtobufCMessageDescriptor *const descs[] = {
    &attestation__attestation_request__descriptor,
    &attestation__set_policy_request__descriptor,
    &attestation__challenge_request__descriptor,
    &reference__reference_value_query_request__descriptor,
    &reference__reference_value_register_request__descriptor,
    &reference__reference_value_query_response__descriptor,
    &grpc__health__v1__health_check_request__descriptor,
    /* responses our clients unpack (KBS from the AS, rvps-tool and the AS from an RVPS) */
    &attestation__attestation_response__descriptor,
    &attestation__challenge_response__descriptor,
    &grpc__health__v1__health_check_response__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++) {
		ProtobufCMessage *m = protobuf_c_message_unpack(descs[i], NULL, size, data);
		if (m == NULL)
			continue;
		size_t n = protobuf_c_message_get_packed_size(m);
		uint8_t *buf = malloc(n + 1);
		if (buf != NULL) {
			protobuf_c_message_pack(m, buf);
			free(buf);
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return 0;
}
