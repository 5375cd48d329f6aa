# ctrustee's default appraisal policy for Hygon DCU evidence (policy id default_dcu; Trustee
# ships none, so its AS cannot appraise a dcu submod without an operator's policy).
#
# The claims exist only for a report whose signature chained to the Hygon root (HRK -> HSK ->
# CEK) and whose user_data bound the request's nonce, so their presence is genuine hardware.
# Executables are approved when the report's measure is one registered in the RVPS under
# `hygon_dcu_measure`; a DCU reports no configuration, so that claim is left unset (0).
package policy

import rego.v1

default hardware := 97
default executables := 33
default configuration := 0
default file_system := 0
default instance_identity := 0
default runtime_opaque := 0
default storage_opaque := 0
default sourced_data := 0

trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
	"file-system": file_system,
	"instance-identity": instance_identity,
	"runtime-opaque": runtime_opaque,
	"storage-opaque": storage_opaque,
	"sourced-data": sourced_data,
}

hardware := 2 if input.hygondcu.body.chip_id

executables := 3 if {
	input.hygondcu.body.measure in query_reference_value("hygon_dcu_measure")
}
