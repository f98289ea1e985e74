package api_test

import (
	"strings"
	"testing"

	"github.com/privalytics/privalytics"
	"github.com/privalytics/privalytics/api"
)

// FuzzTrackOrigins: whatever a key's name holds, TrackOrigins either refuses it
// with an invalid error or returns origins that parse again to themselves
// (what is stored is what is compared with the Origin header).
func FuzzTrackOrigins(f *testing.F) {
	for _, s := range []string{"https://shop.example", "http://127.0.0.1:8080 https://WWW.Shop.example", "shop.example", "https://shop.example/path", "https://u@shop.example", "", "  ", "ftp://x", "https://shop.example?x=1", "https://[::1]:443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := api.TrackOrigins(name)
		if err != nil {
			if privalytics.ErrorCode(err) != privalytics.EINVALID {
				t.Fatalf("TrackOrigins(%q): %v, want an invalid error", name, err)
			}
			return
		}
		again, err := api.TrackOrigins(strings.Join(got, " "))
		if err != nil || strings.Join(again, " ") != strings.Join(got, " ") {
			t.Fatalf("TrackOrigins(%q) = %q, which reads back as %q, %v", name, got, again, err)
		}
	})
}
