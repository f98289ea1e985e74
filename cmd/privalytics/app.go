package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/analytics"
	"github.com/privalytics/privalytics/analytics/beamjob"
	"github.com/privalytics/privalytics/api"
	"github.com/privalytics/privalytics/dp"
	"github.com/privalytics/privalytics/he"
	"github.com/privalytics/privalytics/he/federation"
	"github.com/privalytics/privalytics/learn/registry"
	"github.com/privalytics/privalytics/store/audit"
	"github.com/privalytics/privalytics/store/events"
	"github.com/privalytics/privalytics/store/keyring"
	"github.com/privalytics/privalytics/store/postgres"
	"github.com/privalytics/privalytics/store/sqlite"
	"github.com/privalytics/privalytics/store/statefile"
)

// App is one running Privalytics server: its stores, its HTTP server and the lock
// on its data directory. Tests run the real App on 127.0.0.1:0 with a temp dir.
type App struct {
	cfg    Config
	log    *slog.Logger
	lock   *os.File
	meta   privalytics.MetaStore
	events *events.Store
	audit  *audit.Log
	heData *he.Datasets // closed by api.Close, or by close when openApp fails after opening it
	api    *api.Server
	ln     net.Listener
	tls    bool // ln speaks TLS
	srv    *http.Server

	// OperatorToken is set when this start created the operator key (first start).
	OperatorToken string
}

// appOptions are what tests may change beyond Config.
type appOptions struct {
	mechanisms *dp.Mechanisms // nil: dp.Secure()
	logOutput  io.Writer      // nil: stderr
	// now is the server's clock; nil: time.Now. Benchmarks simulate days with it.
	now func() time.Time
}

// openApp opens (creating on first start) the data directory and every store, and
// binds the listener, but does not serve yet.
func openApp(ctx context.Context, cfg Config, opt appOptions) (a *App, err error) {
	a = &App{cfg: cfg}
	out := opt.logOutput
	if out == nil {
		out = os.Stderr
	}
	a.log = newLogger(cfg, out)
	opened := a // the named result is nil by the time an error return reaches the defer
	defer func() {
		if err != nil {
			opened.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if a.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	// What the directory holds decides what may be created (startup.go).
	have, err := inspectDataDir(cfg)
	if err != nil {
		return nil, err
	}
	mk, created, err := openMasterKey(cfg, have)
	if err != nil {
		return nil, err
	}
	if created {
		a.log.Info("created master key", "file", cfg.MasterKeyFile)
	}
	if err := refuseFreshMeta(cfg, have); err != nil {
		return nil, err
	}
	if cfg.Postgres != "" {
		a.meta, err = postgres.Open(ctx, cfg.Postgres)
	} else {
		a.meta, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "meta.db"))
	}
	if err != nil {
		a.meta = nil
		return nil, fmt.Errorf("metadata store: %w", err)
	}
	evOpt := events.Options{SealRows: cfg.SealRows, SyncWrites: true, Logger: a.log}
	if cfg.EncryptAtRest {
		evOpt.Encryption = mk
	}
	if a.events, err = events.Open(filepath.Join(cfg.DataDir, "events"), evOpt); err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	if a.audit, err = audit.Open(filepath.Join(cfg.DataDir, audit.FileName)); err != nil {
		return nil, err
	}
	mech := dp.Secure()
	if opt.mechanisms != nil {
		mech = *opt.mechanisms
	}
	limits := api.DefaultLimits()
	limits.MaxBodyBytes, limits.MaxDecodedBytes, limits.QueryTimeout = cfg.MaxBodyBytes, cfg.MaxDecodedBytes, cfg.QueryTimeout
	limits.Ingest.MaxRows, limits.Ingest.MaxStringBytes = cfg.MaxBatchRows, cfg.MaxStringBytes
	limits.RatePerKey, limits.RateBurst = cfg.RatePerKey, cfg.RateBurst
	heLimits := api.DefaultHELimits()
	heLimits.Enabled = cfg.Role == "processor"
	heLimits.MaxUploadBytes, heLimits.MaxHeldBytes, heLimits.ConcurrentJobs = cfg.HEMaxUploadBytes, cfg.HEMaxHeldBytes, cfg.HEJobs
	// The HE processor's datasets and the federations live in files beside
	// the events (store/statefile), sealed like them under the master key.
	var sealer statefile.Sealer
	if cfg.EncryptAtRest {
		sealer = mk
	}
	heData, err := he.OpenDatasets(heLimits, nil, he.Persist{Dir: filepath.Join(cfg.DataDir, "state", "he"), Sealer: sealer, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("HE processor state: %w", err)
	}
	a.heData = heData
	feds, err := federation.OpenRegistry(nil, a.log, federation.Persist{Dir: filepath.Join(cfg.DataDir, "state", "federations"), Sealer: sealer})
	if err != nil {
		return nil, fmt.Errorf("federation state: %w", err)
	}
	a.api = api.New(api.Deps{Meta: a.meta, Events: a.events, Keys: mk, Audit: a.audit, Mechanisms: mech, Limits: limits, HE: heLimits, HEDatasets: heData, Federations: feds,
		Logger: a.log, Readiness: a.events.Readiness, MetricsToken: cfg.MetricsToken, Now: opt.now,
		Models:  &registry.Service{Dir: filepath.Join(cfg.DataDir, "models"), Mechanisms: mech},
		Engines: engines(cfg, a.log)})
	if err := preloadTenants(ctx, a.meta, a.events); err != nil {
		return nil, err
	}

	ops, err := a.meta.Keys(ctx, "")
	if err != nil {
		return nil, err
	}
	if err := refuseEmptyMeta(cfg, have, len(ops)); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		k, err := a.api.IssueKey(ctx, "", "operator", privalytics.RoleAdmin)
		if err != nil {
			return nil, fmt.Errorf("create operator key: %w", err)
		}
		a.OperatorToken = k.Token
	}
	if have.inst == nil {
		// Written once the directory is whole, so later starts can tell a lost
		// key or database from a first start.
		if _, err := keyring.CreateInstallation(cfg.DataDir, mk); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
	}
	var tlsConf *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls: load --tls-cert %s and --tls-key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if a.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another server running? set --addr)", cfg.Addr, err)
	}
	if tlsConf != nil {
		a.ln, a.tls = tls.NewListener(a.ln, tlsConf), true
	}
	a.srv = &http.Server{Handler: a.api.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return a, nil
}

// URL is the base URL the server answers on.
func (a *App) URL() string {
	if a.tls {
		return "https://" + a.ln.Addr().String()
	}
	return "http://" + a.ln.Addr().String()
}

// serve answers requests until ctx is done, then drains in-flight requests, seals
// and flushes the stores.
func (a *App) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	// Expired events are purged by the rights service's loop, closed (and
	// waited for) below before the stores close under it.
	retention := a.api.Rights()
	retention.StartRetention(a.cfg.RetentionEvery)
	a.api.SetReady(true)
	a.log.Info("serving", "url", a.URL(), "data_dir", a.cfg.DataDir, "role", a.cfg.Role)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.api.SetReady(false)
	_ = retention.Close() // before the stores close under it
	a.log.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.srv.Shutdown(sctx); err != nil {
		a.log.Error("shutdown", "err", err)
	}
	if err := a.api.Close(sctx); err != nil { // HE jobs: cancelled, goroutines waited for
		a.log.Error("shutdown: background work", "err", err)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		a.close()
		return serveErr
	}
	return a.close()
}

// close releases the stores and the lock; safe on a half-opened App.
func (a *App) close() error {
	var errs []error
	if a.ln != nil {
		a.ln.Close()
	}
	if a.heData != nil { // idempotent after api.Close: jobs cancelled, their goroutines waited for
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		errs = append(errs, a.heData.Close(ctx))
		cancel()
		a.heData = nil
	}
	if a.events != nil {
		errs = append(errs, a.events.Close())
		a.events = nil
	}
	if a.audit != nil {
		errs = append(errs, a.audit.Close())
		a.audit = nil
	}
	if a.meta != nil {
		errs = append(errs, a.meta.Close())
		a.meta = nil
	}
	if a.lock != nil {
		a.lock.Close()
		a.lock = nil
	}
	return errors.Join(errs...)
}

// lockDataDir takes an exclusive lock so two servers never share one data
// directory (the log and the segments assume a single writer).
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another privalytics process; stop it or choose another --data-dir", dir)
	}
	return f, nil
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// engines wires the remote query engines the configuration turns on.
func engines(cfg Config, log *slog.Logger) map[string]analytics.RemoteEngine {
	if cfg.BeamBinary == "" {
		return nil
	}
	return map[string]analytics.RemoteEngine{"beam": &beamjob.Engine{Binary: cfg.BeamBinary, Runner: cfg.BeamRunner, Args: strings.Fields(cfg.BeamArgs), Log: log}}
}
