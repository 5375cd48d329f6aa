# ctrustee's default appraisal policy for NVIDIA gpu evidence (policy id default_gpu).
#
# The claims come from NVIDIA's attestation service in remote mode (names x-nvidia-gpu-...):
# hardware is genuine when the attestation report's certificate chain is good and the report
# verified; the configuration is approved with secure boot on, debug off and (for 2) firmware
# versions in the reference values; executables when every RIM checked out.
# In local mode (claims arch, measurements, config) the verifier has already refused a device
# whose chain, report signature, FWID or nonce failed, so one that reaches this policy has
# genuine hardware (unless OCSP, when configured, did not say good); its configuration is
# approved when its VBIOS and driver versions are reference values, and its executables when
# the verifier matched its measurements to the driver and VBIOS RIMs (rim_status).
package policy

import rego.v1

default hardware := 97
default executables := 33
default configuration := 36
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

nv(name) := input.nvidia[sprintf("x-nvidia-gpu-%s", [name])]

chain_good(name) if {
	nv(name)["x-nvidia-cert-ocsp-status"] == "good"
	nv(name)["x-nvidia-cert-status"] == "valid"
}

# sample devices are judged against data.reference, which the AS never provides
hardware := 2 if input.sampledevice.svn in data.reference.device_svn

hardware := 2 if {
	input.nvidia
	chain_good("attestation-report-cert-chain")
	nv("attestation-report-cert-chain-fwid-match")
	nv("attestation-report-parsed")
	nv("attestation-report-signature-verified")
	nv("arch-check")
}

local if {
	input.nvidia.arch
	input.nvidia.measurements
}

hardware := 2 if {
	local
	object.get(input.nvidia, "ocsp_status", "good") == "good"
}

configuration := 2 if {
	local
	input.nvidia.config.vbios_version in query_reference_value("allowed_vbios_versions")
	input.nvidia.config.driver_version in query_reference_value("allowed_driver_versions")
}

executables := 3 if {
	local
	input.nvidia.rim_status == "verified"
}

configuration := 2 if {
	secure_and_not_debug
	nv("vbios-version") in query_reference_value("allowed_vbios_versions")
	nv("driver-version") in query_reference_value("allowed_driver_versions")
} else := 3 if {
	secure_and_not_debug
}

secure_and_not_debug if {
	input.nvidia.secboot
	input.nvidia.dbgstat == "disabled"
}

executables := 3 if {
	chain_good("vbios-rim-cert-chain")
	every rim in ["driver", "vbios"] {
		every check in ["fetched", "measurements-available", "schema-validated", "signature-verified", "version-match"] {
			nv(sprintf("%s-rim-%s", [rim, check]))
		}
	}
	input.nvidia.measres == "success"
}
