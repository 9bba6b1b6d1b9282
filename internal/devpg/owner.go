package devpg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// serverUserName is the account the server runs as when this process is
// root, the one PostgreSQL's own packages create.
const serverUserName = "postgres"

// serverUser is the account PostgreSQL runs as when this process is root.
// A nil *serverUser means "run as ourselves", and its methods do nothing.
type serverUser struct {
	name   string
	uid    int
	gid    int
	groups []int // primary and supplementary
}

// lookupServerUser returns nil when this process is not root.
func lookupServerUser() (*serverUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root; "+
				"create a %q system user for the server to run as (Debian/Ubuntu: apt-get install postgresql creates it; "+
				"or: useradd --system %s) or run as a non-root user", serverUserName, serverUserName)
		}
		return nil, fmt.Errorf("look up user %s: %w", serverUserName, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", serverUserName, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", serverUserName, u.Gid, err)
	}
	su := &serverUser{name: u.Username, uid: uid, gid: gid, groups: []int{gid}}
	// Supplementary groups (ssl-cert on Debian) are a nicety; without the
	// list the server still runs with its primary group.
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.Atoi(id); err == nil && g != gid {
				su.groups = append(su.groups, g)
			}
		}
	}
	return su, nil
}

// sysProcAttr is how every PostgreSQL program is started: in its own process
// group, so that a Ctrl-C at the terminal reaches only us and we stop the
// server cleanly; killed with SIGQUIT (immediate shutdown: a reused data
// directory goes through crash recovery on its next start) if we die first;
// and, when we are root, as the server user.
func (u *serverUser) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if u != nil {
		groups := make([]uint32, len(u.groups))
		for i, g := range u.groups {
			groups[i] = uint32(g)
		}
		attr.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: groups}
	}
	return attr
}

// chown hands path to the server user.
func (u *serverUser) chown(path string) error {
	if u == nil {
		return nil
	}
	if err := os.Lchown(path, u.uid, u.gid); err != nil {
		return fmt.Errorf("give %s to user %s: %w", path, u.name, err)
	}
	return nil
}

// chownTree hands a whole existing cluster to the server user, for a data
// directory that root made or copied.
func (u *serverUser) chownTree(root string) error {
	if u == nil {
		return nil
	}
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, u.uid, u.gid)
	})
	if err != nil {
		return fmt.Errorf("give %s to user %s: %w", root, u.name, err)
	}
	return nil
}

// owns reports whether path belongs to the server user already.
func (u *serverUser) owns(fi fs.FileInfo) bool {
	if u == nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == u.uid
}

// ErrUnreachable is wrapped by Start's error when the data directory lies
// behind a directory that the server user may not enter.
var ErrUnreachable = errors.New("data directory unreachable by the server user")

// checkTraversable reports the first directory on the way to path (path
// excluded) that the server user may not enter: root's home, a 0700 temp
// dir and the like, where the server would fail with a bare "permission
// denied". It reads mode bits only, so an ACL that grants access is missed.
func (u *serverUser) checkTraversable(path string) error {
	if u == nil {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			// not made yet: it will be, open to all
		} else if err != nil {
			return err
		} else if !u.canEnter(fi) {
			return fmt.Errorf("%w: %s is not reachable by user %s, who runs the server because we are root: "+
				"%s (mode %v) does not let it through; choose a data directory elsewhere, or chmod o+x %s",
				ErrUnreachable, path, u.name, dir, fi.Mode(), dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

func (u *serverUser) canEnter(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	if int(st.Uid) == u.uid {
		return perm&0o100 != 0
	}
	for _, g := range u.groups {
		if int(st.Gid) == g {
			return perm&0o010 != 0
		}
	}
	return perm&0o001 != 0
}
