package traffic

import "strings"

// leavesSessionState reports whether sql may leave session state on its
// connection that outlives its transaction: a session-level SET or RESET, a
// set_config call, DISCARD, a cursor declared WITH HOLD, LISTEN, PREPARE,
// DEALLOCATE, LOAD, a temporary table, a session-level advisory lock, or
// setseed (the next tenant's random() would follow it). Any statement with
// a Unicode-escaped identifier counts too, since it can call set_config or
// pg_advisory_lock under a name no scan for them finds. Such a statement costs its
// connection, which is closed after the call instead of going back to the
// pool (SECURITY.md, I06, I26). The check is lexical and errs on the side of
// closing; the enter statement's role check backs it up for state that a
// function sets out of sight.
func leavesSessionState(sql string) bool {
	if containsFold(sql, "set_config") || containsFold(sql, "pg_advisory_lock") || containsFold(sql, "pg_try_advisory_lock") ||
		containsFold(sql, "setseed") {
		return true
	}
	// A Unicode-escaped identifier (U&"set\005fconfig") names any
	// function without spelling it out.
	if containsFold(sql, `u&"`) {
		return true
	}
	first, rest := firstWord(sql)
	switch strings.ToLower(first) {
	case "set":
		// SET LOCAL, SET TRANSACTION and SET CONSTRAINTS end with the
		// transaction; SET local.x = 'v' is a session-level SET of the
		// custom setting local.x.
		switch next, after := firstWord(rest); strings.ToLower(next) {
		case "local", "transaction", "constraints":
			return dotted(after)
		}
		return true
	case "reset", "discard", "declare", "listen", "prepare", "deallocate", "load":
		return true
	case "create":
		// A temporary table lives as long as the session.
		next, rest := firstWord(rest)
		switch strings.ToLower(next) {
		case "local", "global":
			next, _ = firstWord(rest)
		}
		switch strings.ToLower(next) {
		case "temp", "temporary":
			return true
		}
	}
	return false
}

// dotted reports whether s starts with a dot past blanks and comments: the
// word before it began a qualified name, not a keyword.
func dotted(s string) bool {
	for {
		s = strings.TrimLeft(s, " \t\r\n\f")
		switch {
		case strings.HasPrefix(s, "--"):
			_, after, found := strings.Cut(s, "\n")
			if !found {
				return false
			}
			s = after
		case strings.HasPrefix(s, "/*"):
			_, after, found := strings.Cut(s, "*/")
			if !found {
				return false
			}
			s = after
		default:
			return strings.HasPrefix(s, ".")
		}
	}
}

// firstWord returns the first word of sql after blanks and comments, and
// what follows it.
func firstWord(sql string) (word, rest string) {
	for {
		sql = strings.TrimLeft(sql, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(sql, "--"):
			_, after, found := strings.Cut(sql, "\n")
			if !found {
				return "", ""
			}
			sql = after
		case strings.HasPrefix(sql, "/*"):
			_, after, found := strings.Cut(sql, "*/")
			if !found {
				return "", ""
			}
			sql = after
		default:
			end := strings.IndexFunc(sql, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
			})
			if end < 0 {
				return sql, ""
			}
			return sql[:end], sql[end:]
		}
	}
}

// containsFold reports whether s contains the lower-case ASCII word sub, in
// any case, without allocating.
func containsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}
