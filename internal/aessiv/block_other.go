//go:build !amd64 || purego

package aessiv

// useAsm is false: there is no assembly for this architecture, and
// every key uses crypto/aes.
var useAsm = false

func encBlocks1(int, *[15 * BlockSize]byte, *[BlockSize]byte, *[BlockSize]byte) {
	panic("aessiv: no AES assembly on this architecture")
}

func encBlocks4(int, *[15 * BlockSize]byte, *[4 * BlockSize]byte, *[4 * BlockSize]byte) {
	panic("aessiv: no AES assembly on this architecture")
}

func encBlocks8(int, *[15 * BlockSize]byte, *[8 * BlockSize]byte, *[8 * BlockSize]byte) {
	panic("aessiv: no AES assembly on this architecture")
}

func expandKey(*[15 * BlockSize]byte, []byte) int {
	panic("aessiv: no AES assembly on this architecture")
}

func cbcLanes4(int, *[15 * BlockSize]byte, *[4][BlockSize]byte, *[4]laneRun, int) {
	panic("aessiv: no AES assembly on this architecture")
}
