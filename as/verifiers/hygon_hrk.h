/*
 * hygon_hrk: the Hygon root key certificate (HRK) the csv and hygondcu verifiers chain to, and
 * the rule for a chip name that picks an HSK/CEK file.
 */
#ifndef CTRUSTEE_HYGON_HRK_H
#define CTRUSTEE_HYGON_HRK_H

#include "as/evidence/csv_report.h"
#include "err.h"

/* The built-in HRK (path NULL) or the one in the file at `path`, parsed; 0 / -1 with err. */
int hygon_hrk_read(const char *path, struct csv_ca_cert *hrk, struct err *err);

#endif
