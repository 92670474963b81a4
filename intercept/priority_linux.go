package intercept

import "syscall"

// lowerThreadPriority sets the calling thread's nice value. On Linux, setpriority with a thread
// ID applies to that thread alone. Raising the nice value needs no privilege; failing to is not
// worth stopping for.
func lowerThreadPriority(nice int) {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), min(nice, 19))
}
