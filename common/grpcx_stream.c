/*
 * grpcx_stream: a unary call's request and response on one HTTP/2 stream, shared by the
 * blocking client (grpcx_client.c) and the loop-driven one (grpcx_async.c); see the header.
 */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcx_stream.h"

int grpcx_status_set(struct err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

void grpcx_stream_init(struct grpcx_stream *st, const uint8_t *req, size_t req_len)
{
	memset(st, 0, sizeof(*st));
	st->req = req;
	st->req_len = req_len;
	st->grpc_status = -1;
	st->prefix[1] = (uint8_t)(req_len >> 24);
	st->prefix[2] = (uint8_t)(req_len >> 16);
	st->prefix[3] = (uint8_t)(req_len >> 8);
	st->prefix[4] = (uint8_t)req_len;
	grpcx_msg_reader_init(&st->rd, GRPCX_WIRE_MAX_MSG);
}

void grpcx_stream_free(struct grpcx_stream *st)
{
	grpcx_msg_reader_free(&st->rd);
}

/* The request body: the 5-byte prefix (uncompressed, length) then the message. */
static ssize_t req_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct grpcx_stream *st = src->ptr;
	size_t total = 5 + st->req_len, n = 0;

	while (n < length && st->sent < total) {
		size_t k;

		if (st->sent < 5) {
			buf[n++] = st->prefix[st->sent++];
			continue;
		}
		k = total - st->sent < length - n ? total - st->sent : length - n;
		memcpy(buf + n, st->req + (st->sent - 5), k);
		n += k;
		st->sent += k;
	}
	if (st->sent == total)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

int grpcx_stream_submit(nghttp2_session *ng, struct grpcx_stream *st,
                        const struct grpcx_stream_hdrs *h, const char *method, long left_ms,
                        void *stream_data)
{
	nghttp2_nv nv[10];
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = req_read};
	size_t n = 0;

#define NV(nm, val, fl)                                                                            \
	nv[n++] =                                                                                  \
	    (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(val), strlen(nm), strlen(val),               \
	                 NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE | (fl)}
	NV(":method", "POST", 0);
	NV(":scheme", h->tls ? "https" : "http", 0);
	NV(":path", method, 0);
	NV(":authority", h->authority, 0);
	NV("content-type", "application/grpc", 0);
	NV("te", "trailers", 0);
	NV("user-agent", "ctrustee", 0);
	if (left_ms >= 0 && grpcx_timeout_format(left_ms, st->timeout, sizeof(st->timeout)) == 0)
		NV("grpc-timeout", st->timeout, 0);
	if (h->bearer != NULL)
		NV("authorization", h->bearer, NGHTTP2_NV_FLAG_NO_INDEX);
#undef NV
	st->stream_id = nghttp2_submit_request(ng, NULL, nv, n, &prd, stream_data);
	return st->stream_id > 0 ? 0 : -1;
}

static int hdr_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

void grpcx_stream_header(struct grpcx_stream *st, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen)
{
	if (hdr_is(name, namelen, ":status")) {
		int code = grpcx_status_parse(value, valuelen);
		if (code >= 200 || st->http_status == 0)
			st->http_status = code;
	} else if (hdr_is(name, namelen, "content-type")) {
		st->bad_ctype = !(valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
		                  (valuelen == 16 || value[16] == '+' || value[16] == ';'));
		snprintf(st->ctype, sizeof(st->ctype), "%.*s", (int)valuelen, (const char *)value);
	} else if (hdr_is(name, namelen, "grpc-status")) {
		st->grpc_status = grpcx_status_parse(value, valuelen);
		st->status_garbled = st->grpc_status < 0;
	} else if (hdr_is(name, namelen, "grpc-message")) {
		grpcx_percent_decode(value, valuelen, st->grpc_message, sizeof(st->grpc_message));
	}
}

void grpcx_stream_data(nghttp2_session *ng, struct grpcx_stream *st, const uint8_t *data,
                       size_t len)
{
	if (st->failed)
		return;
	if (grpcx_msg_feed(&st->rd, data, len, &st->fail) < 0) {
		/* refuse the rest without buffering it */
		st->failed = 1;
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->stream_id, NGHTTP2_CANCEL);
	}
}

int grpcx_stream_result(struct grpcx_stream *st, uint8_t **resp, size_t *resp_len, struct err *err)
{
	if (st->failed) {
		*err = st->fail;
		return st->fail.code;
	}
	if (st->grpc_status < 0 && st->h2_error != NGHTTP2_NO_ERROR)
		return grpcx_status_set(err, grpcx_status_from_h2_error(st->h2_error),
		                        "The server reset the call (HTTP/2 error %s)",
		                        nghttp2_http2_strerror(st->h2_error));
	if (st->http_status != 200)
		return grpcx_status_set(
		    err, grpcx_status_from_http(st->http_status),
		    "The server answered HTTP status %d, not a gRPC response%s%s", st->http_status,
		    st->grpc_message[0] ? ": " : "", st->grpc_message);
	if (st->bad_ctype)
		return grpcx_status_set(
		    err, GRPCX_UNKNOWN,
		    "The server answered with content-type %s, not a gRPC response", st->ctype);
	if (st->grpc_status < 0)
		return grpcx_status_set(
		    err, st->status_garbled ? GRPCX_UNKNOWN : GRPCX_INTERNAL, "%s",
		    st->status_garbled ? "The server's response carries an invalid grpc-status"
		                       : "The server's response carries no grpc-status");
	if (st->grpc_status != GRPCX_OK) {
		err_setc(err, st->grpc_status, "%s",
		         st->grpc_message[0] ? st->grpc_message : "gRPC call failed");
		return st->grpc_status;
	}
	if (grpcx_msg_finish(&st->rd, resp, resp_len, err) < 0)
		return err->code;
	return GRPCX_OK;
}

int grpcx_stream_session_setup(nghttp2_session *ng)
{
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GRPCX_STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536},
	};

	if (nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(ng, NGHTTP2_FLAG_NONE, 0, GRPCX_STREAM_WINDOW) !=
	        0)
		return -1;
	return 0;
}

int grpcx_bearer_set(char **slot, const char *token, struct err *err)
{
	char *b = NULL;

	if (token != NULL && asprintf(&b, "Bearer %s", token) < 0)
		return err_set(err, "out of memory");
	if (*slot) {
		OPENSSL_cleanse(*slot, strlen(*slot));
		free(*slot);
	}
	*slot = b;
	return 0;
}
