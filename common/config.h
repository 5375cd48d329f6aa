/*
 * config: load a daemon's configuration file into a jansson object, by extension:
 * .toml (our TOML parser), .yaml/.yml (libyaml), .json, and typed accessors that produce precise
 * errors
 * ("[http_server] sockets: expected an array of strings").
 */
#ifndef CTRUSTEE_CONFIG_H
#define CTRUSTEE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"

/* Reads and parses the file: PATH, else the first of PATH.toml, .json, .yaml, .yml that
 * exists (as Trustee's `config` crate finds it); TOML if the name ends in .toml, YAML if in
 * .yaml or .yml, else JSON. New reference. */
json_t *config_load(const char *path, struct err *err);
/* Slurp a whole file (NUL-terminated, length in *len). malloc'd. */
char *file_read_all(const char *path, size_t *len, struct err *err);

/* Dotted-path lookup ("attestation_token_broker.signer.key_path"); borrowed, NULL if absent. */
json_t *config_get(const json_t *root, const char *dotted);
/* Typed getters: return the default when absent, -1 with err if present with the wrong type. */
int config_string(const json_t *root, const char *dotted, const char *def, const char **out,
                  struct err *err);
int config_int(const json_t *root, const char *dotted, long long def, long long *out,
               struct err *err);
int config_bool(const json_t *root, const char *dotted, bool def, bool *out, struct err *err);

#endif
