package eventtype

import "testing"

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"order.created", true},
		{"invoice.payment-failed", true},
		{"a", true},
		{"A_b.C-d.9", true},
		{"", false},
		{".order", false},
		{"order.", false},
		{"order..created", false},
		{"order.*", false},
		{"order created", false},
		{"ordér", false},
		{string(make([]byte, MaxLen+1)), false},
	}
	for _, tt := range tests {
		if err := Validate(tt.in); (err == nil) != tt.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func TestValidatePattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"*", true},
		{"order.*", true},
		{"order.item.*", true},
		{"order.created", true},
		{"order*", false},
		{"*.created", false},
		{"order.*.x", false},
		{"order.>", false},
		{"**", false},
		{".*", false},
		{"", false},
		{"order.[a]", false},
	}
	for _, tt := range tests {
		if err := ValidatePattern(tt.in); (err == nil) != tt.ok {
			t.Errorf("ValidatePattern(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p, t string
		want bool
	}{
		{"*", "order.created", true},
		{"*", "x", true},
		{"order.*", "order.created", true},
		{"order.*", "order.item.added", true},
		{"order.*", "order", false},
		{"order.*", "orders.created", false},
		{"order.created", "order.created", true},
		{"order.created", "order.created.v2", false},
		{"invoice.*", "order.created", false},
	}
	for _, tt := range tests {
		if got := Match(tt.p, tt.t); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.p, tt.t, got, tt.want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("order.*", "order.created")
	f.Add("*", "")
	f.Fuzz(func(t *testing.T, p, typ string) {
		if ValidatePattern(p) != nil || Validate(typ) != nil {
			return
		}
		got := Match(p, typ)
		if p == typ && !got {
			t.Fatalf("exact pattern %q does not match itself", p)
		}
		if p == "*" && !got {
			t.Fatalf("* does not match %q", typ)
		}
	})
}
