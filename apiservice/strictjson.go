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
// the struct v points to. Unlike encoding/json alone it refuses keys not
// spelled exactly as v's json names and repeated keys, so a proxy or WAF
// that reads "username" reads the value the API acts on.
func decodeJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return fmt.Errorf("%w: %w", errBodyTooLarge, err)
		}
		return withDetail(errInvalidInput, "could not read the body")
	}
	// Unmarshal refuses trailing data and values of the wrong type.
	err = checkJSONKeys(body, jsonFieldNames(v))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		return withDetail(errInvalidInput, "malformed JSON body: "+err.Error())
	}
	return nil
}

// jsonFieldNames lists the json names of the struct v points to.
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

// checkJSONKeys reports a body that is not a JSON object, whose top-level
// keys are not all in allowed, or that repeats a key (no field is an object).
func checkJSONKeys(body []byte, allowed map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil {
		return err
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("want a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // the decoder only returns strings in key position
		switch {
		case seen[key]:
			return fmt.Errorf("duplicate key %s", quoteClient(key))
		case !allowed[key]:
			return fmt.Errorf("unknown key %s (keys are case-sensitive)", quoteClient(key))
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}
