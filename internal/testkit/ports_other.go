//go:build !linux

package testkit

// reservePort is a port free a moment ago: no reservation here.
func reservePort() (int, func(), error) {
	p, err := freePort()
	return p, func() {}, err
}
