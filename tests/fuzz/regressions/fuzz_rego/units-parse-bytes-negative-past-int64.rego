package policy

allow if units.parse_bytes("-17.5e") < 0
