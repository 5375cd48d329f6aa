/*
 * hygon_hrk: the Hygon root both Hygon verifiers use: built into the binary from
 * as/evidence/roots/hygon_hrk.cert, or an operator's file (hrk_file, the tool's csv_hrk) that
 * replaces it, e.g. a test root.
 */
#include <stdlib.h>

#include "as/verifiers/hygon_hrk.h"
#include "config.h"
#include "embed.h"

EMBED_FILE(hygon_hrk_builtin, "as/evidence/roots/hygon_hrk.cert");

int hygon_hrk_read(const char *path, struct csv_ca_cert *hrk, struct err *err)
{
	size_t len;
	char *buf;
	int rc;

	if (path == NULL)
		return csv_ca_cert_parse((const uint8_t *)hygon_hrk_builtin, CSV_CA_CERT_LEN, hrk,
		                         err) < 0
		           ? err_prefix(err, "built-in HRK")
		           : 0;
	if ((buf = file_read_all(path, &len, err)) == NULL)
		return err_prefix(err, "HRK");
	rc = csv_ca_cert_parse((const uint8_t *)buf, len, hrk, err);
	free(buf);
	return rc < 0 ? err_prefix(err, "HRK %s", path) : 0;
}
