# ctrustee's default appraisal policy for CPU evidence (policy id default_cpu).
#
# Each AR4SI trust claim starts at its "no evidence" value and is raised when the evidence of
# one TEE matches the reference values registered in the RVPS, read through
# query_reference_value(id). A reference value that is missing reads as null, so a check
# against it fails and the claim keeps its default.
package policy

import rego.v1

default executables := 33
default hardware := 97
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

rv(id) := query_reference_value(id)

# --- sample (test TEE) ---
executables := 3 if {
	input.sample
	input.sample.launch_digest in rv("launch_digest")
}

hardware := 2 if {
	input.sample
	input.sample.svn in rv("svn")
	input.sample.platform_version.major == rv("major_version")
	input.sample.platform_version.minor >= rv("minimum_minor_version")
}

configuration := 2 if {
	input.sample
	input.sample.debug == false
}

# --- AMD SEV-SNP ---
executables := 3 if {
	input.snp
	input.snp.measurement in rv("snp_launch_measurement")
}

hardware := 2 if {
	input.snp
	input.snp.reported_tcb_bootloader in rv("snp_bootloader")
	input.snp.reported_tcb_microcode in rv("snp_microcode")
	input.snp.reported_tcb_snp in rv("snp_snp_svn")
	input.snp.reported_tcb_tee in rv("snp_tee_svn")
}

configuration := 2 if {
	snp_not_debuggable
	input.snp.platform_smt_enabled == rv("snp_smt_enabled")
	input.snp.platform_tsme_enabled == rv("snp_tsme_enabled")
	input.snp.policy_abi_major == rv("snp_guest_abi_major")
	input.snp.policy_abi_minor == rv("snp_guest_abi_minor")
	input.snp.policy_single_socket == rv("snp_single_socket")
	input.snp.policy_smt_allowed == rv("snp_smt_allowed")
} else := 3 if {
	snp_not_debuggable
}

snp_not_debuggable if {
	input.snp
	input.snp.policy_debug_allowed == false
	input.snp.policy_migrate_ma == false
}

# --- Intel TDX ---
executables := 3 if {
	tdx_rtmrs_known
	tdx_event_digest("EV_EFI_BOOT_SERVICES_APPLICATION", "tdvfkernel")
	tdx_event_digest("EV_EVENT_TAG", "tdvfkernelparams")
} else := 4 if {
	tdx_rtmrs_known
}

tdx_rtmrs_known if {
	input.tdx
	input.tdx.quote.body.rtmr_1 in rv("rtmr_1")
	input.tdx.quote.body.rtmr_2 in rv("rtmr_2")
}

tdx_event_digest(kind, id) if {
	some event in input.tdx.uefi_event_logs
	event.type_name == kind
	tdx_event_selected(event)
	some d in event.digests
	d.digest == rv(id)
}

tdx_event_selected(event) if {
	event.type_name == "EV_EFI_BOOT_SERVICES_APPLICATION"
	"File(kernel)" in event.details.device_paths
}

tdx_event_selected(event) if {
	event.type_name == "EV_EVENT_TAG"
	event.details.string == "LOADED_IMAGE::LoadOptions"
}

hardware := 2 if {
	input.tdx
	intel_tdx_quote(input.tdx)
	input.tdx.collateral_expiration_status == "0"
}

intel_tdx_quote(t) if {
	t.quote.header.tee_type == "81000000"
	t.quote.header.vendor_id == "939a7233f79c4ca9940a0db3957f0607"
	t.quote.body.mr_td in rv("mr_td")
	t.tcb_status == "UpToDate"
}

configuration := 2 if {
	input.tdx
	input.tdx.td_attributes.debug == false
	input.tdx.quote.body.xfam in rv("xfam")
}

# --- Azure SEV-SNP vTPM ---
executables := 3 if {
	input["az-snp-vtpm"]
	input["az-snp-vtpm"].measurement in rv("measurement")
	input["az-snp-vtpm"].tpm.pcr11 in rv("snp_pcr11")
}

hardware := 2 if {
	e := input["az-snp-vtpm"]
	e.reported_tcb_bootloader in rv("tcb_bootloader")
	e.reported_tcb_microcode in rv("tcb_microcode")
	e.reported_tcb_snp in rv("tcb_snp")
	e.reported_tcb_tee in rv("tcb_tee")
}

configuration := 2 if {
	e := input["az-snp-vtpm"]
	e.platform_smt_enabled in rv("smt_enabled")
	e.platform_tsme_enabled in rv("tsme_enabled")
	e.policy_abi_major in rv("abi_major")
	e.policy_abi_minor in rv("abi_minor")
	e.policy_single_socket in rv("single_socket")
	e.policy_smt_allowed in rv("smt_allowed")
}

# --- Azure TDX vTPM ---
executables := 3 if {
	input["az-tdx-vtpm"]
	input["az-tdx-vtpm"].tpm.pcr11 in rv("tdx_pcr11")
}

hardware := 2 if {
	input["az-tdx-vtpm"]
	intel_tdx_quote(input["az-tdx-vtpm"])
}

configuration := 2 if {
	input["az-tdx-vtpm"]
	input["az-tdx-vtpm"].quote.body.xfam in rv("xfam")
}

# --- TPM: the attestation key is trusted only if registered ---
hardware := 2 if input.tpm

executables := 3 if {
	input.tpm
	input.tpm.pcr11 in rv("tpm_pcr11")
	input.tpm.ak_public in rv("trusted_aks")
}

configuration := 0 if input.tpm

# --- IBM Secure Execution ---
executables := 3 if input.se

hardware := 2 if input.se

configuration := 2 if input.se

# --- identifiers validated through the agent policy in the init data ---
extensions := [{
	"name": "ear.trustee.identifiers",
	"key": -18,
	"value": {"validated": object.union_n([images_claim, uids_claim])},
}]

agent_containers := input.init_data_claims.agent_policy_claims.containers

container_images := [image |
	some c in agent_containers
	image := c.OCI.Annotations["io.kubernetes.cri.image-name"]
]

container_uids := [uid |
	some c in agent_containers
	uid := c.OCI.Process.User.UID
]

images_claim := {"container_images": container_images} if count(container_images) > 0 else := {}

uids_claim := {"container_uids": container_uids} if count(container_uids) > 0 else := {}
