//go:build !purego

#include "textflag.h"

// AES-NI encryption of 1, 4 or 8 independent blocks. The round loop
// loads each round key once and applies it to every block, so the
// blocks' AESENCs are in flight together instead of one block's rounds
// waiting for the last. Arguments: nr (rounds), xk (round keys), dst,
// src; dst may be src.

// func encBlocks1(nr int, xk *[240]byte, dst, src *[16]byte)
TEXT ·encBlocks1(SB), NOSPLIT, $0-32
	MOVQ nr+0(FP), CX
	MOVQ xk+8(FP), AX
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
	MOVUPS 0(SI), X0
	MOVUPS 0(AX), X8
	PXOR X8, X0
	ADDQ $16, AX
	DECQ CX
loop1:
	MOVUPS 0(AX), X8
	AESENC X8, X0
	ADDQ $16, AX
	DECQ CX
	JNZ loop1
	MOVUPS 0(AX), X8
	AESENCLAST X8, X0
	MOVUPS X0, 0(DI)
	PXOR X0, X0
	PXOR X8, X8
	RET

// func encBlocks4(nr int, xk *[240]byte, dst, src *[64]byte)
TEXT ·encBlocks4(SB), NOSPLIT, $0-32
	MOVQ nr+0(FP), CX
	MOVQ xk+8(FP), AX
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
	MOVUPS 0(SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	MOVUPS 0(AX), X8
	PXOR X8, X0
	PXOR X8, X1
	PXOR X8, X2
	PXOR X8, X3
	ADDQ $16, AX
	DECQ CX
loop4:
	MOVUPS 0(AX), X8
	AESENC X8, X0
	AESENC X8, X1
	AESENC X8, X2
	AESENC X8, X3
	ADDQ $16, AX
	DECQ CX
	JNZ loop4
	MOVUPS 0(AX), X8
	AESENCLAST X8, X0
	AESENCLAST X8, X1
	AESENCLAST X8, X2
	AESENCLAST X8, X3
	MOVUPS X0, 0(DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	PXOR X0, X0
	PXOR X1, X1
	PXOR X2, X2
	PXOR X3, X3
	PXOR X8, X8
	RET

// func encBlocks8(nr int, xk *[240]byte, dst, src *[128]byte)
TEXT ·encBlocks8(SB), NOSPLIT, $0-32
	MOVQ nr+0(FP), CX
	MOVQ xk+8(FP), AX
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
	MOVUPS 0(SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	MOVUPS 64(SI), X4
	MOVUPS 80(SI), X5
	MOVUPS 96(SI), X6
	MOVUPS 112(SI), X7
	MOVUPS 0(AX), X8
	PXOR X8, X0
	PXOR X8, X1
	PXOR X8, X2
	PXOR X8, X3
	PXOR X8, X4
	PXOR X8, X5
	PXOR X8, X6
	PXOR X8, X7
	ADDQ $16, AX
	DECQ CX
loop8:
	MOVUPS 0(AX), X8
	AESENC X8, X0
	AESENC X8, X1
	AESENC X8, X2
	AESENC X8, X3
	AESENC X8, X4
	AESENC X8, X5
	AESENC X8, X6
	AESENC X8, X7
	ADDQ $16, AX
	DECQ CX
	JNZ loop8
	MOVUPS 0(AX), X8
	AESENCLAST X8, X0
	AESENCLAST X8, X1
	AESENCLAST X8, X2
	AESENCLAST X8, X3
	AESENCLAST X8, X4
	AESENCLAST X8, X5
	AESENCLAST X8, X6
	AESENCLAST X8, X7
	MOVUPS X0, 0(DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	MOVUPS X4, 64(DI)
	MOVUPS X5, 80(DI)
	MOVUPS X6, 96(DI)
	MOVUPS X7, 112(DI)
	PXOR X0, X0
	PXOR X1, X1
	PXOR X2, X2
	PXOR X3, X3
	PXOR X4, X4
	PXOR X5, X5
	PXOR X6, X6
	PXOR X7, X7
	PXOR X8, X8
	RET

// func subWord(w uint32) uint32
// With the word in all four columns ShiftRows moves nothing, so
// AESENCLAST with a zero round key is SubBytes of each column.
TEXT ·subWord(SB), NOSPLIT, $0-12
	MOVL w+0(FP), AX
	MOVQ AX, X0
	PSHUFD $0, X0, X0
	PXOR X1, X1
	AESENCLAST X1, X0
	MOVQ X0, AX
	MOVL AX, ret+8(FP)
	PXOR X0, X0
	RET

// func cbcLanes4(nr int, xk *[240]byte, x *[4][16]byte, runs *[4]laneRun, steps int)
//
// Four CBC-MAC chains side by side: chain i absorbs runs[i].n blocks
// into x[i], x[i] = E(x[i] XOR block), one block of each busy chain per
// step, for steps steps (the longest run). The blocks are read from
// runs[i].p on, except the last, read from runs[i].fin when that is not
// nil. The states stay in X0-X3 between steps; every step encrypts all
// four, and a chain's state is stored when its last block is done (a
// chain with no blocks is never stored, so x[i] keeps its value). runs
// is consumed. A laneRun is 24 bytes: p, n, fin.
TEXT ·cbcLanes4(SB), NOSPLIT, $0-40
	MOVQ nr+0(FP), DX
	MOVQ xk+8(FP), AX
	MOVQ x+16(FP), DI
	MOVQ runs+24(FP), SI
	MOVQ steps+32(FP), CX
	MOVUPS 0(DI), X0
	MOVUPS 16(DI), X1
	MOVUPS 32(DI), X2
	MOVUPS 48(DI), X3
step:
	MOVQ 8(SI), R8
	TESTQ R8, R8
	JZ in0
	MOVQ 0(SI), R9
	CMPQ R8, $1
	JNE load0
	MOVQ 16(SI), R12
	TESTQ R12, R12
	CMOVQNE R12, R9
load0:
	MOVUPS 0(R9), X8
	PXOR X8, X0
	ADDQ $16, R9
	MOVQ R9, 0(SI)
in0:
	MOVQ 32(SI), R8
	TESTQ R8, R8
	JZ in1
	MOVQ 24(SI), R9
	CMPQ R8, $1
	JNE load1
	MOVQ 40(SI), R12
	TESTQ R12, R12
	CMOVQNE R12, R9
load1:
	MOVUPS 0(R9), X8
	PXOR X8, X1
	ADDQ $16, R9
	MOVQ R9, 24(SI)
in1:
	MOVQ 56(SI), R8
	TESTQ R8, R8
	JZ in2
	MOVQ 48(SI), R9
	CMPQ R8, $1
	JNE load2
	MOVQ 64(SI), R12
	TESTQ R12, R12
	CMOVQNE R12, R9
load2:
	MOVUPS 0(R9), X8
	PXOR X8, X2
	ADDQ $16, R9
	MOVQ R9, 48(SI)
in2:
	MOVQ 80(SI), R8
	TESTQ R8, R8
	JZ in3
	MOVQ 72(SI), R9
	CMPQ R8, $1
	JNE load3
	MOVQ 88(SI), R12
	TESTQ R12, R12
	CMOVQNE R12, R9
load3:
	MOVUPS 0(R9), X8
	PXOR X8, X3
	ADDQ $16, R9
	MOVQ R9, 72(SI)
in3:
	MOVQ AX, R10
	MOVQ DX, R11
	MOVUPS 0(R10), X8
	PXOR X8, X0
	PXOR X8, X1
	PXOR X8, X2
	PXOR X8, X3
	ADDQ $16, R10
	DECQ R11
rounds:
	MOVUPS 0(R10), X8
	AESENC X8, X0
	AESENC X8, X1
	AESENC X8, X2
	AESENC X8, X3
	ADDQ $16, R10
	DECQ R11
	JNZ rounds
	MOVUPS 0(R10), X8
	AESENCLAST X8, X0
	AESENCLAST X8, X1
	AESENCLAST X8, X2
	AESENCLAST X8, X3
	MOVQ 8(SI), R8
	TESTQ R8, R8
	JZ out0
	DECQ R8
	MOVQ R8, 8(SI)
	JNZ out0
	MOVUPS X0, 0(DI)
out0:
	MOVQ 32(SI), R8
	TESTQ R8, R8
	JZ out1
	DECQ R8
	MOVQ R8, 32(SI)
	JNZ out1
	MOVUPS X1, 16(DI)
out1:
	MOVQ 56(SI), R8
	TESTQ R8, R8
	JZ out2
	DECQ R8
	MOVQ R8, 56(SI)
	JNZ out2
	MOVUPS X2, 32(DI)
out2:
	MOVQ 80(SI), R8
	TESTQ R8, R8
	JZ out3
	DECQ R8
	MOVQ R8, 80(SI)
	JNZ out3
	MOVUPS X3, 48(DI)
out3:
	DECQ CX
	JNZ step
	PXOR X0, X0
	PXOR X1, X1
	PXOR X2, X2
	PXOR X3, X3
	PXOR X8, X8
	RET
