package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

// The file: a gzip stream holding the magic line, then frames. A frame is
// one kind byte, its payload's length (4 bytes, big-endian) and the
// payload:
//
//	H  the header: the Manifest without row counts and checksums, so that
//	   an import refuses an archive that does not fit before reading on
//	T  a table begins: {"name": ...}, in the header's order
//	D  rows of that table, in PostgreSQL's COPY text format without the
//	   tenant_id column; a row may span frames
//	E  the table ends: {"rows": ..., "sha256": ...} of its D bytes
//	M  the whole Manifest, last; nothing may follow it
//
// A reader recomputes every count and digest, so a truncated, damaged or
// altered file is refused (gzip's own checksum catches most damage first).
const (
	magic = "LANDLORD TENANT ARCHIVE\n"

	// FormatVersion is the version of the file layout this package writes
	// and the newest it reads.
	FormatVersion = 1

	frameHeader   = 'H'
	frameTable    = 'T'
	frameData     = 'D'
	frameEnd      = 'E'
	frameManifest = 'M'

	// dataFrameSize is how many bytes of rows a D frame carries at most
	// when written; maxFrame bounds what a reader accepts, so that a
	// damaged length cannot make it allocate without limit.
	dataFrameSize = 256 << 10
	maxFrame      = 64 << 20
)

// Manifest describes an archive: the tenant it was taken from, its tables
// and, for each table, how many rows it holds and their SHA-256 digest.
type Manifest struct {
	Format        int       `json:"format"`
	Landlord      string    `json:"landlord"`   // the version of the Landlord module that wrote it
	PostgreSQL    string    `json:"postgresql"` // server_version of the source
	CreatedAt     time.Time `json:"created_at"` // when its snapshot was taken
	Tenant        Source    `json:"tenant"`
	SchemaVersion int       `json:"schema_version"` // the migration version of the tenant's tables
	Tables        []Table   `json:"tables"`
}

// Source is the tenant an archive was taken from.
type Source struct {
	ID          tenant.ID    `json:"id"`
	Slug        string       `json:"slug"`
	DisplayName string       `json:"display_name"`
	Model       tenant.Model `json:"model"`
	Server      string       `json:"server"`
	// Settings are the tenant's own limits (tenant.Settings) when the
	// archive was taken; a new tenant imported from it gets them.
	Settings tenant.Settings `json:"settings,omitzero"`
}

// Table is one tenant table of an archive. Its rows are in COPY text
// format, without the tenant_id column, ordered by the primary key, and
// written with fixed output settings (UTC, ISO dates), so that the same
// rows give the same digest in any model and on any server.
type Table struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	Rows    int64    `json:"rows"`
	SHA256  string   `json:"sha256"`
}

// Column is a column of a Table, with its type as format_type prints it.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Rows returns the number of rows of every table.
func (m Manifest) Rows() int64 {
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}

// sameShape reports whether m and o have the same tables and columns.
func (m Manifest) sameShape(o Manifest) bool {
	return slices.EqualFunc(m.Tables, o.Tables, func(a, b Table) bool {
		return a.Name == b.Name && slices.Equal(a.Columns, b.Columns)
	})
}

func (m Manifest) validate() error {
	if m.Format < 1 {
		return fmt.Errorf("%w: the header has no format version", ErrBadArchive)
	}
	if m.Format > FormatVersion {
		return fmt.Errorf("%w: archive format %d is newer than this Landlord reads (%d); import it with a newer Landlord", ErrBadArchive, m.Format, FormatVersion)
	}
	if _, err := tenant.ParseModel(string(m.Tenant.Model)); err != nil {
		return fmt.Errorf("%w: the header's tenant model: %v", ErrBadArchive, err)
	}
	if m.SchemaVersion < 1 {
		return fmt.Errorf("%w: the header has no schema version", ErrBadArchive)
	}
	seen := map[string]bool{}
	for _, t := range m.Tables {
		if t.Name == "" || seen[t.Name] {
			return fmt.Errorf("%w: the header lists table %q twice or without a name", ErrBadArchive, t.Name)
		}
		seen[t.Name] = true
		if len(t.Columns) == 0 {
			return fmt.Errorf("%w: table %s has no columns", ErrBadArchive, t.Name)
		}
		for _, c := range t.Columns {
			if c.Name == "" || c.Type == "" || c.Name == "tenant_id" {
				return fmt.Errorf("%w: table %s has a column without name or type, or a tenant_id", ErrBadArchive, t.Name)
			}
		}
	}
	return nil
}

type tableEnd struct {
	Rows   int64  `json:"rows"`
	SHA256 string `json:"sha256"`
}

// writer writes an archive's frames.
type writer struct {
	gz  *gzip.Writer
	buf *bufio.Writer
}

func newWriter(w io.Writer, level int) (*writer, error) {
	gz, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return nil, err
	}
	ww := &writer{gz: gz, buf: bufio.NewWriterSize(gz, 64<<10)}
	if _, err := ww.buf.WriteString(magic); err != nil {
		return nil, err
	}
	return ww, nil
}

func (w *writer) frame(kind byte, payload []byte) error {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.buf.Write(h[:]); err != nil {
		return err
	}
	_, err := w.buf.Write(payload)
	return err
}

func (w *writer) json(kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.frame(kind, b)
}

// close writes the gzip trailer; the underlying writer stays open.
func (w *writer) close() error {
	if err := w.buf.Flush(); err != nil {
		return err
	}
	return w.gz.Close()
}

// tableWriter is the io.Writer COPY TO writes a table's rows into: it cuts
// them into D frames and counts and digests them.
type tableWriter struct {
	w    *writer
	buf  []byte
	sum  hash.Hash
	rows int64
	// progress, when set, is told the rows so far after each frame.
	progress func(rows int64)
}

func (w *writer) table(progress func(int64)) *tableWriter {
	return &tableWriter{w: w, buf: make([]byte, 0, dataFrameSize), sum: sha256.New(), progress: progress}
}

func (t *tableWriter) Write(p []byte) (int, error) {
	t.sum.Write(p)
	t.rows += int64(bytes.Count(p, []byte{'\n'}))
	n := len(p)
	for len(p) > 0 {
		c := min(len(p), dataFrameSize-len(t.buf))
		t.buf = append(t.buf, p[:c]...)
		p = p[c:]
		if len(t.buf) == dataFrameSize {
			if err := t.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (t *tableWriter) flush() error {
	if len(t.buf) == 0 {
		return nil
	}
	err := t.w.frame(frameData, t.buf)
	t.buf = t.buf[:0]
	if t.progress != nil {
		t.progress(t.rows)
	}
	return err
}

// end flushes the last rows and writes the E frame.
func (t *tableWriter) end() (tableEnd, error) {
	if err := t.flush(); err != nil {
		return tableEnd{}, err
	}
	e := tableEnd{Rows: t.rows, SHA256: hex.EncodeToString(t.sum.Sum(nil))}
	return e, t.w.json(frameEnd, e)
}

// reader reads an archive's frames and checks them as it goes.
type reader struct {
	gz      *gzip.Reader
	br      *bufio.Reader
	payload []byte
	// header is the H frame; tables counts the tables read to the end.
	header Manifest
	ends   []tableEnd
	done   bool // the M frame was read and checked
}

func newReader(r io.Reader) (*reader, error) {
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("%w: not a Landlord tenant archive (not gzip: %v)", ErrBadArchive, err)
	}
	rd := &reader{gz: gz, br: bufio.NewReaderSize(gz, 64<<10)}
	got := make([]byte, len(magic))
	if _, err := io.ReadFull(rd.br, got); err != nil || string(got) != magic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, rd.damaged(err)
		}
		return nil, fmt.Errorf("%w: not a Landlord tenant archive (it does not begin with %q)", ErrBadArchive, magic[:len(magic)-1])
	}
	kind, p, err := rd.next()
	if err != nil {
		return nil, err
	}
	if kind != frameHeader {
		return nil, fmt.Errorf("%w: the archive does not begin with its header", ErrBadArchive)
	}
	if err := json.Unmarshal(p, &rd.header); err != nil {
		return nil, fmt.Errorf("%w: the header is not readable: %v", ErrBadArchive, err)
	}
	if err := rd.header.validate(); err != nil {
		return nil, err
	}
	return rd, nil
}

// damaged describes a read error of the compressed stream.
func (r *reader) damaged(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the archive is truncated (%s)", ErrBadArchive, r.where())
	}
	return fmt.Errorf("%w: the archive is damaged (%s): %v", ErrBadArchive, r.where(), err)
}

func (r *reader) where() string {
	switch {
	case r.done:
		return "after its manifest"
	case len(r.ends) < len(r.header.Tables) && r.header.Format != 0:
		return "in table " + r.header.Tables[len(r.ends)].Name
	case r.header.Format != 0:
		return "before its manifest"
	default:
		return "in its header"
	}
}

// next reads one frame. The payload is valid until the next call.
func (r *reader) next() (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, r.damaged(err)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: the archive is damaged (%s): a frame of %d bytes", ErrBadArchive, r.where(), n)
	}
	if cap(r.payload) < int(n) {
		r.payload = make([]byte, n)
	}
	r.payload = r.payload[:n]
	if _, err := io.ReadFull(r.br, r.payload); err != nil {
		return 0, nil, r.damaged(err)
	}
	return h[0], r.payload, nil
}

// tableReader is the io.Reader of one table's rows: the D frames up to the
// table's E frame, which it checks against what it read before it returns
// io.EOF.
type tableReader struct {
	r     *reader
	table Table
	sum   hash.Hash
	rows  int64
	rest  []byte
	err   error
	// progress, when set, is told the rows so far after each frame.
	progress func(rows int64)
}

// table begins the next table of the header.
func (r *reader) table(progress func(int64)) (*tableReader, error) {
	i := len(r.ends)
	if i >= len(r.header.Tables) {
		return nil, errors.New("no table left")
	}
	kind, p, err := r.next()
	if err != nil {
		return nil, err
	}
	var begin struct {
		Name string `json:"name"`
	}
	if kind != frameTable || json.Unmarshal(p, &begin) != nil || begin.Name != r.header.Tables[i].Name {
		return nil, fmt.Errorf("%w: the archive is damaged: expected table %s", ErrBadArchive, r.header.Tables[i].Name)
	}
	return &tableReader{r: r, table: r.header.Tables[i], sum: sha256.New(), progress: progress}, nil
}

func (t *tableReader) Read(p []byte) (int, error) {
	for len(t.rest) == 0 {
		if t.err != nil {
			return 0, t.err
		}
		kind, payload, err := t.r.next()
		switch {
		case err != nil:
			t.err = err
		case kind == frameData:
			t.sum.Write(payload)
			t.rows += int64(bytes.Count(payload, []byte{'\n'}))
			t.rest = payload
			if t.progress != nil {
				t.progress(t.rows)
			}
		case kind == frameEnd:
			t.err = t.finish(payload)
		default:
			t.err = fmt.Errorf("%w: the archive is damaged: unexpected frame %q in table %s", ErrBadArchive, kind, t.table.Name)
		}
	}
	n := copy(p, t.rest)
	t.rest = t.rest[n:]
	return n, nil
}

// finish checks the E frame against the rows read; io.EOF means it holds.
func (t *tableReader) finish(payload []byte) error {
	var e tableEnd
	if err := json.Unmarshal(payload, &e); err != nil {
		return fmt.Errorf("%w: the end of table %s is not readable: %v", ErrBadArchive, t.table.Name, err)
	}
	sum := hex.EncodeToString(t.sum.Sum(nil))
	if e.Rows != t.rows || e.SHA256 != sum {
		return fmt.Errorf("%w: table %s: the archive says %d rows with SHA-256 %.12s…, its rows are %d with %.12s… (altered or damaged)",
			ErrBadArchive, t.table.Name, e.Rows, e.SHA256, t.rows, sum)
	}
	t.r.ends = append(t.r.ends, e)
	return io.EOF
}

// drain reads the rest of the table, for a reader that skips it.
func (t *tableReader) drain() error {
	_, err := io.Copy(io.Discard, t)
	return err
}

// manifest reads the M frame after the last table and checks it against
// the header and every table's count and digest, and that nothing follows.
func (r *reader) manifest() (Manifest, error) {
	kind, p, err := r.next()
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if kind != frameManifest || json.Unmarshal(p, &m) != nil {
		return Manifest{}, fmt.Errorf("%w: the archive is damaged: its manifest is missing or not readable", ErrBadArchive)
	}
	r.done = true
	if !m.sameShape(r.header) || m.Tenant != r.header.Tenant || m.SchemaVersion != r.header.SchemaVersion || m.Format != r.header.Format {
		return Manifest{}, fmt.Errorf("%w: the manifest does not agree with the header (altered)", ErrBadArchive)
	}
	for i, t := range m.Tables {
		if t.Rows != r.ends[i].Rows || t.SHA256 != r.ends[i].SHA256 {
			return Manifest{}, fmt.Errorf("%w: table %s: the manifest says %d rows with SHA-256 %.12s…, the table held %d with %.12s… (altered)",
				ErrBadArchive, t.Name, t.Rows, t.SHA256, r.ends[i].Rows, r.ends[i].SHA256)
		}
	}
	// Nothing may follow, and the gzip trailer must check out.
	if _, err := r.br.ReadByte(); err == nil {
		return Manifest{}, fmt.Errorf("%w: data follows the manifest", ErrBadArchive)
	} else if !errors.Is(err, io.EOF) {
		return Manifest{}, r.damaged(err)
	}
	return m, nil
}

// Verify reads a whole archive and checks it: its layout, every table's
// row count and SHA-256 digest, the manifest against both, and gzip's own
// checksum. It returns the manifest of a sound archive; any other archive
// gets an error wrapping ErrBadArchive that says what is wrong. Memory
// stays flat: rows are read a frame at a time.
func Verify(r io.Reader) (Manifest, error) {
	rd, err := newReader(r)
	if err != nil {
		return Manifest{}, err
	}
	for range rd.header.Tables {
		t, err := rd.table(nil)
		if err != nil {
			return Manifest{}, err
		}
		if err := t.drain(); err != nil {
			return Manifest{}, err
		}
	}
	return rd.manifest()
}

// prefixReader puts prefix before every line of r: the tenant_id column
// of each row, which archives leave out.
type prefixReader struct {
	r      io.Reader
	prefix []byte
	in     []byte
	buf    []byte // read from r, not yet passed on
	pend   []byte // what is left of a prefix being passed on
	start  bool   // the next byte of buf begins a row
	err    error
}

func newPrefixReader(r io.Reader, prefix string) *prefixReader {
	return &prefixReader{r: r, prefix: []byte(prefix), in: make([]byte, 64<<10), start: true}
}

func (x *prefixReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(x.pend) > 0 {
			c := copy(p[n:], x.pend)
			x.pend = x.pend[c:]
			n += c
			continue
		}
		if len(x.buf) == 0 {
			if n > 0 {
				return n, nil
			}
			if x.err != nil {
				return 0, x.err
			}
			m, err := x.r.Read(x.in)
			x.buf, x.err = x.in[:m], err
			continue
		}
		if x.start {
			x.pend, x.start = x.prefix, false
			continue
		}
		chunk := x.buf
		i := bytes.IndexByte(chunk, '\n')
		if i >= 0 {
			chunk = chunk[:i+1]
		}
		c := copy(p[n:], chunk)
		n += c
		x.buf = x.buf[c:]
		if i >= 0 && c == i+1 {
			x.start = true
		}
	}
	return n, nil
}
