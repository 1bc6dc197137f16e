//go:build !race

package authserver

const raceDetector = false
