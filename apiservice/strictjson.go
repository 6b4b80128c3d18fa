package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// decodeJSON decodes exactly one JSON object from the request body into
// the struct v points to, strictly: every key must be one of v's json
// field names, spelled exactly (encoding/json alone matches keys case-
// insensitively), no key may appear twice at any depth (encoding/json
// alone keeps the last), and nothing may follow the object. So a proxy or
// WAF that reads "username" reads the same value the API acts on.
func decodeJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return fmt.Errorf("%w: %w", errBodyTooLarge, err)
		}
		return withDetail(errInvalidInput, "could not read the body")
	}
	if err := checkJSONKeys(body, jsonFieldNames(v)); err != nil {
		return withDetail(errInvalidInput, "malformed JSON body: "+err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return withDetail(errInvalidInput, "malformed JSON body: "+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return withDetail(errInvalidInput, "malformed JSON body: trailing data after the object")
	}
	return nil
}

// jsonFieldNames lists the json names of the fields of the struct v
// points to.
func jsonFieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "":
			names[f.Name] = true
		default:
			names[name] = true
		}
	}
	return names
}

// maxJSONDepth bounds nesting, so a body of brackets cannot recurse deeply.
const maxJSONDepth = 32

// checkJSONKeys reports a body that is not a single JSON object, whose
// top-level keys are not all in allowed (exact spelling), or that repeats
// a key in any object. Keys are reported quoted and cut to 64 bytes.
func checkJSONKeys(body []byte, allowed map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("want a JSON object")
	}
	return checkObject(dec, allowed, 1)
}

// checkObject reads the rest of an object whose '{' was just read.
func checkObject(dec *json.Decoder, allowed map[string]bool, depth int) error {
	if depth > maxJSONDepth {
		return errors.New("nested too deeply")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // the decoder only returns strings in key position
		if seen[key] {
			return fmt.Errorf("duplicate key %s", quoteClient(key))
		}
		seen[key] = true
		if allowed != nil && !allowed[key] {
			return fmt.Errorf("unknown key %s (keys are case-sensitive)", quoteClient(key))
		}
		if err := skipValue(dec, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// skipValue reads one value, checking the objects inside it.
func skipValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if d == '{' {
		return checkObject(dec, nil, depth+1)
	}
	// '['
	if depth+1 > maxJSONDepth {
		return errors.New("nested too deeply")
	}
	for dec.More() {
		if err := skipValue(dec, depth+1); err != nil {
			return err
		}
	}
	_, err = dec.Token() // ']'
	return err
}
