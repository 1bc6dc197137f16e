package validator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

var errDuplicateKey = errors.New("duplicate JSON member name")

// decodeObject parses a JSON object strictly: members must be unique at
// every depth (RFC 7515 section 5.2 lets a parser reject duplicates,
// and accepting them lets two parsers disagree about a token), numbers
// stay exact (json.Number), and nothing may follow the object.
func decodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	if t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m, err := readObject(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON object")
	}
	return m, nil
}

// maxDepth bounds nesting so a hostile token cannot exhaust the stack.
const maxDepth = 32

func readObject(d *json.Decoder, depth int) (map[string]any, error) {
	m := map[string]any{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, err
		}
		k, ok := t.(string)
		if !ok {
			return nil, errors.New("bad JSON member name")
		}
		if _, dup := m[k]; dup {
			return nil, errDuplicateKey
		}
		v, err := readValue(d, depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	_, err := d.Token() // '}'
	return m, err
}

func readValue(d *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t {
	case json.Delim('{'):
		return readObject(d, depth+1)
	case json.Delim('['):
		var arr []any
		for d.More() {
			v, err := readValue(d, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := d.Token(); err != nil {
			return nil, err
		}
		if arr == nil {
			arr = []any{}
		}
		return arr, nil
	}
	return t, nil
}
