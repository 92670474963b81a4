package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// procSample is what /proc says about the proxy process at one moment.
type procSample struct {
	CPUTicks uint64 // utime + stime, in clock ticks
	RSSKB    uint64 // VmRSS
	HWMKB    uint64 // VmHWM: the peak resident set so far
	WriteB   uint64 // wchar: bytes passed to write-like system calls (sockets included); 0 if unreadable
	IOCalls  uint64 // syscr + syscw: read-like and write-like system calls; 0 if unreadable
}

// parseStatCPU returns utime + stime from the text of /proc/<pid>/stat. The second field (the
// command name) is in parentheses and may itself hold spaces and parentheses, so the fields are
// counted from the last ')'.
func parseStatCPU(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name in %q", clip(stat, 60))
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15 (proc(5)).
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat: utime %q / stime %q are not counters", f[11], f[12])
	}
	return ut + st, nil
}

// parseStatusKB returns the value in kB of a "Name:   123 kB" line of /proc/<pid>/status.
func parseStatusKB(status, name string) (uint64, error) {
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: %s line %q is not \"<n> kB\"", name, clip(line, 60))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status: %s value %q: %v", name, f[0], err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("/proc status: no %s line", name)
}

// parseIOField returns one "name: value" counter of /proc/<pid>/io.
func parseIOField(io, name string) (uint64, error) {
	for _, line := range strings.Split(io, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && k == name {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc io: no %s line", name)
}

// sampleProc reads the counters of process pid.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	if s.CPUTicks, err = parseStatCPU(string(stat)); err != nil {
		return s, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	if s.RSSKB, err = parseStatusKB(string(status), "VmRSS"); err != nil {
		return s, err
	}
	if s.HWMKB, err = parseStatusKB(string(status), "VmHWM"); err != nil {
		return s, err
	}
	// io needs ptrace-read access, which some sandboxes deny even for a child: optional.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		s.WriteB, _ = parseIOField(string(b), "wchar")
		r, rerr := parseIOField(string(b), "syscr")
		w, werr := parseIOField(string(b), "syscw")
		if rerr == nil && werr == nil {
			s.IOCalls = r + w
		}
	}
	return s, nil
}

// parseStatGroup returns the process group (field 5) and utime + stime of a /proc/<pid>/stat text.
func parseStatGroup(stat string) (pgrp int, ticks uint64, err error) {
	if ticks, err = parseStatCPU(stat); err != nil {
		return 0, 0, err
	}
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	pgrp, err = strconv.Atoi(f[2]) // f[0] is field 3; the group is field 5
	return pgrp, ticks, err
}

// groupCPU sums utime + stime over the live processes of process group pgrp. Processes that
// ended are missing from the sum, so it is a lower bound.
func groupCPU(pgrp int) uint64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var sum uint64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if g, t, err := parseStatGroup(string(b)); err == nil && g == pgrp {
			sum += t
		}
	}
	return sum
}

// clockTicks returns the kernel's USER_HZ as getconf reports it, or 100 (the value on every
// common Linux architecture) when getconf is unavailable.
func clockTicks() (int, bool) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100, false
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(out)))
	if err != nil || n <= 0 {
		return 100, false
	}
	return n, true
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// procCPU is utime + stime of one process in clock ticks (0 when it cannot be read).
func procCPU(pid int) uint64 {
	s, err := sampleProc(pid)
	if err != nil {
		return 0
	}
	return s.CPUTicks
}
