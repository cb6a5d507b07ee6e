package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// A counting proxy sits between clients and the server on a unix socket of
// its own and counts what the clients send: the messages after which a
// client waits for the server (Sync ends an extended-protocol pipeline,
// Query is a simple-protocol round trip) and the writes that carry them.
// Liveness pings (pgx's Ping, which pools send before handing out a
// connection that sat idle) are counted apart. Round trips are counted
// exactly this way, for Landlord and for raw pgx alike, without touching
// either: a client is pointed at the proxy instead of the server. The proxy
// costs time of its own, so it serves counting phases only, never timed
// rounds.

// protocol codes of the startup packets (PostgreSQL protocol 3).
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
)

// proxyPort names the proxy's socket file (.s.PGSQL.<port>); clients
// connect with host = the proxy's directory and this port.
const proxyPort = 5432

type msgCounter struct {
	syncs, queries, writes atomic.Int64
	pings                  atomic.Int64 // liveness pings, not in queries
	conns                  atomic.Int64 // client connections accepted
}

// roundTrips is the number of times clients waited for the server, pings
// aside.
func (c *msgCounter) roundTrips() int64 { return c.syncs.Load() + c.queries.Load() }

// pingQuery is the body of the Query message pgx's Ping sends.
const pingQuery = "-- ping\x00"

type proxy struct {
	dir           string
	ln            net.Listener
	network, addr string // the server
	count         msgCounter

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startProxy starts a counting proxy in front of the server cc points at.
func startProxy(cc *pgconn.Config) (*proxy, error) {
	network, addr := pgconn.NetworkAddress(cc.Host, cc.Port)
	dir, err := os.MkdirTemp("", "landlord-bench-proxy-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(proxyPort)))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start counting proxy: %w", err)
	}
	p := &proxy{dir: dir, ln: ln, network: network, addr: addr, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// params are the connection parameters that point a client at the proxy.
func (p *proxy) params() map[string]string {
	return map[string]string{"host": p.dir, "port": strconv.Itoa(proxyPort)}
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.count.conns.Add(1)
		p.wg.Go(func() { p.serve(c) })
	}
}

// track remembers c for close; false once the proxy is closed.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial(p.network, p.addr)
	if err != nil {
		return
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer server.Close()
	p.wg.Go(func() {
		_, _ = io.Copy(client, server)
		client.Close()
	})
	_ = p.forward(countingReader{client, &p.count.writes}, client, server)
}

// forward copies the client's messages to the server, counting them. It
// answers TLS and GSS encryption requests with "no" itself, so that the
// stream stays readable.
func (p *proxy) forward(from io.Reader, client, server io.Writer) error {
	br := bufio.NewReaderSize(from, 64<<10)
	head := make([]byte, 5)
	for {
		if _, err := io.ReadFull(br, head[:4]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(head[:4]))
		if n < 8 || n > 1<<20 {
			return errors.New("counting proxy: bad startup packet")
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(br, body); err != nil {
			return err
		}
		switch binary.BigEndian.Uint32(body[:4]) {
		case sslRequestCode, gssEncRequestCode:
			if _, err := client.Write([]byte{'N'}); err != nil {
				return err
			}
			continue
		}
		if _, err := server.Write(append(head[:4:4], body...)); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(body[:4]) == cancelRequestCode {
			return nil
		}
		break
	}
	buf := make([]byte, 0, 8<<10)
	for {
		if _, err := io.ReadFull(br, head); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(head[1:5]))
		if n < 4 {
			return errors.New("counting proxy: bad message length")
		}
		buf = append(buf[:0], head...)
		buf = append(buf, make([]byte, n-4)...)
		if _, err := io.ReadFull(br, buf[5:]); err != nil {
			return err
		}
		switch head[0] {
		case 'S':
			p.count.syncs.Add(1)
		case 'Q':
			if string(buf[5:]) == pingQuery {
				p.count.pings.Add(1)
			} else {
				p.count.queries.Add(1)
			}
		}
		// Messages go on at once, one write each: batching them here
		// would change nothing the client does, and the proxy's own
		// cost stays out of every timed round.
		if _, err := server.Write(buf); err != nil {
			return err
		}
		if head[0] == 'X' {
			return nil
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
	os.RemoveAll(p.dir)
}

// countingReader counts the reads that return data: one per write of the
// client, as long as the client waits for answers between its writes.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.n.Add(1)
	}
	return n, err
}

// isUnixSocket reports whether host is a unix socket directory.
func isUnixSocket(host string) bool { return strings.HasPrefix(host, "/") }
