package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Config is every setting of `privalytics serve`. Precedence, lowest first:
// defaults, the JSON file named by --config, PRIVALYTICS_* environment variables,
// flags.
type Config struct {
	Addr          string `json:"addr"`            // listen address; keep it on loopback unless behind a proxy
	DataDir       string `json:"data_dir"`        // events, metadata and keys live here
	MasterKeyFile string `json:"master_key_file"` // default <data_dir>/master.key, created 0600 on first start
	MasterKey     string `json:"-"`               // base64; from PRIVALYTICS_MASTER_KEY only, never a file or flag
	// MetricsToken lets Prometheus read /metrics without the operator key.
	// From PRIVALYTICS_METRICS_TOKEN only: a flag would show it in ps.
	MetricsToken    string        `json:"-"`
	Postgres        string        `json:"postgres"`          // metadata and ledger on PostgreSQL (pgx DSN); empty: SQLite in the data directory
	LogFormat       string        `json:"log_format"`        // json or text
	LogLevel        string        `json:"log_level"`         // debug, info, warn, error
	MaxBodyBytes    int64         `json:"max_body_bytes"`    // an ingest request as sent
	MaxDecodedBytes int64         `json:"max_decoded_bytes"` // an ingest request after gzip
	MaxBatchRows    int           `json:"max_batch_rows"`    // events per ingest request
	MaxStringBytes  int           `json:"max_string_bytes"`  // default cap for string fields without max_length
	QueryTimeout    time.Duration `json:"query_timeout"`
	SealRows        int           `json:"seal_rows"` // log rows that trigger sealing into a Parquet segment
	ShutdownTimeout time.Duration `json:"shutdown_timeout"`
	// Role is "analytics" (the default) or "processor", which also serves the
	// encrypted-analytics routes /v1/he/… for outside data owners.
	Role             string        `json:"role"`
	HEMaxUploadBytes int64         `json:"he_max_upload_bytes"` // one encrypted dataset upload (keys + table); 413 above
	HEMaxHeldBytes   int64         `json:"he_max_held_bytes"`   // all encrypted datasets and results in memory; 503 above
	HEJobs           int           `json:"he_jobs"`             // encrypted jobs computing at once
	RetentionEvery   time.Duration `json:"retention_every"`     // how often expired events are purged
	// EncryptAtRest seals event logs and segments with AES-256-GCM under
	// per-tenant data keys wrapped by the master key.
	EncryptAtRest bool `json:"encrypt_at_rest"`
	// RatePerKey and RateBurst limit each API key (token bucket): above them the
	// answer is 429 with Retry-After. RatePerKey 0 turns the limit off.
	RatePerKey float64 `json:"rate_per_key"`
	RateBurst  int     `json:"rate_burst"`
	// TLSCert and TLSKey (PEM files), when both are set, make the server speak
	// HTTPS only.
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key"`
	// BeamBinary, when set, turns on "engine": "beam" queries: the path of the
	// privalytics-beam pipeline binary (beam/, docs/beam.md), run on BeamRunner.
	BeamBinary string `json:"beam_binary"`
	BeamRunner string `json:"beam_runner"`
	BeamArgs   string `json:"beam_args"` // more pipeline flags, space-separated (Dataflow/Flink: docs/beam.md)
}

// DefaultConfig returns the embedded defaults: everything under ./privalytics-data,
// listening on 127.0.0.1:8080.
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:8080",
		DataDir:          "privalytics-data",
		LogFormat:        "text",
		LogLevel:         "info",
		MaxBodyBytes:     64 << 20,
		MaxDecodedBytes:  256 << 20,
		MaxBatchRows:     100_000,
		MaxStringBytes:   256,
		QueryTimeout:     30 * time.Second,
		SealRows:         1_000_000,
		ShutdownTimeout:  30 * time.Second,
		Role:             "analytics",
		HEMaxUploadBytes: 1 << 30,
		HEMaxHeldBytes:   4 << 30,
		HEJobs:           2,
		RetentionEvery:   time.Hour,
		EncryptAtRest:    true,
		RatePerKey:       200,
		RateBurst:        400,
	}
}

// setting binds one field to a flag and an environment variable.
type setting struct {
	flag, env, usage string
	kind             string // the flag's type in --help: string, bytes, int, duration, float, bool
	get              func(*Config) string
	set              func(*Config, string) error
}

func settings() []setting {
	str := func(p func(*Config) *string) (func(*Config) string, func(*Config, string) error) {
		return func(c *Config) string { return *p(c) }, func(c *Config, v string) error { *p(c) = v; return nil }
	}
	size := func(p func(*Config) *int64) (func(*Config) string, func(*Config, string) error) {
		return func(c *Config) string { return formatBytes(*p(c)) }, func(c *Config, v string) error {
			n, err := parseBytes(v)
			if err == nil {
				*p(c) = n
			}
			return err
		}
	}
	integer := func(p func(*Config) *int) (func(*Config) string, func(*Config, string) error) {
		return func(c *Config) string { return strconv.Itoa(*p(c)) }, func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			*p(c) = n
			return err
		}
	}
	dur := func(p func(*Config) *time.Duration) (func(*Config) string, func(*Config, string) error) {
		return func(c *Config) string { return p(c).String() }, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			*p(c) = d
			return err
		}
	}
	mk := func(flag, usage string, g func(*Config) string, s func(*Config, string) error) setting {
		return setting{flag: flag, env: "PRIVALYTICS_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_")), usage: usage, get: g, set: s}
	}
	var out []setting
	add := func(flag, usage string, g func(*Config) string, s func(*Config, string) error) {
		out = append(out, mk(flag, usage, g, s))
	}
	// typed names the kind of the setting just added, for --help and for
	// boolean flags given without a value.
	typed := func(kind string) { out[len(out)-1].kind = kind }
	g, s := str(func(c *Config) *string { return &c.Addr })
	add("addr", "listen address (host:port)", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.DataDir })
	add("data-dir", "data directory (events, metadata, keys)", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.MasterKeyFile })
	add("master-key-file", "master key file (default <data-dir>/master.key)", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.Postgres })
	add("postgres", "PostgreSQL DSN for metadata and the ledger (default: SQLite in the data directory)", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.LogFormat })
	add("log-format", "log format: json or text", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.LogLevel })
	add("log-level", "log level: debug, info, warn, error", g, s)
	typed("string")
	g, s = size(func(c *Config) *int64 { return &c.MaxBodyBytes })
	add("max-body-bytes", "largest ingest request body as sent", g, s)
	typed("bytes")
	g, s = size(func(c *Config) *int64 { return &c.MaxDecodedBytes })
	add("max-decoded-bytes", "largest ingest request body after gzip decoding", g, s)
	typed("bytes")
	g, s = integer(func(c *Config) *int { return &c.MaxBatchRows })
	add("max-batch-rows", "most events in one ingest request", g, s)
	typed("int")
	g, s = integer(func(c *Config) *int { return &c.MaxStringBytes })
	add("max-string-bytes", "longest string value for fields without max_length", g, s)
	typed("int")
	g, s = dur(func(c *Config) *time.Duration { return &c.QueryTimeout })
	add("query-timeout", "longest a query may run", g, s)
	typed("duration")
	g, s = integer(func(c *Config) *int { return &c.SealRows })
	add("seal-rows", "log rows that trigger sealing into a Parquet segment", g, s)
	typed("int")
	g, s = dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })
	add("shutdown-timeout", "longest graceful shutdown waits for in-flight requests", g, s)
	typed("duration")
	g, s = str(func(c *Config) *string { return &c.Role })
	add("role", "analytics, or processor to also run jobs on encrypted datasets (/v1/he/…)", g, s)
	typed("string")
	g, s = size(func(c *Config) *int64 { return &c.HEMaxUploadBytes })
	add("he-max-upload-bytes", "largest encrypted dataset upload (evaluation keys + table)", g, s)
	typed("bytes")
	g, s = size(func(c *Config) *int64 { return &c.HEMaxHeldBytes })
	add("he-max-held-bytes", "most bytes of encrypted datasets and results held in memory", g, s)
	typed("bytes")
	g, s = integer(func(c *Config) *int { return &c.HEJobs })
	add("he-jobs", "encrypted jobs computing at once (each uses one core)", g, s)
	typed("int")
	g, s = dur(func(c *Config) *time.Duration { return &c.RetentionEvery })
	add("retention-every", "how often events past their tenant's retention period are purged", g, s)
	typed("duration")
	g, s = integer(func(c *Config) *int { return &c.RateBurst })
	add("rate-burst", "requests one API key may send at once before the per-key rate applies", g, s)
	typed("int")
	add("rate-per-key", "sustained requests per second per API key (0: no limit); above it 429 with Retry-After",
		func(c *Config) string { return strconv.FormatFloat(c.RatePerKey, 'g', -1, 64) },
		func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			c.RatePerKey = f
			return err
		})
	typed("float")
	g, s = str(func(c *Config) *string { return &c.TLSCert })
	add("tls-cert", "PEM certificate file; with --tls-key the server speaks HTTPS only", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.TLSKey })
	add("tls-key", "PEM private key file for --tls-cert", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.BeamBinary })
	add("beam-binary", "privalytics-beam pipeline binary; turns on \"engine\": \"beam\" queries (docs/beam.md)", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.BeamRunner })
	add("beam-runner", "Beam runner of beam jobs: direct (default), prism, dataflow or flink", g, s)
	typed("string")
	g, s = str(func(c *Config) *string { return &c.BeamArgs })
	add("beam-args", "more flags for the beam pipeline, space-separated (e.g. --project P --region R)", g, s)
	typed("string")
	add("encrypt-at-rest", "encrypt event logs and segments under per-tenant keys wrapped by the master key (true or false)",
		func(c *Config) string { return strconv.FormatBool(c.EncryptAtRest) },
		func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			c.EncryptAtRest = b
			return err
		})
	typed("bool")
	return out
}

// bindFlags registers every setting as a flag on fs, showing the defaults.
func bindFlags(fs *pflag.FlagSet) {
	def := DefaultConfig()
	for _, st := range settings() {
		v := &settingValue{text: st.get(&def), kind: st.kind}
		f := fs.VarPF(v, st.flag, "", st.usage+" [env "+st.env+"]")
		if st.kind == "bool" {
			f.NoOptDefVal = "true" // --encrypt-at-rest alone means true
		}
	}
	fs.String("config", "", "JSON config file [env PRIVALYTICS_CONFIG]")
}

// settingValue is a flag that keeps its text as given and shows its kind in
// --help. The text is parsed in loadConfig, not at Set, so that every bad flag,
// variable and file value is reported together rather than the first alone.
type settingValue struct{ text, kind string }

func (v *settingValue) String() string     { return v.text }
func (v *settingValue) Set(s string) error { v.text = s; return nil }
func (v *settingValue) Type() string       { return v.kind }

// byteUnits are the suffixes parseBytes accepts: SI (powers of 1000) and IEC
// (powers of 1024) spelled out, so "64MB" and "64MiB" mean what they say.
var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// parseBytes reads a size: a whole number of bytes, optionally followed by a
// unit (64MiB, 1.5GiB, 500KB, 1024).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.n
			break
		}
	}
	bad := fmt.Errorf("%q is not a size: give bytes, optionally with a unit, e.g. 1048576, 64MiB, 1.5GiB or 500MB", s)
	if t == "" {
		return 0, bad
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || (n > 0 && mult > math.MaxInt64/n) {
			return 0, bad
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || !(f >= 0) || f*float64(mult) >= math.MaxInt64 {
		return 0, bad
	}
	return int64(f * float64(mult)), nil
}

// formatBytes writes n in the largest binary unit that divides it, so --help
// shows 64MiB rather than 67108864.
func formatBytes(n int64) string {
	for i := 3; i >= 0; i-- {
		u := byteUnits[i]
		if n != 0 && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// loadConfig applies file, environment and flags over the defaults, in that order,
// and validates the result. getenv is os.Getenv outside tests.
func loadConfig(fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	path := getenv("PRIVALYTICS_CONFIG")
	if f := fs.Lookup("config"); f != nil && f.Changed {
		path = f.Value.String()
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		var fc fileConfig
		if err := dec.Decode(&fc); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
		if err := fc.apply(&cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	var problems []error
	for _, st := range settings() {
		if v := getenv(st.env); v != "" {
			if err := st.set(&cfg, v); err != nil {
				problems = append(problems, fmt.Errorf("%s=%q: %v", st.env, v, err))
			}
		}
	}
	for _, st := range settings() {
		if f := fs.Lookup(st.flag); f != nil && f.Changed {
			if err := st.set(&cfg, f.Value.String()); err != nil {
				problems = append(problems, fmt.Errorf("--%s=%q: %v", st.flag, f.Value.String(), err))
			}
		}
	}
	cfg.MasterKey = getenv("PRIVALYTICS_MASTER_KEY")
	cfg.MetricsToken = getenv("PRIVALYTICS_METRICS_TOKEN")
	if cfg.MasterKeyFile == "" {
		cfg.MasterKeyFile = filepath.Join(cfg.DataDir, "master.key")
	}
	if len(problems) > 0 {
		return cfg, errors.Join(problems...)
	}
	return cfg, cfg.Validate()
}

// fileBytes is a size in the config file: a number of bytes or a string with
// a unit ("64MiB"), as on the command line.
type fileBytes int64

func (b *fileBytes) UnmarshalJSON(raw []byte) error {
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		*b = fileBytes(n)
		return nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return fmt.Errorf("a size must be a number of bytes or a string like \"64MiB\", got %s", raw)
	}
	n, err := parseBytes(text)
	*b = fileBytes(n)
	return err
}

// fileConfig is the JSON file's shape: durations as Go duration strings.
type fileConfig struct {
	Addr             *string    `json:"addr"`
	DataDir          *string    `json:"data_dir"`
	MasterKeyFile    *string    `json:"master_key_file"`
	Postgres         *string    `json:"postgres"`
	LogFormat        *string    `json:"log_format"`
	LogLevel         *string    `json:"log_level"`
	MaxBodyBytes     *fileBytes `json:"max_body_bytes"`
	MaxDecodedBytes  *fileBytes `json:"max_decoded_bytes"`
	MaxBatchRows     *int       `json:"max_batch_rows"`
	MaxStringBytes   *int       `json:"max_string_bytes"`
	QueryTimeout     *string    `json:"query_timeout"`
	SealRows         *int       `json:"seal_rows"`
	ShutdownTimeout  *string    `json:"shutdown_timeout"`
	Role             *string    `json:"role"`
	HEMaxUploadBytes *fileBytes `json:"he_max_upload_bytes"`
	HEMaxHeldBytes   *fileBytes `json:"he_max_held_bytes"`
	HEJobs           *int       `json:"he_jobs"`
	RetentionEvery   *string    `json:"retention_every"`
	EncryptAtRest    *bool      `json:"encrypt_at_rest"`
	RatePerKey       *float64   `json:"rate_per_key"`
	RateBurst        *int       `json:"rate_burst"`
	TLSCert          *string    `json:"tls_cert"`
	TLSKey           *string    `json:"tls_key"`
	BeamBinary       *string    `json:"beam_binary"`
	BeamRunner       *string    `json:"beam_runner"`
	BeamArgs         *string    `json:"beam_args"`
}

func (f fileConfig) apply(c *Config) error {
	setS := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setS(&c.Addr, f.Addr)
	setS(&c.DataDir, f.DataDir)
	setS(&c.MasterKeyFile, f.MasterKeyFile)
	setS(&c.Postgres, f.Postgres)
	setS(&c.LogFormat, f.LogFormat)
	setS(&c.LogLevel, f.LogLevel)
	if f.MaxBodyBytes != nil {
		c.MaxBodyBytes = int64(*f.MaxBodyBytes)
	}
	if f.MaxDecodedBytes != nil {
		c.MaxDecodedBytes = int64(*f.MaxDecodedBytes)
	}
	if f.MaxBatchRows != nil {
		c.MaxBatchRows = *f.MaxBatchRows
	}
	if f.MaxStringBytes != nil {
		c.MaxStringBytes = *f.MaxStringBytes
	}
	if f.SealRows != nil {
		c.SealRows = *f.SealRows
	}
	setS(&c.Role, f.Role)
	if f.HEMaxUploadBytes != nil {
		c.HEMaxUploadBytes = int64(*f.HEMaxUploadBytes)
	}
	if f.HEMaxHeldBytes != nil {
		c.HEMaxHeldBytes = int64(*f.HEMaxHeldBytes)
	}
	if f.HEJobs != nil {
		c.HEJobs = *f.HEJobs
	}
	if f.EncryptAtRest != nil {
		c.EncryptAtRest = *f.EncryptAtRest
	}
	if f.RatePerKey != nil {
		c.RatePerKey = *f.RatePerKey
	}
	if f.RateBurst != nil {
		c.RateBurst = *f.RateBurst
	}
	setS(&c.TLSCert, f.TLSCert)
	setS(&c.TLSKey, f.TLSKey)
	setS(&c.BeamBinary, f.BeamBinary)
	setS(&c.BeamRunner, f.BeamRunner)
	setS(&c.BeamArgs, f.BeamArgs)
	var errs []error
	for _, d := range []struct {
		dst *time.Duration
		v   *string
		key string
	}{{&c.QueryTimeout, f.QueryTimeout, "query_timeout"}, {&c.ShutdownTimeout, f.ShutdownTimeout, "shutdown_timeout"}, {&c.RetentionEvery, f.RetentionEvery, "retention_every"}} {
		if d.v != nil {
			v, err := time.ParseDuration(*d.v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", d.key, err))
			}
			*d.dst = v
		}
	}
	return errors.Join(errs...)
}

// Validate reports every problem at once, each saying what to change.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q must be host:port, e.g. 127.0.0.1:8080", c.Addr))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir must not be empty"))
	}
	if c.Postgres != "" && !strings.HasPrefix(c.Postgres, "postgres://") && !strings.HasPrefix(c.Postgres, "postgresql://") {
		errs = append(errs, errors.New("postgres must be a URL like postgres://user:password@127.0.0.1:5432/db?sslmode=disable"))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log-format must be json or text, got %q", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level must be debug, info, warn or error, got %q", c.LogLevel))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max-body-bytes must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.MaxDecodedBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("max-decoded-bytes (%d) must be at least max-body-bytes (%d)", c.MaxDecodedBytes, c.MaxBodyBytes))
	}
	if c.MaxBatchRows < 1 || c.MaxBatchRows > 10_000_000 {
		errs = append(errs, fmt.Errorf("max-batch-rows must be 1..10000000, got %d", c.MaxBatchRows))
	}
	if c.MaxStringBytes < 1 || c.MaxStringBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("max-string-bytes must be 1..1048576, got %d", c.MaxStringBytes))
	}
	if c.QueryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("query-timeout must be > 0, got %s", c.QueryTimeout))
	}
	if c.SealRows < 1000 {
		errs = append(errs, fmt.Errorf("seal-rows must be at least 1000, got %d", c.SealRows))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown-timeout must be > 0, got %s", c.ShutdownTimeout))
	}
	if c.Role != "analytics" && c.Role != "processor" {
		errs = append(errs, fmt.Errorf("role must be analytics or processor, got %q", c.Role))
	}
	if c.HEMaxUploadBytes < 1024 {
		errs = append(errs, fmt.Errorf("he-max-upload-bytes must be at least 1024, got %d", c.HEMaxUploadBytes))
	}
	if c.HEMaxHeldBytes < c.HEMaxUploadBytes {
		errs = append(errs, fmt.Errorf("he-max-held-bytes (%d) must be at least he-max-upload-bytes (%d)", c.HEMaxHeldBytes, c.HEMaxUploadBytes))
	}
	if c.HEJobs < 1 || c.HEJobs > 256 {
		errs = append(errs, fmt.Errorf("he-jobs must be 1..256, got %d", c.HEJobs))
	}
	if !(c.RatePerKey >= 0) || math.IsInf(c.RatePerKey, 0) {
		errs = append(errs, fmt.Errorf("rate-per-key must be ≥ 0 and finite (0: no limit), got %v", c.RatePerKey))
	}
	if c.RatePerKey > 0 && c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("rate-burst must be ≥ 1 when rate-per-key is set, got %d", c.RateBurst))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, fmt.Errorf("tls-cert and tls-key go together: give both or neither"))
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 32 {
		errs = append(errs, fmt.Errorf("PRIVALYTICS_METRICS_TOKEN must be at least 32 characters so it cannot be guessed (e.g. openssl rand -hex 32), got %d", len(c.MetricsToken)))
	}
	if c.RetentionEvery < time.Second {
		errs = append(errs, fmt.Errorf("retention-every must be at least 1s, got %s", c.RetentionEvery))
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = "  - " + e.Error()
		}
		return fmt.Errorf("invalid configuration:\n%s", strings.Join(msgs, "\n"))
	}
	return nil
}
