package bench

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
)

// Machine describes where a run happened.
type Machine struct {
	Cores       int    `json:"cores"`
	CPUModel    string `json:"cpu_model"`
	MemoryBytes int64  `json:"memory_bytes"`
	GoVersion   string `json:"go_version"`
	OS          string `json:"os"`
	Kernel      string `json:"kernel,omitempty"`
	LoadAvg     string `json:"load_average_at_start,omitempty"`
	Revision    string `json:"revision,omitempty"`
	Modified    bool   `json:"modified,omitempty"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
}

// ReadMachine describes this machine: cores, CPU model (from
// /proc/cpuinfo), memory (MemTotal of /proc/meminfo), the Go version the
// harness was built with, the kernel, the load average, and the VCS
// revision the harness was built from.
func ReadMachine() Machine {
	m := Machine{
		Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = procField(b, "model name")
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryBytes = parseKB(procField(b, "MemTotal"))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				m.Revision = s.Value
			case "vcs.modified":
				m.Modified = s.Value == "true"
			}
		}
	}
	if m.Revision == "" {
		m.Revision, m.Modified = gitRevision()
	}
	return m
}

// gitRevision asks git, read-only, for the commit of the working
// directory and whether tracked files differ from it; a binary built in
// workspace mode carries no VCS stamp. It returns "" when git cannot say.
func gitRevision() (string, bool) {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false
	}
	st := exec.Command("git", "status", "--porcelain", "--untracked-files=no")
	st.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0") // never write the index
	changed, err := st.Output()
	return strings.TrimSpace(string(out)), err == nil && len(bytes.TrimSpace(changed)) > 0
}

// procField returns the value of the first "key: value" line of a /proc
// file.
func procField(b []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
