x := {1, 2} | {3}; y := [a | some a in input.a; a > 1]; z := {k: v | some k, v in input.o}
