package policy

import rego.v1

allow if {
	sprintf("%v %d %s %q %x %.2f", [1.5, 2, "s", "q", "hex", 3.14159]) != ""
	regex.match(`^a(b+)c$`, "abbc")
	regex.replace("a-b-c", `-`, "+") == "a+b+c"
	glob.match("*.example.com", ["."], "a.example.com")
	time.format([0, "America/New_York", "RFC1123"]) != ""
	units.parse_bytes("10KiB") == 10240
	semver.compare("1.2.3", "1.2.4") == -1
	json.unmarshal(json.marshal({"a": [1, {2}]})) != null
	walk({"a": [1]}, [["a", 0], 1])
	base64.decode(base64.encode("x")) == "x"
	object.subset({"a": {"b": 1}}, {"a": {}})
	net.cidr_contains("10.0.0.0/8", "10.1.1.1")
}
