package jsonstrict

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// stdDecode is the reference: encoding/json's Decoder with UseNumber,
// which DecodeObject must agree with. ok is false when encoding/json
// refuses the input (not one JSON value, or trailing data).
func stdDecode(b []byte) (v any, ok bool) {
	if !json.Valid(b) {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

// shape walks valid JSON with encoding/json's tokenizer and reports
// whether some object repeats a member name (after unescaping) and the
// largest number of containers around one value (a member of the
// top-level object has 1).
func shape(b []byte) (dup bool, depth int) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	type frame struct {
		obj   bool
		names map[string]bool
		key   bool // the next token of an object is a member name
	}
	var stack []*frame
	for {
		t, err := d.Token()
		if err == io.EOF {
			return dup, depth
		}
		if err != nil {
			panic("shape of invalid JSON: " + err.Error())
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.key {
			if dl, isDelim := t.(json.Delim); !isDelim || dl != '}' {
				k := t.(string)
				if top.names[k] {
					dup = true
				}
				top.names[k] = true
				top.key = false
				continue
			}
		}
		if dl, isDelim := t.(json.Delim); !isDelim || dl == '{' || dl == '[' {
			depth = max(depth, len(stack)) // a value
		}
		if top != nil && top.obj {
			top.key = true // after this value, a name again
		}
		switch t {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, names: map[string]bool{}, key: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].key = true
			}
		}
	}
}

// maxContainers is the most containers decodeObject accepts around a
// value: the top-level object and maxDepth more.
const maxContainers = maxDepth + 1

// checkDecode asserts decodeObject's contract on one input.
func checkDecode(t *testing.T, b []byte) {
	got, err := DecodeObject(b)
	want, ok := stdDecode(b)
	if !ok {
		if err == nil {
			t.Fatalf("%q: accepted, encoding/json refuses it", b)
		}
		return
	}
	if _, isObj := want.(map[string]any); !isObj {
		if err == nil {
			t.Fatalf("%q: accepted a %T", b, want)
		}
		return
	}
	dup, depth := shape(b)
	switch {
	case dup:
		if !errors.Is(err, errDuplicateKey) {
			t.Fatalf("%q: duplicate member names: got err %v", b, err)
		}
	case depth > maxContainers:
		if err == nil {
			t.Fatalf("%q: nested %d deep, accepted", b, depth)
		}
	case err != nil:
		t.Fatalf("%q: valid (depth %d), refused: %v", b, depth, err)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%q:\n got %#v\nwant %#v", b, got, want)
	}
}

var jsonSeeds = []string{
	`{}`, ` { } `, "\t\r\n{\"a\":1}\n",
	`{"alg":"RS256","kid":"rsa1","typ":"at+jwt"}`,
	`{"ver":1,"jti":"AT.x","iss":"https://id.example.com/oauth2/default","aud":"api://default","iat":1700000000,"exp":1700003600,"cid":"c","uid":"u","scp":["a","b"],"sub":"s"}`,
	`{"a":{"b":{"c":[1,2,{"d":null}]}},"e":[],"f":{},"g":true,"h":false}`,
	`{"n":-0,"m":0.5,"o":1e10,"p":1E+2,"q":-1.25e-3,"r":123456789012345678901234567890,"s":1e999999}`,
	`{"n":01}`, `{"n":1.}`, `{"n":.5}`, `{"n":-}`, `{"n":+1}`, `{"n":1e}`, `{"n":1e+}`, `{"n":0x10}`, `{"n":NaN}`, `{"n":Infinity}`, `{"n":--1}`, `{"n":1.e5}`,
	`{"s":"\u0073\n\t\"\\\/\b\f\r"}`, `{"s":"\ud83d\ude00"}`, `{"s":"\ud800"}`, `{"s":"\udc00\ud800"}`, `{"s":"\ud800\u0041"}`,
	`{"s":"\u00e9","t":"é","u":"日本"}`, "{\"s\":\"\xff\"}", "{\"s\":\"a\xc3\"}", "{\"\xff\":1,\"\xfe\":2}", "{\"s\":\"\xed\xa0\x80\"}", "{\"s\":\"\xef\xbf\xbd\"}",
	`{"s":"\x"}`, `{"s":"\u12"}`, `{"s":"\u12G4"}`, "{\"s\":\"a\nb\"}", "{\"s\":\"a\x00b\"}", "{\"s\":\"\x7f\"}",
	`{"a":1,"a":2}`, `{"sub":"x","\u0073ub":"y"}`, `{"":1,"":2}`, `{"":1}`, `{"a":{"b":1,"b":1}}`, `{"a":[{"x":1,"x":1}]}`, `{"a":1,"A":2}`,
	`{"a":1}{}`, `{"a":1} x`, `{"a":1},`, `{"a":1`, `{"a"`, `{"a":}`, `{"a" 1}`, `{a:1}`, `{'a':1}`, `{"a":1,}`, `{,"a":1}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`,
	`[]`, `[{"a":1}]`, `null`, `"s"`, `1`, ``, ` `, "\xef\xbb\xbf{}", "{\f}", "{\v}", "{\u00a0}", "{}\x00",
	`{"a":tru}`, `{"a":truex}`, `{"a":nul}`, `{"a":True}`, `{"a":null,"b":false,"c":true}`,
	`{"x":` + strings.Repeat("[", 33) + strings.Repeat("]", 33) + `}`,
	`{"x":` + strings.Repeat("[", 34) + strings.Repeat("]", 34) + `}`,
	`{"x":` + strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32) + `}`,
	`{"x":` + strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33) + `}`,
	`{"x":` + strings.Repeat(`{"a":`, 32) + "{}" + strings.Repeat("}", 32) + `}`,
	`{"x":` + strings.Repeat(`{"a":`, 32) + "[]" + strings.Repeat("}", 32) + `}`,
	`{"x":` + strings.Repeat("[", 33) + "1" + strings.Repeat("]", 33) + `}`,
}

func TestDecodeObjectMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkDecode(t, []byte(s))
	}
}

func TestDecodeObjectStrictness(t *testing.T) {
	for _, c := range []struct {
		in   string
		want error // nil: accepted
	}{
		{`{"a":1,"a":1}`, errDuplicateKey},
		{`{"sub":"x","\u0073ub":"y"}`, errDuplicateKey},
		{`{"":1,"":2}`, errDuplicateKey},
		{`{"k":{"a":[{"b":1,"b":2}]}}`, errDuplicateKey},
		{"{\"a\xff\":1,\"a\xfe\":2}", errDuplicateKey}, // both are "a\uFFFD", as for encoding/json
		{`{"\ud800":1,"\udbff":2}`, errDuplicateKey},   // lone surrogates: both U+FFFD
		{`{"a":1}{"a":2}`, errTrailing},
		{`[{"a":1}]`, errNotObject},
		{"\xef\xbb\xbf{}", errNotObject},
		{`{"x":` + strings.Repeat("[", 33) + strings.Repeat("]", 33) + `}`, nil},
		{`{"x":` + strings.Repeat("[", 34) + strings.Repeat("]", 34) + `}`, errTooDeep},
		{`{"x":` + strings.Repeat("[", 33) + "1" + strings.Repeat("]", 33) + `}`, errTooDeep},
		{`{"x":` + strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32) + `}`, nil},
		{`{"x":` + strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33) + `}`, errTooDeep},
		{`{"x":` + strings.Repeat("[", 1_000_000), errTooDeep},
		{`{"x":"` + strings.Repeat("é\\n", 300_000) + `"}`, nil},
		{`{"x":"` + strings.Repeat("a", 1<<20), errSyntax},
		{`{"x":"` + strings.Repeat(`\"`, 1<<19), errSyntax},
		// Input ending inside a literal or a number: an error, never a
		// read past the end.
		{`{"a":t`, errSyntax},
		{`{"a":tru`, errSyntax},
		{`{"a":fals`, errSyntax},
		{`{"a":nul`, errSyntax},
		{`{"a":-`, errSyntax},
		{`{"a":0`, errSyntax},
		{`{"a":1`, errSyntax},
		{`{"a":1.`, errSyntax},
		{`{"a":1.5`, errSyntax},
		{`{"a":1e`, errSyntax},
		{`{"a":1e+`, errSyntax},
		// A number part without its digits.
		{`{"a":-}`, errSyntax},
		{`{"a":1.}`, errSyntax},
		{`{"a":1.e5}`, errSyntax},
		{`{"a":1e}`, errSyntax},
		{`{"a":1e-}`, errSyntax},
		{`{"a":-0.5e-7}`, nil},
	} {
		_, err := DecodeObject([]byte(c.in))
		if !errors.Is(err, c.want) {
			in := c.in
			if len(in) > 60 {
				in = in[:60] + "..."
			}
			t.Errorf("%q: err %v, want %v", in, err, c.want)
		}
	}
}

// FuzzDecodeObject compares decodeObject with encoding/json:
//
//	go test -run '^$' -fuzz FuzzDecodeObject -fuzztime 60s ./caddymodule/validator/
func FuzzDecodeObject(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkDecode)
}
