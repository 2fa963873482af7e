//! The generated Go monorepo the build benchmark compiles: `internal/shared` (API types, JSON and
//! HTTP helpers, imported by every service), `internal/store` (a generic in-memory store),
//! `internal/middleware` (imports shared) and `cmd/svcNN` mains. Standard library only, so no
//! network is needed. The fixed packages live as Go files in `benches/monorepo/`; the API types and
//! the services are generated so the repo scales with `KILN_BENCH_SERVICES`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Res;

/// Module path of the generated repo (also spelled out in `benches/monorepo/middleware.go`).
const MODULE: &str = "example.com/benchrepo";
/// Generated API types in `internal/shared`; each service uses two of them.
const ENTITIES: usize = 24;

fn write(path: &Path, text: &str) -> Res<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()).into())
}

/// A contender's copy of the generated repo with its own caches, all in one temporary directory
/// that is removed on drop.
pub(crate) struct Workspace {
    pub(crate) _tmp: tempfile::TempDir,
    pub(crate) repo: PathBuf,
    pub(crate) gocache: PathBuf,
    pub(crate) kiln_cache: PathBuf,
    pub(crate) out: PathBuf,
}

impl Workspace {
    /// A new temporary directory named `prefix...` with the repo (one `cmd/<name>` per service)
    /// and empty GOCACHE and kiln cache directories.
    pub(crate) fn create(prefix: &str, services: &[String]) -> Res<Self> {
        let tmp = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let ws = Workspace {
            repo: tmp.path().join("repo"),
            gocache: tmp.path().join("gocache"),
            kiln_cache: tmp.path().join("kiln-cache"),
            out: tmp.path().join("out"),
            _tmp: tmp,
        };
        for d in [&ws.gocache, &ws.kiln_cache] {
            std::fs::create_dir_all(d)?;
        }
        generate(&ws.repo, services)?;
        Ok(ws)
    }

    /// Points `c` at this workspace with the environment every contender shares: its caches, no
    /// cgo, no network, no toolchain switch, and none of the user's go.env, GOFLAGS or target.
    pub(crate) fn isolate(&self, c: &mut Command) {
        c.current_dir(&self.repo)
            .env("GOCACHE", &self.gocache)
            .env("KILN_CACHE_DIR", &self.kiln_cache)
            .env("CGO_ENABLED", "0")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOENV", "off")
            .env("GOFLAGS", "")
            .env("NO_COLOR", "1")
            .env_remove("GOOS")
            .env_remove("GOARCH")
            .env_remove("GOWORK")
            .env_remove("KOCACHE");
    }
}

/// Writes the repo with one `cmd/<name>` main package per entry of `services`.
pub(crate) fn generate(repo: &Path, services: &[String]) -> Res<()> {
    write(
        &repo.join("go.mod"),
        &format!("module {MODULE}\n\ngo 1.22\n"),
    )?;
    write(
        &repo.join("internal/shared/version.go"),
        &version_go("2026.1"),
    )?;
    write(
        &repo.join("internal/shared/http.go"),
        include_str!("../monorepo/http.go"),
    )?;
    write(&repo.join("internal/shared/entities.go"), &entities_go())?;
    write(
        &repo.join("internal/store/store.go"),
        include_str!("../monorepo/store.go"),
    )?;
    write(
        &repo.join("internal/middleware/middleware.go"),
        include_str!("../monorepo/middleware.go"),
    )?;
    for (i, svc) in services.iter().enumerate() {
        write(
            &repo.join(format!("cmd/{svc}/main.go")),
            &service_go(svc, i),
        )?;
    }
    Ok(())
}

/// The "one shared file changed" edit: an exported constant every service and the middleware use,
/// so the export data changes and every dependent package is recompiled and every binary relinked.
pub(crate) fn edit_shared(repo: &Path) -> Res<()> {
    write(
        &repo.join("internal/shared/version.go"),
        &version_go("2026.2"),
    )
}

fn version_go(v: &str) -> String {
    format!(
        "package shared\n\n// APIVersion is reported by every service; the benchmark changes it.\nconst APIVersion = \"{v}\"\n"
    )
}

fn entities_go() -> String {
    let mut s = String::from(
        "package shared\n\nimport (\n\t\"encoding/json\"\n\t\"fmt\"\n\t\"io\"\n\t\"net/http\"\n\t\"strings\"\n\t\"time\"\n)\n",
    );
    for i in 0..ENTITIES {
        let _ = write!(
            s,
            r#"
// Entity{i:02} is a generated API resource.
type Entity{i:02} struct {{
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Count     int               `json:"count"`
	Tags      []string          `json:"tags,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	Score     float64           `json:"score"`
	Parent    *Entity{i:02}       `json:"parent,omitempty"`
}}

// Validate reports the first invalid field.
func (e *Entity{i:02}) Validate() error {{
	if e.ID == "" {{
		return fmt.Errorf("entity{i:02}: %w: id is empty", ErrInvalid)
	}}
	if strings.TrimSpace(e.Name) == "" {{
		return fmt.Errorf("entity{i:02} %s: %w: name is empty", e.ID, ErrInvalid)
	}}
	if e.Count < 0 || e.Count > {max} {{
		return fmt.Errorf("entity{i:02} %s: %w: count %d out of range", e.ID, ErrInvalid, e.Count)
	}}
	for _, t := range e.Tags {{
		if strings.ContainsAny(t, " \t,") {{
			return fmt.Errorf("entity{i:02} %s: %w: tag %q", e.ID, ErrInvalid, t)
		}}
	}}
	for k := range e.Labels {{
		if len(k) > 63 {{
			return fmt.Errorf("entity{i:02} %s: %w: label key too long", e.ID, ErrInvalid)
		}}
	}}
	if e.Parent != nil && e.Parent.ID == e.ID {{
		return fmt.Errorf("entity{i:02} %s: %w: own parent", e.ID, ErrInvalid)
	}}
	return nil
}}

// Key is the storage key.
func (e *Entity{i:02}) Key() string {{ return "entity{i:02}/" + e.ID }}

// Summary is a one-line description for logs.
func (e *Entity{i:02}) Summary() string {{
	return fmt.Sprintf("entity{i:02} %s %q count=%d score=%.2f tags=%s", e.ID, e.Name, e.Count, e.Score, strings.Join(e.Tags, ","))
}}

// DecodeEntity{i:02} reads and validates one Entity{i:02} from a request body.
func DecodeEntity{i:02}(r *http.Request) (*Entity{i:02}, error) {{
	var e Entity{i:02}
	dec := json.NewDecoder(io.LimitReader(r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {{
		return nil, fmt.Errorf("decode entity{i:02}: %w", err)
	}}
	if e.CreatedAt.IsZero() {{
		e.CreatedAt = time.Now().UTC()
	}}
	if err := e.Validate(); err != nil {{
		return nil, err
	}}
	return &e, nil
}}
"#,
            max = (i + 1) * 1000
        );
    }
    s
}

fn service_go(svc: &str, i: usize) -> String {
    let a = format!("{:02}", i % ENTITIES);
    let b = format!("{:02}", (i + 7) % ENTITIES);
    format!(
        r#"// Command {svc} is a generated service of the kiln benchmark.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"{MODULE}/internal/middleware"
	"{MODULE}/internal/shared"
	"{MODULE}/internal/store"
)

const serviceName = "{svc}"

type server struct {{
	a   *store.Store[*shared.Entity{a}]
	b   *store.Store[*shared.Entity{b}]
	log *slog.Logger
}}

func (s *server) createA(w http.ResponseWriter, r *http.Request) {{
	e, err := shared.DecodeEntity{a}(r)
	if err != nil {{
		shared.WriteError(w, http.StatusBadRequest, err)
		return
	}}
	s.a.Put(e)
	s.log.Info("created", "what", e.Summary())
	shared.WriteJSON(w, http.StatusCreated, e)
}}

func (s *server) getA(w http.ResponseWriter, r *http.Request) {{
	e, err := s.a.Get("entity{a}/" + r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {{
		shared.WriteError(w, http.StatusNotFound, err)
		return
	}}
	shared.WriteJSON(w, http.StatusOK, e)
}}

func (s *server) listA(w http.ResponseWriter, r *http.Request) {{
	shared.WriteJSON(w, http.StatusOK, shared.Paginate(s.a.List(), shared.ParseLimit(r, 50)))
}}

func (s *server) createB(w http.ResponseWriter, r *http.Request) {{
	e, err := shared.DecodeEntity{b}(r)
	if err != nil {{
		shared.WriteError(w, http.StatusBadRequest, err)
		return
	}}
	if _, err := s.a.Get("entity{a}/" + e.ID); err != nil {{
		shared.WriteError(w, http.StatusConflict, errors.New("{svc}: unknown owner "+e.ID))
		return
	}}
	s.b.Put(e)
	shared.WriteJSON(w, http.StatusCreated, e)
}}

func (s *server) deleteB(w http.ResponseWriter, r *http.Request) {{
	if !s.b.Delete("entity{b}/" + r.PathValue("id")) {{
		shared.WriteError(w, http.StatusNotFound, store.ErrNotFound)
		return
	}}
	w.WriteHeader(http.StatusNoContent)
}}

func (s *server) snapshot(w http.ResponseWriter, r *http.Request) {{
	a, err := s.a.Snapshot()
	if err != nil {{
		shared.WriteError(w, http.StatusInternalServerError, err)
		return
	}}
	b, err := s.b.Snapshot()
	if err != nil {{
		shared.WriteError(w, http.StatusInternalServerError, err)
		return
	}}
	shared.WriteJSON(w, http.StatusOK, map[string]any{{"service": serviceName, "a": len(a), "b": len(b)}})
}}

func main() {{
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	s := &server{{a: store.New[*shared.Entity{a}](), b: store.New[*shared.Entity{b}](), log: log}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/a", s.createA)
	mux.HandleFunc("GET /v1/a/{{id}}", s.getA)
	mux.HandleFunc("GET /v1/a", s.listA)
	mux.HandleFunc("POST /v1/b", s.createB)
	mux.HandleFunc("DELETE /v1/b/{{id}}", s.deleteB)
	mux.HandleFunc("GET /v1/snapshot", s.snapshot)
	mux.HandleFunc("GET /healthz", shared.Health(serviceName))
	srv := &http.Server{{Addr: *addr, Handler: middleware.Chain(mux, log), ReadHeaderTimeout: 5 * time.Second}}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {{
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}}()
	log.Info("listening", "service", serviceName, "addr", *addr, "api", shared.APIVersion)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {{
		log.Error("serve", "err", err)
		os.Exit(1)
	}}
}}
"#
    )
}
