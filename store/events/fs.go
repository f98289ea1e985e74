package events

import (
	"io"
	"os"
)

// Every change the store makes to its files goes through fsys, so a test can
// record the sequence of file-system operations and replay any prefix of it,
// as a crash would leave the disk (crash_test.go). Reads go to os directly.

type fsFile interface {
	io.Writer
	Sync() error
	Close() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Name() string
}

type fileSystem interface {
	OpenFile(name string, flag int, perm os.FileMode) (fsFile, error)
	Rename(from, to string) error
	Remove(name string) error
	MkdirAll(path string, perm os.FileMode) error
	SyncDir(dir string) error
}

// fsys is the operating system's file system, except in the crash-point test.
var fsys fileSystem = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (fsFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // never a typed nil in the interface
	}
	return f, nil
}

func (osFS) Rename(from, to string) error                 { return os.Rename(from, to) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
