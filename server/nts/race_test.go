//go:build race

package nts

const raceEnabled = true
