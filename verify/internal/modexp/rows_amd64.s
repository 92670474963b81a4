//go:build amd64 && !purego

#include "textflag.h"

// The word loops for any length. Register use throughout: DX the multiplier y (MULX reads it),
// AX the word being summed, R8 and BX the high words of consecutive products, R11 zero, CX the
// word index.
//
// Each word of z += x·y adds three things: the low word of x[j]·y, the high word of the product
// before it, and z[j]. The first addition runs on CF (ADCX), the second on OF (ADOX), so the two
// carry chains do not wait for each other. Between groups of words both carries are folded into
// the running high word. That cannot overflow: a group's whole sum, z's words plus x's words times
// y plus the carry in, fits in one word more than the group. The loop control may then use the
// flags.

// FOUR does words CX..CX+3 of z += x·y; BX holds the carry in and out.
#define FOUR(x, z) \
	XORQ  AX, AX;              \
	MULXQ 0(x)(CX*8), AX, R8;  \
	ADCXQ BX, AX;              \
	ADOXQ 0(z)(CX*8), AX;      \
	MOVQ  AX, 0(z)(CX*8);      \
	MULXQ 8(x)(CX*8), AX, BX;  \
	ADCXQ R8, AX;              \
	ADOXQ 8(z)(CX*8), AX;      \
	MOVQ  AX, 8(z)(CX*8);      \
	MULXQ 16(x)(CX*8), AX, R8; \
	ADCXQ BX, AX;              \
	ADOXQ 16(z)(CX*8), AX;     \
	MOVQ  AX, 16(z)(CX*8);     \
	MULXQ 24(x)(CX*8), AX, BX; \
	ADCXQ R8, AX;              \
	ADOXQ 24(z)(CX*8), AX;     \
	MOVQ  AX, 24(z)(CX*8);     \
	ADCXQ R11, BX;             \
	ADOXQ R11, BX

// ONE does word CX.
#define ONE(x, z) \
	XORQ  AX, AX;             \
	MULXQ 0(x)(CX*8), AX, R8; \
	ADCXQ BX, AX;             \
	ADOXQ 0(z)(CX*8), AX;     \
	MOVQ  AX, 0(z)(CX*8);     \
	MOVQ  R8, BX;             \
	ADCXQ R11, BX;            \
	ADOXQ R11, BX

// func addMulRowADX(z, x *uint64, n int, y uint64) (carry uint64)
TEXT ·addMulRowADX(SB), NOSPLIT, $0-40
	MOVQ z+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), R10
	MOVQ y+24(FP), DX
	XORQ R11, R11
	XORQ BX, BX
	XORQ CX, CX
	MOVQ R10, R9
	ANDQ $-4, R9

row4:
	CMPQ CX, R9
	JGE  row1
	FOUR(SI, DI)
	ADDQ $4, CX
	JMP  row4

row1:
	CMPQ CX, R10
	JGE  rowdone
	ONE(SI, DI)
	INCQ CX
	JMP  row1

rowdone:
	MOVQ BX, carry+32(FP)
	RET

// func sqrTriangleADX(t, a *uint64, n int)
//
// Row i adds a[i]·a[i+1:n] into t[2i+1:], and its carry is t[i+n], which no earlier row wrote.
TEXT ·sqrTriangleADX(SB), NOSPLIT, $0-24
	MOVQ t+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ n+16(FP), R10
	XORQ R11, R11
	XORQ R12, R12 // i

tri:
	MOVQ R10, R13
	SUBQ R12, R13
	DECQ R13              // the row's length, n-1-i
	JLE  tridone
	MOVQ (SI)(R12*8), DX  // y = a[i]
	LEAQ 8(SI)(R12*8), R9 // x = &a[i+1]
	MOVQ R12, R14
	SHLQ $4, R14
	LEAQ 8(DI)(R14*1), R14 // z = &t[2i+1]
	XORQ BX, BX
	XORQ CX, CX

tri4:
	MOVQ R13, AX
	ANDQ $-4, AX
	CMPQ CX, AX
	JGE  tri1
	FOUR(R9, R14)
	ADDQ $4, CX
	JMP  tri4

tri1:
	CMPQ CX, R13
	JGE  trirow
	ONE(R9, R14)
	INCQ CX
	JMP  tri1

trirow:
	MOVQ BX, (R14)(R13*8) // t[i+n]
	INCQ R12
	JMP  tri

tridone:
	RET

// func montReduceADX(t, m *uint64, n int, m0inv uint64) (carry uint64)
//
// Row i adds y·m to t[i:], with y chosen to zero t[i]; its carry goes into t[i+n], and the carry
// out of that addition into the next row's, and out of the last row to the caller.
TEXT ·montReduceADX(SB), NOSPLIT, $0-40
	MOVQ t+0(FP), DI
	MOVQ m+8(FP), SI
	MOVQ n+16(FP), R10
	MOVQ m0inv+24(FP), R12
	XORQ R11, R11
	XORQ R13, R13 // the carry bit between rows
	MOVQ R10, R14 // rows left
	MOVQ R10, R9
	ANDQ $-4, R9

red:
	MOVQ  (DI), DX
	IMULQ R12, DX  // y = t[i]·m0inv
	XORQ  BX, BX
	XORQ  CX, CX

red4:
	CMPQ CX, R9
	JGE  red1
	FOUR(SI, DI)
	ADDQ $4, CX
	JMP  red4

red1:
	CMPQ CX, R10
	JGE  redrow
	ONE(SI, DI)
	INCQ CX
	JMP  red1

redrow:
	MOVQ R13, AX
	XORQ R13, R13
	ADDQ BX, (DI)(R10*8)
	ADCQ $0, R13
	ADDQ AX, (DI)(R10*8)
	ADCQ $0, R13
	ADDQ $8, DI
	DECQ R14
	JNZ  red
	MOVQ R13, carry+32(FP)
	RET
