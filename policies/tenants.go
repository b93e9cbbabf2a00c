package policies

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/accordmesh/accord/internal/names"
)

// Tenancy sentinels.
var (
	ErrUnknownTenant = errors.New("policies: unknown tenant")
	ErrQuotaExceeded = errors.New("policies: quota exceeded")
	ErrUnsigned      = errors.New("policies: spec must be signed by a key trusted for the tenant")
	ErrBadToken      = errors.New("policies: invalid token")
	ErrTokenExpired  = errors.New("policies: token expired")
	ErrNoSuchToken   = errors.New("policies: no such token")
)

// Role is what a token may do.
type Role string

const (
	RoleTenant  Role = "tenant"  // submit, watch, cancel, approve its tenant's jobs
	RoleAuditor Role = "auditor" // read-only: status, receipts, audit search
	RoleAdmin   Role = "admin"   // every tenant
	// RoleProvider is a provider agent's token: it publishes the profile
	// of the provider its Name names (PUT /v1/providers/{name}) and sees
	// no tenant's jobs.
	RoleProvider Role = "provider"
)

// Tenant is a team with quotas and signing requirements.
type Tenant struct {
	Name          string   `json:"name"`
	Currency      string   `json:"currency"`
	SpendQuota    int64    `json:"spend_quota"`     // minor units per period; 0 = unlimited
	GPUHoursQuota float64  `json:"gpu_hours_quota"` // per period; 0 = unlimited
	Period        string   `json:"period"`          // day | week | month | none
	RequireSigned bool     `json:"require_signed"`
	Signers       []string `json:"signers,omitempty"` // key fingerprints trusted to sign its specs
}

// Usage is a tenant's consumption in the current period.
type Usage struct {
	Tenant            string  `json:"tenant"`
	PeriodStart       string  `json:"period_start"`
	Spend             int64   `json:"spend"`
	GPUHours          float64 `json:"gpu_hours"`
	SpendRemaining    int64   `json:"spend_remaining"` // -1 when unlimited
	GPUHoursRemaining float64 `json:"gpu_hours_remaining"`
}

// Principal is who a token belongs to.
type Principal struct {
	Tenant string `json:"tenant"` // "*" for admins and organisation-wide auditors
	Role   Role   `json:"role"`
	// Name is the holder's identity: what approvals record and what a
	// spec's approval.approvers names. CreateToken fills it when empty.
	Name string `json:"name"`
	// ID names the token (tok_ and 12 hex digits) in listings and
	// revocations; it is not a secret.
	ID string `json:"id,omitempty"`
}

// Identity is who acts with the token: its name, or tenant/ID for a token
// created without one.
func (p Principal) Identity() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Tenant + "/" + p.ID
}

// CanRead reports whether p may see jobs of tenant.
func (p Principal) CanRead(tenant string) bool {
	return p.Role != RoleProvider && (p.Tenant == "*" || p.Tenant == tenant)
}

// CanWrite reports whether p may submit or act on jobs of tenant.
func (p Principal) CanWrite(tenant string) bool { return p.Role != RoleAuditor && p.CanRead(tenant) }

// Store keeps tenants, quota reservations and API tokens in SQLite.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

const schema = `
CREATE TABLE IF NOT EXISTS tenants (
	name TEXT PRIMARY KEY, currency TEXT NOT NULL, spend_quota INTEGER NOT NULL,
	gpu_milli_hours_quota INTEGER NOT NULL, period TEXT NOT NULL, require_signed INTEGER NOT NULL,
	signers TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
	job_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, period_start TEXT NOT NULL,
	spend INTEGER NOT NULL, gpu_milli_hours INTEGER NOT NULL, state TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reservations_tenant ON reservations(tenant, period_start);
CREATE TABLE IF NOT EXISTS tokens (
	hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL, created TEXT NOT NULL);
`

// StorePath is where the tenancy database lives under Accord's home.
func StorePath(home string) string { return filepath.Join(home, "tenancy.db") }

// OpenStore opens (creating) the tenancy database at path.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("policies: open %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("policies: schema: %w", err)
	}
	s := &Store{db: db, now: time.Now}
	if err := s.migrateTokens(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// PutTenant creates or replaces a tenant.
func (s *Store) PutTenant(ctx context.Context, t Tenant) error {
	if err := names.Tenant(t.Name); err != nil {
		return fmt.Errorf("policies: %w", err)
	}
	if err := names.Currency(t.Currency); err != nil {
		return fmt.Errorf("policies: tenant %s: %w", t.Name, err)
	}
	if t.SpendQuota < 0 || t.GPUHoursQuota < 0 {
		return fmt.Errorf("policies: tenant %s: negative quota", t.Name)
	}
	switch t.Period {
	case "":
		t.Period = "month"
	case "day", "week", "month", "none":
	default:
		return fmt.Errorf("policies: tenant %s: period must be day, week, month or none, not %q", t.Name, t.Period)
	}
	sort.Strings(t.Signers)
	_, err := s.db.ExecContext(ctx, `INSERT INTO tenants VALUES (?,?,?,?,?,?,?)
		ON CONFLICT(name) DO UPDATE SET currency=excluded.currency, spend_quota=excluded.spend_quota,
		gpu_milli_hours_quota=excluded.gpu_milli_hours_quota, period=excluded.period,
		require_signed=excluded.require_signed, signers=excluded.signers`,
		t.Name, t.Currency, t.SpendQuota, milli(t.GPUHoursQuota), t.Period, boolInt(t.RequireSigned), strings.Join(t.Signers, ","))
	if err != nil {
		return fmt.Errorf("policies: put tenant %s: %w", t.Name, err)
	}
	return nil
}

// Tenant returns a tenant by name.
func (s *Store) Tenant(ctx context.Context, name string) (Tenant, error) {
	var t Tenant
	var gq int64
	var rs int
	var signers string
	err := s.db.QueryRowContext(ctx, `SELECT name, currency, spend_quota, gpu_milli_hours_quota, period, require_signed, signers
		FROM tenants WHERE name = ?`, name).Scan(&t.Name, &t.Currency, &t.SpendQuota, &gq, &t.Period, &rs, &signers)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("%w: %s", ErrUnknownTenant, name)
	}
	if err != nil {
		return t, fmt.Errorf("policies: tenant %s: %w", name, err)
	}
	t.GPUHoursQuota, t.RequireSigned = float64(gq)/1000, rs == 1
	if signers != "" {
		t.Signers = strings.Split(signers, ",")
	}
	return t, nil
}

// Tenants lists every tenant by name.
func (s *Store) Tenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("policies: list tenants: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	var out []Tenant
	for _, n := range names {
		t, err := s.Tenant(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// periodStart is the start of the quota period containing now, in UTC.
func periodStart(period string, now time.Time) string {
	now = now.UTC()
	switch period {
	case "day":
		return now.Format("2006-01-02")
	case "week":
		wd := (int(now.Weekday()) + 6) % 7 // Monday-based
		return now.AddDate(0, 0, -wd).Format("2006-01-02")
	case "none":
		return "all"
	default:
		return now.Format("2006-01")
	}
}

// Usage returns what tenant has reserved or consumed in the current period.
func (s *Store) Usage(ctx context.Context, tenant string) (Usage, error) {
	t, err := s.Tenant(ctx, tenant)
	if err != nil {
		return Usage{}, err
	}
	return usage(ctx, s.db, t, periodStart(t.Period, s.now()))
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func usage(ctx context.Context, q queryer, t Tenant, start string) (Usage, error) {
	u := Usage{Tenant: t.Name, PeriodStart: start}
	var gm int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(SUM(spend),0), COALESCE(SUM(gpu_milli_hours),0) FROM reservations
		WHERE tenant = ? AND period_start = ? AND state != 'released'`, t.Name, start).Scan(&u.Spend, &gm)
	if err != nil {
		return u, fmt.Errorf("policies: usage of %s: %w", t.Name, err)
	}
	u.GPUHours = float64(gm) / 1000
	u.SpendRemaining, u.GPUHoursRemaining = -1, -1
	if t.SpendQuota > 0 {
		u.SpendRemaining = max(t.SpendQuota-u.Spend, 0)
	}
	if t.GPUHoursQuota > 0 {
		u.GPUHoursRemaining = max(t.GPUHoursQuota-u.GPUHours, 0)
	}
	return u, nil
}

// Reserve holds spend and GPU-hours of jobID against tenant's quota for the
// current period. It is idempotent by job ID: reserving a job that already
// holds a reservation returns nil without reserving again, so a retried
// admission activity never counts a job twice.
func (s *Store) Reserve(ctx context.Context, tenant, jobID string, spend int64, gpuHours float64) error {
	if spend < 0 || gpuHours < 0 {
		return fmt.Errorf("policies: reserve %s: negative amount", jobID)
	}
	t, err := s.Tenant(ctx, tenant)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("policies: reserve %s: %w", jobID, err)
	}
	defer tx.Rollback()
	var existing string
	err = tx.QueryRowContext(ctx, `SELECT tenant FROM reservations WHERE job_id = ?`, jobID).Scan(&existing)
	if err == nil {
		if existing != tenant {
			return fmt.Errorf("policies: job %s is reserved for tenant %s, not %s", jobID, existing, tenant)
		}
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("policies: reserve %s: %w", jobID, err)
	}
	start := periodStart(t.Period, s.now())
	u, err := usage(ctx, tx, t, start)
	if err != nil {
		return err
	}
	if t.SpendQuota > 0 && spend > u.SpendRemaining {
		return fmt.Errorf("%w: tenant %s needs %d %s, %d of %d left this period", ErrQuotaExceeded, tenant, spend, t.Currency, u.SpendRemaining, t.SpendQuota)
	}
	if t.GPUHoursQuota > 0 && gpuHours > u.GPUHoursRemaining+1e-9 {
		return fmt.Errorf("%w: tenant %s needs %.3f GPU-hours, %.3f of %.3f left this period", ErrQuotaExceeded, tenant, gpuHours, u.GPUHoursRemaining, t.GPUHoursQuota)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO reservations VALUES (?,?,?,?,?, 'held')`, jobID, tenant, start, spend, milli(gpuHours)); err != nil {
		return fmt.Errorf("policies: reserve %s: %w", jobID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("policies: reserve %s: %w", jobID, err)
	}
	return nil
}

// Consume replaces a job's reservation with what it actually used (the rest
// is released back to the quota). Idempotent: it sets, never adds.
func (s *Store) Consume(ctx context.Context, jobID string, spend int64, gpuHours float64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE reservations SET spend = ?, gpu_milli_hours = ?, state = 'consumed' WHERE job_id = ?`,
		spend, milli(gpuHours), jobID)
	return affected(res, err, "consume", jobID)
}

// Release returns a job's whole reservation to the quota (on refund or
// cancellation). Idempotent; releasing an unknown job is not an error.
func (s *Store) Release(ctx context.Context, jobID string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE reservations SET state = 'released' WHERE job_id = ?`, jobID)
	if err != nil {
		return fmt.Errorf("policies: release %s: %w", jobID, err)
	}
	return nil
}

func affected(res sql.Result, err error, op, jobID string) error {
	if err != nil {
		return fmt.Errorf("policies: %s %s: %w", op, jobID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("policies: %s %s: no reservation", op, jobID)
	}
	return nil
}

func milli(h float64) int64 { return int64(h*1000 + 0.5) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
