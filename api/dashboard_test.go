package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDashboardServed checks the embedded dashboard is reachable, typed and
// locked to its own origin. What it draws is tested in a real browser by
// cmd/privalytics's TestDashboardInBrowser.
func TestDashboardServed(t *testing.T) {
	t.Parallel()
	h := New(Deps{}).Handler()
	tests := []struct {
		path     string
		status   int
		location string
		ctype    string
		contains string
	}{
		{path: "/", status: http.StatusFound, location: "/dashboard/"},
		{path: "/dashboard", status: http.StatusMovedPermanently, location: "/dashboard/"},
		{path: "/dashboard/", status: http.StatusOK, ctype: "text/html", contains: `<script src="app.js" defer></script>`},
		{path: "/dashboard/app.js", status: http.StatusOK, ctype: "text/javascript", contains: "/v1/queries:explain"},
		{path: "/dashboard/app.js?part=views", status: http.StatusOK, ctype: "text/javascript", contains: "/v1/views/preview"},
		{path: "/dashboard/app.css", status: http.StatusOK, ctype: "text/css", contains: ".chart-box"},
		{path: "/dashboard/no-such-file.js", status: http.StatusNotFound},
		{path: "/dashboard/../openapi.yaml", status: http.StatusNotFound}, // no way out of the embedded files
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if w.Code != tt.status {
				t.Fatalf("GET %s: status %d, want %d (body %.200q)", tt.path, w.Code, tt.status, w.Body.String())
			}
			if tt.location != "" && w.Header().Get("Location") != tt.location {
				t.Errorf("GET %s: Location %q, want %q", tt.path, w.Header().Get("Location"), tt.location)
			}
			if tt.ctype != "" && !strings.HasPrefix(w.Header().Get("Content-Type"), tt.ctype) {
				t.Errorf("GET %s: Content-Type %q, want %s", tt.path, w.Header().Get("Content-Type"), tt.ctype)
			}
			if tt.contains != "" && !strings.Contains(w.Body.String(), tt.contains) {
				t.Errorf("GET %s: body lacks %q", tt.path, tt.contains)
			}
			if tt.status == http.StatusOK && !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("GET %s: Content-Security-Policy %q, want one that allows only this origin's scripts", tt.path, w.Header().Get("Content-Security-Policy"))
			}
		})
	}
}
