//go:build unix

package verify

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) this process has used so far, GC workers
// included. On a shared machine it is steadier than wall time for comparing two versions.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
