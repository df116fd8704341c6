package testxmpp

import "testing"

func TestKindFromEnv(t *testing.T) {
	tests := []struct {
		env, want string
		fails     bool
	}{
		{"", Prosody, false},
		{"prosody", Prosody, false},
		{"ejabberd", Ejabberd, false},
		{"openfire", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(EnvVar, tt.env)
			got, err := KindFromEnv()
			if (err != nil) != tt.fails || got != tt.want {
				t.Fatalf("KindFromEnv() with %s=%q = %q, %v", EnvVar, tt.env, got, err)
			}
		})
	}
}
