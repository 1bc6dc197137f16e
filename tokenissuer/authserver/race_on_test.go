//go:build race

package authserver

// raceDetector: the race detector's shadow memory (5-10x) and slowdown
// make resident-set measurements meaningless.
const raceDetector = true
