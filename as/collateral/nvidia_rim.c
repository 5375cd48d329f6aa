/*
 * nvidia_rim: RIMs from the RVPS (see nvidia_rim.h). The stored value is JSON the RVPS hands
 * back; it is read as untrusted as any other input: an object of decimal measurement indices,
 * each an array of hex strings, or the RIM is refused.
 */
#include "as/collateral/nvidia_rim.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rvps/extractors/swid.h"

/* The value must be {"<index>": ["<hex>", ...], ...}. */
static int check_shape(const json_t *v, const char *name, struct err *err)
{
	const char *k;
	const json_t *alts, *one;
	size_t i;

	if (!json_is_object(v))
		return err_set(err, "the RVPS value %s is not a RIM's measurements", name);
	json_object_foreach((json_t *)v, k, alts)
	{
		int digits = k[0] != '\0' && strlen(k) <= 4;
		for (const char *p = k; digits && *p != '\0'; p++)
			digits = isdigit((unsigned char)*p);
		if (!digits || !json_is_array(alts))
			return err_set(err, "the RVPS value %s is not a RIM's measurements", name);
		json_array_foreach(alts, i, one) if (!json_is_string(one)) return err_set(
		    err, "the RVPS value %s is not a RIM's measurements", name);
	}
	return 0;
}

/* The value's provenance must say a verified signature came with it. */
static int check_provenance(const struct verify_rv *rv, const char *name, struct err *err)
{
	char *text = NULL;
	json_t *p;
	int rc = rv->query(rv->ctx, name, 1, &text, err), ok;

	if (rc < 0)
		return -1;
	p = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	ok = p != NULL &&
	     strcmp(json_string_value(json_object_get(p, "extractor")) ?: "", "swid") == 0 &&
	     json_is_true(json_object_get(p, "signed"));
	json_decref(p);
	return ok ? 0
	          : err_setc(err, 0,
	                     "the RVPS holds %s but not from a signed RIM (its provenance "
	                     "is not the swid extractor with a verified signature)",
	                     name);
}

int nvidia_rim_from_rvps(const struct verify_rv *rv, const char *product, const char *version,
                         char name[160], json_t **active, struct err *err)
{
	char *text = NULL;
	json_t *v;
	int rc;

	*active = NULL;
	if (swid_rim_rv_name(product, version, name, 160) < 0)
		return err_set(err, "the version %.64s cannot name a RIM", version);
	if (rv == NULL || rv->query == NULL)
		return 0;
	if ((rc = rv->query(rv->ctx, name, 0, &text, err)) <= 0)
		return rc;
	v = json_loads(text, 0, NULL);
	free(text);
	if (check_shape(v, name, err) < 0 || check_provenance(rv, name, err) < 0) {
		json_decref(v);
		return -1;
	}
	*active = v;
	return 1;
}
