/*
 * cborx: the bounded front of libcbor (see cborx.h). cborx_check is the one function that
 * reads raw bytes; it recurses once per nesting level, at most CBORX_MAX_DEPTH deep.
 */
#include "cborx.h"

#include <stdlib.h>
#include <string.h>

struct walk {
	const uint8_t *b;
	size_t len, pos;
	struct err *err;
};

static int walk_item(struct walk *w, int depth);

/* Reads an item head: major type, additional info, argument. */
static int walk_head(struct walk *w, int *mt, int *ai, uint64_t *arg)
{
	size_t n;

	if (w->pos >= w->len)
		return err_set(w->err, "CBOR: the data ends inside an item (at byte %zu)", w->pos);
	*mt = w->b[w->pos] >> 5;
	*ai = w->b[w->pos] & 31;
	w->pos++;
	if (*ai < 24) {
		*arg = (uint64_t)*ai;
		return 0;
	}
	if (*ai == 31) {
		*arg = 0;
		return 0;
	}
	if (*ai > 27)
		return err_set(w->err, "CBOR: reserved additional information %d at byte %zu", *ai,
		               w->pos - 1);
	n = (size_t)1 << (*ai - 24);
	if (w->len - w->pos < n)
		return err_set(w->err, "CBOR: the data ends inside an item head (at byte %zu)",
		               w->pos);
	*arg = 0;
	for (size_t i = 0; i < n; i++)
		*arg = (*arg << 8) | w->b[w->pos + i];
	w->pos += n;
	return 0;
}

/* The items of an indefinite array (per = 1) or map (per = 2), up to the break byte. */
static int walk_indefinite(struct walk *w, int per, int depth)
{
	size_t n = 0;

	for (;;) {
		if (w->pos >= w->len)
			return err_set(w->err, "CBOR: an indefinite-length item has no break");
		if (w->b[w->pos] == 0xff) {
			w->pos++;
			break;
		}
		if (walk_item(w, depth + 1) < 0)
			return -1;
		n++;
	}
	if (n % (size_t)per != 0)
		return err_set(w->err, "CBOR: an indefinite-length map has a key without a value");
	return 0;
}

static int walk_item(struct walk *w, int depth)
{
	uint64_t arg = 0, items;
	int mt, ai;

	if (depth > CBORX_MAX_DEPTH)
		return err_set(w->err, "CBOR: items nest deeper than %d levels", CBORX_MAX_DEPTH);
	if (walk_head(w, &mt, &ai, &arg) < 0)
		return -1;
	switch (mt) {
	case 0:
	case 1:
		if (ai == 31)
			return err_set(w->err, "CBOR: an integer cannot have indefinite length");
		return 0;
	case 2:
	case 3:
		if (ai == 31)
			return err_set(w->err, "CBOR: indefinite-length strings are not accepted");
		if (arg > w->len - w->pos)
			return err_set(w->err,
			               "CBOR: a string declares %llu bytes but only %zu remain",
			               (unsigned long long)arg, w->len - w->pos);
		w->pos += (size_t)arg;
		return 0;
	case 4:
	case 5:
		if (ai == 31)
			return walk_indefinite(w, mt == 4 ? 1 : 2, depth);
		/* every item takes at least one byte */
		if (arg > (w->len - w->pos) / (mt == 4 ? 1 : 2))
			return err_set(w->err,
			               "CBOR: %s declares %llu entries but only %zu bytes remain",
			               mt == 4 ? "an array" : "a map", (unsigned long long)arg,
			               w->len - w->pos);
		items = mt == 4 ? arg : 2 * arg;
		for (uint64_t i = 0; i < items; i++)
			if (walk_item(w, depth + 1) < 0)
				return -1;
		return 0;
	case 6:
		if (ai == 31)
			return err_set(w->err, "CBOR: a tag cannot have indefinite length");
		/* libcbor before 0.9 fails on one-byte tag heads 6..20; say so rather than
		 * "malformed" (COSE's tag 18 is unwrapped by cose.c before decoding) */
		if (ai >= 6 && ai <= 20)
			return err_set(w->err, "CBOR: tag %d at byte %zu is not supported here", ai,
			               w->pos - 1);
		return walk_item(w, depth + 1);
	default:
		if (ai == 31)
			return err_set(w->err,
			               "CBOR: a break byte outside an indefinite-length item");
		if (ai == 24 && arg < 32)
			return err_set(w->err, "CBOR: a simple value in two bytes below 32");
		return 0;
	}
}

int cborx_check(const uint8_t *buf, size_t len, struct err *err)
{
	struct walk w = {buf, len, 0, err};

	if (buf == NULL || len == 0)
		return err_set(err, "CBOR: no data");
	if (len > CBORX_MAX_LEN)
		return err_set(err, "CBOR: %zu bytes is more than the %zu accepted", len,
		               CBORX_MAX_LEN);
	if (walk_item(&w, 0) < 0)
		return -1;
	if (w.pos != len)
		return err_set(err, "CBOR: %zu bytes follow the item", len - w.pos);
	return 0;
}

cbor_item_t *cborx_load(const uint8_t *buf, size_t len, struct err *err)
{
	struct cbor_load_result res;
	cbor_item_t *it;

	if (cborx_check(buf, len, err) < 0)
		return NULL;
	it = cbor_load(buf, len, &res);
	if (it == NULL || res.error.code != CBOR_ERR_NONE || res.read != len) {
		if (it != NULL)
			cbor_decref(&it);
		err_set(err, "CBOR: cannot decode the item (error %d at byte %zu)",
		        (int)res.error.code, res.error.position);
		return NULL;
	}
	return it;
}

int cborx_int(const cbor_item_t *it, int64_t *out)
{
	uint64_t v;

	if (it == NULL || (!cbor_isa_uint(it) && !cbor_isa_negint(it)))
		return -1;
	v = cbor_get_int(it);
	if (v > INT64_MAX)
		return -1;
	*out = cbor_isa_uint(it) ? (int64_t)v : -1 - (int64_t)v;
	return 0;
}

int cborx_map_int(const cbor_item_t *map, int64_t key, cbor_item_t **out, struct err *err)
{
	struct cbor_pair *p;
	size_t n;

	*out = NULL;
	if (map == NULL || !cbor_isa_map(map))
		return err_set(err, "CBOR: a map was expected");
	p = cbor_map_handle(map);
	n = cbor_map_size(map);
	for (size_t i = 0; i < n; i++) {
		int64_t k;

		if (cborx_int(p[i].key, &k) < 0 || k != key)
			continue;
		if (*out != NULL) {
			*out = NULL;
			return err_set(err, "CBOR: map key %lld appears twice", (long long)key);
		}
		*out = p[i].value;
	}
	return 0;
}

cbor_item_t *cborx_untag(const cbor_item_t *it, uint64_t tag)
{
	cbor_item_t *ref, *inner;

	if (it == NULL || !cbor_isa_tag(it) || cbor_tag_value(it) != tag)
		return NULL;
	ref = inner = cbor_tag_item(it); /* +1 reference; the tag keeps its own */
	cbor_decref(&ref);
	return inner;
}

char *cborx_text(const cbor_item_t *it)
{
	size_t n;
	char *s;

	if (it == NULL || !cbor_isa_string(it) || !cbor_string_is_definite(it))
		return NULL;
	n = cbor_string_length(it);
	if (n > 0 && memchr(cbor_string_handle(it), 0, n) != NULL)
		return NULL;
	s = malloc(n + 1);
	if (s == NULL)
		return NULL;
	if (n > 0)
		memcpy(s, cbor_string_handle(it), n);
	s[n] = '\0';
	return s;
}

int cborx_bytes(const cbor_item_t *it, const uint8_t **p, size_t *len)
{
	if (it == NULL || !cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it))
		return -1;
	*len = cbor_bytestring_length(it);
	*p = cbor_bytestring_handle(it);
	return 0;
}
