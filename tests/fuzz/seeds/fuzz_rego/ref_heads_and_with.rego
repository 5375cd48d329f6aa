package policy

import rego.v1

default allow := false

p.q[x].r := y if some x, y in input.o
m[a][b] contains c if {
	some a, obj in input.nested
	some b, c in obj
}
f(x) := x + 1
g(_) := 7
now := time.now_ns()
allow if {
	p.q.k.r == 1 with input.o as {"k": 1}
	f(1) == 7 with f as g
	now == 5 with time.now_ns as 5
	[k | some k, _ in m] == [] with input.nested as {}
}
