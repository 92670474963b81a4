//go:build !amd64 || purego

package modexp

// useASM is false here: there is no assembly for this architecture.
var useASM = false

func addMulRow(z, x []uint64, y uint64) uint64      { return addMulRowGo(z, x, y) }
func square(t, a []uint64)                          { squareGo(t, a) }
func montReduce(t, m []uint64, m0inv uint64) uint64 { return montReduceGo(t, m, m0inv) }

func montMulRows(t, a, b, m []uint64, m0inv uint64) (uint64, bool) { return 0, false }
