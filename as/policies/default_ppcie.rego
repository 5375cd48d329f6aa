# ctrustee's default appraisal policy for NVIDIA protected PCIe mode (policy id default_ppcie):
# the topology itself carries no measurements here; configuration is approved.
package policy

import rego.v1

default hardware := 0
default executables := 0
default configuration := 2
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
