package enum

import "testing"

type color int

var names = []string{"red", "green"}

func TestParseAndName(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want color
		err  bool
	}{{"red", 0, false}, {"GREEN", 1, false}, {"blue", 0, true}, {"", 0, true}} {
		got, err := Parse[color]("color", names, tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("Parse(%q) = %v, %v", tt.in, got, err)
		}
	}
	var c color
	if err := Unmarshal("color", names, []byte("green"), &c); err != nil || c != 1 {
		t.Errorf("Unmarshal(green) = %v, %v", c, err)
	}
	if err := Unmarshal("color", names, []byte("blue"), &c); err == nil || c != 1 {
		t.Errorf("Unmarshal(blue) = %v, %v; want an error, the value untouched", c, err)
	}
	if Name("color", names, color(1)) != "green" || Name("color", names, color(5)) != "color(5)" {
		t.Error("Name")
	}
}
