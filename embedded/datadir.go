package embedded

import (
	"fmt"
	"os"
	"path/filepath"
)

// EnvDataDir names the environment variable that overrides DefaultDataDir.
const EnvDataDir = "LANDLORD_DATA_DIR"

// DefaultDataDir returns the persistent data directory the command-line tool
// uses when it is given no database URL: $LANDLORD_DATA_DIR when set; else,
// for root, /var/lib/landlord/pgdata, which the unprivileged server user can
// reach (root's home cannot be entered by it); else
// $XDG_DATA_HOME/landlord/pgdata, defaulting to ~/.local/share/landlord/pgdata.
func DefaultDataDir() (string, error) {
	if dir := os.Getenv(EnvDataDir); dir != "" {
		return filepath.Abs(dir)
	}
	if os.Geteuid() == 0 {
		return "/var/lib/landlord/pgdata", nil
	}
	if xdg := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(xdg) {
		return filepath.Join(xdg, "landlord", "pgdata"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("default data directory: %w (set %s)", err, EnvDataDir)
	}
	return filepath.Join(home, ".local", "share", "landlord", "pgdata"), nil
}
