//go:build !linux

package intercept

// lowerThreadPriority is a no-op where threads have no nice value of their own.
func lowerThreadPriority(int) {}
