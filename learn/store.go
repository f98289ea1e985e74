package learn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/privalytics/privalytics"
)

// Models are stored as <dir>/<name>/v<version>.json. A version is written
// once and never replaced: a location that scored with v3 can always show
// which coefficients, ε and schema it used.

var modelName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// SaveModel stores m as the next version of name and sets m.Name and
// m.Version.
func SaveModel(dir, name string, m *Model) error {
	if !modelName.MatchString(name) {
		return privalytics.Errorf(privalytics.EINVALID, "learn: model name must be 1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit; got %q", name)
	}
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return privalytics.Errorf(privalytics.EINTERNAL, "learn: models: %v", err)
	}
	for v := 1; v < 1<<20; v++ {
		f, err := os.OpenFile(filepath.Join(d, fmt.Sprintf("v%d.json", v)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return privalytics.Errorf(privalytics.EINTERNAL, "learn: models: %v", err)
		}
		m.Name, m.Version = name, v
		if err := m.WriteJSON(f); err != nil {
			f.Close()
			return privalytics.Errorf(privalytics.EINTERNAL, "learn: models: %v", err)
		}
		if err := f.Close(); err != nil {
			return privalytics.Errorf(privalytics.EINTERNAL, "learn: models: %v", err)
		}
		return nil
	}
	return privalytics.Errorf(privalytics.ETOOLARGE, "learn: model %q has too many versions", name)
}

// LoadModel reads version v of name (v = 0: the latest).
func LoadModel(dir, name string, v int) (*Model, error) {
	if !modelName.MatchString(name) {
		return nil, privalytics.Errorf(privalytics.EINVALID, "learn: model name %q is not valid", name)
	}
	if v == 0 {
		for n := 1; ; n++ {
			if _, err := os.Stat(filepath.Join(dir, name, fmt.Sprintf("v%d.json", n))); err != nil {
				v = n - 1
				break
			}
		}
		if v == 0 {
			return nil, privalytics.Errorf(privalytics.ENOTFOUND, "learn: no model %q in %s", name, dir)
		}
	}
	f, err := os.Open(filepath.Join(dir, name, fmt.Sprintf("v%d.json", v)))
	if err != nil {
		return nil, privalytics.Errorf(privalytics.ENOTFOUND, "learn: model %q version %d: %v", name, v, err)
	}
	defer f.Close()
	return ReadModel(f)
}
