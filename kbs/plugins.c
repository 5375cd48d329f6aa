/*
 * plugins: the table of KBS plugins that follow the §7.1 contract through struct kbs_plugin
 * (kbs.h), one file per plugin under kbs/plugins/ (external.c, pkcs11.c, nebula_ca.c).
 * resource and sample are served by server.c itself; every other plugin name is a row here
 * or refused at start-up.
 */
#include <string.h>

#include "kbs.h"

const struct kbs_plugin *const kbs_plugins[] = {
    &kbs_plugin_external,
    &kbs_plugin_pkcs11,
    &kbs_plugin_nebula_ca,
    NULL,
};

const struct kbs_plugin *kbs_plugin_find(const char *name)
{
	for (size_t i = 0; kbs_plugins[i] != NULL; i++)
		if (strcmp(kbs_plugins[i]->name, name) == 0)
			return kbs_plugins[i];
	return NULL;
}
