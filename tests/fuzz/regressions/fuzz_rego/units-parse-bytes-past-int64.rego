package p
f{units.parse_bytes("17e")}