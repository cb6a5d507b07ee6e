package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// archiveExt is the file name extension export gives archives.
const archiveExt = ".landlord"

// archiveResult is what export, import and clone print with --json: the
// file, the tenant made or filled, and the archive's manifest, whose field
// names (the archive package's) are part of the interface.
type archiveResult struct {
	File     string           `json:"file,omitempty"`
	Bytes    int64            `json:"bytes,omitempty"`
	Tenant   *tenantView      `json:"tenant,omitempty"`
	Manifest archive.Manifest `json:"manifest"`
}

func newTenantsExport(g *globals, migrationsDir *string) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "export " + tenantArg + " [--output FILE]",
		Short: "Write one tenant, whatever its model, to a portable archive file",
		Long: `export writes every row of a tenant's tables to one archive file: one consistent
snapshot, taken while the tenant keeps serving. The file holds a manifest
(tenant, model, migration version, tables, row counts and a SHA-256 digest per
table, when it was taken, the Landlord and PostgreSQL versions) and the rows,
without their tenant id, so that "landlord tenants import" can load them into
any model. Rows stream through: memory stays flat however large the tenant.

Without --output the file is SLUG-TIME` + archiveExt + ` in the current directory; "-"
writes to standard output. The file appears only when the export succeeded
(it is written under a temporary name first); an existing file is refused
unless --force.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants export acme
  landlord tenants export acme --output /backups/acme.landlord --json
  landlord tenants export acme --output - | aws s3 cp - s3://backups/acme.landlord`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", `file to write ("-" for standard output; default SLUG-TIME`+archiveExt+`)`)
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		if out == "-" && *asJSON {
			return usageError{errors.New("--json and --output - both write to standard output; pick one")}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallNever, func(in *installation) error {
			t, err := ref.lookup(ctx, in.dir)
			if err != nil {
				return err
			}
			admin, err := in.ll.Admin(ctx, "command line: tenants export "+t.Slug)
			if err != nil {
				return err
			}
			bar := newRowProgress(cmd.ErrOrStderr(), "export "+t.Slug)
			opt := archive.ExportOptions{Progress: bar.update}
			if out == "-" {
				m, err := admin.ExportTenant(ctx, t.ID, cmd.OutOrStdout(), opt)
				bar.finish()
				if err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "Exported tenant %s (%s, %s): %s, %s.\n", t.Slug, t.Model, t.ID,
						plural(len(m.Tables), "table"), plural(int(m.Rows()), "row"))
				}
				return err
			}
			path := out
			if path == "" {
				path = t.Slug + "-" + time.Now().UTC().Format("20060102T150405Z") + archiveExt
			}
			var m archive.Manifest
			size, err := writeAtomically(path, force, func(w io.Writer) (err error) {
				m, err = admin.ExportTenant(ctx, t.ID, w, opt)
				return err
			})
			bar.finish()
			if err != nil {
				return err
			}
			if o.json {
				return o.emit(archiveResult{File: path, Bytes: size, Manifest: m})
			}
			o.printf("Exported tenant %s (%s, %s) to %s: %s, %s, %s.\n", t.Slug, t.Model, t.ID, path,
				plural(len(m.Tables), "table"), plural(int(m.Rows()), "row"), byteSize(size))
			return nil
		})
	}
	return cmd
}

// writeAtomically writes path through fill: into a temporary file beside
// it, synced and renamed into place only when fill succeeded, so that a
// failed or interrupted write leaves no file that looks whole. An existing
// path is refused (bad input) unless force.
func writeAtomically(path string, force bool, fill func(io.Writer) error) (int64, error) {
	if _, err := os.Stat(path); err == nil && !force {
		return 0, usageError{fmt.Errorf("%s exists; pass --force to replace it", path)}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return 0, err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := fill(f); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return 0, err
	}
	done = true
	return st.Size(), nil
}

func newTenantsImport(g *globals, migrationsDir *string) *cobra.Command {
	var slug, name, model, server, replace string
	var check, yes bool
	cmd := &cobra.Command{
		Use:   "import FILE [--slug SLUG] [--model M] | import FILE --replace " + tenantArg,
		Short: "Load an archive as a new tenant, in any model, or over an existing tenant",
		Long: `import reads an archive written by "landlord tenants export" (or "-" for standard
input) and loads it as a new tenant: with the archive's slug, display name and
model unless --slug, --name or --model say otherwise. Every row gets the new
tenant's id. The new tenant serves once all of its rows are in; until then it
is in state provisioning, and if the import dies, "landlord tenants reconcile"
removes it.

The archive is checked before anything is made: its layout, every table's row
count and digest, the manifest, and that its tables are at the migration
version tenants here are created at, with the same columns. A truncated,
damaged or altered archive, or one that does not fit, is refused with a
message that says what is wrong, and nothing is created (exit code 2).
--check only checks, and prints the manifest.

--replace loads the archive over an existing tenant instead: its rows are
replaced by the archive's in one transaction while it keeps serving; readers
see the old rows or the new ones. It asks for the tenant's slug on a terminal
and needs --yes otherwise.

Rows are written with triggers off (the archive holds what they made) and
foreign keys checked after. An import into the shared tables (row model) needs
a superuser administrator; other administrators import into the schema and
database models, whose tables they switch for the import's transaction.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants import acme-20261207T101500Z.landlord
  landlord tenants import acme.landlord --slug acme-restored --model database
  landlord tenants import acme.landlord --check
  landlord tenants import acme.landlord --replace acme --yes --json`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&slug, "slug", "", "slug of the new tenant (default: the archive's)")
	cmd.Flags().StringVar(&name, "name", "", "display name of the new tenant (default: the archive's)")
	cmd.Flags().StringVar(&model, "model", "", "model of the new tenant: row, schema or database (default: the archive's)")
	cmd.Flags().StringVar(&server, "server", "", `server to place the new tenant on (default: the directory's own, "main")`)
	cmd.Flags().StringVar(&replace, "replace", "", "load over this existing tenant (ID or slug), replacing its rows")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "with --replace: replace without asking for confirmation")
	cmd.Flags().BoolVar(&check, "check", false, "only check the archive and print its manifest; change nothing")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		opt := archive.ImportOptions{DisplayName: name, Server: server}
		if slug != "" {
			s, err := tenant.NormalizeSlug(slug)
			if err != nil {
				return usageError{fmt.Errorf("--slug: %w", err)}
			}
			opt.Slug = s
		}
		if model != "" {
			m, err := tenant.ParseModel(model)
			if err != nil {
				return usageError{fmt.Errorf("--model: %w", err)}
			}
			opt.Model = m
		}
		var ref tenantRef
		if replace != "" {
			if slug != "" || name != "" || model != "" || server != "" {
				return usageError{errors.New("--replace keeps the tenant's slug, name, model and server: drop --slug, --name, --model and --server")}
			}
			var err error
			if ref, err = parseTenantRef(replace); err != nil {
				return err
			}
			if !yes && !isTerminal(cmd.InOrStdin()) {
				return usageError{fmt.Errorf("refusing to replace the rows of tenant %q without confirmation: standard input is not a terminal; pass --yes", replace)}
			}
		}
		in, closeIn, err := openArchive(cmd, a[0])
		if err != nil {
			return err
		}
		defer closeIn()
		o := newOutput(cmd, *asJSON)
		if check {
			m, err := archive.Verify(in)
			if err != nil {
				return usageError{err}
			}
			return printManifest(o, a[0], m)
		}
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(inst *installation) error {
			label := "import"
			if replace != "" {
				t, err := ref.lookup(ctx, inst.dir)
				if err != nil {
					return err
				}
				if !yes {
					fmt.Fprintf(cmd.ErrOrStderr(), "Importing %s over tenant %s replaces all of its rows.\n", a[0], t.Slug)
					if err := confirm(ctx, cmd.InOrStdin(), cmd.ErrOrStderr(), t); err != nil {
						return err
					}
				}
				opt.Replace, label = t.ID, "import over "+t.Slug
			}
			admin, err := inst.ll.Admin(ctx, "command line: tenants import "+a[0])
			if err != nil {
				return err
			}
			bar := newRowProgress(cmd.ErrOrStderr(), label)
			opt.Progress = bar.update
			t, m, err := admin.ImportTenant(ctx, in, opt)
			bar.finish()
			if err != nil {
				return archiveError(err)
			}
			return printImported(o, "Imported", a[0], t, m)
		})
	}
	return cmd
}

// openArchive opens FILE, or standard input for "-". A file is read twice
// (checked whole, then loaded), so that a bad one creates nothing; standard
// input is checked as it is loaded.
func openArchive(cmd *cobra.Command, name string) (io.Reader, func(), error) {
	if name == "-" {
		return cmd.InOrStdin(), func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, usageError{err}
	}
	return f, func() { f.Close() }, nil
}

// archiveError makes an archive that is bad or does not fit bad input
// (exit code 2): nothing was changed.
func archiveError(err error) error {
	switch {
	case errors.Is(err, archive.ErrBadArchive) || errors.Is(err, archive.ErrIncompatible) || badInput(err):
		return usageError{err}
	case errors.Is(err, tenant.ErrSlugTaken):
		return fmt.Errorf("%w; choose another with --slug, or load over that tenant with --replace", err)
	}
	return err
}

func printManifest(o *output, file string, m archive.Manifest) error {
	if o.json {
		return o.emit(archiveResult{File: file, Manifest: m})
	}
	if err := fields(o.w, [][2]string{
		{"Archive", file},
		{"Tenant", fmt.Sprintf("%s (%s, %s)", m.Tenant.Slug, m.Tenant.Model, m.Tenant.ID)},
		{"Name", m.Tenant.DisplayName},
		{"Version", fmt.Sprint(m.SchemaVersion)},
		{"Taken", timeText(m.CreatedAt)},
		{"Written by", fmt.Sprintf("Landlord %s, PostgreSQL %s (format %d)", m.Landlord, m.PostgreSQL, m.Format)},
		{"Rows", fmt.Sprint(m.Rows())},
	}); err != nil {
		return err
	}
	fmt.Fprintln(o.w)
	rows := make([][]string, len(m.Tables))
	for i, t := range m.Tables {
		rows[i] = []string{t.Name, fmt.Sprint(t.Rows), fmt.Sprint(len(t.Columns)), t.SHA256}
	}
	return o.table([]string{"TABLE", "ROWS", "COLUMNS", "SHA-256"}, rows, nil)
}

func printImported(o *output, verb, from string, t tenant.Tenant, m archive.Manifest) error {
	if o.json {
		v := viewOf(t)
		return o.emit(archiveResult{Tenant: &v, Manifest: m})
	}
	o.printf("%s %s into tenant %s (%s, %s): %s, %s.\n", verb, from, t.Slug, t.Model, t.ID,
		plural(len(m.Tables), "table"), plural(int(m.Rows()), "row"))
	return nil
}

func newTenantsClone(g *globals, migrationsDir *string) *cobra.Command {
	var name, model, server string
	cmd := &cobra.Command{
		Use:   "clone " + tenantArg + " NEW-SLUG [--model M]",
		Short: "Copy a tenant into a new tenant, in any model",
		Long: `clone copies every row of a tenant into a new tenant NEW-SLUG, as an export
piped into an import with no file between: one consistent snapshot of the
source, which keeps serving. The copy has the source's model unless --model
says otherwise, and the source's display name unless --name. It serves once
all of its rows are in; a failed clone leaves nothing.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants clone acme acme-staging
  landlord tenants clone acme acme-big --model database --json`,
		Args: args(cobra.ExactArgs(2)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&name, "name", "", "display name of the copy (default: the source's)")
	cmd.Flags().StringVar(&model, "model", "", "model of the copy: row, schema or database (default: the source's)")
	cmd.Flags().StringVar(&server, "server", "", `server to place the copy on (default: the directory's own, "main")`)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		slug, err := tenant.NormalizeSlug(a[1])
		if err != nil {
			return usageError{err}
		}
		opt := archive.ImportOptions{Slug: slug, DisplayName: name, Server: server}
		if model != "" {
			if opt.Model, err = tenant.ParseModel(model); err != nil {
				return usageError{fmt.Errorf("--model: %w", err)}
			}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			src, err := ref.lookup(ctx, in.dir)
			if err != nil {
				return err
			}
			admin, err := in.ll.Admin(ctx, "command line: tenants clone "+src.Slug+" "+slug)
			if err != nil {
				return err
			}
			bar := newRowProgress(cmd.ErrOrStderr(), "clone "+src.Slug)
			opt.Progress = bar.update
			t, m, err := admin.CloneTenant(ctx, src.ID, opt)
			bar.finish()
			if err != nil {
				return archiveError(err)
			}
			return printImported(o, "Cloned", src.Slug, t, m)
		})
	}
	return cmd
}

// rowProgress shows rows going through an export or import (liveCount).
type rowProgress struct{ *liveCount }

func newRowProgress(w io.Writer, label string) rowProgress {
	return rowProgress{newLiveCount(w, label)}
}

func (r rowProgress) update(p archive.Progress) {
	of := ""
	if p.Total > 0 {
		of = fmt.Sprintf(" of %d", p.Total)
	}
	r.set("", fmt.Sprintf("%d%s rows, table %d of %d (%s)", p.Rows, of, p.TableIndex, p.Tables, p.Table), p.Rows, p.Total)
}

// byteSize is n bytes for people: "812 B", "1.4 MB".
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
