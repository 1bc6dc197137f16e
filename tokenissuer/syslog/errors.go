// Package syslog is the query side of Okta's System Log API
// (`GET /api/v1/logs`, Okta's System Log API reference) over
// store.EventLog, free of Caddy and HTTP: the parser of `filter`
// expressions (SCIM filters, RFC 7644 section 3.4.2.2), the `q` keyword
// search, and the parameters `since`, `until`, `after`, `limit` and
// `sortOrder`, with Okta's errors for bad ones.
package syslog

import "strings"

// Okta error codes the System Log API answers (Okta's System Log API
// reference, "Errors"; Okta's Error Codes reference).
const (
	// CodeValidation is "Api validation failed": a parameter that does
	// not parse (since, until, limit, sortOrder, after, q).
	CodeValidation = "E0000001"
	// CodeSearchCriteria is "Invalid search criteria.": a filter that
	// parses but combines an operator and a field the log cannot search
	// (Okta: `co` on debugContext.debugData.url, or `published`).
	CodeSearchCriteria = "E0000031"
	// CodeInvalidFilter is "Invalid SCIM filter": a filter that does not
	// parse, or names a field that does not exist.
	CodeInvalidFilter = "E0000053"
)

// Error is a refused request, answered 400 in Okta's error shape:
// errorCode Code, errorSummary Summary, errorCauses one
// {errorSummary} per Causes entry.
type Error struct {
	Code    string
	Summary string
	Causes  []string
}

func (e *Error) Error() string { return e.Code + ": " + e.Summary }

// maxEcho bounds how much client input an error repeats.
const maxEcho = 256

// echo is client input fit to repeat in an error: valid UTF-8, bounded.
func echo(s string) string {
	if len(s) > maxEcho {
		s = s[:maxEcho] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// validation is Okta's "Api validation failed" error for one parameter
// and its causes, in Okta's wording ("Api validation failed: 'until':
// <cause>. 'until': <cause>." with one errorCause "until: <cause>"
// each).
func validation(param string, causes ...string) *Error {
	e := &Error{Code: CodeValidation}
	var b strings.Builder
	b.WriteString("Api validation failed: ")
	for n, c := range causes {
		if n > 0 {
			b.WriteString(". ")
		}
		b.WriteString("'" + param + "': " + c)
		e.Causes = append(e.Causes, param+": "+c)
	}
	e.Summary = b.String()
	return e
}
