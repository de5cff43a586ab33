//go:build race

package txstamp

const raceEnabled = true
