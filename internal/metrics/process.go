package metrics

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// The Go runtime's and the process's standard series, as Prometheus's
// client names them (go_*, process_*), so that the usual dashboards and
// alerts find them: the few that say whether braid is healthy on a small
// box (goroutines, threads, heap, GC, memory, CPU, file descriptors).

// userHZ is the kernel's clock tick for /proc times: 100 on every Linux
// architecture braid is built for.
const userHZ = 100

// runtimeFamilies reads the runtime's statistics.
func runtimeFamilies() []*family {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	threads, _ := runtime.ThreadCreateProfile(nil)
	fam := func(name, help string, k kind, v float64, labels ...string) *family {
		f := &family{name: name, help: help, kind: k}
		f.add(v, labels...)
		return f
	}
	return []*family{
		fam("go_info", "Information about the Go environment.", gauge, 1, "version", runtime.Version()),
		fam("go_goroutines", "Number of goroutines that currently exist.", gauge, float64(runtime.NumGoroutine())),
		fam("go_threads", "Number of OS threads created.", gauge, float64(threads)),
		fam("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", gauge, float64(ms.HeapAlloc)),
		fam("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", gauge, float64(ms.HeapInuse)),
		fam("go_memstats_sys_bytes", "Number of bytes obtained from system.", gauge, float64(ms.Sys)),
		fam("go_memstats_alloc_bytes_total", "Total number of bytes allocated, even if freed.", counter, float64(ms.TotalAlloc)),
		fam("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", gauge, float64(ms.NextGC)),
		fam("go_gc_cycles_total", "Count of completed GC cycles.", counter, float64(ms.NumGC)),
		fam("go_gc_pause_seconds_total", "Total time the garbage collector stopped the world.", counter, float64(ms.PauseTotalNs)/1e9),
	}
}

// processFamilies reads the process's statistics from /proc/self; one
// that cannot be read is left out.
func processFamilies() []*family {
	var fams []*family
	fam := func(name, help string, k kind, v float64) {
		f := &family{name: name, help: help, kind: k}
		f.add(v)
		fams = append(fams, f)
	}
	if st, ok := readStat(); ok {
		fam("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", counter, float64(st.utime+st.stime)/userHZ)
		fam("process_virtual_memory_bytes", "Virtual memory size in bytes.", gauge, float64(st.vsize))
		fam("process_resident_memory_bytes", "Resident memory size in bytes.", gauge, float64(st.rss*int64(os.Getpagesize())))
		if boot, ok := bootTime(); ok {
			fam("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", gauge, float64(boot)+float64(st.start)/userHZ)
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		fam("process_open_fds", "Number of open file descriptors.", gauge, float64(len(fds)))
	}
	if n, ok := maxFDs(); ok {
		fam("process_max_fds", "Maximum number of open file descriptors.", gauge, float64(n))
	}
	return fams
}

// stat is what /proc/self/stat says of the process.
type stat struct {
	utime, stime, start int64 // clock ticks
	vsize, rss          int64 // bytes, pages
}

func readStat() (stat, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return stat{}, false
	}
	return parseStat(b)
}

// parseStat reads the fields after the command's closing parenthesis
// (the command may hold spaces and parentheses): state is field 3, utime
// 14, stime 15, starttime 22, vsize 23, rss 24 (proc(5)).
func parseStat(b []byte) (stat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return stat{}, false
	}
	var v [5]int64
	for j, field := range []int{14, 15, 22, 23, 24} {
		n, err := strconv.ParseInt(f[field-3], 10, 64)
		if err != nil {
			return stat{}, false
		}
		v[j] = n
	}
	return stat{utime: v[0], stime: v[1], start: v[2], vsize: v[3], rss: v[4]}, true
}

// bootTime is the system's boot, in seconds since the epoch (btime of
// /proc/stat).
func bootTime() (int64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// maxFDs is the soft limit on open files (/proc/self/limits).
func maxFDs() (int64, bool) {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}
