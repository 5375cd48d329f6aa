package policy

deny[msg] {
	input.a[i] > 2
	msg := sprintf("a[%d] too big", [i])
}

x := 1 if {
	false
} else := 2 if {
	input.b
} else := 3

allow {
	count(deny) == 0
	x >= 2
	not input.debug
}
