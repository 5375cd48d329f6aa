/*
 * resource: the `resource` plugin's storage behind one table of backends, curl-vtls style:
 * each backend is a file defining one row (resource_kv.c: the daemon's key-value store,
 * resource_vault.c: Vault KV v1), every slot named. The server calls kbs_resources_*; which
 * row answers is decided once, at start-up, by the plugin's storage_backend_type, so a new
 * backend is one file and one line in the table below.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kbs.h"

const struct kbs_resource_backend *const kbs_resource_backends[] = {
    &kbs_resource_kvstorage, /* the default */
    &kbs_resource_vault,
    NULL,
};

struct kbs_resources {
	const struct kbs_resource_backend *be; /* a row of kbs_resource_backends */
	void *state;                           /* from be->open, released by be->free */
};

/* NULL (no storage_backend_type) names the default, the first row. */
static const struct kbs_resource_backend *backend_by_name(const char *name, struct err *err)
{
	if (name == NULL)
		return kbs_resource_backends[0];
	for (size_t i = 0; kbs_resource_backends[i] != NULL; i++)
		if (strcasecmp(name, kbs_resource_backends[i]->name) == 0)
			return kbs_resource_backends[i];
	err_set(err,
	        "[[plugins]] resource: storage_backend_type \"%s\" is not one of kvstorage, "
	        "Vault",
	        name);
	return NULL;
}

struct kbs_resources *kbs_resources_new(const struct kbs_config *cfg, struct kv *kv,
                                        struct err *err)
{
	const struct kbs_resource_backend *be = backend_by_name(cfg->resource_backend, err);
	if (be == NULL)
		return NULL;
	struct kbs_resources *r = calloc(1, sizeof(*r));
	if (!r) {
		err_set(err, "out of memory");
		return NULL;
	}
	r->be = be;
	r->state = be->open(cfg->resource_plugin_cfg, kv, err);
	if (!r->state) {
		free(r);
		return NULL;
	}
	return r;
}

void kbs_resources_free(struct kbs_resources *r)
{
	if (!r)
		return;
	r->be->free(r->state);
	free(r);
}

const char *kbs_resources_name(const struct kbs_resources *r)
{
	return r->be->name;
}

int kbs_resources_get(struct kbs_resources *r, const char *path, uint8_t **val, size_t *len,
                      struct err *err)
{
	*val = NULL;
	*len = 0;
	return r->be->get(r->state, path, val, len, err);
}

int kbs_resources_peek(struct kbs_resources *r, const char *path, uint8_t **val, size_t *len,
                       struct err *err)
{
	*val = NULL;
	*len = 0;
	if (r->be->peek == NULL)
		return KBS_RESOURCE_UNKNOWN;
	return r->be->peek(r->state, path, val, len, err);
}

bool kbs_resources_can_peek(const struct kbs_resources *r)
{
	return r->be->peek != NULL;
}

int kbs_resources_set(struct kbs_resources *r, const char *path, const uint8_t *val, size_t len,
                      struct err *err)
{
	return r->be->set(r->state, path, val, len, err);
}

int kbs_resources_delete(struct kbs_resources *r, const char *path, struct err *err)
{
	return r->be->del(r->state, path, err);
}
