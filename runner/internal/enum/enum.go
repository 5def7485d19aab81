// Package enum reads the short names of the typed enums that config, logs
// and JSON spell (a phase's path, say).
package enum

import (
	"fmt"
	"strings"
)

// Parse returns the value whose name is s (case aside) in names, indexed
// by value; what names the enum in the error.
func Parse[T ~int](what string, names []string, s string) (T, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return T(i), nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q (want one of %s)", what, s, strings.Join(names, ", "))
}

// Name is names[v], or the enum's Go spelling for a value without one.
func Name[T ~int](typ string, names []string, v T) string {
	if v < 0 || int(v) >= len(names) {
		return fmt.Sprintf("%s(%d)", typ, int(v))
	}
	return names[v]
}

// Unmarshal reads the short name b into *into: the body of an enum's
// UnmarshalText.
func Unmarshal[T ~int](what string, names []string, b []byte, into *T) error {
	v, err := Parse[T](what, names, string(b))
	if err == nil {
		*into = v
	}
	return err
}
