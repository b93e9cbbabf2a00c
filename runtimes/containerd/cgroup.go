package containerd

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupRoot is where the kernel's cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupStats is what the task's cgroup says about it, read after the task
// exited and before it is deleted (deleting the task removes the cgroup).
type cgroupStats struct {
	CPUSeconds   float64
	PeakMemBytes int64
	OOMKills     int64
}

// readCgroup reads cgroup v1 (memory, cpuacct controllers) or, on a unified
// hierarchy, cgroup v2 files for the cgroup at path (the spec's CgroupsPath).
// Missing files leave fields at zero.
func readCgroup(path string) cgroupStats {
	var st cgroupStats
	if path == "" || strings.Contains(path, ":") { // systemd-style paths are not used here
		return st
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		dir := filepath.Join(cgroupRoot, path)
		st.PeakMemBytes = readInt(filepath.Join(dir, "memory.peak"))
		st.OOMKills = readKey(filepath.Join(dir, "memory.events"), "oom_kill")
		st.CPUSeconds = float64(readKey(filepath.Join(dir, "cpu.stat"), "usage_usec")) / 1e6
		return st
	}
	mem := filepath.Join(cgroupRoot, "memory", path)
	st.PeakMemBytes = readInt(filepath.Join(mem, "memory.max_usage_in_bytes"))
	st.OOMKills = readKey(filepath.Join(mem, "memory.oom_control"), "oom_kill")
	st.CPUSeconds = float64(readInt(filepath.Join(cgroupRoot, "cpuacct", path, "cpuacct.usage"))) / 1e9
	return st
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// readKey reads "key value" lines (memory.events, memory.oom_control, cpu.stat).
func readKey(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// swapAccounting reports whether the kernel accounts swap per cgroup, which
// runc needs to apply a memory+swap limit (cgroup v1 without it rejects one).
func swapAccounting() bool {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return true
	}
	_, err := os.Stat(filepath.Join(cgroupRoot, "memory", "memory.memsw.limit_in_bytes"))
	return err == nil
}
