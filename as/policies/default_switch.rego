# ctrustee's default appraisal policy for NVIDIA switch evidence (policy id default_switch).
#
# The claims come from NVIDIA's attestation (names x-nvidia-switch-...). Hardware is genuine
# when the attestation report's certificate chain is good and the report verified; the
# configuration is approved with secure boot on, debug off and (for 2) firmware versions in
# the reference values; executables when every RIM checked out.
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

nv(name) := input.nvidia[sprintf("x-nvidia-switch-%s", [name])]

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

# Local mode (claims arch, measurements, config): the verifier refused a switch whose chain,
# report signature or nonce failed, so one that reaches this policy has genuine hardware
# (unless OCSP, when configured, did not say good); its configuration is approved when its
# BIOS version is a reference value. Switch RIMs are not checked locally.
local if {
	input.nvidia.arch == "LS10"
	input.nvidia.measurements
}

hardware := 2 if {
	local
	object.get(input.nvidia, "ocsp_status", "good") == "good"
}

configuration := 2 if {
	local
	input.nvidia.config.vbios_version in query_reference_value("allowed_switch_bios_versions")
}

configuration := 2 if {
	secure_and_not_debug
	nv("bios-version") in query_reference_value("allowed_switch_bios_versions")
} else := 3 if {
	secure_and_not_debug
}

secure_and_not_debug if {
	input.nvidia.secboot
	input.nvidia.dbgstat == "disabled"
}

executables := 3 if {
	chain_good("bios-rim-cert-chain")
	every rim in ["bios"] {
		every check in ["fetched", "measurements-available", "schema-validated", "signature-verified", "version-match"] {
			nv(sprintf("%s-rim-%s", [rim, check]))
		}
	}
	input.nvidia.measres == "success"
}
