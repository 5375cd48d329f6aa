package policy

import rego.v1

s := {1, 2, 3} | {3, 4}
i := {1, 2, 3} & {2}
d := {1, 2, 3} - {2}
big := 18446744073709551616 * 2
f := 0.1 + 0.2
o := {1: "a", [1, 2]: {"x"}, {"k": 1}: set()}
allow if {
	count(s) == 4
	1e400 > 1e399
	o[[1, 2]]["x"]
	every x in i { x == 2 }
}
