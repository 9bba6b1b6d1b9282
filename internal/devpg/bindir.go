package devpg

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// binEnv names the variable that points at the server binaries when they are
// neither on PATH nor in Debian's versioned directories.
const binEnv = "SYNCER_PG_BIN"

// findBinDir returns the first directory holding both initdb and postgres,
// or "" and the places it looked. An explicit dir is the only place tried.
func findBinDir(explicit string) (dir string, looked []string) {
	if explicit != "" {
		return pick([]string{explicit}), []string{explicit}
	}

	var candidates []string
	if env := os.Getenv(binEnv); env != "" {
		candidates = append(candidates, env)
		looked = append(looked, "$"+binEnv+"="+env)
	} else {
		looked = append(looked, "$"+binEnv+" (unset)")
	}

	// Debian puts only wrappers on PATH (pg_ctlcluster, psql), so PATH
	// rarely helps there, but it does on Fedora, Homebrew and Nix.
	looked = append(looked, "PATH")
	for _, name := range []string{"pg_ctl", "initdb"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		candidates = append(candidates, filepath.Dir(p))
	}

	const debianGlob = "/usr/lib/postgresql/*/bin"
	looked = append(looked, debianGlob)
	versioned, _ := filepath.Glob(debianGlob)
	slices.SortFunc(versioned, func(a, b string) int {
		// Highest version first: /usr/lib/postgresql/17/bin before .../9.6/bin.
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	candidates = append(candidates, versioned...)

	return pick(candidates), looked
}

// pick returns the first of dirs that holds both programs devpg runs.
func pick(dirs []string) string {
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// compareVersions orders dotted version numbers such as "9.6" and "15";
// a part that is not a number sorts as zero.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}
