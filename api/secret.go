package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// Redacted replaces a secret's value in every output.
const Redacted = "(sensitive)"

// String describes where the secret comes from without its value:
// "(sensitive)" for an inline value, "file:PATH", "env:NAME", or "(none)".
func (s *Secret) String() string {
	switch {
	case s == nil:
		return "(none)"
	case s.Value != "":
		return Redacted
	case s.File != "":
		return "file:" + s.File
	case s.Env != "":
		return "env:" + s.Env
	}
	return "(none)"
}

// Format prints the secret as String does, for every verb (%v, %+v, %#v,
// %s, %q, ...), so that neither a Secret nor a *Secret, alone or inside
// another value, prints its value through fmt.
func (s Secret) Format(f fmt.State, verb rune) {
	str := s.String()
	if verb == 'q' {
		str = strconv.Quote(str)
	}
	fmt.Fprint(f, str)
}

// LogValue logs the secret as String does.
func (s *Secret) LogValue() slog.Value {
	return slog.StringValue(s.String())
}

// redacted returns a copy of s with its value replaced by Redacted.
func (s Secret) redacted() Secret {
	if s.Value != "" {
		s.Value = Redacted
	}
	return s
}

// MarshalJSON encodes the secret with its value redacted.
func (s Secret) MarshalJSON() ([]byte, error) {
	type plain Secret // without methods, so no recursion
	return json.Marshal(plain(s.redacted()))
}

// MarshalYAML encodes the secret with its value redacted.
func (s Secret) MarshalYAML() (any, error) {
	return encodeValue(tables{}, s.redacted()), nil
}

// Resolve returns the secret: the inline value, the content of the file
// (one trailing newline trimmed) or the environment variable. getenv and
// readFile default to os.Getenv and os.ReadFile when nil. Errors name the
// file or variable, never the value.
func (s *Secret) Resolve(getenv func(string) string, readFile func(string) ([]byte, error)) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	n := 0
	if s != nil {
		for _, f := range []string{s.Value, s.File, s.Env} {
			if f != "" {
				n++
			}
		}
	}
	switch {
	case n == 0:
		return "", errors.New("secret: none of value, file or env is set")
	case n > 1:
		return "", fmt.Errorf("secret %s: more than one of value, file or env is set", s)
	case s.Value != "":
		return s.Value, nil
	case s.File != "":
		b, err := readFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", s.File, err)
		}
		v := string(b)
		if t, ok := strings.CutSuffix(v, "\n"); ok {
			v = strings.TrimSuffix(t, "\r")
		}
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.File)
		}
		return v, nil
	default:
		v := getenv(s.Env)
		if v == "" {
			return "", fmt.Errorf("secret: environment variable %s is not set or empty", s.Env)
		}
		return v, nil
	}
}
