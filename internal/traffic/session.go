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
	if containsAnyFold(sql, sessionStateWords) {
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
	s, ok := skipBlanks(s, " \t\r\n\f")
	return ok && strings.HasPrefix(s, ".")
}

// skipBlanks returns s past the characters of cutset and past comments; ok
// is false when a comment runs to the end.
func skipBlanks(s, cutset string) (rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, cutset)
		var found bool
		switch {
		case strings.HasPrefix(s, "--"):
			_, s, found = strings.Cut(s, "\n")
		case strings.HasPrefix(s, "/*"):
			_, s, found = strings.Cut(s, "*/")
		default:
			return s, true
		}
		if !found {
			return "", false
		}
	}
}

// firstWord returns the first word of sql after blanks, opening
// parentheses and comments, and what follows it.
func firstWord(sql string) (word, rest string) {
	sql, ok := skipBlanks(sql, " \t\r\n\f(")
	if !ok {
		return "", ""
	}
	end := strings.IndexFunc(sql, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
	})
	if end < 0 {
		return sql, ""
	}
	return sql[:end], sql[end:]
}

// sessionStateWords are what, anywhere in a statement's text, makes it
// leave session state: functions that set it (set_config with is_local
// false, session advisory locks, setseed for the next tenant's random()),
// and a Unicode-escaped identifier (U&"set\005fconfig"), which names any
// function without spelling it out.
var sessionStateWords = []string{"set_config", "pg_advisory_lock", "pg_try_advisory_lock", "setseed", `u&"`}

// containsAnyFold reports whether s contains one of the lower-case ASCII
// words subs, in any case, in one pass and without allocating.
func containsAnyFold(s string, subs []string) bool {
	for i := range len(s) {
		for _, sub := range subs {
			if hasPrefixFold(s[i:], sub) {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with the lower-case ASCII word
// prefix, in any case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for j := range len(prefix) {
		c := s[j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[j] {
			return false
		}
	}
	return true
}
