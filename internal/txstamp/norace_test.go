//go:build !race

package txstamp

const raceEnabled = false
