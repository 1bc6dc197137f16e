package testkit

import "syscall"

// reservePort binds a TCP socket to a kernel-chosen port on all
// addresses with SO_REUSEPORT and keeps it open without listening.
// Caddy binds its listeners with SO_REUSEPORT too (for reloads), so a
// Caddy of this user can still bind the port; but no other process's
// port-0 bind gets it meanwhile, and no plain bind succeeds on it. A
// port that was merely free a moment ago could meanwhile be picked by a
// second test run, whose Caddy would then share it silently: the kernel
// splits the connections between the two Caddys. The socket never
// listens, so it receives no connections.
func reservePort() (int, func(), error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, err
	}
	const soReusePort = 0xf // SO_REUSEPORT on Linux (absent from package syscall)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, soReusePort, 1); err != nil {
		syscall.Close(fd)
		return 0, nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{}); err != nil {
		syscall.Close(fd)
		return 0, nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return 0, nil, err
	}
	return sa.(*syscall.SockaddrInet4).Port, func() { syscall.Close(fd) }, nil
}
