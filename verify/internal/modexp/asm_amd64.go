//go:build amd64 && !purego

package modexp

import "golang.org/x/sys/cpu"

// useASM selects the assembly, which needs MULX (BMI2) and the two carry chains of ADCX/ADOX.
// Tests turn it off to hold the Go loops to the same answers.
var useASM = cpu.X86.HasADX && cpu.X86.HasBMI2

// Loops for any length (rows_amd64.s).

//go:noescape
func addMulRowADX(z, x *uint64, n int, y uint64) (carry uint64)

//go:noescape
func sqrTriangleADX(t, a *uint64, n int)

//go:noescape
func montReduceADX(t, m *uint64, n int, m0inv uint64) (carry uint64)

// Straight-line code for 16 and 32 words (sizes_amd64.s, generated).

//go:noescape
func addMulRow16(z, x *uint64, y uint64) (carry uint64)

//go:noescape
func square16(t, a *uint64)

//go:noescape
func montReduce16(t, m *uint64, m0inv uint64) (carry uint64)

//go:noescape
func montMul16(t, a, b, m *uint64, m0inv uint64) (carry uint64)

//go:noescape
func addMulRow32(z, x *uint64, y uint64) (carry uint64)

//go:noescape
func square32(t, a *uint64)

//go:noescape
func montReduce32(t, m *uint64, m0inv uint64) (carry uint64)

//go:noescape
func montMul32(t, a, b, m *uint64, m0inv uint64) (carry uint64)

func addMulRow(z, x []uint64, y uint64) uint64 {
	n := len(z)
	if !useASM || n == 0 {
		return addMulRowGo(z, x, y)
	}
	_ = x[n-1]
	switch n {
	case 16:
		return addMulRow16(&z[0], &x[0], y)
	case 32:
		return addMulRow32(&z[0], &x[0], y)
	}
	return addMulRowADX(&z[0], &x[0], n, y)
}

func square(t, a []uint64) {
	n := len(a)
	if !useASM || n == 0 {
		squareGo(t, a)
		return
	}
	_ = t[2*n-1]
	switch n {
	case 16:
		square16(&t[0], &a[0])
	case 32:
		square32(&t[0], &a[0])
	default:
		sqrTriangleADX(&t[0], &a[0], n)
		doubleAddSquares(t, a)
	}
}

func montReduce(t, m []uint64, m0inv uint64) uint64 {
	n := len(m)
	if !useASM || n == 0 {
		return montReduceGo(t, m, m0inv)
	}
	_ = t[2*n-1]
	switch n {
	case 16:
		return montReduce16(&t[0], &m[0], m0inv)
	case 32:
		return montReduce32(&t[0], &m[0], m0inv)
	}
	return montReduceADX(&t[0], &m[0], n, m0inv)
}

// montMulRows does mul's rows into t (2n words, zero on entry) and returns the carry bit, or
// reports false where there is no straight-line code for the size.
func montMulRows(t, a, b, m []uint64, m0inv uint64) (uint64, bool) {
	if !useASM {
		return 0, false
	}
	switch n := len(m); n {
	case 16, 32:
		_, _, _ = t[2*n-1], a[n-1], b[n-1]
		if n == 16 {
			return montMul16(&t[0], &a[0], &b[0], &m[0], m0inv), true
		}
		return montMul32(&t[0], &a[0], &b[0], &m[0], m0inv), true
	}
	return 0, false
}
