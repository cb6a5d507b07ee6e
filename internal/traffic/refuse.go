package traffic

import (
	"fmt"
	"strings"
)

// refuse returns an error wrapping ErrStatementRefused when sql holds a
// statement that tenant traffic may not run, and nil otherwise. It is
// checked before anything is sent.
//
// EXPLAIN is refused: its row estimates come from statistics gathered over
// every row of a table, and in the row model a table holds every tenant's
// rows, so a loop of EXPLAINs over guessed values recovers another tenant's
// values and ids (SECURITY.md, I32). The check looks at the first word of
// every statement of sql, past blanks, comments and opening parentheses, so
// that "explain" inside a string literal, a quoted identifier or a longer
// word is not refused; a second statement in the same text (which the
// simple protocol would run) is looked at too. EXPLAIN run by dynamic SQL
// inside a DO block needs PL/pgSQL, whose use Landlord revokes from tenant
// roles in the databases it administers.
//
// LOCK is refused: it takes a lock on a whole table, and in the row model
// a table holds every tenant's rows, so one tenant's ACCESS EXCLUSIVE lock
// held in an open transaction stalls every other tenant's statements on
// that table (SECURITY.md, I38). The app role may take it, since it holds
// UPDATE and DELETE. It is refused in every model, so that the same SQL
// runs, or fails, the same way in all three; row locks (SELECT ... FOR
// UPDATE) reach only the tenant's own rows and stay allowed.
func refuse(sql string) error {
	word := refusedIn(sql, false)
	if word == "" && strings.IndexByte(sql, '\\') >= 0 {
		word = refusedIn(sql, true)
	}
	switch word {
	case "explain":
		return fmt.Errorf("%w: EXPLAIN shows planner estimates drawn from every tenant's rows (SECURITY.md, I32)", ErrStatementRefused)
	case "lock":
		return fmt.Errorf("%w: LOCK locks a whole table, every tenant's rows in the row model (SECURITY.md, I38); lock rows with SELECT ... FOR UPDATE", ErrStatementRefused)
	}
	return nil
}

// refusedIn returns the refused first word ("explain" or "lock") of a
// statement of sql, or "". With backslashes set, a backslash escapes the
// next character in every string literal, as with
// standard_conforming_strings off, which a transaction may set: sql holding
// a backslash is read both ways, so that neither reading hides a statement
// from the check.
func refusedIn(sql string, backslashes bool) string {
	for rest := sql; ; {
		var stmt string
		stmt, rest = nextStatement(rest, backslashes)
		switch w := leadingWord(stmt); {
		case strings.EqualFold(w, "explain"):
			return "explain"
		case strings.EqualFold(w, "lock"):
			return "lock"
		}
		if rest == "" {
			return ""
		}
	}
}

// leadingWord returns the first word of a statement after blanks, opening
// parentheses and comments, block comments nested as PostgreSQL nests them.
func leadingWord(stmt string) string {
	for {
		stmt = strings.TrimLeft(stmt, " \t\r\n\f\v(")
		switch {
		case strings.HasPrefix(stmt, "--"):
			end := strings.IndexByte(stmt, '\n')
			if end < 0 {
				return ""
			}
			stmt = stmt[end:]
		case strings.HasPrefix(stmt, "/*"):
			stmt = stmt[min(skipBlockComment(stmt, 0)+1, len(stmt)):]
		default:
			word, _ := firstWord(stmt)
			return word
		}
	}
}

// nextStatement splits sql after its first statement: the text up to the
// first semicolon that is outside string literals, quoted identifiers,
// dollar quotes and comments, and the text after that semicolon ("" when
// there is none). A literal or comment left open runs to the end.
func nextStatement(sql string, backslashes bool) (stmt, rest string) {
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == ';':
			return sql[:i], sql[i+1:]
		case c == '\'':
			i = skipQuoted(sql, i, '\'', backslashes || escapeString(sql, i))
		case c == '"':
			i = skipQuoted(sql, i, '"', false)
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			if end := strings.IndexByte(sql[i:], '\n'); end >= 0 {
				i += end
			} else {
				i = len(sql)
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			i = skipBlockComment(sql, i)
		case c == '$' && (i == 0 || !identByte(sql[i-1])):
			i = skipDollarQuote(sql, i)
		}
	}
	return sql, ""
}

// escapeString reports whether the quote at sql[i] opens an escape string
// (E'...'), in which a backslash escapes the next character.
func escapeString(sql string, i int) bool {
	return i > 0 && (sql[i-1] == 'e' || sql[i-1] == 'E') && (i == 1 || !identByte(sql[i-2]))
}

// skipQuoted returns the index of the quote that closes the literal or
// identifier opened by quote q at sql[i]; a doubled quote stands for itself.
func skipQuoted(sql string, i int, q byte, backslash bool) int {
	for j := i + 1; j < len(sql); j++ {
		switch {
		case backslash && sql[j] == '\\':
			j++
		case sql[j] == q && j+1 < len(sql) && sql[j+1] == q:
			j++
		case sql[j] == q:
			return j
		}
	}
	return len(sql)
}

// skipBlockComment returns the index of the last character of the block
// comment that starts at sql[i]; such comments nest in PostgreSQL.
func skipBlockComment(sql string, i int) int {
	depth := 0
	for j := i; j+1 < len(sql); j++ {
		switch {
		case sql[j] == '/' && sql[j+1] == '*':
			depth++
			j++
		case sql[j] == '*' && sql[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j
			}
		}
	}
	return len(sql)
}

// skipDollarQuote returns the index of the last character of the
// dollar-quoted string ($$...$$ or $tag$...$tag$) that starts at sql[i], or
// i itself when the dollar opens none (a parameter such as $1).
func skipDollarQuote(sql string, i int) int {
	end := i + 1
	for end < len(sql) && sql[end] != '$' && identByte(sql[end]) && !(end == i+1 && sql[end] >= '0' && sql[end] <= '9') {
		end++
	}
	if end >= len(sql) || sql[end] != '$' {
		return i
	}
	tag := sql[i : end+1]
	if close := strings.Index(sql[end+1:], tag); close >= 0 {
		return end + close + len(tag)
	}
	return len(sql)
}

// identByte reports whether c may continue an unquoted identifier (bytes of
// multibyte characters included).
func identByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}
